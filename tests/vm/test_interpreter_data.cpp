// The interpreter's data instructions against plain C++: casts between every pair of kinds (and
// into every named type), views that keep each thread's bits (u32 <-> u4), replicated layouts,
// slice, repeat, permute and reshape.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "interpreter_kernel.h"

using namespace nibble;
using namespace nibble::vm;
using namespace nibble::vm::interp_test;

namespace {

const DataType f32 = DataType::f32();
const DataType u32 = DataType::uint(32);
const DataType u4 = DataType::uint(4);

// A program that loads n codes of `from`, casts them to `to` and stores them.
Program cast_program(DataType from, DataType to, int64_t n) {
  Kernel k("cast");
  const int in = k.pointer("in", from);
  const int out = k.pointer("out", to);
  const TensorId src = k.global("src", in, {c(n)});
  const TensorId dst = k.global("dst", out, {c(n)});
  const TensorId a = k.registers("a", from, {n});
  const TensorId b = k.registers("b", to, {n});
  k.add(LoadGlobal{a, src, at({0}), 0.0});
  k.add(Cast{b, a});
  k.add(StoreGlobal{dst, at({0}), b});
  return k.program;
}

std::vector<uint64_t> run_cast(DataType from, DataType to, const std::vector<uint64_t>& codes) {
  const auto n = static_cast<int64_t>(codes.size());
  std::vector<uint8_t> input = dtypes::pack(from, codes);
  std::vector<uint8_t> output(dtypes::packed_size_bytes(to, codes.size()), 0);
  run(cast_program(from, to, n), {buffer_of(input), buffer_of(output)});
  return dtypes::unpack(to, output, codes.size());
}

// The cast as the VM defines it, written from the codec: integers saturate, NaN becomes 0 in an
// integer type, everything else is encode(to, decode(from)).
uint64_t reference_cast(DataType from, uint64_t code, DataType to) {
  if (from == to) return code;  // NaN payloads included
  if (from.is_integer() && to.is_integer()) {
    const double value = dtypes::decode(from, code);
    // Exact for the integers the test uses (|value| < 2^53).
    return dtypes::encode(to, value);
  }
  const double value = dtypes::decode(from, code);
  if (to.is_integer() && std::isnan(value)) return 0;
  return dtypes::encode(to, value);
}

bool has_nan_code(DataType type, uint64_t code) {
  return type.is_float() && std::isnan(dtypes::decode(type, code));
}

}  // namespace

TEST_CASE("casts from u4, i4, f4e2m1 and f8e4m3 to f16 and f32 equal dtypes::decode",
          "[interpreter]") {
  for (const char* from_name : {"u4", "i4", "f4e2m1", "f8e4m3"}) {
    const DataType from = DataType::parse(from_name);
    std::vector<uint64_t> codes(size_t{1} << from.bits());
    for (size_t i = 0; i < codes.size(); ++i)
      codes[i] = i;
    for (const DataType to : {DataType::f16(), f32}) {
      INFO(from.name() << " -> " << to.name());
      const std::vector<uint64_t> result = run_cast(from, to, codes);
      for (uint64_t code : codes) {
        INFO("code " << code);
        const double value = dtypes::decode(from, code);
        if (std::isnan(value)) {
          CHECK(std::isnan(dtypes::decode(to, result[code])));
        } else {
          CHECK(dtypes::decode(to, result[code]) == value);  // exact: both are wider
        }
      }
    }
  }
}

TEST_CASE("casts into every named type round and saturate as the codec does", "[interpreter]") {
  std::vector<float> specials = {0.0f,
                                 -0.0f,
                                 1.0f,
                                 -1.0f,
                                 0.5f,
                                 1.5f,
                                 2.5f,
                                 -2.5f,
                                 3.75f,
                                 6.0f,
                                 7.0f,
                                 100.0f,
                                 -100.f,
                                 1e6f,
                                 -1e6f,
                                 1e-3f,
                                 -3e-5f,
                                 65504,
                                 65520.0f,
                                 70000,
                                 3e38f,
                                 1e-40f,
                                 127.5f,
                                 -128.5f,
                                 255.5f,
                                 448.0f,
                                 464.0f,
                                 -0.3f,
                                 std::numeric_limits<float>::infinity(),
                                 -std::numeric_limits<float>::infinity()};
  std::vector<uint64_t> float_codes;
  for (float v : specials)
    float_codes.push_back(bits_of(v));
  std::mt19937 rng(11);
  for (int i = 0; i < 34; ++i) {
    float_codes.push_back(bits_of(std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng),
                                             static_cast<int>(rng() % 40) - 20)));
  }
  std::vector<uint64_t> int_codes;
  for (int64_t v : std::initializer_list<int64_t>{
           0,    1,    -1,  2,   7,     8,     -8,      15,        16,        127, 128,
           -128, -129, 255, 256, 65535, 65536, 1 << 30, INT32_MIN, INT32_MAX, -7,  3}) {
    int_codes.push_back(static_cast<uint64_t>(v) & 0xffffffffu);
  }
  for (const DataType to : dtypes::named_types()) {
    INFO("to " << to.name());
    {
      const std::vector<uint64_t> result = run_cast(f32, to, float_codes);
      for (size_t i = 0; i < float_codes.size(); ++i) {
        INFO(float_of(static_cast<uint32_t>(float_codes[i])));
        CHECK(result[i] == reference_cast(f32, float_codes[i], to));
      }
    }
    {
      const DataType i32 = DataType::sint(32);
      const std::vector<uint64_t> result = run_cast(i32, to, int_codes);
      for (size_t i = 0; i < int_codes.size(); ++i) {
        INFO(static_cast<int32_t>(int_codes[i]));
        CHECK(result[i] == reference_cast(i32, int_codes[i], to));
      }
    }
  }
}

TEST_CASE("casts between other pairs, on random codes", "[interpreter]") {
  std::mt19937_64 rng(12);
  for (const char* from_name :
       {"f16", "bf16", "f8e5m2", "f6e3m2", "i8", "u8", "u16", "i64", "f64"}) {
    const DataType from = DataType::parse(from_name);
    std::vector<uint64_t> codes(64);
    for (uint64_t& code : codes) {
      code = rng() & from.bit_mask();
      if (from.bits() == 64) code &= from.is_float() ? ~uint64_t{0} : (uint64_t{1} << 52) - 1;
    }
    for (const DataType to : dtypes::named_types()) {
      INFO(from.name() << " -> " << to.name());
      std::vector<uint64_t> usable;
      for (uint64_t code : codes) {
        if (!(has_nan_code(from, code) && to.is_float() && !to.has_nan())) usable.push_back(code);
      }
      const std::vector<uint64_t> result = run_cast(from, to, usable);
      for (size_t i = 0; i < usable.size(); ++i) {
        INFO("code " << usable[i]);
        CHECK(result[i] == reference_cast(from, usable[i], to));
      }
    }
  }
}

TEST_CASE("NaN casts to 0 in integers and is an error for floats without NaN",
          "[interpreter][errors]") {
  const uint64_t nan = bits_of(std::numeric_limits<float>::quiet_NaN());
  CHECK(run_cast(f32, DataType::sint(8), {bits_of(1.0f), nan}) == std::vector<uint64_t>{1, 0});
  CHECK(std::isnan(dtypes::decode(DataType::f16(), run_cast(f32, DataType::f16(), {nan})[0])));
  CHECK_THROWS_WITH(run_cast(f32, DataType::parse("f4e2m1"), {bits_of(1.0f), bits_of(2.0f), nan}),
                    Catch::Contains("cast at interp.cpp:4:1, block (0, 0, 0)") &&
                        Catch::Contains("element [2] of 'a' is NaN, which f4e2m1 cannot hold"));
}

TEST_CASE("view keeps each thread's bits: u32 <-> u4 as packed in memory", "[interpreter]") {
  // Each thread holds 2 u32 (64 bits) = 16 u4; thread (w, l) holds words 64w + 2l + {0, 1}.
  const char* words = "S[(4,32,2):(1@warp,1@lane,1@reg)]";
  const char* nibbles = "S[(4,32,16):(1@warp,1@lane,1@reg)]";
  Kernel k("view");
  const int in = k.pointer("in", u32);
  const int out = k.pointer("out", u4);
  const int back = k.pointer("back", u32);
  const TensorId src = k.global("src", in, {c(256)});
  const TensorId dst = k.global("dst", out, {c(2048)});
  const TensorId again = k.global("again", back, {c(256)});
  const TensorId w = k.registers("w", u32, {256}, words);
  const TensorId q = k.registers("q", u4, {2048}, nibbles);
  const TensorId q2 = k.registers("q2", u4, {2048}, nibbles);
  const TensorId w2 = k.registers("w2", u32, {256}, words);
  k.add(LoadGlobal{w, src, at({0}), 0.0});
  k.add(View{q, w});
  k.add(StoreGlobal{dst, at({0}), q});
  k.add(LoadGlobal{q2, dst, at({0}), 0.0});
  k.add(View{w2, q2});
  k.add(StoreGlobal{again, at({0}), w2});

  std::mt19937 rng(13);
  std::vector<uint32_t> input(256);
  for (uint32_t& v : input)
    v = static_cast<uint32_t>(rng());
  std::vector<uint8_t> packed(1024, 0);
  std::vector<uint32_t> round_trip(256, 0);
  run(k.program, {buffer_of(input), buffer_of(packed), buffer_of(round_trip)});
  CHECK(std::memcmp(packed.data(), input.data(), 1024) == 0);  // nibble j is bits of word j / 8
  CHECK(round_trip == input);

  // A view must keep the bits per thread: 64 bits of u32 are not 32 bits of u4.
  Kernel bad("bad_view");
  const TensorId a = bad.registers("a", u32, {256}, words);
  const TensorId b = bad.registers("b", u4, {1024}, "S[(4,32,8):(1@warp,1@lane,1@reg)]");
  bad.add(AllocRegister{a, 0.0});
  bad.add(View{b, a});
  CHECK_THROWS_WITH(run(bad.program, {}),
                    Catch::Contains("view at interp.cpp:2:1") &&
                        Catch::Contains("each thread holds 64 bits of 'a' (2 register slots of "
                                        "u32) but 32 bits of 'b' (8 slots of u4)"));
}

TEST_CASE("replicated layouts: every replica holds the element, views see them per thread",
          "[interpreter]") {
  // 32 values on the lanes, replicated over the 4 warps; viewed as 128 values, one per thread.
  Kernel k("replicas");
  const int in = k.pointer("in", f32);
  const int out = k.pointer("out", f32);
  const TensorId src = k.global("src", in, {c(32)});
  const TensorId dst = k.global("dst", out, {c(128)});
  const TensorId a = k.registers("a", f32, {32}, "S[32:1@lane] + R[4:1@warp]");
  const TensorId b = k.registers("b", f32, {128}, "S[(4,32):(1@warp,1@lane)]");
  k.add(LoadGlobal{a, src, at({0}), 0.0});
  k.add(View{b, a});
  k.add(StoreGlobal{dst, at({0}), b});

  std::mt19937 rng(14);
  std::vector<float> input = random_floats(32, rng);
  std::vector<float> output(128, 0.0f);
  run(k.program, {buffer_of(input), buffer_of(output)});
  for (size_t t = 0; t < 128; ++t)
    CHECK(output[t] == input[t % 32]);

  // The default layout of a small tensor replicates too; a round trip through it is exact.
  Kernel d("default_replicas");
  const int p = d.pointer("in", f32);
  const int q = d.pointer("out", f32);
  const TensorId g = d.global("g", p, {c(1), c(64)});
  const TensorId h = d.global("h", q, {c(1), c(64)});
  const TensorId r = d.registers("r", f32, {1, 64});
  d.add(LoadGlobal{r, g, at({0, 0}), 0.0});
  d.add(StoreGlobal{h, at({0, 0}), r});
  std::vector<float> x = random_floats(64, rng);
  std::vector<float> y(64, 0.0f);
  run(d.program, {buffer_of(x), buffer_of(y)});
  CHECK(x == y);
}

TEST_CASE("two elements in one register slot are rejected", "[interpreter][errors]") {
  Kernel k("overlap");
  const TensorId a = k.registers("a", f32, {64}, "S[(2,32):(0@reg,1@lane)]");
  k.add(AllocRegister{a, 0.0});
  CHECK_THROWS_WITH(run(k.program, {}),
                    Catch::Contains("register tensor 'a'") &&
                        Catch::Contains("elements 0 and 32 share register slot 0 of thread 0"));
}

TEST_CASE("slice, repeat, permute and reshape move elements logically", "[interpreter]") {
  std::mt19937 rng(15);
  const std::vector<float> input = random_floats(8 * 12, rng);
  const auto source_at = [&](int64_t i, int64_t j) {
    return input[static_cast<size_t>(i * 12 + j)];
  };

  struct Case {
    const char* name;
    Shape result;
    std::function<Statement::Node(TensorId result, TensorId source)> instruction;
    std::function<float(int64_t, int64_t)> expected;  // result (i, j) (rank 2 results)
  };
  const std::vector<Case> cases = {
      {"slice",
       {3, 5},
       [](TensorId r, TensorId s) {
         return Instruction(Slice{r, s, {4, 6}});
       },
       [&](int64_t i, int64_t j) { return source_at(i + 4, j + 6); }},
      {"repeat rows",
       {24, 12},
       [](TensorId r, TensorId s) {
         return Instruction(Repeat{r, s, 0, 3});
       },
       [&](int64_t i, int64_t j) { return source_at(i / 3, j); }},
      {"repeat columns",
       {8, 48},
       [](TensorId r, TensorId s) {
         return Instruction(Repeat{r, s, 1, 4});
       },
       [&](int64_t i, int64_t j) { return source_at(i, j / 4); }},
      {"permute",
       {12, 8},
       [](TensorId r, TensorId s) {
         return Instruction(Permute{r, s, {1, 0}});
       },
       [&](int64_t i, int64_t j) { return source_at(j, i); }},
      {"reshape",
       {4, 24},
       [](TensorId r, TensorId s) {
         return Instruction(Reshape{r, s});
       },
       [&](int64_t i, int64_t j) { return input[static_cast<size_t>(i * 24 + j)]; }},
  };
  for (const Case& t : cases) {
    INFO(t.name);
    Kernel k("move");
    const int in = k.pointer("in", f32);
    const int out = k.pointer("out", f32);
    const TensorId src = k.global("src", in, {c(8), c(12)});
    const TensorId dst = k.global("dst", out, {c(t.result[0]), c(t.result[1])});
    // The source in a column-major layout, the result in the default one.
    const TensorId a =
        k.registers("a", f32, {8, 12}, "S[(8,12):(1@lane,1@reg)] + R[(4,4):(8@lane,1@warp)]");
    const TensorId b = k.registers("b", f32, t.result);
    k.add(LoadGlobal{a, src, at({0, 0}), 0.0});
    k.add(t.instruction(b, a));
    k.add(StoreGlobal{dst, at({0, 0}), b});
    std::vector<float> input_copy = input;
    std::vector<float> output(static_cast<size_t>(t.result[0] * t.result[1]), 0.0f);
    run(k.program, {buffer_of(input_copy), buffer_of(output)});
    for (int64_t i = 0; i < t.result[0]; ++i) {
      for (int64_t j = 0; j < t.result[1]; ++j) {
        CHECK(output[static_cast<size_t>(i * t.result[1] + j)] == t.expected(i, j));
      }
    }
  }
}
