// The quantized GEMM of examples/ (quant/quantize.h, quant_gemm.h, quant/run.h,
// quant/device.h) for nibble.ops: the quantizer, configurations, re-packing, the interpreter
// run and the GPU runner. Arrays cross as numpy arrays (copies: weights are prepared once and
// kept by the Python side), device memory as int addresses and streams as int CUstreams, as in
// codegen.cpp. Every check is the C++ one: QuantizeError and QuantGemmError reach Python with
// their messages.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "dtypes/packing.h"
#include "examples/quant/device.h"
#include "examples/quant/quantize.h"
#include "examples/quant/run.h"
#include "examples/quant_gemm.h"
#include "frontend/python/bindings/bindings.h"

namespace py = pybind11;

namespace nibble::python {
namespace {

using dtypes::DataType;
using examples::PreparedWeight;
using examples::QuantGemmConfig;
using examples::QuantGemmError;
using examples::QuantizedWeight;

template <typename T>
using Array = py::array_t<T, py::array::c_style | py::array::forcecast>;

// A copy of `values` as a numpy array of `shape`.
template <typename T>
Array<T> to_array(const std::vector<T>& values, std::vector<py::ssize_t> shape) {
  Array<T> result(shape);
  std::copy(values.begin(), values.end(), result.mutable_data());
  return result;
}

template <typename T>
std::vector<T> to_vector(const Array<T>& values) {
  return {values.data(), values.data() + values.size()};
}

std::vector<py::ssize_t> group_shape(int64_t groups, int64_t n) {
  return {static_cast<py::ssize_t>(groups), static_cast<py::ssize_t>(n)};
}

// A QuantizedWeight from stored parts (codes already quantized elsewhere), checked as the
// quantizer would have made it.
QuantizedWeight from_parts(const DataType& weight_type, const DataType& scale_type, int64_t k,
                           int64_t n, int64_t group_size, const Array<uint8_t>& packed,
                           const Array<uint16_t>& scales,
                           const std::optional<Array<uint16_t>>& zeros) {
  auto fail = [](const std::string& message) {
    throw examples::QuantizeError("QuantizedWeight: " + message);
  };
  if (weight_type.bits() > 8 || !(weight_type.is_integer() || weight_type.is_float())) {
    fail("weight type " + weight_type.name() + " is not an integer or float of at most 8 bits");
  }
  if (!(scale_type == DataType::f16()) && !(scale_type == DataType::bf16())) {
    fail("scales must be f16 or bf16, not " + scale_type.name());
  }
  if (k <= 0 || n <= 0)
    fail("shape [" + std::to_string(k) + ", " + std::to_string(n) + "] is empty");
  const int64_t group = group_size == 0 ? k : group_size;
  if (group < 0 || k % group != 0) {
    fail("K = " + std::to_string(k) + " is not a multiple of the group size " +
         std::to_string(group));
  }
  const size_t expected_bytes = dtypes::packed_size_bytes(weight_type, static_cast<size_t>(k * n));
  if (static_cast<size_t>(packed.size()) != expected_bytes) {
    fail(std::to_string(packed.size()) + " packed bytes given; [" + std::to_string(k) + ", " +
         std::to_string(n) + "] codes of " + weight_type.name() + " take " +
         std::to_string(expected_bytes));
  }
  const int64_t groups = k / group;
  if (scales.size() != groups * n) {
    fail(std::to_string(scales.size()) + " scales given; [" + std::to_string(groups) + ", " +
         std::to_string(n) + "] expected");
  }
  const bool unsigned_integer = weight_type.is_integer() && !weight_type.is_signed();
  if (zeros && !unsigned_integer) {
    fail("zero points are for unsigned integer weights, not " + weight_type.name());
  }
  if (zeros && zeros->size() != groups * n) {
    fail(std::to_string(zeros->size()) + " zero points given; [" + std::to_string(groups) + ", " +
         std::to_string(n) + "] expected");
  }
  QuantizedWeight weight;
  weight.weight_type = weight_type;
  weight.scale_type = scale_type;
  weight.k = k;
  weight.n = n;
  weight.group_size = group;
  weight.packed = to_vector(packed);
  weight.scales = to_vector(scales);
  if (zeros) weight.zeros = to_vector(*zeros);
  weight.implicit_zero = unsigned_integer && !zeros
                             ? static_cast<double>(int64_t{1} << (weight_type.bits() - 1))
                             : 0.0;
  return weight;
}

std::string schedule_name(examples::QuantSchedule schedule) {
  return schedule == examples::QuantSchedule::Decode ? "decode" : "prefill";
}

}  // namespace

void bind_quant(py::module_& module) {
  py::register_exception<examples::QuantizeError>(module, "QuantizeError", PyExc_ValueError);
  py::register_exception<QuantGemmError>(module, "QuantGemmError", PyExc_ValueError);

  py::class_<QuantizedWeight>(
      module, "QuantizedWeight",
      "Weights W[K, N] quantized to codes of a narrow type with one scale (and zero point) per "
      "group of rows in each column (examples/quant/quantize.h).")
      .def(py::init(&from_parts), py::arg("weight_type"), py::arg("scale_type"), py::arg("k"),
           py::arg("n"), py::arg("group_size"), py::arg("packed"), py::arg("scales"),
           py::arg("zeros") = py::none())
      .def_readonly("weight_type", &QuantizedWeight::weight_type)
      .def_readonly("scale_type", &QuantizedWeight::scale_type)
      .def_readonly("k", &QuantizedWeight::k)
      .def_readonly("n", &QuantizedWeight::n)
      .def_readonly("group_size", &QuantizedWeight::group_size)
      .def_readonly("implicit_zero", &QuantizedWeight::implicit_zero)
      .def_property_readonly("groups", &QuantizedWeight::groups)
      .def_property_readonly("packed",
                             [](const QuantizedWeight& weight) {
                               return to_array(weight.packed,
                                               {static_cast<py::ssize_t>(weight.packed.size())});
                             })
      .def_property_readonly("scales",
                             [](const QuantizedWeight& weight) {
                               return to_array(weight.scales,
                                               group_shape(weight.groups(), weight.n));
                             })
      .def_property_readonly("zeros",
                             [](const QuantizedWeight& weight) -> std::optional<Array<uint16_t>> {
                               if (weight.zeros.empty()) return std::nullopt;
                               return to_array(weight.zeros,
                                               group_shape(weight.groups(), weight.n));
                             })
      .def(
          "dequantize",
          [](const QuantizedWeight& weight) {
            std::vector<double> values;
            {
              py::gil_scoped_release release;
              values = examples::dequantize(weight);
            }
            return to_array(
                values, {static_cast<py::ssize_t>(weight.k), static_cast<py::ssize_t>(weight.n)});
          },
          "The exact dequantized weights [K, N] (float64).")
      .def(
          "reference_matmul",
          [](const QuantizedWeight& weight, const Array<double>& a) {
            if (a.ndim() != 2 || a.shape(1) != weight.k) {
              throw QuantGemmError("reference_matmul: A must be [M, " + std::to_string(weight.k) +
                                   "]");
            }
            const int64_t m = a.shape(0);
            std::vector<double> c;
            {
              py::gil_scoped_release release;
              c = examples::reference_matmul(
                  std::span<const double>(a.data(), static_cast<size_t>(a.size())), m, weight);
            }
            return to_array(c, {static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(weight.n)});
          },
          py::arg("a"), "A[M, K] · dequant(W) in double precision (float64 [M, N]).");

  module.def(
      "quantize",
      [](const Array<double>& weights, const DataType& weight_type, int64_t group_size,
         const DataType& scale_type, bool zero_points) {
        if (weights.ndim() != 2) {
          throw examples::QuantizeError("quantize: W must be 2-D [K, N], not " +
                                        std::to_string(weights.ndim()) + "-D");
        }
        examples::QuantizeOptions options;
        options.weight_type = weight_type;
        options.group_size = group_size;
        options.scale_type = scale_type;
        options.zero_points = zero_points;
        const int64_t k = weights.shape(0);
        const int64_t n = weights.shape(1);
        const std::span<const double> values(weights.data(), static_cast<size_t>(weights.size()));
        py::gil_scoped_release release;
        return examples::quantize(values, k, n, options);
      },
      py::arg("weights"), py::arg("weight_type"), py::arg("group_size"), py::arg("scale_type"),
      py::arg("zero_points"));

  py::class_<QuantGemmConfig>(module, "QuantGemmConfig",
                              "A configuration of the quantized GEMM (examples/quant_gemm.h).")
      .def_readonly("weight", &QuantGemmConfig::weight)
      .def_readonly("activation", &QuantGemmConfig::activation)
      .def_readonly("group_size", &QuantGemmConfig::group_size)
      .def_readonly("zero_points", &QuantGemmConfig::zero_points)
      .def_property_readonly(
          "schedule", [](const QuantGemmConfig& config) { return schedule_name(config.schedule); })
      .def_readonly("block_m", &QuantGemmConfig::block_m)
      .def_readonly("block_n", &QuantGemmConfig::block_n)
      .def_readonly("block_k", &QuantGemmConfig::block_k)
      .def_readonly("warps", &QuantGemmConfig::warps)
      .def_readonly("split_k", &QuantGemmConfig::split_k)
      .def_readonly("unroll", &QuantGemmConfig::unroll)
      .def_readonly("stages", &QuantGemmConfig::stages)
      .def_readonly("persistent_blocks", &QuantGemmConfig::persistent_blocks)
      .def_readonly("scale_after_mma", &QuantGemmConfig::scale_after_mma)
      .def_readonly("min_blocks_per_sm", &QuantGemmConfig::min_blocks_per_sm)
      .def_readonly("copy_after_wait", &QuantGemmConfig::copy_after_wait)
      .def_readonly("finish_in_gemm", &QuantGemmConfig::finish_in_gemm)
      .def_readonly("cluster_split", &QuantGemmConfig::cluster_split)
      .def_readonly("weights_as_a", &QuantGemmConfig::weights_as_a)
      .def_readonly("wgmma", &QuantGemmConfig::wgmma)
      .def_property_readonly("name", &QuantGemmConfig::name)
      .def("__repr__",
           [](const QuantGemmConfig& config) { return "<QuantGemmConfig " + config.name() + ">"; });

  module.def("choose_quant_gemm_config", &examples::choose_quant_gemm_config, py::arg("m"),
             py::arg("n"), py::arg("k"), py::arg("weight"), py::arg("activation"),
             py::arg("group_size"), py::arg("zero_points"), py::arg("sm_count") = 132,
             py::arg("sm") = 80);
  module.def("check_quant_gemm_shape", &examples::check_quant_gemm_shape, py::arg("config"),
             py::arg("m"), py::arg("n"), py::arg("k"));

  py::class_<PreparedWeight>(module, "PreparedWeight",
                             "A quantized weight re-packed for one configuration.")
      .def_readonly("config", &PreparedWeight::config)
      .def_readonly("k", &PreparedWeight::k)
      .def_readonly("n", &PreparedWeight::n)
      .def_property_readonly("codes",
                             [](const PreparedWeight& weight) {
                               return to_array(weight.codes,
                                               {static_cast<py::ssize_t>(weight.codes.size())});
                             })
      .def_property_readonly("scales",
                             [](const PreparedWeight& weight) {
                               return to_array(weight.scales,
                                               {static_cast<py::ssize_t>(weight.scales.size())});
                             })
      .def_property_readonly("zeros", [](const PreparedWeight& weight) {
        return to_array(weight.zeros, {static_cast<py::ssize_t>(weight.zeros.size())});
      });

  module.def(
      "prepare_weight",
      [](const QuantizedWeight& weight, const QuantGemmConfig& config) {
        py::gil_scoped_release release;
        return examples::prepare_weight(weight, config);
      },
      py::arg("weight"), py::arg("config"));

  // C[M, N] codes (uint16) of the activation type from A[M, K] codes, on the interpreter.
  module.def(
      "run_quant_gemm_interpreted",
      [](const PreparedWeight& weight, int64_t m, const Array<uint16_t>& a) {
        const std::span<const uint16_t> codes(a.data(), static_cast<size_t>(a.size()));
        std::vector<uint16_t> c;
        {
          py::gil_scoped_release release;
          c = examples::run_quant_gemm_interpreted(weight, m, codes);
        }
        return to_array(c, {static_cast<py::ssize_t>(m), static_cast<py::ssize_t>(weight.n)});
      },
      py::arg("weight"), py::arg("m"), py::arg("a"));

  py::class_<examples::QuantGemmDevice, std::unique_ptr<examples::QuantGemmDevice>>(
      module, "QuantGemmDevice",
      "The kernels of one configuration loaded on the GPU, with their split-K workspace.")
      .def(py::init([](const QuantGemmConfig& config) {
             py::gil_scoped_release release;
             return std::make_unique<examples::QuantGemmDevice>(config);
           }),
           py::arg("config"))
      .def_property_readonly("config", &examples::QuantGemmDevice::config)
      .def_property_readonly(
          "compiled",
          [](const examples::QuantGemmDevice& device) { return device.kernel().compiled(); })
      .def(
          "run",
          [](examples::QuantGemmDevice& device, runtime::DevicePointer a, runtime::DevicePointer w,
             runtime::DevicePointer scales, runtime::DevicePointer zeros, runtime::DevicePointer c,
             int64_t m, int64_t n, int64_t k, uintptr_t stream) {
            py::gil_scoped_release release;
            device.run(a, w, scales, zeros, c, m, n, k, reinterpret_cast<void*>(stream));
          },
          py::arg("a"), py::arg("w"), py::arg("scales"), py::arg("zeros"), py::arg("c"),
          py::arg("m"), py::arg("n"), py::arg("k"), py::arg("stream") = 0,
          "C[m, n] = A[m, k] · dequant(W) on `stream` (a CUstream as an int); device addresses "
          "as ints, zeros 0 without zero points. Checks the call before launching.");
}

}  // namespace nibble::python
