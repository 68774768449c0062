#include "examples/quant/device.h"

#include <algorithm>
#include <vector>

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
  if (config.uses_workspace()) finish_.emplace(build(quant_gemm_finish(config.activation)));
}

void QuantGemmDevice::run(runtime::DevicePointer a, runtime::DevicePointer w,
                          runtime::DevicePointer scales, runtime::DevicePointer zeros,
                          runtime::DevicePointer c, int64_t m, int64_t n, int64_t k, void* stream) {
  check_quant_gemm_shape(config_, m, n, k);
  if (config_.zero_points && zeros == 0) {
    throw QuantGemmError(config_.name() + ": the configuration reads zero points; none given");
  }
  const size_t workspace_bytes = static_cast<size_t>(m * n) * sizeof(float);
  if (finish_ && workspace_.bytes() < workspace_bytes) {
    workspace_ = runtime::DeviceBuffer(workspace_bytes);
    workspace_.fill_bytes(0);
  }
  using dsl::DeviceArgument;
  using dsl::DevicePointerArgument;
  std::vector<DeviceArgument> arguments{DevicePointerArgument{a}, DevicePointerArgument{w},
                                        DevicePointerArgument{scales}};
  if (config_.zero_points) arguments.push_back(DevicePointerArgument{zeros});
  arguments.push_back(DevicePointerArgument{finish_ ? workspace_.pointer() : c});
  arguments.insert(arguments.end(), {DeviceArgument{m}, DeviceArgument{n}, DeviceArgument{k}});
  gemm_.launch(arguments, stream);
  if (finish_) {
    const std::vector<DeviceArgument> finish_arguments{DevicePointerArgument{workspace_.pointer()},
                                                       DevicePointerArgument{c},
                                                       DeviceArgument{m * n}};
    finish_->launch(finish_arguments, stream);
  }
}

double median_call_us(const std::function<void()>& call, runtime::DeviceBuffer& flush,
                      int repeats) {
  std::vector<double> times;
  for (int r = 0; r < std::max(repeats, 1); ++r) {
    flush.fill_bytes(static_cast<uint8_t>(r));
    runtime::EventTimer timer;
    timer.start();
    call();
    times.push_back(static_cast<double>(timer.stop()) * 1e3);
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

}  // namespace nibble::examples
