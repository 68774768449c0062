// Dequantizing GEMV: y[1, N] (f16) = x[1, K] (f16) · dequant(W)[K, N], accumulated in f32, where
//
//   dequant(W)[k, n] = (W[k, n] - 8) · S[k / group, n]
//
// W holds u4 codes (0..15, zero point 8) packed row-major in the bit-stream order of
// dtypes/packing.h, and S one f16 scale per `group` consecutive k and column n.
//
// Each block computes block_n outputs and walks K in tiles of block_k: it loads the x slice, the
// u4 tile and the scales the tile spans, converts the codes to f16, subtracts the zero point,
// multiplies by the scales repeated over their groups' rows, and dots into the accumulator.
// block_k and group must divide one another (a tile never straddles part of a group). K must be
// a multiple of `group` (the kernel declares it as k's divisor); N is arbitrary.
#pragma once

#include <cstdint>

#include "vm/program.h"

namespace nibble::examples {

struct GemvConfig {
  int64_t group = 128;
  int64_t block_n = 64;
  int64_t block_k = 128;
  int warps = 4;
};

// Parameters: x (f16), w (u4), s (f16), y (f16) pointers; n, k (i32, k a multiple of group);
// group (compile-time i32).
vm::Program gemv_u4(const GemvConfig& config = {});

}  // namespace nibble::examples
