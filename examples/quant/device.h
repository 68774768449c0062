// Running the quantized GEMM on the GPU: the kernels of one configuration, compiled through the
// kernel cache and loaded, with the workspace (and tile counters) a split-K configuration needs.
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
  runtime::DeviceBuffer counters_;   // finish_in_gemm: i32 per output tile, zeros between calls
};

// Leaves the L2 cache cold and clean before a timed call: a kernel reads a zero-filled buffer of
// four times the L2 size (writing one float per 16 KB read). It reads rather than writes: a flush
// that writes leaves the L2 full of dirty lines whose write-back the next kernel pays (on an
// H200, 8-10 us of a 40-70 us decode GEMM), which a layer of a model, following kernels that read
// their weights, does not pay. bench/quant_gemm_report.py flushes its peers the same way.
class CacheFlush {
 public:
  explicit CacheFlush(int64_t l2_cache_bytes);
  void operator()(void* stream = nullptr) const;

 private:
  int64_t rows_ = 0;  // of 4096 floats
  runtime::DeviceBuffer buffer_;
  runtime::DeviceBuffer sums_;
  dsl::GpuKernel reader_;
};

// The median time in microseconds of `repeats` calls of `call`, each between two events on the
// default stream after `flush`: how the benchmarks and `nibble demo` time a kernel and its peers.
double median_call_us(const std::function<void()>& call, const CacheFlush& flush, int repeats);

}  // namespace nibble::examples
