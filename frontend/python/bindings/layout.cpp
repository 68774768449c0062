// Layouts (layout/): the algebra's notation, pictures (text grid and SVG), swizzles and the
// hardware atoms.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "frontend/python/bindings/bindings.h"
#include "layout/atoms.h"
#include "layout/axis.h"
#include "layout/layout.h"
#include "layout/picture.h"
#include "layout/swizzle.h"

namespace py = pybind11;

namespace nibble::python {
namespace {

using layout::Layout;
using layout::Swizzle;

// (extent, stride, axis name) per iter.
std::vector<std::tuple<int64_t, int64_t, std::string>> iters(
    const std::vector<layout::Iter>& list) {
  std::vector<std::tuple<int64_t, int64_t, std::string>> result;
  for (const layout::Iter& iter : list)
    result.emplace_back(iter.extent, iter.stride, iter.axis.name());
  return result;
}

layout::PictureOptions picture_options(int element_bits, const Swizzle& swizzle,
                                       const std::string& title) {
  layout::PictureOptions options;
  options.element_bits = element_bits;
  options.swizzle = swizzle;
  options.title = title;
  return options;
}

}  // namespace

void bind_layout(py::module_& module) {
  py::class_<Swizzle>(module, "Swizzle", "A swizzle of shared-memory byte addresses.")
      .def(py::init<>())
      .def(py::init<int, int, int>(), py::arg("bits"), py::arg("base"), py::arg("shift"))
      .def_static("parse", &Swizzle::parse, py::arg("text"))
      .def_property_readonly("bits", &Swizzle::bits)
      .def_property_readonly("base", &Swizzle::base)
      .def_property_readonly("shift", &Swizzle::shift)
      .def_property_readonly("is_identity", &Swizzle::is_identity)
      .def("__call__", [](const Swizzle& swizzle, int64_t byte) { return swizzle(byte); })
      .def("__eq__", [](const Swizzle& a, const Swizzle& b) { return a == b; })
      .def("__eq__", [](const Swizzle&, const py::object&) { return false; })
      .def("__hash__",
           [](const Swizzle& swizzle) { return py::hash(py::str(swizzle.to_string())); })
      .def("__str__", &Swizzle::to_string);

  py::class_<Layout>(module, "Layout", "A layout of the named-axis algebra (layout/layout.h).")
      .def_static("parse", &Layout::parse, py::arg("text"))
      .def_static(
          "row_major",
          [](const layout::Shape& shape, const std::string& axis) {
            return Layout::row_major(shape, layout::Axis::named(axis));
          },
          py::arg("shape"), py::arg("axis"))
      .def_property_readonly("size", &Layout::size)
      .def_property_readonly("replication", &Layout::replication)
      .def_property_readonly("shard", [](const Layout& layout) { return iters(layout.shard()); })
      .def_property_readonly("replica",
                             [](const Layout& layout) { return iters(layout.replica()); })
      .def_property_readonly("axes",
                             [](const Layout& layout) {
                               std::vector<std::string> names;
                               for (const layout::Axis& axis : layout.axes())
                                 names.push_back(axis.name());
                               return names;
                             })
      .def(
          "span",
          [](const Layout& layout, const std::string& axis) {
            return layout.span(layout::Axis::named(axis));
          },
          py::arg("axis"))
      .def(
          "apply",
          [](const Layout& layout, int64_t index) {
            std::vector<std::vector<std::pair<std::string, int64_t>>> places;
            for (const layout::Coord& coord : layout.apply(index)) {
              auto& place = places.emplace_back();
              for (const auto& [axis, value] : coord.entries())
                place.emplace_back(axis.name(), value);
            }
            return places;
          },
          py::arg("index"))
      .def(
          "text_grid",
          [](const Layout& layout, int64_t rows, int64_t columns, int element_bits,
             const Swizzle& swizzle, const std::string& title) {
            return layout::text_grid(layout, rows, columns,
                                     picture_options(element_bits, swizzle, title));
          },
          py::arg("rows"), py::arg("columns"), py::arg("element_bits") = 0,
          py::arg("swizzle") = Swizzle(), py::arg("title") = "")
      .def(
          "svg",
          [](const Layout& layout, int64_t rows, int64_t columns, int element_bits,
             const Swizzle& swizzle, const std::string& title) {
            return layout::svg(layout, rows, columns,
                               picture_options(element_bits, swizzle, title));
          },
          py::arg("rows"), py::arg("columns"), py::arg("element_bits") = 0,
          py::arg("swizzle") = Swizzle(), py::arg("title") = "")
      .def("__eq__", [](const Layout& a, const Layout& b) { return a == b; })
      .def("__eq__", [](const Layout&, const py::object&) { return false; })
      .def("__hash__", [](const Layout& layout) { return py::hash(py::str(layout.to_string())); })
      .def("__str__", &Layout::to_string);

  // Atoms as (name, shape, layout, element_bits, swizzle).
  module.def("find_atom", [](const std::string& name) {
    std::optional<layout::Atom> atom = layout::find_atom(name);
    if (!atom) return py::object(py::none());
    return py::object(
        py::make_tuple(atom->name, atom->shape, atom->layout, atom->element_bits, atom->swizzle));
  });
  module.def("atom_names", [] {
    std::vector<std::string> names;
    for (const layout::Atom& atom : layout::all_atoms())
      names.push_back(atom.name);
    return names;
  });
}

}  // namespace nibble::python
