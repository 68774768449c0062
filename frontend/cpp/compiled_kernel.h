// A compiled kernel loaded on the GPU, with a checked launch: where compile (codegen) meets launch
// (runtime).
//
//   GpuKernel kernel = GpuKernel::build(program);           // target from the device
//   kernel.launch({DeviceArgument::pointer(x), …, int64_t{n}});
//
// Arguments follow the interpreter's convention (vm/interpreter.h): one per parameter, or one per
// run-time parameter when the compile-time ones are left out. launch() checks what the kernel
// assumed before anything runs and throws LaunchError naming the parameter: pointer alignment
// (Parameter::alignment_bytes), divisibility of scalars (Parameter::divisor), the values of
// compile-time parameters, integer ranges; the grid is program.grid evaluated on the scalars.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>

#include "codegen/compile.h"
#include "runtime/driver.h"

namespace nibble::dsl {

class LaunchError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// A device pointer argument (its address; bytes are informational).
struct DevicePointerArgument {
  runtime::DevicePointer address = 0;
};
using DeviceArgument = std::variant<DevicePointerArgument, int64_t, double>;
inline DeviceArgument device_pointer(const runtime::DeviceBuffer& buffer) {
  return DevicePointerArgument{buffer.pointer()};
}

// The target nibble compiles for on a device of compute capability `cc` (80, 89, 90, …).
codegen::Target target_for_compute_capability(int cc);

class GpuKernel {
 public:
  // Compiles for the current device (Driver::get()) through the kernel cache
  // (frontend/cpp/cached_compile.h) and loads the module.
  static GpuKernel build(const vm::Program& program, const codegen::CompileOptions& options = {});
  // Loads an already compiled kernel (its cubin, or its PTX through the driver's JIT).
  explicit GpuKernel(codegen::CompiledKernel compiled);

  const codegen::CompiledKernel& compiled() const { return compiled_; }
  // The grid the arguments give (after the checks of launch()).
  std::array<uint32_t, 3> grid(std::span<const DeviceArgument> arguments) const;
  void launch(std::span<const DeviceArgument> arguments, void* stream = nullptr) const;

 private:
  codegen::CompiledKernel compiled_;
  std::optional<runtime::Module> module_;
  void* function_ = nullptr;
};

}  // namespace nibble::dsl
