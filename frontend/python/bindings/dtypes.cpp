// Element types (dtypes/): DataType, exact encode/decode, and bit-stream packing, over numpy
// arrays where the Python side works on many values at once.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dtypes/codec.h"
#include "dtypes/dtype.h"
#include "dtypes/packing.h"
#include "frontend/python/bindings/bindings.h"

namespace py = pybind11;

namespace nibble::python {
namespace {

using dtypes::DataType;

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using CodeArray = py::array_t<uint64_t, py::array::c_style | py::array::forcecast>;
using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

std::string kind_name(const DataType& type) {
  switch (type.kind()) {
    case dtypes::Kind::UInt:
      return "uint";
    case dtypes::Kind::Int:
      return "int";
    case dtypes::Kind::Float:
      return "float";
  }
  return "?";
}

std::vector<py::ssize_t> shape_of(const py::array& array) {
  return {array.shape(), array.shape() + array.ndim()};
}

// Bit patterns of `values` (any shape), rounded as dtypes/codec.h says.
CodeArray encode_array(const DataType& type, const DoubleArray& values) {
  CodeArray codes(shape_of(values));
  const double* in = values.data();
  uint64_t* out = codes.mutable_data();
  for (py::ssize_t i = 0; i < values.size(); ++i)
    out[i] = dtypes::encode(type, in[i]);
  return codes;
}

DoubleArray decode_array(const DataType& type, const CodeArray& codes) {
  DoubleArray values(shape_of(codes));
  const uint64_t* in = codes.data();
  double* out = values.mutable_data();
  for (py::ssize_t i = 0; i < codes.size(); ++i) {
    if ((in[i] & ~type.bit_mask()) != 0) {
      throw dtypes::DTypeError("decode: code " + std::to_string(in[i]) + " at index " +
                               std::to_string(i) + " does not fit in " +
                               std::to_string(type.bits()) + " bits of " + type.name());
    }
    out[i] = dtypes::decode(type, in[i]);
  }
  return values;
}

ByteArray pack_codes(const DataType& type, const CodeArray& codes) {
  const std::vector<uint8_t> bytes = dtypes::pack(
      type, std::span<const uint64_t>(codes.data(), static_cast<size_t>(codes.size())));
  ByteArray result(static_cast<py::ssize_t>(bytes.size()));
  std::copy(bytes.begin(), bytes.end(), result.mutable_data());
  return result;
}

CodeArray unpack_codes(const DataType& type, const ByteArray& bytes, size_t count) {
  const std::vector<uint64_t> codes = dtypes::unpack(
      type, std::span<const uint8_t>(bytes.data(), static_cast<size_t>(bytes.size())), count);
  CodeArray result(static_cast<py::ssize_t>(codes.size()));
  std::copy(codes.begin(), codes.end(), result.mutable_data());
  return result;
}

}  // namespace

void bind_dtypes(py::module_& module) {
  py::class_<DataType>(module, "DataType", "An element type of any bit width (dtypes/dtype.h).")
      .def_static("parse", &DataType::parse, py::arg("name"))
      .def_static("named_types", &dtypes::named_types)
      .def_property_readonly("name", &DataType::name)
      .def_property_readonly("bits", &DataType::bits)
      .def_property_readonly("kind", &kind_name)
      .def_property_readonly("exponent_bits", &DataType::exponent_bits)
      .def_property_readonly("mantissa_bits", &DataType::mantissa_bits)
      .def_property_readonly("has_inf", &DataType::has_inf)
      .def_property_readonly("has_nan", &DataType::has_nan)
      .def_property_readonly("is_float", &DataType::is_float)
      .def_property_readonly("is_integer", &DataType::is_integer)
      .def_property_readonly("is_signed", &DataType::is_signed)
      .def_property_readonly("is_sub_byte", &DataType::is_sub_byte)
      .def_property_readonly("largest_finite",
                             [](const DataType& type) { return dtypes::largest_finite(type); })
      .def_property_readonly("lowest_finite",
                             [](const DataType& type) { return dtypes::lowest_finite(type); })
      .def_property_readonly("smallest_positive",
                             [](const DataType& type) { return dtypes::smallest_positive(type); })
      // A number gives its code (an int), an array of numbers an array of codes (uint64).
      .def(
          "encode",
          [](const DataType& type, const py::object& values) -> py::object {
            if (py::isinstance<py::int_>(values) || py::isinstance<py::float_>(values)) {
              return py::int_(dtypes::encode(type, values.cast<double>()));
            }
            return encode_array(type, values.cast<DoubleArray>());
          },
          py::arg("values"))
      // A code gives its value (a float), an array of codes an array of values (float64).
      .def(
          "decode",
          [](const DataType& type, const py::object& codes) -> py::object {
            if (py::isinstance<py::int_>(codes)) {
              const auto code = codes.cast<uint64_t>();
              if ((code & ~type.bit_mask()) != 0) {
                throw dtypes::DTypeError("decode: code " + std::to_string(code) +
                                         " does not fit in " + std::to_string(type.bits()) +
                                         " bits of " + type.name());
              }
              return py::float_(dtypes::decode(type, code));
            }
            return decode_array(type, codes.cast<CodeArray>());
          },
          py::arg("codes"))
      .def("pack_codes", &pack_codes, py::arg("codes"))
      .def("unpack_codes", &unpack_codes, py::arg("data"), py::arg("count"))
      .def("packed_size_bytes", [](const DataType& type,
                                   size_t count) { return dtypes::packed_size_bytes(type, count); })
      .def("__eq__", [](const DataType& a, const DataType& b) { return a == b; })
      .def("__eq__", [](const DataType&, const py::object&) { return false; })
      .def("__hash__", [](const DataType& type) { return py::hash(py::str(type.name())); })
      .def("__str__", &DataType::name)
      .def("__repr__", [](const DataType& type) { return "nibble." + type.name(); })
      .def(py::pickle([](const DataType& type) { return type.name(); },
                      [](const std::string& name) { return DataType::parse(name); }));
}

}  // namespace nibble::python
