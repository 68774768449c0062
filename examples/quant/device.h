// Running the quantized GEMM on the GPU: the kernels of one configuration, compiled through the
// kernel cache and loaded, with the workspace a split-K configuration needs.
//
//   QuantGemmDevice gemm(config);            // compiles (or takes from the cache) and loads
//   gemm.run(a, w, s, z, c, m, n, k);        // device pointers; z = 0 without zero points
//
// run() checks the call (shape against the configuration, pointer alignment) before anything
// is launched and throws QuantGemmError / dsl::LaunchError naming what is wrong.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "examples/quant_gemm.h"
#include "frontend/cpp/compiled_kernel.h"
#include "runtime/driver.h"

namespace nibble::examples {

class QuantGemmDevice {
 public:
  explicit QuantGemmDevice(const QuantGemmConfig& config);

  const QuantGemmConfig& config() const { return config_; }
  const dsl::GpuKernel& kernel() const { return gemm_; }

  // C[m, n] = A[m, k] · dequant(W) on `stream`. W, scales and zeros as prepare_weight() made
  // them (examples/quant/run.h), uploaded as they are.
  void run(runtime::DevicePointer a, runtime::DevicePointer w, runtime::DevicePointer scales,
           runtime::DevicePointer zeros, runtime::DevicePointer c, int64_t m, int64_t n, int64_t k,
           void* stream = nullptr);

 private:
  QuantGemmConfig config_;
  dsl::GpuKernel gemm_;
  std::optional<dsl::GpuKernel> finish_;
  runtime::DeviceBuffer workspace_;  // f32 [m, n], all zeros between calls
};

// The median time in microseconds of `repeats` calls of `call`, each between two events on the
// default stream after the L2 cache was flushed by writing all of `flush` (make it several
// times the L2 size): how the benchmarks and `nibble demo` time a kernel and its peers.
double median_call_us(const std::function<void()>& call, runtime::DeviceBuffer& flush, int repeats);

}  // namespace nibble::examples
