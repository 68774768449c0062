#include "frontend/cpp/compiled_kernel.h"

#include "frontend/cpp/cached_compile.h"

#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "vm/expr_eval.h"

namespace nibble::dsl {

codegen::Target target_for_compute_capability(int cc) {
  if (cc >= 90) return codegen::Target::parse("sm_90a");
  if (cc >= 89) return codegen::Target::parse("sm_89");
  if (cc >= 80) return codegen::Target::parse("sm_80");
  throw LaunchError(
      fmt::format("compute capability {}.{}: nibble needs sm_80 or newer", cc / 10, cc % 10));
}

GpuKernel GpuKernel::build(const vm::Program& program, const codegen::CompileOptions& options) {
  const runtime::Driver& driver = runtime::Driver::get();
  const codegen::Target target = target_for_compute_capability(driver.device().compute_capability);
  return GpuKernel(compile_cached(program, target, options));
}

GpuKernel::GpuKernel(codegen::CompiledKernel compiled) : compiled_(std::move(compiled)) {
  std::vector<uint8_t> image = compiled_.cubin;
  if (image.empty()) {
    image.assign(compiled_.ptx.begin(), compiled_.ptx.end());
    image.push_back(0);
  }
  module_.emplace(runtime::Module::load(image, compiled_.name));
  function_ = module_->function(compiled_.name);
}

namespace {

struct Bound {
  std::vector<std::optional<DeviceArgument>> by_param;  // per program parameter
};

Bound bind(const vm::Program& program, std::span<const DeviceArgument> arguments) {
  const size_t all = program.params.size();
  size_t runtime = 0;
  for (const vm::Parameter& param : program.params)
    runtime += (param.compile_time && param.value) ? 0 : 1;
  if (arguments.size() != all && arguments.size() != runtime) {
    throw LaunchError(fmt::format(
        "kernel '{}' takes {} arguments ({} without its compile-time parameters), got {}",
        program.name, all, runtime, arguments.size()));
  }
  Bound bound;
  size_t next = 0;
  for (const vm::Parameter& param : program.params) {
    const bool given = arguments.size() == all || !(param.compile_time && param.value);
    std::optional<DeviceArgument> value;
    if (given) value = arguments[next++];
    const std::string where = fmt::format("kernel '{}', argument '{}'", program.name, param.name);
    if (param.kind == vm::Parameter::Kind::Pointer) {
      if (!value || !std::holds_alternative<DevicePointerArgument>(*value)) {
        throw LaunchError(fmt::format("{}: a pointer to {} is needed", where, param.dtype.name()));
      }
      const uint64_t address = std::get<DevicePointerArgument>(*value).address;
      if (param.alignment_bytes > 1 &&
          address % static_cast<uint64_t>(param.alignment_bytes) != 0) {
        throw LaunchError(
            fmt::format("{}: address {:#x} is not {}-byte aligned, which the kernel assumes", where,
                        address, param.alignment_bytes));
      }
    } else if (param.compile_time && param.value) {
      if (value &&
          !(std::holds_alternative<int64_t>(*value) && std::get<int64_t>(*value) == *param.value)) {
        throw LaunchError(fmt::format("{}: the kernel was specialized for {} = {}", where,
                                      param.name, *param.value));
      }
      value = DeviceArgument(*param.value);
    } else if (param.dtype.is_integer()) {
      if (!value || !std::holds_alternative<int64_t>(*value)) {
        throw LaunchError(
            fmt::format("{}: an integer of type {} is needed", where, param.dtype.name()));
      }
      const int64_t integer = std::get<int64_t>(*value);
      if (vm::wrap_to_type(integer, param.dtype) != integer) {
        throw LaunchError(
            fmt::format("{}: {} does not fit in {}", where, integer, param.dtype.name()));
      }
      if (param.divisor > 1 && integer % param.divisor != 0) {
        throw LaunchError(fmt::format("{}: {} is not a multiple of {}, which the kernel assumes",
                                      where, integer, param.divisor));
      }
    } else if (!value || std::holds_alternative<DevicePointerArgument>(*value)) {
      throw LaunchError(
          fmt::format("{}: a number of type {} is needed", where, param.dtype.name()));
    }
    bound.by_param.push_back(value);
  }
  return bound;
}

vm::ScalarValue scalar_of(const vm::Parameter& param, const DeviceArgument& argument) {
  if (param.dtype.is_float()) {
    const double real = std::holds_alternative<double>(argument)
                            ? std::get<double>(argument)
                            : static_cast<double>(std::get<int64_t>(argument));
    return vm::ScalarValue::of_float(real, param.dtype);
  }
  return vm::ScalarValue::of_int(std::get<int64_t>(argument), param.dtype);
}

std::array<uint32_t, 3> grid_of(const vm::Program& program, const Bound& bound) {
  std::array<uint32_t, 3> grid = {1, 1, 1};
  const auto leaf = [&](const vm::Expr& e) -> vm::ScalarValue {
    const auto i = static_cast<size_t>(e.index());
    if (e.kind() != vm::Expr::Kind::Param || i >= bound.by_param.size() ||
        program.params[i].kind != vm::Parameter::Kind::Scalar) {
      throw LaunchError(
          fmt::format("kernel '{}': the grid reads {}", program.name, vm::to_string(e)));
    }
    return scalar_of(program.params[i], *bound.by_param[i]);
  };
  for (size_t d = 0; d < 3; ++d) {
    if (program.grid[d].empty()) continue;
    const vm::ScalarValue value = vm::evaluate(program.grid[d], leaf);
    if (!value.type.is_integer() || value.integer < 0 || value.integer > (int64_t{1} << 31) - 1) {
      throw LaunchError(fmt::format("kernel '{}': grid extent {} = {} is out of range",
                                    program.name, vm::to_string(program.grid[d]),
                                    value.as_double()));
    }
    grid[d] = static_cast<uint32_t>(value.integer);
  }
  return grid;
}

}  // namespace

std::array<uint32_t, 3> GpuKernel::grid(std::span<const DeviceArgument> arguments) const {
  return grid_of(compiled_.program, bind(compiled_.program, arguments));
}

void GpuKernel::launch(std::span<const DeviceArgument> arguments, void* stream) const {
  const vm::Program& program = compiled_.program;
  const Bound bound = bind(program, arguments);
  runtime::LaunchConfig config;
  config.grid = grid_of(program, bound);
  config.block = {static_cast<uint32_t>(compiled_.block_threads), 1, 1};
  config.shared_memory_bytes = static_cast<uint32_t>(compiled_.dynamic_shared_bytes);
  config.stream = stream;
  // Its code waits for the previous kernel only where the target has griddepcontrol.
  config.dependent = program.dependent_launch && compiled_.target.sm >= 90;
  for (size_t d = 0; d < 3; ++d) {
    config.cluster[d] = static_cast<uint32_t>(program.cluster[d]);
    if (config.grid[d] % config.cluster[d] != 0) {
      throw LaunchError(
          fmt::format("kernel '{}': the grid ({}, {}, {}) is not a whole number of "
                      "clusters ({}, {}, {})",
                      program.name, config.grid[0], config.grid[1], config.grid[2],
                      config.cluster[0], config.cluster[1], config.cluster[2]));
    }
  }
  if (config.grid[0] == 0 || config.grid[1] == 0 || config.grid[2] == 0) return;  // nothing to run
  std::vector<std::array<uint8_t, 8>> storage(compiled_.parameters.size());
  std::vector<void*> pointers;
  for (size_t i = 0; i < compiled_.parameters.size(); ++i) {
    const codegen::KernelParameter& abi = compiled_.parameters[i];
    const vm::Parameter& param = program.params[static_cast<size_t>(abi.program_index)];
    const DeviceArgument& argument = *bound.by_param[static_cast<size_t>(abi.program_index)];
    std::array<uint8_t, 8>& bytes = storage[i];
    bytes.fill(0);
    if (abi.kind == codegen::KernelParameter::Kind::Pointer) {
      const uint64_t address = std::get<DevicePointerArgument>(argument).address;
      std::memcpy(bytes.data(), &address, 8);
    } else if (param.dtype.is_float()) {
      const vm::ScalarValue value = scalar_of(param, argument);
      if (param.dtype == dtypes::DataType::f64()) {
        std::memcpy(bytes.data(), &value.real, 8);
      } else if (param.dtype == dtypes::DataType::f32()) {
        const auto single = static_cast<float>(value.real);
        std::memcpy(bytes.data(), &single, 4);
      } else {
        throw LaunchError(fmt::format("kernel '{}': scalar parameters of type {} are not supported",
                                      program.name, param.dtype.name()));
      }
    } else {
      const int64_t integer = std::get<int64_t>(argument);
      std::memcpy(bytes.data(), &integer, static_cast<size_t>(abi.size_bytes));  // little-endian
    }
    pointers.push_back(bytes.data());
  }
  runtime::launch(function_, compiled_.name, config, pointers);
}

}  // namespace nibble::dsl
