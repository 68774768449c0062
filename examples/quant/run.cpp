#include "examples/quant/run.h"

#include <fmt/format.h>

#include "examples/quant/repack.h"
#include "vm/interpreter.h"
#include "vm/passes.h"

namespace nibble::examples {
namespace {

template <typename T>
vm::HostBuffer host(std::vector<T>& values) {
  return vm::HostBuffer{values.data(), values.size() * sizeof(T)};
}

}  // namespace

PreparedWeight prepare_weight(const QuantizedWeight& weight, const QuantGemmConfig& config) {
  auto fail = [&](const std::string& message) {
    throw QuantGemmError(fmt::format("weight for {}: {}", config.name(), message));
  };
  if (weight.scale_type != config.activation) {
    fail(fmt::format("scales are {}, the activations {}", weight.scale_type.name(),
                     config.activation.name()));
  }
  const int64_t expected_group = config.group_size == 0 ? weight.k : config.group_size;
  if (weight.group_size != expected_group) {
    fail(fmt::format("quantized with groups of {}, the kernel expects {}", weight.group_size,
                     expected_group));
  }
  if (config.zero_points != !weight.zeros.empty()) {
    fail(config.zero_points ? "the kernel reads zero points the weight does not have"
                            : "the weight has zero points the kernel ignores");
  }
  PreparedWeight prepared;
  prepared.config = config;
  prepared.k = weight.k;
  prepared.n = weight.n;
  prepared.codes = repack_weight(weight, config);
  prepared.scales = weight.scales;
  prepared.zeros = weight.zeros;
  return prepared;
}

std::vector<uint16_t> run_quant_gemm_interpreted(const PreparedWeight& weight, int64_t m,
                                                 std::span<const uint16_t> a) {
  const QuantGemmConfig& config = weight.config;
  check_quant_gemm_shape(config, m, weight.n, weight.k);
  if (static_cast<int64_t>(a.size()) != m * weight.k) {
    throw QuantGemmError(
        fmt::format("{}: A has {} elements, M x K is {}", config.name(), a.size(), m * weight.k));
  }
  vm::Program program = quant_gemm(config);
  vm::run_default_passes(program);
  std::vector<uint16_t> a_codes(a.begin(), a.end());
  std::vector<uint8_t> codes = weight.codes;
  std::vector<uint16_t> scales = weight.scales;
  std::vector<uint16_t> zeros = weight.zeros;
  std::vector<uint16_t> c(static_cast<size_t>(m * weight.n), 0);
  std::vector<float> workspace;
  std::vector<int32_t> counters;
  std::vector<vm::Argument> arguments{host(a_codes), host(codes), host(scales)};
  if (config.zero_points) arguments.push_back(host(zeros));
  if (config.uses_workspace()) {
    workspace.assign(c.size(), 0.0F);
    arguments.push_back(host(workspace));
  }
  if (config.finish_in_gemm) {
    counters.assign(static_cast<size_t>(quant_gemm_counters(config, m, weight.n)), 0);
    arguments.insert(arguments.end(), {host(counters), host(c)});
  } else if (!config.uses_workspace()) {
    arguments.push_back(host(c));
  }
  arguments.insert(arguments.end(),
                   {vm::Argument{m}, vm::Argument{weight.n}, vm::Argument{weight.k}});
  vm::interpret(program, arguments);
  if (config.launches_finish()) {
    vm::Program finish = quant_gemm_finish(config.activation);
    vm::run_default_passes(finish);
    const std::vector<vm::Argument> finish_arguments{host(workspace), host(c),
                                                     vm::Argument{static_cast<int64_t>(c.size())}};
    vm::interpret(finish, finish_arguments);
  }
  return c;
}

}  // namespace nibble::examples
