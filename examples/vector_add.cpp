#include "examples/vector_add.h"

#include "frontend/cpp/kernel_builder.h"

namespace nibble::examples {

vm::Program vector_add(const VectorAddConfig& config) {
  using namespace dsl;
  KernelBuilder b("vector_add");
  Pointer x = b.pointer("x", config.dtype);
  Pointer y = b.pointer("y", config.dtype);
  Pointer out = b.pointer("out", config.dtype);
  Expr n = b.scalar("n");
  b.launch({cdiv(n, config.block)}, config.warps);

  Tensor X = b.view(x, {n}, "X");
  Tensor Y = b.view(y, {n}, "Y");
  Tensor Out = b.view(out, {n}, "Out");
  Expr start = b.let("start", b.block_id(0) * config.block);
  Tensor xs = b.load(X, {start}, {config.block}, "xs");
  Tensor ys = b.load(Y, {start}, {config.block}, "ys");
  b.store(Out, {start}, (xs + ys).named("sum"));
  return b.finish();
}

}  // namespace nibble::examples
