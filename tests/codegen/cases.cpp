#include "tests/codegen/cases.h"

#include <fmt/format.h>

#include <cmath>

#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "frontend/cpp/kernel_builder.h"
#include "layout/algebra.h"
#include "layout/mma_tiling.h"

namespace nibble::testing {
namespace {

using namespace dsl;
using vm::ElementwiseOp;

BufferArgument input(DataType dtype, int64_t elements, double lo = -4, double hi = 4) {
  return BufferArgument{dtype, elements, false, lo, hi};
}
BufferArgument output(DataType dtype, int64_t elements) {
  return BufferArgument{dtype, elements, true, 0, 0};
}

// The case of the program `b` builds, named after the kernel, with its arguments.
CodegenCase finished_case(KernelBuilder& b, std::vector<CaseArgument> arguments) {
  CodegenCase c;
  c.program = b.finish();
  c.name = c.program.name;
  c.arguments = std::move(arguments);
  return c;
}

// out = op(x0[, x1[, x2]]) over n elements in blocks of 256 (the tail masked).
CodegenCase elementwise_case(ElementwiseOp op, DataType in, int64_t n, double lo = -4,
                             double hi = 4) {
  const int arity = vm::arity(op);
  KernelBuilder b(fmt::format("ew_{}_{}", vm::to_string(op), in.name()));
  std::vector<Pointer> sources;
  std::vector<DataType> types;
  for (int i = 0; i < arity; ++i) {
    types.push_back(op == ElementwiseOp::Where && i == 0 ? u8 : in);
    sources.push_back(b.pointer(fmt::format("x{}", i), types.back()));
  }
  const bool comparison = op >= ElementwiseOp::Eq && op <= ElementwiseOp::Ge;
  const DataType out = comparison ? u8 : in;
  Pointer result = b.pointer("out", out);
  Expr size = b.scalar("n");
  const int64_t block = 256;
  b.launch({cdiv(size, block)}, 4);
  Expr start = b.let("start", b.block_id(0) * block);
  std::vector<Operand> operands;
  for (int i = 0; i < arity; ++i) {
    Tensor loaded = b.load(b.view(sources[static_cast<size_t>(i)], {size}), {start}, {block});
    if (op == ElementwiseOp::Where && i == 0) loaded = b.cast(loaded, u1);
    operands.push_back(loaded);
  }
  Tensor value = b.elementwise(op, operands);
  if (value.dtype() != out) value = b.cast(value, out);
  b.store(b.view(result, {size}), {start}, value);
  CodegenCase c;
  c.program = b.finish();
  c.name = c.program.name;
  for (int i = 0; i < arity; ++i) {
    c.arguments.push_back(types[static_cast<size_t>(i)] == u8 ? input(u8, n, 0, 2)
                                                              : input(in, n, lo, hi));
  }
  c.arguments.push_back(output(out, n));
  c.arguments.push_back(n);
  if (op == ElementwiseOp::Exp2 || op == ElementwiseOp::Log2 || op == ElementwiseOp::Rsqrt) {
    // ex2/rsqrt.approx: 2 ulp relative; lg2.approx: 2^-22 absolute near 1, 2 ulp elsewhere.
    c.rtol = in == DataType::f32() ? 4e-6 : 2e-3;
    c.atol = op == ElementwiseOp::Log2 ? 1e-6 : 1e-30;
  }
  return c;
}

// out = cast(x) for n elements of a [rows, 64] tile per block.
CodegenCase cast_case(DataType from, DataType to, int64_t rows, int64_t n, double lo, double hi) {
  KernelBuilder b(fmt::format("cast_{}_{}", from.name(), to.name()));
  Pointer x = b.pointer("x", from);
  Pointer y = b.pointer("y", to);
  Expr count = b.scalar("n", i32, 64);
  b.launch({cdiv(count, rows * 64)}, 4);
  Expr row = b.let("row", b.block_id(0) * rows);
  Tensor X = b.view(x, {count / 64, 64});
  Tensor Y = b.view(y, {count / 64, 64});
  b.store(Y, {row, 0}, b.cast(b.load(X, {row, 0}, {rows, 64}), to));
  return finished_case(b, {input(from, n, lo, hi), output(to, n), n});
}

// out = cast(bitcast(x)): random codes of an unsigned integer read as a 16- or 32-bit float, so
// that every kind of input (NaN, inf, subnormals, overflow) reaches the cast.
CodegenCase cast_bits_case(DataType real, DataType to, int64_t n) {
  const DataType bits = DataType::uint(real.bits());
  KernelBuilder b(fmt::format("cast_bits_{}_{}", real.name(), to.name()));
  Pointer x = b.pointer("x", bits);
  Pointer y = b.pointer("y", to);
  Expr count = b.scalar("n", i32, 64);
  const int64_t rows = 4;
  b.launch({cdiv(count, rows * 64)}, 4);
  Expr row = b.let("row", b.block_id(0) * rows);
  Tensor codes = b.load(b.view(x, {count / 64, 64}), {row, 0}, {rows, 64});
  Tensor values = b.bitcast(codes, real, {rows, 64});
  b.store(b.view(y, {count / 64, 64}), {row, 0}, b.cast(values, to));
  return finished_case(b, {input(bits, n, 0, std::ldexp(1.0, real.bits())), output(to, n), n});
}

// out = cast(x) over n elements in blocks of 256 with the tail masked: the masked elements of a
// 3-, 5-, 6- or 7-bit type are written one by one into the words they share with other blocks'
// elements (and cross word boundaries).
CodegenCase tail_store_case(DataType to, int64_t n, double lo, double hi) {
  KernelBuilder b(fmt::format("store_tail_{}", to.name()));
  Pointer x = b.pointer("x", f32);
  Pointer y = b.pointer("y", to);
  Expr size = b.scalar("n");
  const int64_t block = 256;
  b.launch({cdiv(size, block)}, 4);
  Expr start = b.let("start", b.block_id(0) * block);
  Tensor values = b.cast(b.load(b.view(x, {size}), {start}, {block}), to);
  b.store(b.view(y, {size}), {start}, values);
  return finished_case(b, {input(f32, n, lo, hi), output(to, n), n});
}

// A packed tile of 6-bit elements in shared memory (filled by cp.async, whole words), read back
// from an odd column: element by element, some elements crossing a byte boundary.
CodegenCase shared_odd_width_case(DataType type) {
  KernelBuilder b(fmt::format("shared_elements_{}", type.name()));
  Pointer x = b.pointer("x", type);
  Pointer y = b.pointer("y", f32);
  b.launch({1}, 4);
  Tensor tile = b.alloc_shared({16, 64}, type, "tile");
  // One 48-byte row per thread: cp.async moves whole 16-byte pieces, no two threads share a byte.
  b.copy_async(tile, {0, 0}, b.view(x, {16, 64}), {0, 0}, {16, 64}, "S[(16,64):(1@lane,1@reg)]");
  b.commit();
  b.wait(0);
  b.barrier();
  Tensor part = b.load_shared(tile, {0, 3}, {16, 32}, "part");
  b.store(b.view(y, {16, 32}), {0, 0}, b.cast(part, f32));
  return finished_case(b, {input(type, 16 * 64, -30, 30), output(f32, 16 * 32)});
}

// Row and column reductions of a [rows, cols] f32 tile, and an i32 max.
CodegenCase reduce_case(vm::ReduceOp op, int axis, DataType dtype) {
  KernelBuilder b(fmt::format("reduce_{}_{}_{}", vm::to_string(op), axis, dtype.name()));
  Pointer x = b.pointer("x", dtype);
  Pointer y = b.pointer("y", dtype);
  const int64_t rows = 8;
  const int64_t cols = 64;
  b.launch({2}, 4);
  Tensor X = b.view(x, {2 * rows, cols});
  Tensor tile = b.load(X, {b.block_id(0) * rows, 0}, {rows, cols});
  Tensor reduced = op == vm::ReduceOp::Sum   ? b.reduce_sum(tile, axis)
                   : op == vm::ReduceOp::Max ? b.reduce_max(tile, axis)
                                             : b.reduce_min(tile, axis);
  if (axis == 1) {
    b.store(b.view(y, {2 * rows, 1}), {b.block_id(0) * rows, 0}, reduced);
  } else {
    b.store(b.view(y, {2, cols}), {b.block_id(0), 0}, reduced);
  }
  CodegenCase c = finished_case(
      b, {input(dtype, 2 * rows * cols, -8, 8), output(dtype, axis == 1 ? 2 * rows : 2 * cols)});
  if (op == vm::ReduceOp::Sum && dtype.is_float()) {
    // A reduction across lanes combines partial sums by butterfly shuffles, not in index order:
    // a few ulps of the sum's magnitude (|x| <= 8, at most 64 terms), with cancellation near 0.
    c.rtol = 1e-5;
    c.atol = 5e-4;
  }
  return c;
}

// Shared memory: a swizzled tile written from registers and read back transposed (a layout that
// crosses threads), then permute, slice, repeat and reshape on the way out.
CodegenCase shared_case(Swizzle swizzle) {
  KernelBuilder b(swizzle.is_identity() ? "shared_roundtrip" : "shared_roundtrip_swizzled");
  Pointer x = b.pointer("x", f16);
  Pointer y = b.pointer("y", f16);
  Pointer z = b.pointer("z", f16);
  b.launch({1}, 4);
  Tensor X = b.view(x, {32, 64});
  Tensor tile = b.alloc_shared({32, 64}, f16, "tile", swizzle);
  b.store_shared(tile, {0, 0}, b.load(X, {0, 0}, {32, 64}));
  b.barrier();
  Tensor part = b.load_shared(tile, {8, 0}, {16, 64}, "part");
  Tensor transposed = b.permute(part, {1, 0});           // [64, 16]
  Tensor sliced = b.slice(transposed, {0, 4}, {64, 8});  // [64, 8]
  Tensor repeated = b.repeat(sliced, 2, 1);              // [64, 16]
  b.store(b.view(y, {64, 16}), {0, 0}, repeated);
  b.store(b.view(z, {16, 64}), {0, 0}, b.reshape(transposed, {16, 64}));
  return finished_case(b, {input(f16, 32 * 64), output(f16, 64 * 16), output(f16, 16 * 64)});
}

// copy_async of a tile with a ragged edge (zero fill), waited for, read back and stored.
CodegenCase copy_async_case() {
  KernelBuilder b("copy_async_tile");
  Pointer x = b.pointer("x", f16);
  Pointer y = b.pointer("y", f16);
  Expr rows = b.scalar("rows");
  Expr cols = b.scalar("cols");
  b.launch({cdiv(cols, 64), cdiv(rows, 16)}, 4);
  Tensor X = b.view(x, {rows, cols});
  Tensor Y = b.view(y, {rows, cols});
  Expr r0 = b.let("r0", b.block_id(1) * 16);
  Expr c0 = b.let("c0", b.block_id(0) * 64);
  Tensor tile = b.alloc_shared({16, 64}, f16, "tile", Swizzle::bytes128());
  b.copy_async(tile, {0, 0}, X, {r0, c0}, {16, 64});
  b.commit();
  b.wait(0);
  b.barrier();
  b.store(Y, {r0, c0}, b.load_shared(tile, {0, 0}, {16, 64}));
  return finished_case(b, {input(f16, 40 * 200), output(f16, 40 * 200), int64_t{40}, int64_t{200}});
}

// Tolerances of a dot on mma.sync against the interpreter's k-ordered f32 fma chain. The products
// of f16/bf16 inputs are exact in f32; the tensor core adds them in its own order (and with its
// own rounding of the partial sums), so the f32 results differ by at most about
// k * 2^-23 * sum |a_i b_i|. For K <= 256 and inputs in [-4, 4]: atol 2e-3 (f32 outputs). Rounded
// to f16 (the GEMM examples, inputs in [-1, 1]), the difference can flip the last bit: rtol 2^-10
// and atol 2e-3 for results near 0. bf16 inputs round the same way as f16 on the way in (the
// interpreter and the GPU see the same codes), so the same tolerances hold.
constexpr double kMmaF32Rtol = 1e-5;
constexpr double kMmaF32Atol = 2e-3;
constexpr double kMmaF16Rtol = 1.0 / 1024;
constexpr double kMmaF16Atol = 2e-3;

// dot on small f32, f16 and bf16 tiles: f32 runs the SIMT path (exact: the interpreter's fma
// order), f16 and bf16 run mma.sync (within the tolerances above).
CodegenCase dot_case(DataType in) {
  KernelBuilder b(fmt::format("dot_{}", in.name()));
  Pointer a = b.pointer("a", in);
  Pointer w = b.pointer("w", in);
  Pointer c_out = b.pointer("c", f32);
  b.launch({1}, 4);
  Tensor A = b.view(a, {32, 16});
  Tensor W = b.view(w, {16, 32});
  Tensor acc = b.full({32, 32}, f32, 0.5, "acc");
  b.dot(acc, b.load(A, {0, 0}, {32, 16}), b.load(W, {0, 0}, {16, 32}));
  b.store(b.view(c_out, {32, 32}), {0, 0}, acc);
  CodegenCase c = finished_case(b, {input(in, 32 * 16), input(in, 16 * 32), output(f32, 32 * 32)});
  if (in == f16 || in == bf16) {
    c.rtol = kMmaF32Rtol;
    c.atol = kMmaF32Atol;
  }
  return c;
}

// dot of 8-bit operands on m16n8k32 atoms: i8/u8 into i32 (every target; exact, wrapping as the
// interpreter does) and f8e4m3/f8e5m2 into f32 (mma.sync on sm_89 and newer, SIMT on sm_80). The
// fp8 products are exact in f16, and on sm_90 the tensor core adds them as it adds f16 products
// (ptxas turns the fp8 mma into F2FP unpacks and HMMA.16816.F32): the f16 tolerances above hold.
// A goes through shared memory (ldmatrix x4 reads 16-byte rows of 8-bit A as its fragments), B
// straight from global memory.
CodegenCase dot8_case(DataType a_type, DataType b_type) {
  const std::string name = a_type == b_type
                               ? fmt::format("dot_{}", a_type.name())
                               : fmt::format("dot_{}_{}", a_type.name(), b_type.name());
  const DataType c_type = a_type.is_float() ? f32 : i32;
  KernelBuilder b(name);
  Pointer a = b.pointer("a", a_type);
  Pointer w = b.pointer("w", b_type);
  Pointer c_out = b.pointer("c", c_type);
  b.launch({1}, 4);
  Tensor A = b.view(a, {32, 64});
  Tensor W = b.view(w, {64, 32});
  Tensor staged = b.alloc_shared({32, 64}, a_type, "a_tile");
  b.store_shared(staged, {0, 0}, b.load(A, {0, 0}, {32, 64}));
  b.barrier();
  Tensor acc = b.full({32, 32}, c_type, a_type.is_float() ? 0.5 : 7, "acc");
  b.dot(acc, b.load_shared(staged, {0, 0}, {32, 64}, "a_fragments"), b.load(W, {0, 0}, {64, 32}));
  b.store(b.view(c_out, {32, 32}), {0, 0}, acc);
  CodegenCase c;
  c.program = b.finish();
  c.name = c.program.name;
  auto operand = [](DataType type, int64_t elements) {
    if (type.is_float()) return input(type, elements);
    return type.is_signed() ? input(type, elements, -128, 128) : input(type, elements, 0, 256);
  };
  c.arguments = {operand(a_type, 32 * 64), operand(b_type, 64 * 32), output(c_type, 32 * 32)};
  if (a_type.is_float()) {
    c.rtol = kMmaF32Rtol;
    c.atol = kMmaF32Atol;
  }
  return c;
}

// wgmma (sm_90a): an A in registers times a B read in place from shared memory. `transposed`: A
// [64, 32] (one m16 row of fragments per warp), B^T [32, 32] row-major in 64-byte swizzled rows,
// one synchronous dot. Otherwise A [128, 32] (two m16 atoms per warp: two m64 instructions) and B
// [64, 16] stored K-major (each column one 128-byte swizzled row of k), read as two k halves by
// two async dots into one accumulator, then wait_dots.
CodegenCase wgmma_case(bool transposed) {
  KernelBuilder b(transposed ? "wgmma_dot_transposed" : "wgmma_dot_async");
  Pointer a = b.pointer("a", f16);
  Pointer w = b.pointer("w", f16);
  Pointer c_out = b.pointer("c", f32);
  b.launch({1}, 4);
  const int64_t m = transposed ? 64 : 128;
  const int64_t n = transposed ? 32 : 16;
  const int64_t k = transposed ? 32 : 64;
  const layout::MmaTiling tiling{m, n, 32, 4, 1, f16};
  Tensor A = b.view(a, {m, k});
  Tensor acc = b.full({m, n}, f32, 0.5, "acc", tiling.c_layout());
  if (transposed) {
    Tensor tile = b.alloc_shared({n, k}, f16, "b_columns", Swizzle::bytes64());
    b.store_shared(tile, {0, 0}, b.load(b.view(w, {n, k}), {0, 0}, {n, k}));
    b.barrier();
    Tensor a_tile = b.load(A, {0, 0}, {64, 32}, "a_fragments");
    b.set_layout(a_tile, tiling.a_layout());
    b.dot(acc, a_tile, tile, {0, 0}, /*transposed=*/true);
  } else {
    using layout::Axis;
    using layout::Iter;
    Tensor tile = b.alloc_shared({k, n}, f16, "b_k_major", Swizzle::bytes128(),
                                 Layout({Iter{k, 1, Axis::smem()}, Iter{n, k, Axis::smem()}}));
    b.store_shared(tile, {0, 0}, b.load(b.view(w, {k, n}), {0, 0}, {k, n}));
    b.barrier();
    for (int64_t half = 0; half < 2; ++half) {
      Tensor a_tile = b.load(A, {0, 32 * half}, {m, 32}, fmt::format("a_half{}", half));
      b.set_layout(a_tile, tiling.a_layout());
      b.dot_async(acc, a_tile, tile, {32 * half, 0});
    }
    b.wait_dots(0);
  }
  b.store(b.view(c_out, {m, n}), {0, 0}, acc);
  CodegenCase c = finished_case(b, {input(f16, m * k), input(f16, k * n), output(f32, m * n)});
  c.rtol = kMmaF32Rtol;
  c.atol = kMmaF32Atol;
  c.wgmma = true;
  return c;
}

// An f32 tile in the m16n8k16 C fragments (2 x 2 warps, two atoms each) cast to f16 and stored to
// shared memory as it is (stmatrix x4 on sm_90) and transposed (a permute into the transposed
// fragments renames them: stmatrix x4.trans), then read back row by row.
CodegenCase store_fragments_case() {
  KernelBuilder b("store_shared_fragments");
  Pointer x = b.pointer("x", f32);
  Pointer y = b.pointer("y", f16);
  Pointer z = b.pointer("z", f16);
  b.launch({1}, 4);
  const Layout fragments = layout::choose_mma_tiling(32, 32, 16, 4, f16)->c_layout();
  Tensor acc = b.load(b.view(x, {32, 32}), {0, 0}, {32, 32}, "acc");
  b.set_layout(acc, fragments);
  Tensor half = b.cast(acc, f16, "half");
  b.set_layout(half, fragments);
  Tensor tile = b.alloc_shared({32, 32}, f16, "tile");
  Tensor transposed_tile = b.alloc_shared({32, 32}, f16, "transposed_tile");
  b.store_shared(tile, {0, 0}, half);
  Tensor transposed = b.permute(half, {1, 0}, "transposed");
  b.set_layout(transposed, layout::permute(fragments, {32, 32}, {1, 0}));
  b.store_shared(transposed_tile, {0, 0}, transposed);
  b.barrier();
  b.store(b.view(y, {32, 32}), {0, 0}, b.load_shared(tile, {0, 0}, {32, 32}));
  b.store(b.view(z, {32, 32}), {0, 0}, b.load_shared(transposed_tile, {0, 0}, {32, 32}));
  return finished_case(b, {input(f32, 32 * 32), output(f16, 32 * 32), output(f16, 32 * 32)});
}

// The m16n8k16 C fragments of a [32, 8] f32 tile over 2 warps (lane (g, t) holds rows g and g + 8,
// columns 2t and 2t + 1) converted to one row per lane pair (lane l of warp w: row 16w + l / 2,
// columns 4(l % 2)..4(l % 2) + 3): every element stays in its warp, so warp shuffles move them.
CodegenCase convert_fragments_case() {
  KernelBuilder b("convert_fragments_to_rows");
  Pointer x = b.pointer("x", f32);
  Pointer y = b.pointer("y", f32);
  b.launch({1}, 2);
  const Layout fragments = layout::choose_mma_tiling(32, 8, 16, 2, f16)->c_layout();
  const Layout rows(
      {layout::Iter{2, 1, layout::Axis::warp()}, layout::Iter{16, 2, layout::Axis::lane()},
       layout::Iter{2, 1, layout::Axis::lane()}, layout::Iter{4, 1, layout::Axis::reg()}});
  Tensor acc = b.load(b.view(x, {32, 8}), {0, 0}, {32, 8}, "acc");
  b.set_layout(acc, fragments);
  Tensor doubled = b.elementwise(ElementwiseOp::Add, {acc, acc}, "doubled");
  b.set_layout(doubled, rows);
  b.store(b.view(y, {32, 8}), {0, 0}, doubled);
  return finished_case(b, {input(f32, 32 * 8), output(f32, 32 * 8)});
}

// shuffle xor 1 and down 3 of a [32 x 4] i32 tile: lanes swap their registers.
CodegenCase shuffle_case(vm::ShuffleMode mode, int64_t lane) {
  KernelBuilder b(fmt::format("shuffle_{}_{}", vm::to_string(mode), lane));
  Pointer x = b.pointer("x", i32);
  Pointer y = b.pointer("y", i32);
  b.launch({1}, 1);
  Tensor X = b.view(x, {32, 4});
  Tensor loaded = b.load(X, {0, 0}, {32, 4});
  b.store(b.view(y, {32, 4}), {0, 0}, b.shuffle(loaded, mode, lane));
  return finished_case(b, {input(i32, 128), output(i32, 128)});
}

// atomic_add of every block's tile into one row: integer sums are exact in any order.
CodegenCase atomic_case() {
  KernelBuilder b("atomic_add_rows");
  Pointer x = b.pointer("x", i32);
  Pointer y = b.pointer("y", i32);
  b.launch({8}, 2);
  Tensor X = b.view(x, {8, 64});
  b.atomic_add(b.view(y, {1, 64}), {0, 0}, b.load(X, {b.block_id(0), 0}, {1, 64}));
  return finished_case(b, {input(i32, 8 * 64), BufferArgument{i32, 64, false, 0, 1}});
}

// atomic_add of a float type from every block into one row: small integers onto 2.0 (the inputs,
// drawn from [2, 2 + 1e-8), round to exactly 2.0 in every type), so that the sums are exact in
// any order. Each lowers to a `red`, bf16 below sm_90 to a compare-and-swap loop.
CodegenCase atomic_float_case(DataType type) {
  KernelBuilder b(fmt::format("atomic_add_{}", type.name()));
  Pointer x = b.pointer("x", i8);
  Pointer y = b.pointer("y", type);
  b.launch({8}, 2);
  Tensor X = b.view(x, {8, 64});
  Tensor values = b.cast(b.load(X, {b.block_id(0), 0}, {1, 64}), type);
  b.atomic_add(b.view(y, {1, 64}), {0, 0}, values);
  return finished_case(b, {input(i8, 8 * 64, -4, 4), input(type, 64, 2, 2 + 1e-8)});
}

// print of a scalar, a global view and a register tile (through vprintf), next to a store whose
// result is compared: printing must not disturb the kernel.
CodegenCase print_case() {
  KernelBuilder b("print_tile");
  Pointer x = b.pointer("x", f32);
  Pointer y = b.pointer("y", f32);
  b.launch({2}, 1);
  Tensor X = b.view(x, {2, 8});
  Tensor tile = b.load(X, {b.block_id(0), 0}, {1, 8});
  b.print("row", b.block_id(0) * 8);
  b.print("x", X);
  b.print("tile", tile);
  b.print("codes", b.cast(tile, i8));
  b.store(b.view(y, {2, 8}), {b.block_id(0), 0}, tile + tile);
  return finished_case(b, {input(f32, 16), output(f32, 16)});
}

// Control flow: a while loop with break and an if, scalars updated by assign.
CodegenCase control_case() {
  KernelBuilder b("control_flow");
  Pointer x = b.pointer("x", f32);
  Pointer y = b.pointer("y", f32);
  Expr n = b.scalar("n");
  b.launch({1}, 2);
  Tensor X = b.view(x, {n});
  Tensor acc = b.zeros({64}, f32, "acc");
  Expr i = b.let("i", Expr::int_constant(0));
  {
    auto loop = b.while_(i < n);
    {
      auto branch = b.if_(i >= 192);
      b.break_();
    }
    b.assign(acc, acc + b.load(X, {i}, {64}));
    b.assign(i, i + 64);
  }
  b.store(b.view(y, {64}), {0}, acc);
  return finished_case(b, {input(f32, 300), output(f32, 64), int64_t{300}});
}

// Blocks hand partial results to the last of them through fetch_add: each of 16 blocks stores its
// row of x (doubled) in the workspace and arrives; the block that arrives last sums the rows in
// row order (the same sum whichever block it is) into y and resets the counter for the next run.
CodegenCase fetch_add_case() {
  KernelBuilder b("fetch_add_last_block");
  Pointer x = b.pointer("x", f32);
  Pointer workspace = b.pointer("workspace", f32);
  Pointer counter = b.pointer("counter", i32);
  Pointer y = b.pointer("y", f32);
  constexpr int64_t blocks = 16;
  b.launch({blocks}, 2);
  Tensor X = b.view(x, {blocks, 64});
  Tensor Wk = b.view(workspace, {blocks, 64});
  Tensor Counter = b.view(counter, {1});
  Tensor row = b.load(X, {b.block_id(0), 0}, {1, 64});
  b.store(Wk, {b.block_id(0), 0}, row + row);
  const Expr arrived = b.fetch_add("arrived", Counter, {0}, 1);
  {
    auto last = b.if_(eq(arrived, blocks - 1));
    Tensor sum = b.zeros({1, 64}, f32, "sum");
    b.for_range(0, blocks, 1, [&](const Expr& r) {
      b.assign(sum, sum + b.load(Wk, {r, 0}, {1, 64}));
    });
    b.store(b.view(y, {1, 64}), {0, 0}, sum);
    b.store(Counter, {0}, b.zeros({1}, i32, "reset"));
  }
  return finished_case(b, {input(f32, blocks * 64), output(f32, blocks * 64),
                           BufferArgument{i32, 1, false, 0, 1}, output(f32, 64)});
}

// Clusters of 4 blocks (sm_90a): each block leaves its doubled row of x (f32) and its row of h
// (f16) in shared memory; after the cluster barrier, block r sums column quarter r of its
// peers' rows in rank order (vector and 16-bit peer loads) and writes it; a second barrier keeps
// the rows alive until every peer has read them. 8 blocks: two clusters.
CodegenCase cluster_case() {
  KernelBuilder b("cluster_peer_sum");
  Pointer x = b.pointer("x", f32);
  Pointer h = b.pointer("h", f16);
  Pointer y = b.pointer("y", f32);
  Pointer g = b.pointer("g", f16);
  constexpr int64_t blocks = 8;
  constexpr int64_t cluster = 4;
  b.launch({blocks}, 2);
  b.cluster({cluster, 1, 1});
  Tensor X = b.view(x, {blocks, 256});
  Tensor H = b.view(h, {blocks, 64});
  Tensor row = b.alloc_shared({1, 256}, f32, "row");
  Tensor half_row = b.alloc_shared({1, 64}, f16, "half_row");
  const Tensor values = b.load(X, {b.block_id(0), 0}, {1, 256});
  b.store_shared(row, {0, 0}, values + values);
  b.store_shared(half_row, {0, 0}, b.load(H, {b.block_id(0), 0}, {1, 64}));
  b.cluster_barrier();
  const Expr rank = b.let("rank", b.block_id(0) % cluster);
  const Expr first = b.let("first", b.block_id(0) - rank);
  Tensor sum = b.load_peer_shared(row, 0, {0, rank * 64}, {1, 64}, "sum");
  Tensor half_sum = b.load_peer_shared(half_row, 0, {0, rank * 16}, {1, 16}, "half_sum");
  for (int64_t peer = 1; peer < cluster; ++peer) {
    b.assign(sum, sum + b.load_peer_shared(row, peer, {0, rank * 64}, {1, 64}));
    b.assign(half_sum, half_sum + b.load_peer_shared(half_row, peer, {0, rank * 16}, {1, 16}));
  }
  b.store(b.view(y, {blocks / cluster, 256}), {first / cluster, rank * 64}, sum);
  b.store(b.view(g, {blocks / cluster, 64}), {first / cluster, rank * 16}, half_sum);
  b.cluster_barrier();
  CodegenCase c =
      finished_case(b, {input(f32, blocks * 256), input(f16, blocks * 64),
                        output(f32, blocks / cluster * 256), output(f16, blocks / cluster * 64)});
  c.wgmma = true;
  return c;
}

}  // namespace

std::vector<CodegenCase> codegen_cases() {
  std::vector<CodegenCase> cases;
  // Examples.
  {
    CodegenCase c{"vector_add_f32", examples::vector_add({.dtype = f32, .block = 1024}), {}, 0, 0};
    c.arguments = {input(f32, 100003), input(f32, 100003), output(f32, 100003), int64_t{100003}};
    cases.push_back(std::move(c));
  }
  {
    CodegenCase c{"vector_add_f16", examples::vector_add({.dtype = f16, .block = 2048}), {}, 0, 0};
    c.arguments = {input(f16, 5000), input(f16, 5000), output(f16, 5000), int64_t{5000}};
    cases.push_back(std::move(c));
  }
  {
    CodegenCase c{"softmax",
                  examples::softmax({.block_rows = 4, .block_cols = 128, .warps = 4}),
                  {},
                  2e-6,
                  1e-9};
    c.arguments = {input(f32, 37 * 300, -8, 8), output(f32, 37 * 300), int64_t{37}, int64_t{300}};
    cases.push_back(std::move(c));
  }
  {
    CodegenCase c{"gemm_f16", examples::gemm({}), {}, kMmaF16Rtol, kMmaF16Atol};
    // M and N ragged (masked edges); K a multiple of block_k, as the example requires.
    c.arguments = {input(f16, 97 * 160, -1, 1),
                   input(f16, 160 * 80, -1, 1),
                   output(f16, 97 * 80),
                   int64_t{97},
                   int64_t{80},
                   int64_t{160}};
    cases.push_back(std::move(c));
  }
  {
    CodegenCase c{"gemm_f16_3stage_swizzled",
                  examples::gemm({.block_m = 64,
                                  .block_n = 64,
                                  .block_k = 32,
                                  .stages = 3,
                                  .warps = 4,
                                  .swizzle = Swizzle::bytes64()}),
                  {},
                  kMmaF16Rtol,
                  kMmaF16Atol};
    c.arguments = {input(f16, 128 * 256, -1, 1),
                   input(f16, 256 * 128, -1, 1),
                   output(f16, 128 * 128),
                   int64_t{128},
                   int64_t{128},
                   int64_t{256}};
    cases.push_back(std::move(c));
  }
  {
    CodegenCase c{"gemv_u4", examples::gemv_u4({}), {}, 0, 0};
    const int64_t n = 200;
    const int64_t k = 512;
    c.arguments = {input(f16, k, -1, 1),
                   input(u4, k * n, 0, 16),
                   input(f16, k / 128 * n, 0.01, 0.1),
                   output(f16, n),
                   n,
                   k};
    cases.push_back(std::move(c));
  }
  // Elementwise.
  for (ElementwiseOp op :
       {ElementwiseOp::Neg, ElementwiseOp::Abs, ElementwiseOp::Add, ElementwiseOp::Sub,
        ElementwiseOp::Mul, ElementwiseOp::Div, ElementwiseOp::Max, ElementwiseOp::Min,
        ElementwiseOp::Eq, ElementwiseOp::Ne, ElementwiseOp::Lt, ElementwiseOp::Le,
        ElementwiseOp::Gt, ElementwiseOp::Ge, ElementwiseOp::Fma, ElementwiseOp::Where}) {
    cases.push_back(elementwise_case(op, f32, 1000));
    cases.push_back(elementwise_case(op, f16, 777));
  }
  for (ElementwiseOp op : {ElementwiseOp::Exp2, ElementwiseOp::Rsqrt, ElementwiseOp::Log2}) {
    const double lo = op == ElementwiseOp::Exp2 ? -10 : 0.01;
    cases.push_back(elementwise_case(op, f32, 1000, lo, 10));
  }
  for (ElementwiseOp op : {ElementwiseOp::Add, ElementwiseOp::Mul, ElementwiseOp::Max,
                           ElementwiseOp::Neg, ElementwiseOp::Abs}) {
    cases.push_back(elementwise_case(op, i32, 1000, -1000, 1000));
  }
  cases.push_back(elementwise_case(ElementwiseOp::Add, bf16, 600));
  cases.push_back(elementwise_case(ElementwiseOp::Add, i8, 600, -128, 128));
  // Arithmetic on small floats: exact in f32, then one rounding into the type (as the interpreter).
  cases.push_back(elementwise_case(ElementwiseOp::Add, f8e4m3, 600));
  cases.push_back(elementwise_case(ElementwiseOp::Mul, f8e5m2, 600));
  // Casts.
  cases.push_back(cast_case(f32, f16, 4, 64 * 20, -70000, 70000));
  cases.push_back(cast_case(f16, f32, 4, 64 * 20, -100, 100));
  cases.push_back(cast_case(f32, bf16, 4, 64 * 20, -100, 100));
  cases.push_back(cast_case(f32, i8, 4, 64 * 20, -300, 300));
  cases.push_back(cast_case(f32, DataType::uint(4), 8, 64 * 16, -3, 20));
  cases.push_back(cast_case(DataType::uint(4), f16, 8, 64 * 16, 0, 16));
  cases.push_back(cast_case(DataType::sint(4), bf16, 8, 64 * 16, 0, 16));
  cases.push_back(cast_case(DataType::uint(2), f16, 8, 64 * 16, 0, 4));
  cases.push_back(cast_case(f8e4m3, f16, 4, 64 * 16, 0, 256));
  cases.push_back(cast_case(f8e5m2, f32, 4, 64 * 16, 0, 256));
  cases.push_back(cast_case(u8, f32, 4, 64 * 16, 0, 256));
  cases.push_back(cast_case(i32, i8, 4, 64 * 16, -1000, 1000));
  // Casts into small floats (bit-exact with dtypes::encode; the CPU test test_small_float_cast
  // checks the same IR over every code).
  cases.push_back(cast_case(f32, f8e4m3, 4, 64 * 16, -600, 600));
  cases.push_back(cast_case(f16, f8e5m2, 4, 64 * 16, -70000, 70000));
  cases.push_back(cast_case(bf16, DataType::parse("f6e3m2"), 4, 64 * 16, -40, 40));
  cases.push_back(cast_case(f32, DataType::parse("f6e2m3"), 4, 64 * 16, -10, 10));
  cases.push_back(cast_case(f16, DataType::parse("f4e2m1"), 8, 64 * 16, -8, 8));
  cases.push_back(cast_case(f8e4m3, DataType::parse("f4e2m1"), 8, 64 * 16, -10, 10));
  cases.push_back(cast_case(i8, f8e4m3, 4, 64 * 16, -128, 128));
  cases.push_back(cast_case(f32, DataType::floating(2, 2), 8, 64 * 16, -8, 8));
  cases.push_back(cast_bits_case(f16, f8e5m2, 64 * 32));
  cases.push_back(cast_bits_case(f32, f8e4m3, 64 * 32));
  cases.push_back(cast_bits_case(bf16, f8e4m3, 64 * 32));
  // Element-wise stores and shared loads of the widths that do not divide 32.
  // (n * bits a multiple of 32: the buffer ends on a whole word, so that the word atomics of the
  // last elements stay inside the allocation for compute-sanitizer.)
  cases.push_back(tail_store_case(DataType::parse("f6e3m2"), 944, -40, 40));
  cases.push_back(tail_store_case(DataType::uint(3), 800, -2, 10));
  cases.push_back(tail_store_case(DataType::floating(2, 2), 928, -8, 8));
  cases.push_back(tail_store_case(DataType::sint(7), 992, -70, 70));
  cases.push_back(shared_odd_width_case(DataType::parse("f6e3m2")));
  // Reductions.
  for (int axis : {0, 1}) {
    cases.push_back(reduce_case(vm::ReduceOp::Sum, axis, f32));
    cases.push_back(reduce_case(vm::ReduceOp::Max, axis, f32));
    cases.push_back(reduce_case(vm::ReduceOp::Min, axis, i32));
  }
  // Memory, data movement, dot, shuffles, atomics, control flow.
  cases.push_back(shared_case(Swizzle::none()));
  cases.push_back(shared_case(Swizzle::bytes128()));
  cases.push_back(copy_async_case());
  cases.push_back(dot_case(f32));
  cases.push_back(dot_case(f16));
  cases.push_back(dot_case(bf16));
  cases.push_back(dot8_case(i8, i8));
  cases.push_back(dot8_case(u8, i8));
  cases.push_back(dot8_case(f8e4m3, f8e4m3));
  cases.push_back(wgmma_case(true));
  cases.push_back(wgmma_case(false));
  cases.push_back(dot8_case(f8e5m2, f8e4m3));
  cases.push_back(store_fragments_case());
  cases.push_back(convert_fragments_case());
  cases.push_back(shuffle_case(vm::ShuffleMode::Xor, 1));
  cases.push_back(shuffle_case(vm::ShuffleMode::Down, 3));
  cases.push_back(shuffle_case(vm::ShuffleMode::Up, 5));
  cases.push_back(atomic_case());
  for (DataType type : {bf16, f16, f32})
    cases.push_back(atomic_float_case(type));
  cases.push_back(print_case());
  cases.push_back(control_case());
  cases.push_back(fetch_add_case());
  cases.push_back(cluster_case());
  return cases;
}

}  // namespace nibble::testing
