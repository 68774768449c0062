#include "examples/quant/device.h"

#include <algorithm>
#include <vector>

#include "frontend/cpp/kernel_builder.h"
#include "vm/passes.h"

namespace nibble::examples {
namespace {

dsl::GpuKernel build(vm::Program program) {
  vm::run_default_passes(program);
  return dsl::GpuKernel::build(program);
}

}  // namespace

QuantGemmDevice::QuantGemmDevice(const QuantGemmConfig& config)
    : config_(config), gemm_(build(quant_gemm(config))) {
  if (config.launches_finish()) finish_.emplace(build(quant_gemm_finish(config.activation)));
}

void QuantGemmDevice::run(runtime::DevicePointer a, runtime::DevicePointer w,
                          runtime::DevicePointer scales, runtime::DevicePointer zeros,
                          runtime::DevicePointer c, int64_t m, int64_t n, int64_t k, void* stream) {
  check_quant_gemm_shape(config_, m, n, k);
  if (config_.zero_points && zeros == 0) {
    throw QuantGemmError(config_.name() + ": the configuration reads zero points; none given");
  }
  const size_t workspace_bytes = static_cast<size_t>(m * n) * sizeof(float);
  if (config_.uses_workspace() && workspace_.bytes() < workspace_bytes) {
    workspace_ = runtime::DeviceBuffer(workspace_bytes);
    workspace_.fill_bytes(0);
  }
  const size_t counters_bytes = static_cast<size_t>(quant_gemm_counters(config_, m, n)) * 4;
  if (config_.finish_in_gemm && counters_.bytes() < counters_bytes) {
    counters_ = runtime::DeviceBuffer(counters_bytes);
    counters_.fill_bytes(0);
  }
  using dsl::DeviceArgument;
  using dsl::DevicePointerArgument;
  std::vector<DeviceArgument> arguments{DevicePointerArgument{a}, DevicePointerArgument{w},
                                        DevicePointerArgument{scales}};
  if (config_.zero_points) arguments.push_back(DevicePointerArgument{zeros});
  if (config_.finish_in_gemm) {
    arguments.insert(arguments.end(),
                     {DevicePointerArgument{workspace_.pointer()},
                      DevicePointerArgument{counters_.pointer()}, DevicePointerArgument{c}});
  } else {
    arguments.push_back(DevicePointerArgument{config_.uses_workspace() ? workspace_.pointer() : c});
  }
  arguments.insert(arguments.end(), {DeviceArgument{m}, DeviceArgument{n}, DeviceArgument{k}});
  gemm_.launch(arguments, stream);
  if (finish_) {
    const std::vector<DeviceArgument> finish_arguments{DevicePointerArgument{workspace_.pointer()},
                                                       DevicePointerArgument{c},
                                                       DeviceArgument{m * n}};
    finish_->launch(finish_arguments, stream);
  }
}

namespace {

constexpr int64_t kFlushRow = 4096;  // floats summed per block

// out[r] = sum of x[r, :], one row of kFlushRow floats per block.
vm::Program cache_flush_reader() {
  using namespace dsl;
  KernelBuilder b("cache_flush_read");
  Pointer x = b.pointer("x", f32);
  Pointer out = b.pointer("out", f32);
  Expr rows = b.scalar("rows");
  b.launch({rows}, 8);
  Tensor X = b.view(x, {rows, kFlushRow}, "X");
  Tensor Out = b.view(out, {rows, 1}, "Out");
  Expr row = b.let("row", b.block_id(0));
  Tensor values = b.load(X, {row, 0}, {1, kFlushRow}, "values");
  b.store(Out, {row, 0}, b.reduce_sum(values, 1, "row_sum"));
  return b.finish();
}

}  // namespace

CacheFlush::CacheFlush(int64_t l2_cache_bytes)
    : rows_(std::max<int64_t>(l2_cache_bytes, 1 << 20) * 4 / (kFlushRow * 4)),
      buffer_(static_cast<size_t>(rows_ * kFlushRow * 4)),
      sums_(static_cast<size_t>(rows_ * 4)),
      reader_(build(cache_flush_reader())) {
  buffer_.fill_bytes(0);
}

void CacheFlush::operator()(void* stream) const {
  const std::vector<dsl::DeviceArgument> arguments{dsl::DevicePointerArgument{buffer_.pointer()},
                                                   dsl::DevicePointerArgument{sums_.pointer()},
                                                   dsl::DeviceArgument{rows_}};
  reader_.launch(arguments, stream);
}

double median_call_us(const std::function<void()>& call, const CacheFlush& flush, int repeats) {
  std::vector<double> times;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    flush();
    runtime::EventTimer timer;
    timer.start();
    call();
    times.push_back(static_cast<double>(timer.stop()) * 1e3);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace nibble::examples
