#include "examples/softmax.h"

#include <limits>
#include <numbers>

#include "frontend/cpp/kernel_builder.h"

namespace nibble::examples {

vm::Program softmax(const SoftmaxConfig& config) {
  using namespace dsl;
  const int64_t br = config.block_rows;
  const int64_t bc = config.block_cols;
  const double minus_infinity = -std::numeric_limits<double>::infinity();

  KernelBuilder b("softmax");
  Pointer x = b.pointer("x", f32);
  Pointer y = b.pointer("y", f32);
  Expr rows = b.scalar("rows");
  Expr cols = b.scalar("cols");
  b.launch({cdiv(rows, br)}, config.warps);

  Tensor X = b.view(x, {rows, cols}, "X");
  Tensor Y = b.view(y, {rows, cols}, "Y");
  Expr r0 = b.let("r0", b.block_id(0) * br);

  Tensor row_max = b.full({br, 1}, f32, minus_infinity, "row_max");
  {
    auto loop = b.for_range(0, cols, bc, "c0");
    Tensor tile = b.load(X, {r0, loop.var()}, {br, bc}, "tile", minus_infinity);
    b.assign(row_max, max(row_max, b.reduce_max(tile, 1)));
  }

  Tensor row_sum = b.zeros({br, 1}, f32, "row_sum");
  {
    auto loop = b.for_range(0, cols, bc, "c0");
    Tensor tile = b.load(X, {r0, loop.var()}, {br, bc}, "tile", minus_infinity);
    Tensor e = exp2((tile - row_max) * std::numbers::log2e).named("e");
    b.assign(row_sum, row_sum + b.reduce_sum(e, 1));
  }

  {
    auto loop = b.for_range(0, cols, bc, "c0");
    Tensor tile = b.load(X, {r0, loop.var()}, {br, bc}, "tile", minus_infinity);
    Tensor e = exp2((tile - row_max) * std::numbers::log2e).named("e");
    b.store(Y, {r0, loop.var()}, (e / row_sum).named("probabilities"));
  }
  return b.finish();
}

}  // namespace nibble::examples
