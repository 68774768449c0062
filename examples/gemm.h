// Tiled f16 GEMM through shared memory: C[M, N] (f16) = A[M, K] · B[K, N] (f16), accumulated
// in f32 with `dot`.
//
// Each block computes one block_m x block_n tile of C. It walks K in steps of block_k: the A and
// B tiles of a step are copied global -> shared with copy_async, waited for, loaded into
// registers and multiplied into the accumulator. With `stages` > 1 the shared tiles form a ring
// of that many slots and the copies run stages - 1 steps ahead of the math (software
// pipelining): every step commits one group (empty near the end), so wait_group(stages - 1)
// leaves exactly the groups of the steps ahead in flight. K must be a multiple of block_k (the
// scalar's divisor, checked at launch): the copies declare their k dimension in bounds, which
// leaves them no bounds tests or element-wise fallbacks along k. N must be a multiple of 8 (rows
// of B and C 16-byte aligned, no alignment tests). Copies zero-fill past M and N and the store
// is masked, so M is arbitrary and N need not be a multiple of block_n.
#pragma once

#include <cstdint>

#include "layout/swizzle.h"
#include "vm/program.h"

namespace nibble::examples {

struct GemmConfig {
  int64_t block_m = 64;
  int64_t block_n = 64;
  int64_t block_k = 32;
  int stages = 2;  // 1: no overlap; n: n - 1 steps of copies in flight
  int warps = 4;
  layout::Swizzle swizzle = layout::Swizzle::none();  // of both shared tiles
};

// Parameters: a, b, c (pointers to f16), m, n, k (i32; n a multiple of 8, k of block_k).
vm::Program gemm(const GemmConfig& config = {});

}  // namespace nibble::examples
