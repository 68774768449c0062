// The interpreter (vm/interpreter.h) over Python buffers: a pointer argument is any object with
// the buffer protocol (a C-contiguous numpy array; the Python side checks dtypes and
// contiguity and names the parameter), a scalar an int or a float.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <sstream>
#include <vector>

#include "frontend/python/bindings/bindings.h"
#include "vm/interpreter.h"

namespace py = pybind11;

namespace nibble::python {
namespace {

// The arguments, and the buffer views that keep the memory of pointer arguments alive.
struct Arguments {
  std::vector<vm::Argument> values;
  std::vector<py::buffer_info> buffers;
};

Arguments convert(const py::list& arguments) {
  Arguments result;
  result.buffers.reserve(arguments.size());
  for (const py::handle& argument : arguments) {
    if (py::isinstance<py::bool_>(argument)) {
      result.values.emplace_back(int64_t{argument.cast<bool>()});
    } else if (py::isinstance<py::int_>(argument)) {
      result.values.emplace_back(argument.cast<int64_t>());
    } else if (py::isinstance<py::float_>(argument)) {
      result.values.emplace_back(argument.cast<double>());
    } else if (py::isinstance<py::buffer>(argument)) {
      py::buffer_info& info = result.buffers.emplace_back(argument.cast<py::buffer>().request());
      const auto bytes = static_cast<size_t>(info.size * info.itemsize);
      result.values.emplace_back(vm::HostBuffer{info.ptr, bytes});
    } else {
      throw py::type_error(
          "interpret: an argument is a buffer, an int or a float, not " +
          py::str(py::type::handle_of(argument).attr("__name__")).cast<std::string>());
    }
  }
  return result;
}

}  // namespace

void bind_interpreter(py::module_& module) {
  // Runs `program` on the arguments; `grid` replaces the program's grid when given. Returns what
  // the program printed.
  module.def(
      "interpret",
      [](vm::Program program, const py::list& arguments, std::optional<std::array<int64_t, 3>> grid,
         int host_threads, int64_t max_loop_iterations) {
        Arguments converted = convert(arguments);
        if (grid) {
          for (size_t axis = 0; axis < 3; ++axis)
            program.grid[axis] = vm::Expr::int_constant((*grid)[axis]);
        }
        std::ostringstream printed;
        vm::InterpreterOptions options;
        options.host_threads = host_threads;
        options.print_stream = &printed;
        options.max_loop_iterations = max_loop_iterations;
        {
          py::gil_scoped_release release;
          vm::interpret(program, converted.values, options);
        }
        return printed.str();
      },
      py::arg("program"), py::arg("arguments"), py::arg("grid") = py::none(),
      py::arg("host_threads") = 0, py::arg("max_loop_iterations") = int64_t{1} << 24);

  module.def(
      "grid_of",
      [](const vm::Program& program, const py::list& arguments) {
        Arguments converted = convert(arguments);
        return vm::grid_of(program, converted.values);
      },
      py::arg("program"), py::arg("arguments"));
}

}  // namespace nibble::python
