// The parts of nibble._core, one function per folder of the C++ library they expose.
//
// The extension is a thin binding of the data model: element types, layouts, scalar
// expressions, tensor types, instructions, statements and programs as the VM defines them, plus
// the operations on programs (verify, print, parse, passes, interpret, compile for the GPU,
// launch). The Python package (frontend/python/nibble) builds programs from a kernel's syntax
// tree itself, so that every statement carries the Python file, line and column it came from.
#pragma once

#include <pybind11/pybind11.h>

namespace nibble::python {

void bind_dtypes(pybind11::module_& module);
void bind_layout(pybind11::module_& module);
void bind_vm(pybind11::module_& module);
void bind_interpreter(pybind11::module_& module);
void bind_codegen(pybind11::module_& module);
void bind_quant(pybind11::module_& module);  // the quantized GEMM of examples/

}  // namespace nibble::python
