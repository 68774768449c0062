// Code generation and the GPU (codegen/, frontend/cpp/compiled_kernel.h): a program compiled to
// LLVM IR, PTX and a cubin with its report, and kernels loaded on the device and launched with
// checked arguments. Device pointers come from Python as ints (the addresses torch tensors and
// __cuda_array_interface__ give), streams as ints (CUstream handles; 0 = the default stream).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

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
