// Code generation and the GPU (codegen/, frontend/cpp/compiled_kernel.h): a program compiled to
// LLVM IR, PTX and a cubin with its report, and kernels loaded on the device and launched with
// checked arguments. Device pointers come from Python as ints (the addresses torch tensors and
// __cuda_array_interface__ give), streams as ints (CUstream handles; 0 = the default stream).
// The device's description and event timing serve autotuning (nibble/autotune.py).
#include <dlfcn.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "codegen/compile.h"
#include "frontend/cpp/compiled_kernel.h"
#include "frontend/python/bindings/bindings.h"
#include "runtime/driver.h"

namespace py = pybind11;

namespace nibble::python {
namespace {

// A device argument from Python: ("ptr", address), an int or a float.
std::vector<dsl::DeviceArgument> device_arguments(const py::list& arguments) {
  std::vector<dsl::DeviceArgument> result;
  for (const py::handle& argument : arguments) {
    if (py::isinstance<py::tuple>(argument)) {
      const auto pair = argument.cast<py::tuple>();
      result.emplace_back(dsl::DevicePointerArgument{pair[1].cast<runtime::DevicePointer>()});
    } else if (py::isinstance<py::int_>(argument)) {
      result.emplace_back(argument.cast<int64_t>());
    } else if (py::isinstance<py::float_>(argument)) {
      result.emplace_back(argument.cast<double>());
    } else {
      throw py::type_error("a device argument is (\"ptr\", address), an int or a float");
    }
  }
  return result;
}

// The CUDA driver's version (e.g. 12040 for 12.4), asked of the library the runtime loaded
// (runtime/driver.cpp opens $NIBBLE_LIBCUDA or libcuda.so.1); 0 when it cannot be asked.
int driver_version() {
  runtime::Driver::get();  // loads the library, or throws CudaError with the reason
  const char* configured = std::getenv("NIBBLE_LIBCUDA");
  void* library = dlopen(configured != nullptr ? configured : "libcuda.so.1",
                         RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
  if (library == nullptr) return 0;
  int version = 0;
  using GetVersion = int (*)(int*);
  auto get_version = reinterpret_cast<GetVersion>(dlsym(library, "cuDriverGetVersion"));
  if (get_version == nullptr || get_version(&version) != 0) version = 0;
  dlclose(library);
  return version;
}

}  // namespace

void bind_codegen(py::module_& module) {
  py::register_exception<codegen::CodegenError>(module, "CodegenError", PyExc_RuntimeError);
  py::register_exception<dsl::LaunchError>(module, "LaunchError", PyExc_ValueError);
  py::register_exception<runtime::CudaError>(module, "CudaError", PyExc_RuntimeError);

  py::class_<codegen::CompiledKernel>(module, "CompiledKernel", "A program compiled for a GPU.")
      .def_readonly("name", &codegen::CompiledKernel::name)
      .def_property_readonly(
          "target", [](const codegen::CompiledKernel& kernel) { return kernel.target.name(); })
      .def_readonly("llvm_ir", &codegen::CompiledKernel::llvm_ir)
      .def_readonly("ptx", &codegen::CompiledKernel::ptx)
      .def_property_readonly("cubin",
                             [](const codegen::CompiledKernel& kernel) {
                               return py::bytes(reinterpret_cast<const char*>(kernel.cubin.data()),
                                                kernel.cubin.size());
                             })
      .def_readonly("block_threads", &codegen::CompiledKernel::block_threads)
      .def_readonly("dynamic_shared_bytes", &codegen::CompiledKernel::dynamic_shared_bytes)
      .def_property_readonly(
          "report",
          [](const codegen::CompiledKernel& kernel) { return codegen::to_string(kernel.report); })
      .def_property_readonly(
          "registers",
          [](const codegen::CompiledKernel& kernel) { return kernel.report.registers; })
      .def_property_readonly("ptxas_log", [](const codegen::CompiledKernel& kernel) {
        return kernel.report.ptxas_log;
      });

  module.def(
      "compile",
      [](const vm::Program& program, const std::string& target, bool keep_llvm_ir, bool assemble) {
        codegen::CompileOptions options;
        options.keep_llvm_ir = keep_llvm_ir;
        options.assemble = assemble;
        py::gil_scoped_release release;
        return codegen::compile(program, codegen::Target::parse(target), options);
      },
      py::arg("program"), py::arg("target") = "sm_90a", py::arg("keep_llvm_ir") = true,
      py::arg("assemble") = true);

  module.def("gpu_available", [] { return runtime::Driver::available(); });
  module.def("device_target", [] {
    return dsl::target_for_compute_capability(runtime::Driver::get().device().compute_capability)
        .name();
  });

  module.def(
      "device_info",
      [] {
        const runtime::DeviceInfo& device = runtime::Driver::get().device();
        py::dict info;
        info["ordinal"] = device.ordinal;
        info["name"] = device.name;
        info["compute_capability"] = device.compute_capability;
        info["multiprocessors"] = device.multiprocessors;
        info["global_memory_bytes"] = device.global_memory_bytes;
        info["l2_cache_bytes"] = device.l2_cache_bytes;
        info["driver_version"] = driver_version();
        return info;
      },
      "The GPU nibble runs on (device 0): name, compute capability (major * 10 + minor), "
      "multiprocessors, memory, L2 size and the driver's version (major * 1000 + minor * 10). "
      "Raises CudaError when there is no GPU.");
  module.def(
      "synchronize",
      [] {
        py::gil_scoped_release release;
        runtime::Driver::get().synchronize();
      },
      "Waits until the GPU has finished all work (cuCtxSynchronize).");

  py::class_<runtime::EventTimer>(module, "EventTimer",
                                  "Times work on a stream with a pair of driver events.")
      .def(py::init([] {
        runtime::Driver::get();
        return std::make_unique<runtime::EventTimer>();
      }))
      .def(
          "start",
          [](runtime::EventTimer& timer, uintptr_t stream) {
            timer.start(reinterpret_cast<void*>(stream));
          },
          py::arg("stream") = 0, "Records the start event on `stream` (a CUstream as an int).")
      .def(
          "stop",
          [](runtime::EventTimer& timer, uintptr_t stream) {
            py::gil_scoped_release release;
            return timer.stop(reinterpret_cast<void*>(stream));
          },
          py::arg("stream") = 0,
          "Records the stop event on `stream`, waits for it, and returns the milliseconds since "
          "start.");

  py::class_<dsl::GpuKernel, std::unique_ptr<dsl::GpuKernel>>(module, "GpuKernel",
                                                              "A kernel loaded on the GPU.")
      .def_static("build",
                  [](const vm::Program& program) {
                    return std::make_unique<dsl::GpuKernel>(dsl::GpuKernel::build(program));
                  })
      .def_property_readonly("compiled",
                             [](const dsl::GpuKernel& kernel) { return kernel.compiled(); })
      .def(
          "launch",
          [](const dsl::GpuKernel& kernel, const py::list& arguments, uintptr_t stream) {
            const std::vector<dsl::DeviceArgument> values = device_arguments(arguments);
            kernel.launch(values, reinterpret_cast<void*>(stream));
          },
          py::arg("arguments"), py::arg("stream") = 0);
}

}  // namespace nibble::python
