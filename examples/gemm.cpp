#include "examples/gemm.h"

#include <stdexcept>

#include "frontend/cpp/kernel_builder.h"

namespace nibble::examples {

vm::Program gemm(const GemmConfig& config) {
  using namespace dsl;
  const int64_t bm = config.block_m;
  const int64_t bn = config.block_n;
  const int64_t bk = config.block_k;
  const int64_t stages = config.stages;
  if (stages < 1) throw std::invalid_argument("gemm: stages must be at least 1");

  KernelBuilder kb("gemm_f16");
  Pointer a = kb.pointer("a", f16);
  Pointer b = kb.pointer("b", f16);
  Pointer c = kb.pointer("c", f16);
  Expr m = kb.scalar("m");
  // N is a multiple of 8 (checked at launch): rows of B and C start on 16-byte boundaries, so
  // B's copies and C's stores need no run-time alignment tests or element-wise fallbacks.
  Expr n = kb.scalar("n", i32, 8);
  // K is a multiple of block_k (checked at launch): every k step copies whole tiles, so the
  // copies declare their k dimension in bounds and the GPU code drops its bounds tests and
  // element-wise fallbacks there (and A's rows are aligned for 16-byte cp.async).
  Expr k = kb.scalar("k", i32, bk);
  kb.launch({cdiv(n, bn), cdiv(m, bm)}, config.warps);

  Tensor A = kb.view(a, {m, k}, "A");
  Tensor B = kb.view(b, {k, n}, "B");
  Tensor C = kb.view(c, {m, n}, "C");
  Expr m0 = kb.let("m0", kb.block_id(1) * bm);
  Expr n0 = kb.let("n0", kb.block_id(0) * bn);

  // Slot s of the ring holds rows [s * bm, (s + 1) * bm) of a_tiles and [s * bk, (s + 1) * bk)
  // of b_tiles.
  Tensor a_tiles = kb.alloc_shared({stages * bm, bk}, f16, "a_tiles", config.swizzle);
  Tensor b_tiles = kb.alloc_shared({stages * bk, bn}, f16, "b_tiles", config.swizzle);
  // Callers copy only steps that start before K: the step's k range is then inside the matrices.
  auto copy_step = [&](const Scalar& k_start, const Scalar& a_row, const Scalar& b_row) {
    kb.copy_async(a_tiles, {a_row, 0}, A, {m0, k_start}, {bm, bk}, {}, {1});
    kb.copy_async(b_tiles, {b_row, 0}, B, {k_start, n0}, {bk, bn}, {}, {0});
  };

  Tensor acc = kb.zeros({bm, bn}, f32, "acc");
  // Prologue: the first stages - 1 steps (those past K are never read: their groups are empty).
  for (int64_t step = 0; step + 1 < stages; ++step) {
    {
      auto inside = kb.if_(step * bk < k);
      copy_step(step * bk, step * bm, step * bk);
    }
    kb.commit();
  }
  {
    auto loop = kb.for_range(0, k, bk, "k0");
    const Expr k0 = loop.var();
    const Expr step = kb.let("step", k0 / bk);
    if (stages == 1) {
      copy_step(k0, 0, 0);
    } else {
      // The copy for step + stages - 1, into the slot that step - 1 has finished with.
      const Expr ahead = kb.let("k_ahead", k0 + (stages - 1) * bk);
      auto prefetch = kb.if_(ahead < k);
      const Expr slot_ahead = kb.let("slot_ahead", (step + (stages - 1)) % stages);
      copy_step(ahead, slot_ahead * bm, slot_ahead * bk);
    }
    kb.commit();
    kb.wait(static_cast<int>(stages - 1));
    kb.barrier();

    const Expr slot = kb.let("slot", step % stages);
    Tensor a_tile = kb.load_shared(a_tiles, {slot * bm, 0}, {bm, bk}, "a_tile");
    Tensor b_tile = kb.load_shared(b_tiles, {slot * bk, 0}, {bk, bn}, "b_tile");
    kb.dot(acc, a_tile, b_tile);
    kb.barrier();  // the slot is overwritten by the copy of a later step
  }
  kb.store(C, {m0, n0}, kb.cast(acc, f16, "c_tile"));
  return kb.finish();
}

}  // namespace nibble::examples
