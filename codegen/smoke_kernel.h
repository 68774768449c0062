// A trivial kernel built directly in LLVM IR: the end-to-end check that LLVM's NVPTX backend is
// linked in and that its PTX assembles. It computes, for i = blockIdx.x * blockDim.x +
// threadIdx.x < n,  y[i] = fma(a, x[i], y[i])  (f32).
#pragma once

#include <string>

#include "codegen/llvm_backend.h"
#include "codegen/target.h"

namespace nibble::codegen {

inline constexpr const char* kSmokeKernelName = "nibble_smoke_axpy";

struct SmokeKernel {
  std::string llvm_ir;  // before optimization
  std::string ptx;
  LlvmStageTimes times;
};

SmokeKernel build_smoke_kernel(const Target& target);

}  // namespace nibble::codegen
