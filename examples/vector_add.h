// Vector add: out[i] = x[i] + y[i] for i < n.
//
// One block per `block` elements; the loads of the last block read zeros past n and its store
// skips them, so n need not be a multiple of the block.
#pragma once

#include <cstdint>

#include "vm/program.h"

namespace nibble::examples {

struct VectorAddConfig {
  dtypes::DataType dtype = dtypes::DataType::f32();  // f32, f16, bf16, or an integer type
  int64_t block = 256;                               // elements per block
  int warps = 4;
};

// Parameters: x, y, out (pointers to config.dtype), n (i32).
vm::Program vector_add(const VectorAddConfig& config = {});

}  // namespace nibble::examples
