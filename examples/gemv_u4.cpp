#include "examples/gemv_u4.h"

#include <stdexcept>

#include "frontend/cpp/kernel_builder.h"

namespace nibble::examples {

vm::Program gemv_u4(const GemvConfig& config) {
  using namespace dsl;
  const int64_t bn = config.block_n;
  const int64_t bk = config.block_k;
  if (bk % config.group != 0 && config.group % bk != 0) {
    throw std::invalid_argument("gemv_u4: block_k and group must divide one another");
  }
  // The scale rows a k tile spans, and how many rows of W each one covers.
  const int64_t scale_rows = bk >= config.group ? bk / config.group : 1;
  const int64_t rows_per_scale = bk / scale_rows;

  KernelBuilder b("gemv_u4");
  Pointer x = b.pointer("x", f16);
  Pointer w = b.pointer("w", u4);
  Pointer s = b.pointer("s", f16);
  Pointer y = b.pointer("y", f16);
  Expr n = b.scalar("n");
  Expr k = b.scalar("k", i32, /*divisor=*/config.group);
  Expr group = b.constant_param("group", config.group);
  b.launch({cdiv(n, bn)}, config.warps);

  Tensor X = b.view(x, {1, k}, "X");
  Tensor W = b.view(w, {k, n}, "W");
  Tensor S = b.view(s, {k / group, n}, "S");
  Tensor Y = b.view(y, {1, n}, "Y");
  Expr n0 = b.let("n0", b.block_id(0) * bn);

  Tensor acc = b.zeros({1, bn}, f32, "acc");
  {
    auto loop = b.for_range(0, k, bk, "k0");
    const Expr k0 = loop.var();
    Tensor xs = b.load(X, {0, k0}, {1, bk}, "xs");
    Tensor codes = b.load(W, {k0, n0}, {bk, bn}, "codes");
    Tensor scales = b.load(S, {k0 / group, n0}, {scale_rows, bn}, "scales");
    Tensor centered = b.cast(codes, f16, "codes_f16") - 8;  // zero point 8: -8 .. 7, exact
    Tensor weights = centered * b.repeat(scales, rows_per_scale, /*axis=*/0);
    b.dot(acc, xs, weights.named("weights"));
  }
  b.store(Y, {0, n0}, b.cast(acc, f16, "ys"));
  return b.finish();
}

}  // namespace nibble::examples
