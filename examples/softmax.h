// Row softmax: y[r, :] = exp(x[r, :] - max_r) / Σ exp(x[r, :] - max_r) over an f32 matrix of
// `rows` x `cols` (row-major, contiguous).
//
// Each block owns `block_rows` rows and walks their columns in tiles of `block_cols`, three
// times: the running row maximum, the sum of exponentials, then the normalized output.
// exp(v) is computed as exp2(v · log2(e)), which is what the GPU's ex2 instruction offers.
// Masked-off columns load as -inf, so they add nothing to the maximum or the sum.
#pragma once

#include <cstdint>

#include "vm/program.h"

namespace nibble::examples {

struct SoftmaxConfig {
  int64_t block_rows = 4;
  int64_t block_cols = 128;
  int warps = 4;
};

// Parameters: x, y (pointers to f32), rows, cols (i32).
vm::Program softmax(const SoftmaxConfig& config = {});

}  // namespace nibble::examples
