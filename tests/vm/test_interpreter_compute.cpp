// The interpreter's compute instructions and statements against plain C++: every elementwise
// operation on f32, f16 and i32 (tensor and scalar operands, mixed layouts), reductions on both
// axes, dot in its documented order, shuffles, print, control flow, and the errors of scalar
// evaluation and runaway loops.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>
#include <sstream>

#include "interpreter_kernel.h"

using namespace nibble;
using namespace nibble::vm;
using namespace nibble::vm::interp_test;

namespace {

const DataType f32 = DataType::f32();
const DataType f16 = DataType::f16();
const DataType bf16 = DataType::bf16();
const DataType i32 = DataType::sint(32);
const DataType i8 = DataType::sint(8);
const DataType u1 = DataType::uint(1);

// A tensor operand (its codes) or a scalar expression.
struct Input {
  DataType dtype = f32;
  std::vector<uint64_t> codes;
  std::optional<Expr> scalar;
};

// Layouts the operands and the result take in turn (the first operand takes the default): a
// lane-per-column one with replicas, and a warp-per-two-rows one.
const char* const kLayouts[] = {"S[(8,32):(1@reg,1@lane)] + R[4:1@warp]",
                                "S[(4,2,32):(1@warp,1@reg,1@lane)]"};

Layout layout_number(size_t i) {
  return Layout::parse(kLayouts[i % 2]);
}

// result = op(inputs) on [8, 32] tensors, the result in a third layout; returns its codes.
std::vector<uint64_t> run_elementwise(ElementwiseOp op, DataType result,
                                      const std::vector<Input>& inputs) {
  Kernel k("elementwise");
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<Argument> arguments;
  std::vector<Operand> operands;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].scalar) {
      operands.emplace_back(*inputs[i].scalar);
      continue;
    }
    const int p = k.pointer(fmt::format("in{}", i), inputs[i].dtype);
    const TensorId view = k.global(fmt::format("g{}", i), p, {c(8), c(32)});
    const TensorId t =
        i == 0 ? k.registers(fmt::format("t{}", i), inputs[i].dtype, {8, 32})
               : k.registers(fmt::format("t{}", i), inputs[i].dtype, {8, 32}, layout_number(i));
    k.add(LoadGlobal{t, view, at({0, 0}), 0.0});
    operands.emplace_back(t);
    buffers.push_back(dtypes::pack(inputs[i].dtype, inputs[i].codes));
  }
  const int out = k.pointer("out", result);
  const TensorId dst = k.global("dst", out, {c(8), c(32)});
  const TensorId r = k.registers("r", result, {8, 32}, layout_number(2));
  k.add(Elementwise{r, op, operands});
  k.add(StoreGlobal{dst, at({0, 0}), r});
  buffers.emplace_back(dtypes::packed_size_bytes(result, 256), 0);
  for (auto& b : buffers)
    arguments.emplace_back(buffer_of(b));
  interpret(k.program, arguments);
  return dtypes::unpack(result, buffers.back(), 256);
}

std::vector<uint64_t> float_codes(std::mt19937& rng, double low, double high) {
  std::uniform_real_distribution<float> dist(static_cast<float>(low), static_cast<float>(high));
  std::vector<uint64_t> codes(256);
  for (uint64_t& code : codes)
    code = bits_of(dist(rng));
  return codes;
}

bool same_bits_or_both_nan(DataType type, uint64_t a, uint64_t b) {
  if (a == b) return true;
  return type.is_float() && std::isnan(dtypes::decode(type, a)) &&
         std::isnan(dtypes::decode(type, b));
}

}  // namespace

TEST_CASE("elementwise f32: every operation, tensor and scalar operands, mixed layouts",
          "[interpreter]") {
  std::mt19937 rng(21);
  const std::vector<uint64_t> a = float_codes(rng, -6, 6);
  std::vector<uint64_t> b = float_codes(rng, -6, 6);
  for (size_t i = 0; i < 256; i += 5)
    b[i] = a[i];  // equal pairs for the comparisons
  const std::vector<uint64_t> cc = float_codes(rng, -6, 6);
  const std::vector<uint64_t> positive = float_codes(rng, 1e-3, 50);
  const auto F = [](uint64_t code) { return float_of(static_cast<uint32_t>(code)); };
  const float scalar = 0.7f;  // as f32: 0.699999988…

  using Op = ElementwiseOp;
  struct Case {
    Op op;
    std::vector<Input> inputs;
    std::function<float(size_t)> expected;
  };
  const Input A{f32, a, {}}, B{f32, b, {}}, C{f32, cc, {}}, P{f32, positive, {}};
  const Input S{f32, {}, Expr::float_constant(0.7)};
  const std::vector<Case> cases = {
      {Op::Neg, {A}, [&](size_t i) { return -F(a[i]); }},
      {Op::Abs, {A}, [&](size_t i) { return std::fabs(F(a[i])); }},
      {Op::Exp2, {A}, [&](size_t i) { return static_cast<float>(std::exp2(double{F(a[i])})); }},
      {Op::Log2,
       {P},
       [&](size_t i) { return static_cast<float>(std::log2(double{F(positive[i])})); }},
      {Op::Rsqrt,
       {P},
       [&](size_t i) { return static_cast<float>(1.0 / std::sqrt(double{F(positive[i])})); }},
      {Op::Add, {A, B}, [&](size_t i) { return F(a[i]) + F(b[i]); }},
      {Op::Sub, {A, B}, [&](size_t i) { return F(a[i]) - F(b[i]); }},
      {Op::Mul, {A, B}, [&](size_t i) { return F(a[i]) * F(b[i]); }},
      {Op::Div, {A, B}, [&](size_t i) { return F(a[i]) / F(b[i]); }},
      {Op::Max, {A, B}, [&](size_t i) { return std::fmax(F(a[i]), F(b[i])); }},
      {Op::Min, {A, B}, [&](size_t i) { return std::fmin(F(a[i]), F(b[i])); }},
      {Op::Add, {A, S}, [&](size_t i) { return F(a[i]) + scalar; }},
      {Op::Div, {S, A}, [&](size_t i) { return scalar / F(a[i]); }},
      {Op::Fma, {A, B, C}, [&](size_t i) { return std::fma(F(a[i]), F(b[i]), F(cc[i])); }},
      {Op::Fma, {A, S, C}, [&](size_t i) { return std::fma(F(a[i]), scalar, F(cc[i])); }},
  };
  for (const Case& t : cases) {
    INFO(to_string(t.op) << " with " << t.inputs.size() << " operands");
    const std::vector<uint64_t> result = run_elementwise(t.op, f32, t.inputs);
    for (size_t i = 0; i < 256; ++i) {
      INFO("element " << i);
      CHECK(same_bits_or_both_nan(f32, result[i], bits_of(t.expected(i))));
    }
  }

  struct Comparison {
    Op op;
    std::function<bool(float, float)> expected;
  };
  for (const Comparison& t : std::vector<Comparison>{{Op::Eq, std::equal_to<float>()},
                                                     {Op::Ne, std::not_equal_to<float>()},
                                                     {Op::Lt, std::less<float>()},
                                                     {Op::Le, std::less_equal<float>()},
                                                     {Op::Gt, std::greater<float>()},
                                                     {Op::Ge, std::greater_equal<float>()}}) {
    INFO(to_string(t.op));
    const std::vector<uint64_t> result = run_elementwise(t.op, u1, {A, B});
    for (size_t i = 0; i < 256; ++i)
      CHECK(result[i] == (t.expected(F(a[i]), F(b[i])) ? 1u : 0u));
  }

  std::vector<uint64_t> condition(256);
  for (uint64_t& bit : condition)
    bit = rng() & 1;
  const std::vector<uint64_t> chosen = run_elementwise(Op::Where, f32, {{u1, condition, {}}, A, S});
  for (size_t i = 0; i < 256; ++i) {
    CHECK(chosen[i] == (condition[i] != 0 ? a[i] : uint64_t{bits_of(scalar)}));
  }
}

TEST_CASE("elementwise f16 rounds once to f16; neg and abs flip the sign bit", "[interpreter]") {
  std::mt19937 rng(22);
  std::vector<uint64_t> a(256), b(256), cc(256);
  std::uniform_real_distribution<double> dist(-8, 8);
  for (size_t i = 0; i < 256; ++i) {
    a[i] = f16_bits(dist(rng));
    b[i] = f16_bits(dist(rng));
    cc[i] = f16_bits(dist(rng));
  }
  a[0] = 0x7e01;  // a NaN with a payload: neg keeps it
  const auto H = [](uint64_t code) { return f16_value(static_cast<uint16_t>(code)); };
  using Op = ElementwiseOp;
  const Input A{f16, a, {}}, B{f16, b, {}}, C{f16, cc, {}};
  struct Case {
    Op op;
    std::vector<Input> inputs;
    std::function<uint64_t(size_t)> expected;
  };
  const std::vector<Case> cases = {
      {Op::Add, {A, B}, [&](size_t i) { return f16_bits(H(a[i]) + H(b[i])); }},
      {Op::Mul, {A, B}, [&](size_t i) { return f16_bits(H(a[i]) * H(b[i])); }},
      {Op::Div, {A, B}, [&](size_t i) { return f16_bits(H(a[i]) / H(b[i])); }},
      // The product of two f16 is exact in double, and so is its sum with a small f16.
      {Op::Fma, {A, B, C}, [&](size_t i) { return f16_bits(H(a[i]) * H(b[i]) + H(cc[i])); }},
      {Op::Neg, {A}, [&](size_t i) { return a[i] ^ 0x8000; }},
      {Op::Abs, {A}, [&](size_t i) { return a[i] & 0x7fff; }},
      {Op::Exp2, {B}, [&](size_t i) { return f16_bits(std::exp2(H(b[i]))); }},
  };
  for (const Case& t : cases) {
    INFO(to_string(t.op));
    const std::vector<uint64_t> result = run_elementwise(t.op, f16, t.inputs);
    for (size_t i = 0; i < 256; ++i) {
      INFO("element " << i);
      CHECK(same_bits_or_both_nan(f16, result[i], t.expected(i)));
    }
  }
}

TEST_CASE("elementwise i32 wraps at 32 bits", "[interpreter]") {
  std::mt19937 rng(23);
  std::vector<uint64_t> a(256), b(256), cc(256);
  for (size_t i = 0; i < 256; ++i) {
    a[i] = rng();
    b[i] = i % 3 == 0 ? rng() % 200 : rng();
    cc[i] = rng();
  }
  a[1] = 0x80000000u;  // INT32_MIN: neg and abs wrap to itself
  const auto I = [](uint64_t code) { return static_cast<int32_t>(static_cast<uint32_t>(code)); };
  const auto U = [](uint64_t code) { return static_cast<uint32_t>(code); };
  using Op = ElementwiseOp;
  const Input A{i32, a, {}}, B{i32, b, {}}, C{i32, cc, {}};
  const Input S{i32, {}, Expr::int_constant(-5)};
  struct Case {
    Op op;
    std::vector<Input> inputs;
    std::function<uint32_t(size_t)> expected;
  };
  const std::vector<Case> cases = {
      {Op::Add, {A, B}, [&](size_t i) { return U(a[i]) + U(b[i]); }},
      {Op::Sub, {A, B}, [&](size_t i) { return U(a[i]) - U(b[i]); }},
      {Op::Mul, {A, B}, [&](size_t i) { return U(a[i]) * U(b[i]); }},
      {Op::Mul, {A, S}, [&](size_t i) { return U(a[i]) * static_cast<uint32_t>(-5); }},
      {Op::Neg, {A}, [&](size_t i) { return 0u - U(a[i]); }},
      {Op::Abs, {A}, [&](size_t i) { return I(a[i]) < 0 ? 0u - U(a[i]) : U(a[i]); }},
      {Op::Max,
       {A, B},
       [&](size_t i) { return static_cast<uint32_t>(std::max(I(a[i]), I(b[i]))); }},
      {Op::Min,
       {A, B},
       [&](size_t i) { return static_cast<uint32_t>(std::min(I(a[i]), I(b[i]))); }},
      {Op::Fma, {A, B, C}, [&](size_t i) { return U(a[i]) * U(b[i]) + U(cc[i]); }},
  };
  for (const Case& t : cases) {
    INFO(to_string(t.op));
    const std::vector<uint64_t> result = run_elementwise(t.op, i32, t.inputs);
    for (size_t i = 0; i < 256; ++i)
      CHECK(result[i] == t.expected(i));
  }
  const std::vector<uint64_t> less = run_elementwise(Op::Lt, u1, {A, B});
  for (size_t i = 0; i < 256; ++i)
    CHECK(less[i] == (I(a[i]) < I(b[i]) ? 1u : 0u));
}

TEST_CASE("reduce sum, max and min along either axis, in index order", "[interpreter]") {
  std::mt19937 rng(24);
  const std::vector<float> input = random_floats(8 * 16, rng, -3, 3);
  for (const DataType dtype : {f32, f16}) {
    std::vector<uint64_t> codes(input.size());
    for (size_t i = 0; i < input.size(); ++i) {
      codes[i] = dtype == f32 ? bits_of(input[i]) : f16_bits(input[i]);
    }
    const auto value = [&](size_t i) { return dtypes::decode(dtype, codes[i]); };
    const auto round = [&](double v) { return dtypes::decode(dtype, dtypes::encode(dtype, v)); };
    for (int axis : {0, 1}) {
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
        INFO(dtype.name() << " " << to_string(op) << " axis " << axis);
        const Shape out_shape = axis == 0 ? Shape{1, 16} : Shape{8, 1};
        Kernel k("reduce");
        const int in = k.pointer("in", dtype);
        const int out = k.pointer("out", dtype);
        const TensorId src = k.global("src", in, {c(8), c(16)});
        const TensorId dst = k.global("dst", out, {c(out_shape[0]), c(out_shape[1])});
        const TensorId a =
            k.registers("a", dtype, {8, 16}, "S[(8,16):(4@lane,1@reg)] + R[(4,4):(1@lane,1@warp)]");
        const TensorId r = k.registers("r", dtype, out_shape);
        k.add(LoadGlobal{a, src, at({0, 0}), 0.0});
        k.add(Reduce{r, a, op, axis});
        k.add(StoreGlobal{dst, at({0, 0}), r});
        std::vector<uint8_t> in_bytes = dtypes::pack(dtype, codes);
        std::vector<uint8_t> out_bytes(dtypes::packed_size_bytes(dtype, 16), 0);
        interpret(k.program, std::vector<Argument>{buffer_of(in_bytes), buffer_of(out_bytes)});
        const std::vector<uint64_t> result =
            dtypes::unpack(dtype, out_bytes, static_cast<size_t>(out_shape[0] * out_shape[1]));
        for (size_t o = 0; o < result.size(); ++o) {
          const auto element = [&](size_t kk) { return axis == 0 ? kk * 16 + o : o * 16 + kk; };
          const size_t extent = axis == 0 ? 8 : 16;
          double accumulator = value(element(0));
          for (size_t kk = 1; kk < extent; ++kk) {
            const double v = value(element(kk));
            accumulator = op == ReduceOp::Sum   ? round(accumulator + v)
                          : op == ReduceOp::Max ? std::max(accumulator, v)
                                                : std::min(accumulator, v);
          }
          CHECK(dtypes::decode(dtype, result[o]) == accumulator);
        }
      }
    }
  }

  // i32 sums wrap.
  Kernel k("reduce_i32");
  const int out = k.pointer("out", i32);
  const TensorId dst = k.global("dst", out, {c(1), c(1)});
  const TensorId a = k.registers("a", i32, {1, 4});
  const TensorId r = k.registers("r", i32, {1, 1});
  k.add(AllocRegister{a, 1.5e9});
  k.add(Reduce{r, a, ReduceOp::Sum, 1});
  k.add(StoreGlobal{dst, at({0, 0}), r});
  std::vector<int32_t> result(1);
  interpret(k.program, std::vector<Argument>{buffer_of(result)});
  CHECK(static_cast<uint32_t>(result[0]) == static_cast<uint32_t>(1500000000u * 4u));
}

TEST_CASE("dot accumulates in k order, one rounding per step", "[interpreter]") {
  const int64_t M = 16, N = 8, K = 32;
  std::mt19937 rng(25);
  struct Case {
    DataType input;
    DataType accumulator;
  };
  for (const Case& t : {Case{f16, f32}, Case{bf16, f32}, Case{f32, f32}, Case{i8, i32}}) {
    INFO(t.input.name() << " -> " << t.accumulator.name());
    std::vector<uint64_t> a(M * K), b(K * N), acc(M * N);
    std::uniform_real_distribution<double> dist(-2, 2);
    for (uint64_t& v : a)
      v = dtypes::encode(t.input, t.input.is_float() ? dist(rng) : double(rng() % 256) - 128);
    for (uint64_t& v : b)
      v = dtypes::encode(t.input, t.input.is_float() ? dist(rng) : double(rng() % 256) - 128);
    for (uint64_t& v : acc) {
      v = t.accumulator == f32
              ? dtypes::encode(f32, dist(rng))
              : static_cast<uint64_t>(INT32_MAX - 1000 + rng() % 2000) & 0xffffffffu;
    }
    Kernel k("dot");
    const int pa = k.pointer("a", t.input);
    const int pb = k.pointer("b", t.input);
    const int pc = k.pointer("c", t.accumulator);
    const TensorId ga = k.global("ga", pa, {c(M), c(K)});
    const TensorId gb = k.global("gb", pb, {c(K), c(N)});
    const TensorId gc = k.global("gc", pc, {c(M), c(N)});
    const TensorId ra = k.registers("ra", t.input, {M, K});
    const TensorId rb =
        k.registers("rb", t.input, {K, N}, "S[(32,8):(1@reg,4@lane)] + R[(4,4):(1@lane,1@warp)]");
    const TensorId rc = k.registers("rc", t.accumulator, {M, N});
    k.add(LoadGlobal{ra, ga, at({0, 0}), 0.0});
    k.add(LoadGlobal{rb, gb, at({0, 0}), 0.0});
    k.add(LoadGlobal{rc, gc, at({0, 0}), 0.0});
    k.add(Dot{rc, ra, rb, {}, false, false});
    k.add(StoreGlobal{gc, at({0, 0}), rc});
    std::vector<uint8_t> abytes = dtypes::pack(t.input, a), bbytes = dtypes::pack(t.input, b),
                         cbytes = dtypes::pack(t.accumulator, acc);
    interpret(k.program,
              std::vector<Argument>{buffer_of(abytes), buffer_of(bbytes), buffer_of(cbytes)});
    const std::vector<uint64_t> result = dtypes::unpack(t.accumulator, cbytes, M * N);
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        const size_t o = static_cast<size_t>(m * N + n);
        if (t.accumulator == f32) {
          // The exact sum of the f32 accumulator and an exact product, rounded once: exact in
          // double for values of this range.
          float sum = float_of(static_cast<uint32_t>(acc[o]));
          for (int64_t kk = 0; kk < K; ++kk) {
            const double product = dtypes::decode(t.input, a[static_cast<size_t>(m * K + kk)]) *
                                   dtypes::decode(t.input, b[static_cast<size_t>(kk * N + n)]);
            sum = static_cast<float>(double{sum} + product);
          }
          CHECK(result[o] == bits_of(sum));
        } else {
          uint32_t sum = static_cast<uint32_t>(acc[o]);
          for (int64_t kk = 0; kk < K; ++kk) {
            sum += static_cast<uint32_t>(
                static_cast<int32_t>(dtypes::decode(i8, a[static_cast<size_t>(m * K + kk)])) *
                static_cast<int32_t>(dtypes::decode(i8, b[static_cast<size_t>(kk * N + n)])));
          }
          CHECK(result[o] == sum);
        }
      }
    }
  }
}

TEST_CASE("shuffles: a xor butterfly sums a warp; up, down and index move lanes", "[interpreter]") {
  // One value per thread: (warp, lane).
  const char* per_thread = "S[(4,32):(1@warp,1@lane)]";
  std::mt19937 rng(26);
  std::vector<float> input(128);
  for (float& v : input)
    v = static_cast<float>(static_cast<int>(rng() % 100) - 50);

  {
    Kernel k("butterfly");
    const int in = k.pointer("in", f32);
    const int out = k.pointer("out", f32);
    const TensorId src = k.global("src", in, {c(128)});
    const TensorId dst = k.global("dst", out, {c(128)});
    const TensorId x = k.registers("x", f32, {128}, per_thread);
    const TensorId y = k.registers("y", f32, {128}, per_thread);
    k.add(LoadGlobal{x, src, at({0}), 0.0});
    for (int64_t lane : {16, 8, 4, 2, 1}) {
      k.add(Shuffle{y, x, ShuffleMode::Xor, c(lane)});
      k.add(Elementwise{x, ElementwiseOp::Add, {x, y}});  // in place
    }
    k.add(StoreGlobal{dst, at({0}), x});
    std::vector<float> output(128, 0.0f);
    run(k.program, {buffer_of(input), buffer_of(output)});
    for (size_t t = 0; t < 128; ++t) {
      float warp_sum = 0;
      for (size_t l = 0; l < 32; ++l)
        warp_sum += input[t / 32 * 32 + l];
      CHECK(output[t] == warp_sum);
    }
  }

  for (ShuffleMode mode :
       {ShuffleMode::Up, ShuffleMode::Down, ShuffleMode::Index, ShuffleMode::Xor}) {
    for (int64_t lane : {0, 3, 17, 40}) {
      INFO(to_string(mode) << " " << lane);
      Kernel k("shuffle");
      const int in = k.pointer("in", f32);
      const int out = k.pointer("out", f32);
      const TensorId src = k.global("src", in, {c(128)});
      const TensorId dst = k.global("dst", out, {c(128)});
      const TensorId x = k.registers("x", f32, {128}, per_thread);
      const TensorId y = k.registers("y", f32, {128}, per_thread);
      k.add(LoadGlobal{x, src, at({0}), 0.0});
      k.add(Shuffle{y, x, mode, c(lane)});
      k.add(StoreGlobal{dst, at({0}), y});
      std::vector<float> output(128, 0.0f);
      run(k.program, {buffer_of(input), buffer_of(output)});
      for (int64_t t = 0; t < 128; ++t) {
        const int64_t l = t % 32;
        int64_t from = mode == ShuffleMode::Up     ? l - lane
                       : mode == ShuffleMode::Down ? l + lane
                       : mode == ShuffleMode::Xor  ? (l ^ lane)
                                                   : lane;
        if (from < 0 || from >= 32) from = l;
        CHECK(output[static_cast<size_t>(t)] == input[static_cast<size_t>(t - l + from)]);
      }
    }
  }
}

TEST_CASE("print writes scalars and tensors, prefixed with the block", "[interpreter]") {
  Kernel k("print");
  k.grid(2);
  const TensorId t = k.registers("t", f32, {2, 3});
  const TensorId s = k.shared("s", DataType::sint(8), {2, 2});
  const TensorId u = k.registers("u", DataType::sint(8), {2, 2});
  k.add(AllocRegister{t, 1.5});
  k.add(AllocRegister{u, -3.0});
  k.add(StoreShared{s, at({0, 0}), u});
  k.add(Print{"t", t, std::nullopt});
  k.add(Print{"x", std::nullopt, Expr::special(Special::BlockIdX) * 10});
  k.add(Print{"s", s, std::nullopt});
  std::ostringstream stream;
  InterpreterOptions options;
  options.print_stream = &stream;
  options.host_threads = 2;
  run(k.program, {}, options);
  CHECK(stream.str() ==
        "block (0, 0, 0) t: f32[2,3] [[1.5, 1.5, 1.5], [1.5, 1.5, 1.5]]\n"
        "block (0, 0, 0) x: 0\n"
        "block (0, 0, 0) s: i8[2,2] [[-3, -3], [-3, -3]]\n"
        "block (1, 0, 0) t: f32[2,3] [[1.5, 1.5, 1.5], [1.5, 1.5, 1.5]]\n"
        "block (1, 0, 0) x: 10\n"
        "block (1, 0, 0) s: i8[2,2] [[-3, -3], [-3, -3]]\n");
}

TEST_CASE("for, while, if, break, let and assign run at block level", "[interpreter]") {
  // total = Σ i for i in [2, 20) by 3, skipping i == 11; then count up until 7 with break.
  Kernel k("control");
  const int out = k.pointer("out", i32);
  const TensorId dst = k.global("dst", out, {c(2)});
  const Expr total = k.var("total");
  const Expr i = k.var("i");
  const Expr n = k.var("n");
  k.add(LetStmt{total, c(0)});
  ForStmt loop{i, c(2), c(20), c(3), {}, 0};
  IfStmt skip{Expr::binary(BinaryOp::Ne, i, c(11)), {}, {}};
  k.add(AssignStmt{total, total + i}, &skip.then_body);
  k.add(std::move(skip), &loop.body);
  k.add(std::move(loop));
  k.add(LetStmt{n, c(0)});
  WhileStmt count{Expr::binary(BinaryOp::Lt, n, c(100)), {}};
  k.add(AssignStmt{n, n + 1}, &count.body);
  IfStmt stop{Expr::binary(BinaryOp::Eq, n, c(7)), {}, {}};
  k.add(BreakStmt{}, &stop.then_body);
  k.add(std::move(stop), &count.body);
  k.add(std::move(count));
  const TensorId zero = k.registers("zero", i32, {1});
  const TensorId a = k.registers("a", i32, {1});
  const TensorId b = k.registers("b", i32, {1});
  k.add(AllocRegister{zero, 0.0});
  k.add(Elementwise{a, ElementwiseOp::Add, {zero, total}});
  k.add(Elementwise{b, ElementwiseOp::Add, {zero, n}});
  k.add(StoreGlobal{dst, at({0}), a});
  k.add(StoreGlobal{dst, at({1}), b});
  std::vector<int32_t> result(2, -1);
  run(k.program, {buffer_of(result)});
  CHECK(result == std::vector<int32_t>{2 + 5 + 8 + 14 + 17, 7});
}

TEST_CASE("scalar errors and runaway loops are errors with a location, not hangs",
          "[interpreter][errors]") {
  {
    Kernel k("divide");
    const Expr d = k.scalar("d");
    const Expr x = k.var("x");
    k.grid(3);
    const int line = k.add(LetStmt{x, floordiv(c(10), d)});
    CHECK_THROWS_WITH(
        run(k.program, {int64_t{0}}),
        Catch::Contains(fmt::format("let at interp.cpp:{}:1, block (0, 0, 0)", line)) &&
            Catch::Contains("division by zero"));
  }
  {
    Kernel k("forever");
    const Expr x = k.var("x");
    k.add(LetStmt{x, c(0)});
    WhileStmt loop{Expr::boolean(true), {}};
    k.add(AssignStmt{x, x + 1}, &loop.body);
    const int line = k.add(std::move(loop));
    InterpreterOptions options;
    options.max_loop_iterations = 1000;
    CHECK_THROWS_WITH(run(k.program, {}, options),
                      Catch::Contains(fmt::format("while at interp.cpp:{}:1", line)) &&
                          Catch::Contains("did not finish within 1000 iterations"));
  }
  {
    Kernel k("steps");
    const Expr s = k.scalar("s");
    const Expr i = k.var("i");
    const int line = k.add(ForStmt{i, c(0), c(10), s, {}, 0});
    CHECK_THROWS_WITH(run(k.program, {int64_t{0}}),
                      Catch::Contains(fmt::format("for at interp.cpp:{}:1", line)) &&
                          Catch::Contains("the step 0 is not positive"));
    InterpreterOptions options;
    options.max_loop_iterations = 5;
    CHECK_THROWS_WITH(run(k.program, {int64_t{1}}, options),
                      Catch::Contains("10 iterations exceed the limit of 5"));
    CHECK_NOTHROW(run(k.program, {int64_t{2}}, options));
  }
  {
    Kernel k("undefined");
    const Expr x = k.var("x");
    const Expr y = k.var("y");
    k.add(LetStmt{y, x + 1});
    CHECK_THROWS_WITH(run(k.program, {}),
                      Catch::Contains("variable 'x' is read before it is defined"));
  }
}

TEST_CASE("a tiled f16 GEMM through shared memory matches the reference", "[interpreter]") {
  // C[M, N] = A[M, K] · B[K, N], 32 x 32 tiles per block, K in steps of 16 through shared
  // memory; M and N are not multiples of the tile (masked borders).
  const int64_t M = 50, N = 40, K = 48, T = 32, KT = 16;
  Kernel k("gemm");
  const int pa = k.pointer("a", f16);
  const int pb = k.pointer("b", f16);
  const int pc = k.pointer("c", f32);
  k.grid(2, 2);
  const TensorId ga = k.global("ga", pa, {c(M), c(K)});
  const TensorId gb = k.global("gb", pb, {c(K), c(N)});
  const TensorId gc = k.global("gc", pc, {c(M), c(N)});
  const TensorId sa = k.shared("sa", f16, {T, KT}, Swizzle::bytes32());
  const TensorId sb = k.shared("sb", f16, {KT, T}, Swizzle::bytes64());
  const TensorId ra = k.registers("ra", f16, {T, KT});
  const TensorId rb = k.registers("rb", f16, {KT, T});
  const TensorId acc = k.registers("acc", f32, {T, T});
  const Expr row = Expr::special(Special::BlockIdY) * T;
  const Expr col = Expr::special(Special::BlockIdX) * T;
  k.add(AllocRegister{acc, 0.0});
  const Expr kk = k.var("k");
  ForStmt loop{kk, c(0), c(K), c(KT), {}, 0};
  k.add(CopyAsync{sa, at({0, 0}), ga, {row, kk}, {T, KT}, std::nullopt, {}}, &loop.body);
  k.add(CopyAsync{sb, at({0, 0}), gb, {kk, col}, {KT, T}, std::nullopt, {}}, &loop.body);
  k.add(CommitGroup{}, &loop.body);
  k.add(WaitGroup{0}, &loop.body);
  k.add(Barrier{}, &loop.body);
  k.add(LoadShared{ra, sa, at({0, 0})}, &loop.body);
  k.add(LoadShared{rb, sb, at({0, 0})}, &loop.body);
  k.add(Dot{acc, ra, rb, {}, false, false}, &loop.body);
  k.add(Barrier{}, &loop.body);
  k.add(std::move(loop));
  k.add(StoreGlobal{gc, {row, col}, acc});

  std::mt19937 rng(27);
  std::uniform_real_distribution<double> dist(-1, 1);
  std::vector<uint16_t> a(M * K), b(K * N);
  for (uint16_t& v : a)
    v = f16_bits(dist(rng));
  for (uint16_t& v : b)
    v = f16_bits(dist(rng));
  std::vector<float> result(M * N, -1.0f);
  run(k.program, {buffer_of(a), buffer_of(b), buffer_of(result)});
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      float sum = 0;
      for (int64_t i = 0; i < K; ++i) {
        sum = static_cast<float>(double{sum} + f16_value(a[static_cast<size_t>(m * K + i)]) *
                                                   f16_value(b[static_cast<size_t>(i * N + n)]));
      }
      CHECK(result[static_cast<size_t>(m * N + n)] == sum);
    }
  }
}
