// nibble._core: the extension module. Each C++ error type of the library becomes a Python
// exception class here, so that a user's mistake reaches Python as a message, never as a
// C++ stack trace or an abort.
#include <pybind11/pybind11.h>

#include "dtypes/dtype.h"
#include "frontend/python/bindings/bindings.h"
#include "layout/error.h"
#include "vm/expr.h"
#include "vm/interpreter.h"
#include "vm/parser.h"
#include "vm/verifier.h"

namespace py = pybind11;

PYBIND11_MODULE(_core, module) {
  module.doc() = "nibble's C++ library: element types, layouts and the VM (use the nibble package)";

  py::register_exception<nibble::dtypes::DTypeError>(module, "DTypeError", PyExc_ValueError);
  py::register_exception<nibble::layout::LayoutError>(module, "LayoutError", PyExc_ValueError);
  py::register_exception<nibble::vm::ExprError>(module, "ExprError", PyExc_ValueError);
  py::register_exception<nibble::vm::ParseError>(module, "ParseError", PyExc_ValueError);
  py::register_exception<nibble::vm::VerifyError>(module, "VerifyError", PyExc_ValueError);
  py::register_exception<nibble::vm::InterpreterError>(module, "InterpreterError",
                                                       PyExc_RuntimeError);

  nibble::python::bind_dtypes(module);
  nibble::python::bind_layout(module);
  nibble::python::bind_vm(module);
  nibble::python::bind_interpreter(module);
  nibble::python::bind_codegen(module);
  nibble::python::bind_quant(module);
}
