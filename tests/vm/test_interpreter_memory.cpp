// The interpreter's memory instructions against plain C++: global loads and stores with their
// bounds masks, sub-byte buffers, shared memory through a swizzle (down to the raw bytes),
// copy_async with commit and wait groups, atomics from several blocks, determinism over host
// threads, and the errors that make a bad access, a missing wait or a missing barrier visible.
#include <catch2/catch.hpp>

#include <random>
#include <sstream>

#include "interpreter_kernel.h"

using namespace nibble;
using namespace nibble::vm;
using namespace nibble::vm::interp_test;

namespace {

const DataType f32 = DataType::f32();
const DataType f16 = DataType::f16();
const DataType i32 = DataType::sint(32);
const DataType u4 = DataType::uint(4);

Expr block_x() {
  return Expr::special(Special::BlockIdX);
}
Expr block_y() {
  return Expr::special(Special::BlockIdY);
}

}  // namespace

TEST_CASE("load_global and store_global copy a matrix tile by tile, masked at the borders",
          "[interpreter]") {
  Kernel k("copy");
  const int in = k.pointer("in", f32);
  const int out = k.pointer("out", f32);
  const Expr m = k.scalar("M");
  const Expr n = k.scalar("N");
  k.program.grid = {floordiv(n + 15, 16), floordiv(m + 15, 16), c(1)};
  const TensorId src = k.global("src", in, {m, n});
  const TensorId dst = k.global("dst", out, {m, n});
  const TensorId tile = k.registers("tile", f32, {16, 16});
  k.add(LoadGlobal{tile, src, {block_y() * 16, block_x() * 16}, -7.0});
  k.add(StoreGlobal{dst, {block_y() * 16, block_x() * 16}, tile});

  const int64_t rows = 37, cols = 45;
  std::mt19937 rng(1);
  std::vector<float> input = random_floats(rows * cols, rng);
  std::vector<float> output(rows * cols, 0.0f);
  CHECK(grid_of(k.program, std::vector<Argument>{buffer_of(input), buffer_of(output), rows,
                                                 cols}) == BlockIndex{3, 3, 1});
  run(k.program, {buffer_of(input), buffer_of(output), rows, cols});
  CHECK(output == input);
}

TEST_CASE("loads outside the view give `other`; in-view elements come from the buffer",
          "[interpreter]") {
  Kernel k("border");
  const int in = k.pointer("in", f32);
  const int out = k.pointer("out", f32);
  const TensorId src = k.global("src", in, {c(10), c(12)});
  const TensorId dst = k.global("dst", out, {c(16), c(16)});
  const TensorId tile = k.registers("tile", f32, {16, 16});
  k.add(LoadGlobal{tile, src, at({4, -3}), 2.5});
  k.add(StoreGlobal{dst, at({0, 0}), tile});

  std::vector<float> input(120);
  for (size_t i = 0; i < input.size(); ++i)
    input[i] = static_cast<float>(i);
  std::vector<float> output(256, -1.0f);
  run(k.program, {buffer_of(input), buffer_of(output)});
  for (int64_t r = 0; r < 16; ++r) {
    for (int64_t col = 0; col < 16; ++col) {
      const int64_t sr = r + 4, sc = col - 3;
      const bool inside = sr < 10 && sc >= 0 && sc < 12;
      INFO("r=" << r << " c=" << col);
      CHECK(output[static_cast<size_t>(r * 16 + col)] ==
            (inside ? input[static_cast<size_t>(sr * 12 + sc)] : 2.5f));
    }
  }
}

TEST_CASE("stores outside the view are skipped, strided views address base + sum(i * stride)",
          "[interpreter]") {
  Kernel k("strided");
  const int in = k.pointer("in", f32);
  const int out = k.pointer("out", f32);
  const TensorId src = k.global("src", in, {c(8), c(8)});
  // The transpose of an 8x8 matrix, as a view with strides (1, 8), only 6 columns wide.
  const TensorId dst = k.global("dst", out, {c(8), c(6)}, {c(1), c(8)});
  const TensorId tile = k.registers("tile", f32, {8, 8});
  k.add(LoadGlobal{tile, src, at({0, 0}), 0.0});
  k.add(StoreGlobal{dst, at({0, 0}), tile});

  std::mt19937 rng(2);
  std::vector<float> input = random_floats(64, rng);
  std::vector<float> output(64, 99.0f);
  run(k.program, {buffer_of(input), buffer_of(output)});
  for (int64_t r = 0; r < 8; ++r) {
    for (int64_t col = 0; col < 8; ++col) {
      // view element (r, col) is out[r + 8 col], for col < 6.
      const float expected = col < 6 ? input[static_cast<size_t>(r * 8 + col)] : 99.0f;
      CHECK(output[static_cast<size_t>(r + 8 * col)] == expected);
    }
  }
}

TEST_CASE("u4 buffers load packed, cast exactly, and store back bit for bit", "[interpreter]") {
  Kernel k("u4");
  const int in = k.pointer("in", u4);
  const int wide = k.pointer("wide", f16);
  const int back = k.pointer("back", u4);
  // 60 of 64 columns are in the view: the last 4 of each row are masked.
  const TensorId src = k.global("src", in, {c(8), c(60)}, {c(64), c(1)});
  const TensorId as_f16 = k.global("as_f16", wide, {c(8), c(64)});
  const TensorId copy = k.global("copy", back, {c(8), c(64)});
  const TensorId q = k.registers("q", u4, {8, 64});
  const TensorId h = k.registers("h", f16, {8, 64});
  k.add(LoadGlobal{q, src, at({0, 0}), 9.0});
  k.add(Cast{h, q});
  k.add(StoreGlobal{as_f16, at({0, 0}), h});
  k.add(StoreGlobal{copy, at({0, 0}), q});

  std::mt19937 rng(3);
  std::vector<uint8_t> input(256);
  for (uint8_t& byte : input)
    byte = static_cast<uint8_t>(rng());
  std::vector<uint16_t> halves(512, 0);
  std::vector<uint8_t> copied(256, 0);
  run(k.program, {buffer_of(input), buffer_of(halves), buffer_of(copied)});
  for (size_t i = 0; i < 512; ++i) {
    const bool masked = i % 64 >= 60;
    const uint64_t code = masked ? 9 : dtypes::read_packed(u4, input.data(), i);
    INFO("element " << i);
    CHECK(halves[i] == f16_bits(static_cast<double>(code)));
    CHECK(dtypes::read_packed(u4, copied.data(), i) == code);
  }
}

TEST_CASE("shared memory through a swizzle: values round-trip, bytes sit where Swizzle says",
          "[interpreter]") {
  struct Case {
    DataType dtype;
    Shape shape;  // 8 rows of 128 bytes
  };
  for (const Case& t : {Case{f16, {8, 64}}, Case{f32, {8, 32}}, Case{u4, {8, 256}}}) {
    INFO(t.dtype.name());
    Kernel k("swizzle");
    const int in = k.pointer("in", t.dtype);
    const int out = k.pointer("out", t.dtype);
    const TensorId src = k.global("src", in, {c(t.shape[0]), c(t.shape[1])});
    const TensorId dst = k.global("dst", out, {c(t.shape[0]), c(t.shape[1])});
    // The swizzled tile starts at its swizzle period, byte 1024 (vm::shared_tile_alignment).
    const TensorId pad = k.shared("pad", f32, {8});
    const TensorId tile = k.shared("tile", t.dtype, t.shape, Swizzle::bytes128());
    const TensorId r = k.registers("r", t.dtype, t.shape);
    // Read back by other threads than wrote it: element x goes to thread x % 128.
    const TensorId r2 = k.registers("r2", t.dtype, t.shape,
                                    Layout({{t.shape[0] * t.shape[1] / 128, 1, layout::Axis::reg()},
                                            {4, 1, layout::Axis::warp()},
                                            {32, 1, layout::Axis::lane()}}));
    (void)pad;
    k.add(LoadGlobal{r, src, at({0, 0}), 0.0});
    k.add(StoreShared{tile, at({0, 0}), r});
    k.add(Barrier{});
    k.add(LoadShared{r2, tile, at({0, 0})});
    k.add(StoreGlobal{dst, at({0, 0}), r2});

    const size_t bytes = 8 * 128;
    std::mt19937 rng(4);
    std::vector<uint8_t> input(bytes);
    for (uint8_t& byte : input)
      byte = static_cast<uint8_t>(rng());
    std::vector<uint8_t> output(bytes, 0);
    std::vector<uint8_t> shared_bytes;
    InterpreterOptions options;
    options.shared_memory_probe = [&](const BlockIndex&, std::span<const uint8_t> shared) {
      shared_bytes.assign(shared.begin(), shared.end());
    };
    run(k.program, {HostBuffer{input.data(), bytes}, HostBuffer{output.data(), bytes}}, options);
    CHECK(output == input);

    // Byte b of the row-major tile lives at 1024 + swizzle(b).
    REQUIRE(shared_bytes.size() == 1024 + bytes);
    size_t moved = 0;
    for (int64_t b = 0; b < static_cast<int64_t>(bytes); ++b) {
      const int64_t address = Swizzle::bytes128()(b);
      moved += address != b ? 1 : 0;
      CHECK(shared_bytes[static_cast<size_t>(1024 + address)] == input[static_cast<size_t>(b)]);
    }
    CHECK(moved > bytes / 2);
  }
}

TEST_CASE("copy_async lands at wait_group; groups complete oldest first; zero fill outside",
          "[interpreter]") {
  Kernel k("pipeline");
  const int in = k.pointer("in", f16);
  const int out = k.pointer("out", f16);
  const TensorId src = k.global("src", in, {c(13), c(32)});  // rows 13..15 are outside
  const TensorId dst = k.global("dst", out, {c(16), c(32)});
  const TensorId s0 = k.shared("s0", f16, {8, 32}, Swizzle::bytes64());
  const TensorId s1 = k.shared("s1", f16, {8, 32});
  const TensorId r0 = k.registers("r0", f16, {8, 32});
  const TensorId r1 = k.registers("r1", f16, {8, 32});
  k.add(CopyAsync{s0, at({0, 0}), src, at({0, 0}), {8, 32}, std::nullopt, {}});
  k.add(CommitGroup{});
  k.add(CopyAsync{s1, at({0, 0}), src, at({8, 0}), {8, 32}, std::nullopt, {}});
  k.add(CommitGroup{});
  k.add(WaitGroup{1});  // s0 has landed, s1 may not have
  k.add(Barrier{});
  k.add(LoadShared{r0, s0, at({0, 0})});
  k.add(WaitGroup{0});
  k.add(Barrier{});
  k.add(LoadShared{r1, s1, at({0, 0})});
  k.add(StoreGlobal{dst, at({0, 0}), r0});
  k.add(StoreGlobal{dst, at({8, 0}), r1});

  std::mt19937 rng(5);
  std::vector<uint16_t> input(13 * 32);
  for (uint16_t& v : input)
    v = f16_bits(std::uniform_real_distribution<double>(-8, 8)(rng));
  std::vector<uint16_t> output(16 * 32, f16_bits(42.0));
  run(k.program, {buffer_of(input), buffer_of(output)});
  for (size_t i = 0; i < output.size(); ++i) {
    CHECK(output[i] == (i < input.size() ? input[i] : uint16_t{0}));
  }
}

TEST_CASE("copy_async into a tile, with a loop that reuses it behind barriers", "[interpreter]") {
  const auto program = [](bool trailing_barrier) {
    Kernel k("loop");
    const int in = k.pointer("in", f32);
    const int out = k.pointer("out", f32);
    const TensorId src = k.global("src", in, {c(40), c(16)});
    const TensorId dst = k.global("dst", out, {c(40), c(16)});
    const TensorId stage = k.shared("stage", f32, {8, 16});
    const TensorId r =
        k.registers("r", f32, {8, 16}, "S[(8,4,4):(4@lane,1@lane,1@reg)] + R[4:1@warp]");
    const Expr i = k.var("i");
    ForStmt loop{i, c(0), c(5), c(1), {}, 0};
    k.add(CopyAsync{stage, at({0, 0}), src, {i * 8, c(0)}, {8, 16}, std::nullopt, {}}, &loop.body);
    k.add(CommitGroup{}, &loop.body);
    k.add(WaitGroup{0}, &loop.body);
    k.add(Barrier{}, &loop.body);
    k.add(LoadShared{r, stage, at({0, 0})}, &loop.body);
    k.add(StoreGlobal{dst, {i * 8, c(0)}, r}, &loop.body);
    // Everyone has read the stage before it is refilled.
    if (trailing_barrier) k.add(Barrier{}, &loop.body);
    k.add(std::move(loop));
    return k.program;
  };

  std::mt19937 rng(6);
  std::vector<float> input = random_floats(640, rng);
  std::vector<float> output(640, 0.0f);
  run(program(true), {buffer_of(input), buffer_of(output)});
  CHECK(output == input);
  // Without it, the second copy overwrites what the other warps' replicas read.
  CHECK_THROWS_WITH(run(program(false), {buffer_of(input), buffer_of(output)}),
                    Catch::Contains("copy_async at interp.cpp:4:1") &&
                        Catch::Contains("shared-memory race on element [0, 0] of 'stage'") &&
                        Catch::Contains("other threads read it in load_shared at interp.cpp:8:1"));
}

TEST_CASE("reading what a copy_async has not delivered is an error", "[interpreter][errors]") {
  Kernel k("early");
  const int in = k.pointer("in", f32);
  const TensorId src = k.global("src", in, {c(16), c(16)});
  const TensorId s0 = k.shared("s0", f32, {8, 16});
  const TensorId s1 = k.shared("s1", f32, {8, 16});
  const TensorId r = k.registers("r", f32, {8, 16});
  const int copy_line =
      k.add(CopyAsync{s1, at({0, 0}), src, at({8, 0}), {8, 16}, std::nullopt, {}});
  k.add(CommitGroup{});
  k.add(CopyAsync{s0, at({0, 0}), src, at({0, 0}), {8, 16}, std::nullopt, {}});
  k.add(CommitGroup{});
  k.add(WaitGroup{1});  // only the first group (s1) is complete
  k.add(Barrier{});
  k.add(LoadShared{r, s1, at({0, 0})});  // fine
  const int load_line = k.add(LoadShared{r, s0, at({0, 0})});

  std::vector<float> input(256, 1.0f);
  REQUIRE_THROWS_AS(run(k.program, {buffer_of(input)}), InterpreterError);
  CHECK_THROWS_WITH(
      run(k.program, {buffer_of(input)}),
      Catch::Contains(fmt::format("load_shared at interp.cpp:{}:1, block (0, 0, 0)", load_line)) &&
          Catch::Contains("element [0, 0] of 's0'") && Catch::Contains("before wait_group") &&
          Catch::Contains(fmt::format("copy_async at interp.cpp:{}", copy_line + 2)));

  // An uncommitted copy is not completed by wait_group 0 either.
  Kernel u("uncommitted");
  const int p = u.pointer("in", f32);
  const TensorId g = u.global("g", p, {c(8), c(16)});
  const TensorId t = u.shared("t", f32, {8, 16});
  const TensorId v = u.registers("v", f32, {8, 16});
  u.add(CopyAsync{t, at({0, 0}), g, at({0, 0}), {8, 16}, std::nullopt, {}});
  u.add(WaitGroup{0});
  u.add(Barrier{});
  u.add(LoadShared{v, t, at({0, 0})});
  CHECK_THROWS_WITH(run(u.program, {buffer_of(input)}), Catch::Contains("before wait_group"));
}

TEST_CASE("copy_async: dimensions declared in bounds are checked", "[interpreter][errors]") {
  // src has 13 rows: a box of rows 8..15 leaves it along dimension 0 but not along 1.
  const auto program = [](std::vector<int> in_bounds) {
    Kernel k("in_bounds");
    const int in = k.pointer("in", f16);
    const int out = k.pointer("out", f16);
    const TensorId src = k.global("src", in, {c(13), c(32)});
    const TensorId dst = k.global("dst", out, {c(8), c(32)});
    const TensorId tile = k.shared("tile", f16, {8, 32});
    const TensorId r = k.registers("r", f16, {8, 32});
    k.add(CopyAsync{tile, at({0, 0}), src, at({8, 0}), {8, 32}, std::nullopt, in_bounds});
    k.add(CommitGroup{});
    k.add(WaitGroup{0});
    k.add(Barrier{});
    k.add(LoadShared{r, tile, at({0, 0})});
    k.add(StoreGlobal{dst, at({0, 0}), r});
    return k.program;
  };
  std::vector<uint16_t> input(13 * 32, f16_bits(1.5));
  std::vector<uint16_t> output(8 * 32, f16_bits(42.0));
  run(program({1}), {buffer_of(input), buffer_of(output)});
  for (size_t i = 0; i < output.size(); ++i)
    CHECK(output[i] == (i < 5 * 32 ? f16_bits(1.5) : uint16_t{0}));  // rows past 12 zero-filled
  CHECK_THROWS_WITH(run(program({0, 1}), {buffer_of(input), buffer_of(output)}),
                    Catch::Contains("copy_async declares dimension 0 in bounds") &&
                        Catch::Contains("element [13,0]") && Catch::Contains("extent there is 13"));
}

TEST_CASE("a missing barrier between threads that share bytes is a race", "[interpreter][errors]") {
  // `rows` gives each warp two rows; `cols` gives each lane a column of every row: most
  // elements are written by one thread and read by another.
  const char* rows = "S[(4,2,32):(1@warp,1@reg,1@lane)]";
  const char* cols = "S[(8,32):(1@reg,1@lane)] + R[4:1@warp]";
  const auto program = [&](bool barrier) {
    Kernel k("race");
    const int in = k.pointer("in", f32);
    const int out = k.pointer("out", f32);
    const TensorId src = k.global("src", in, {c(8), c(32)});
    const TensorId dst = k.global("dst", out, {c(8), c(32)});
    const TensorId tile = k.shared("tile", f32, {8, 32});
    const TensorId a = k.registers("a", f32, {8, 32}, rows);
    const TensorId b = k.registers("b", f32, {8, 32}, cols);
    k.add(LoadGlobal{a, src, at({0, 0}), 0.0});
    k.add(StoreShared{tile, at({0, 0}), a});
    if (barrier) k.add(Barrier{});
    k.add(LoadShared{b, tile, at({0, 0})});
    k.add(StoreGlobal{dst, at({0, 0}), b});
    return k.program;
  };
  std::mt19937 rng(7);
  std::vector<float> input = random_floats(256, rng);
  std::vector<float> output(256, 0.0f);
  run(program(true), {buffer_of(input), buffer_of(output)});
  CHECK(output == input);
  // Element [0, 1] is written by thread 1 (warp 0, lane 1) and read by lane 1 of every warp;
  // element [0, 0] by thread 0 and read by thread 0 first, then by thread 32.
  CHECK_THROWS_WITH(run(program(false), {buffer_of(input), buffer_of(output)}),
                    Catch::Contains("load_shared at interp.cpp:6:1, block (0, 0, 0)") &&
                        Catch::Contains("shared-memory race on element [0, 0] of 'tile'") &&
                        Catch::Contains("thread 32 (warp 1, lane 0) reads it") &&
                        Catch::Contains("thread 0 (warp 0, lane 0) wrote it in store_shared at "
                                        "interp.cpp:5:1"));

  // Write after read: a thread overwrites what another read, with no barrier between.
  Kernel w("war");
  const int in = w.pointer("in", f32);
  const TensorId src = w.global("src", in, {c(8), c(32)});
  const TensorId tile = w.shared("tile", f32, {8, 32});
  const TensorId a = w.registers("a", f32, {8, 32}, rows);
  const TensorId b = w.registers("b", f32, {8, 32}, cols);
  w.add(LoadGlobal{a, src, at({0, 0}), 0.0});
  w.add(StoreShared{tile, at({0, 0}), a});
  w.add(Barrier{});
  w.add(LoadShared{b, tile, at({0, 0})});
  w.add(StoreShared{tile, at({0, 0}), a});
  CHECK_THROWS_WITH(run(w.program, {buffer_of(input)}),
                    Catch::Contains("store_shared at interp.cpp:7:1") &&
                        Catch::Contains("thread 0 (warp 0, lane 0) writes it here, but other "
                                        "threads read it in load_shared at interp.cpp:6:1"));

  // Data a copy_async delivered belongs to the issuing thread until a barrier.
  Kernel ca("copy_race");
  const int p = ca.pointer("in", f32);
  const TensorId g = ca.global("g", p, {c(8), c(32)});
  const TensorId t = ca.shared("t", f32, {8, 32});
  const TensorId v = ca.registers("v", f32, {8, 32}, cols);
  ca.add(CopyAsync{t, at({0, 0}), g, at({0, 0}), {8, 32}, std::nullopt, {}});
  ca.add(CommitGroup{});
  ca.add(WaitGroup{0});
  ca.add(LoadShared{v, t, at({0, 0})});
  CHECK_THROWS_WITH(run(ca.program, {buffer_of(input)}),
                    Catch::Contains("shared-memory race") &&
                        Catch::Contains("wrote it in copy_async at interp.cpp:3:1"));
}

TEST_CASE("an out-of-bounds global access names the instruction, block and element",
          "[interpreter][errors]") {
  Kernel k("oob");
  const int out = k.pointer("out", f32);
  k.grid(2);
  // The view claims 64 elements; the buffer holds 40.
  const TensorId dst = k.global("dst", out, {c(64)});
  const TensorId tile = k.registers("tile", f32, {32});
  k.add(AllocRegister{tile, 1.0});
  const int line = k.add(StoreGlobal{dst, {block_x() * 32}, tile});

  std::vector<float> output(40, 0.0f);
  for (int threads : {1, 4}) {
    InterpreterOptions options;
    options.host_threads = threads;
    std::fill(output.begin(), output.end(), 0.0f);
    try {
      run(k.program, {buffer_of(output)}, options);
      FAIL("no error");
    } catch (const InterpreterError& error) {
      const std::string message = error.what();
      INFO(message);
      CHECK(error.instruction() == "store_global");
      CHECK(error.location().line == line);
      CHECK(error.block() == BlockIndex{1, 0, 0});
      CHECK_THAT(
          message,
          Catch::Contains(fmt::format("store_global at interp.cpp:{}:1, block (1, 0, 0)", line)) &&
              Catch::Contains("element [40] of 'dst' is at element offset 40") &&
              Catch::Contains("bytes [160, 164)") && Catch::Contains("160-byte buffer") &&
              Catch::Contains("parameter 'out'"));
    }
    // Block 0 stored its 32 elements; the failing store of block 1 wrote none.
    for (size_t i = 0; i < 40; ++i)
      CHECK(output[i] == (i < 32 ? 1.0f : 0.0f));
  }

  Kernel l("oob_load");
  const int in = l.pointer("in", u4);
  const TensorId src = l.global("src", in, {c(3), c(16)}, {c(17), c(1)});
  const TensorId r = l.registers("r", u4, {3, 16});
  const int load_line = l.add(LoadGlobal{r, src, at({0, 0}), 0.0});
  std::vector<uint8_t> bytes(24);  // 48 elements: the last row (offsets 34..49) runs past them
  CHECK_THROWS_WITH(
      run(l.program, {buffer_of(bytes)}),
      Catch::Contains(fmt::format("load_global at interp.cpp:{}:1", load_line)) &&
          Catch::Contains("element [2, 14] of 'src' is at element offset 48 (bytes [24, 25))"));
}

TEST_CASE("atomic_add from several blocks is applied in block order", "[interpreter]") {
  for (const DataType dtype : {f32, i32}) {
    INFO(dtype.name());
    Kernel k("atomics");
    const int in = k.pointer("in", dtype);
    const int out = k.pointer("out", dtype);
    k.grid(4, 3);
    const TensorId src = k.global("src", in, {c(12), c(64)});
    const TensorId dst = k.global("dst", out, {c(60)});  // the last 4 are masked
    const TensorId v = k.registers("v", dtype, {1, 64});
    const TensorId flat = k.registers("flat", dtype, {64});
    k.add(LoadGlobal{v, src, {block_y() * 4 + block_x(), c(0)}, 0.0});
    k.add(Reshape{flat, v});
    k.add(AtomicAdd{dst, at({0}), flat});

    std::mt19937 rng(8);
    std::vector<uint32_t> input(12 * 64);
    for (uint32_t& bits : input) {
      bits = dtype == f32 ? bits_of(std::uniform_real_distribution<float>(-1, 1)(rng))
                          : static_cast<uint32_t>(rng());  // i32 sums wrap
    }
    std::vector<uint32_t> expected(64, 0);
    for (size_t b = 0; b < 12; ++b) {  // block order: x fastest
      for (size_t i = 0; i < 60; ++i) {
        const uint32_t value = input[b * 64 + i];
        expected[i] =
            dtype == f32 ? bits_of(float_of(expected[i]) + float_of(value)) : expected[i] + value;
      }
    }
    for (int threads : {1, 8}) {
      std::vector<uint32_t> output(64, 0);
      InterpreterOptions options;
      options.host_threads = threads;
      run(k.program, {buffer_of(input), buffer_of(output)}, options);
      CHECK(output == expected);
    }
  }
}

TEST_CASE("results do not depend on the number of host threads", "[interpreter]") {
  // Blocks store their rows, accumulate into a shared total with atomics and print.
  Kernel k("deterministic");
  const int in = k.pointer("in", f32);
  const int out = k.pointer("out", f32);
  const int total = k.pointer("total", f32);
  k.grid(16, 2);
  const TensorId src = k.global("src", in, {c(32), c(128)});
  const TensorId dst = k.global("dst", out, {c(32), c(128)});
  const TensorId sum = k.global("sum", total, {c(128)});
  const TensorId row = k.registers("row", f32, {1, 128});
  const TensorId scaled = k.registers("scaled", f32, {1, 128});
  const TensorId flat = k.registers("flat", f32, {128});
  const Expr r = block_y() * 16 + block_x();
  k.add(LoadGlobal{row, src, {r, c(0)}, 0.0});
  k.add(Elementwise{scaled, ElementwiseOp::Mul, {row, Expr::float_constant(0.3)}});
  k.add(StoreGlobal{dst, {r, c(0)}, scaled});
  k.add(Reshape{flat, scaled});
  k.add(AtomicAdd{sum, at({0}), flat});
  k.add(Print{"row", std::nullopt, r});

  std::mt19937 rng(9);
  std::vector<float> input = random_floats(32 * 128, rng);
  std::vector<std::vector<float>> outputs, totals;
  std::vector<std::string> printed;
  for (int threads : {1, 8, 3}) {
    std::vector<float> output(32 * 128, 0.0f), sums(128, 0.0f);
    std::ostringstream stream;
    InterpreterOptions options;
    options.host_threads = threads;
    options.print_stream = &stream;
    run(k.program, {buffer_of(input), buffer_of(output), buffer_of(sums)}, options);
    outputs.push_back(output);
    totals.push_back(sums);
    printed.push_back(stream.str());
  }
  CHECK(outputs[0] == outputs[1]);
  CHECK(outputs[0] == outputs[2]);
  CHECK(std::memcmp(totals[0].data(), totals[1].data(), 512) == 0);
  CHECK(std::memcmp(totals[0].data(), totals[2].data(), 512) == 0);
  CHECK(printed[0] == printed[1]);
  CHECK(printed[0] == printed[2]);
  CHECK_THAT(printed[0], Catch::StartsWith("block (0, 0, 0) row: 0\nblock (1, 0, 0) row: 1\n"));
  CHECK_THAT(printed[0], Catch::EndsWith("block (15, 1, 0) row: 31\n"));
}

TEST_CASE("only_block runs one block", "[interpreter]") {
  Kernel k("one");
  const int out = k.pointer("out", i32);
  k.grid(4, 2);
  const TensorId dst = k.global("dst", out, {c(8)});
  const TensorId t = k.registers("t", i32, {1});
  k.add(AllocRegister{t, 5.0});
  k.add(StoreGlobal{dst, {block_y() * 4 + block_x()}, t});
  std::vector<int32_t> output(8, 0);
  InterpreterOptions options;
  options.only_block = BlockIndex{2, 1, 0};
  run(k.program, {buffer_of(output)}, options);
  CHECK(output == std::vector<int32_t>{0, 0, 0, 0, 0, 0, 5, 0});
  options.only_block = BlockIndex{4, 0, 0};
  CHECK_THROWS_WITH(run(k.program, {buffer_of(output)}, options),
                    Catch::Contains("outside the grid (4, 2, 1)"));
}

TEST_CASE("arguments are checked before any block runs", "[interpreter][errors]") {
  Kernel k("args");
  k.pointer("x", f32);
  const Expr n = k.scalar("n");
  k.program.params.push_back({"K", Parameter::Kind::Scalar, i32, 0, 1, true, 128});
  k.program.params.push_back({"step", Parameter::Kind::Scalar, i32, 0, 4, false, {}});
  (void)n;
  std::vector<float> data(4);
  const HostBuffer x = buffer_of(data);
  CHECK_NOTHROW(run(k.program, {x, int64_t{3}, int64_t{8}}));                // K left out
  CHECK_NOTHROW(run(k.program, {x, int64_t{3}, int64_t{128}, int64_t{8}}));  // K given
  CHECK_THROWS_WITH(run(k.program, {x, int64_t{3}}),
                    Catch::Contains("takes 4 arguments (3 without its compile-time parameters), "
                                    "got 2"));
  CHECK_THROWS_WITH(run(k.program, {int64_t{1}, int64_t{3}, int64_t{8}}),
                    Catch::Contains("argument 0 ('x'): a pointer to f32 needs a HostBuffer, got "
                                    "an integer"));
  CHECK_THROWS_WITH(run(k.program, {x, 2.5, int64_t{8}}),
                    Catch::Contains("argument 1 ('n'): an integer of type i32 needs an integer"));
  CHECK_THROWS_WITH(run(k.program, {x, int64_t{1} << 40, int64_t{8}}),
                    Catch::Contains("does not fit in i32"));
  CHECK_THROWS_WITH(run(k.program, {x, int64_t{3}, int64_t{64}, int64_t{8}}),
                    Catch::Contains("specialized for K = 128"));
  CHECK_THROWS_WITH(run(k.program, {x, int64_t{3}, int64_t{6}}),
                    Catch::Contains("6 is not a multiple of 4"));
}

TEST_CASE("shared tiles beyond the budget are rejected", "[interpreter][errors]") {
  Kernel k("budget");
  k.program.shared_memory_bytes = 1024;
  k.shared("a", f32, {128});
  k.shared("b", f32, {200});
  CHECK_THROWS_WITH(run(k.program, {}), Catch::Contains("alloc_shared at interp.cpp:2:1") &&
                                            Catch::Contains("needs bytes [512, 1312)") &&
                                            Catch::Contains("budget of 1024 bytes"));
}

// Clusters of 4 blocks along x: each block leaves its row in shared memory; after the cluster
// barrier, each reads its right neighbour's (rank + 1, wrapping) and stores it.
Kernel rotate_in_clusters(bool second_barrier_in_rank_0_only = false, int64_t peer_offset = 1) {
  Kernel k("rotate");
  const int in = k.pointer("in", f32);
  const int out = k.pointer("out", f32);
  k.grid(8, 2);
  k.program.cluster = {4, 1, 1};
  k.program.shared_memory_bytes = 256;
  const TensorId src = k.global("src", in, {c(2), c(8), c(16)});
  const TensorId dst = k.global("dst", out, {c(2), c(8), c(16)});
  const TensorId row = k.shared("row", f32, {1, 1, 16});
  const TensorId v = k.registers("v", f32, {1, 1, 16});
  const TensorId w = k.registers("w", f32, {1, 1, 16});
  k.add(LoadGlobal{v, src, {block_y(), block_x(), c(0)}, 0.0});
  k.add(StoreShared{row, at({0, 0, 0}), v});
  k.add(ClusterBarrier{});
  const Expr rank = mod(block_x(), c(4));
  k.add(LoadPeerShared{w, row, mod(rank + c(peer_offset), c(4)), at({0, 0, 0})});
  k.add(StoreGlobal{dst, {block_y(), block_x(), c(0)}, w});
  if (second_barrier_in_rank_0_only) {
    Body then_body;
    then_body.push_back(Statement{Instruction{ClusterBarrier{}}, {}});
    k.add(IfStmt{Expr::binary(BinaryOp::Eq, rank, c(0)), std::move(then_body), {}});
  } else {
    k.add(ClusterBarrier{});
  }
  return k;
}

TEST_CASE("clusters: blocks read their peers' shared memory after the cluster barrier",
          "[interpreter]") {
  const Kernel k = rotate_in_clusters();
  std::vector<float> input(2 * 8 * 16);
  for (size_t i = 0; i < input.size(); ++i)
    input[i] = static_cast<float>(i);
  std::vector<float> expected(input.size());
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 0; x < 8; ++x)
      for (int64_t e = 0; e < 16; ++e) {
        const int64_t peer = x - x % 4 + (x % 4 + 1) % 4;
        expected[static_cast<size_t>((y * 8 + x) * 16 + e)] =
            input[static_cast<size_t>((y * 8 + peer) * 16 + e)];
      }
  for (int threads : {1, 3}) {
    std::vector<float> output(input.size(), -1.0F);
    InterpreterOptions options;
    options.host_threads = threads;
    run(k.program, {buffer_of(input), buffer_of(output)}, options);
    CHECK(output == expected);
  }
  // only_block runs the block's whole cluster.
  std::vector<float> output(input.size(), -1.0F);
  InterpreterOptions options;
  options.only_block = BlockIndex{6, 1, 0};
  run(k.program, {buffer_of(input), buffer_of(output)}, options);
  CHECK(output[static_cast<size_t>((8 + 6) * 16)] == expected[static_cast<size_t>((8 + 6) * 16)]);
  CHECK(output[static_cast<size_t>((8 + 4) * 16)] == expected[static_cast<size_t>((8 + 4) * 16)]);
  CHECK(output[0] == -1.0F);
}

TEST_CASE("clusters: uneven barriers, a peer outside the cluster, a grid of partial clusters",
          "[interpreter][errors]") {
  std::vector<float> input(2 * 8 * 16, 1.0F), output(input.size());
  CHECK_THROWS_WITH(run(rotate_in_clusters(true).program, {buffer_of(input), buffer_of(output)}),
                    Catch::Contains("passed 1 cluster_barrier where its cluster's blocks passed "
                                    "up to 2: every block must pass each one"));
  Kernel outside = rotate_in_clusters(false, 0);
  std::get<LoadPeerShared>(std::get<Instruction>(outside.program.body[6].node)).block = c(4);
  CHECK_THROWS_WITH(
      run(outside.program, {buffer_of(input), buffer_of(output)}),
      Catch::Contains("load_peer_shared: block 4 is outside the cluster of 4 blocks"));
  Kernel zero = rotate_in_clusters();
  zero.program.cluster = {0, 1, 1};
  CHECK_THROWS_WITH(
      run(zero.program, {buffer_of(input), buffer_of(output)}),
      Catch::Contains("cluster (0, 1, 1): each extent at least 1, at most 16 blocks"));
  Kernel partial = rotate_in_clusters();
  partial.program.cluster = {3, 1, 1};
  CHECK_THROWS_WITH(
      run(partial.program, {buffer_of(input), buffer_of(output)}),
      Catch::Contains("the grid (8, 2, 1) is not a whole number of clusters (3, 1, 1)"));
}
