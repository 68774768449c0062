#include "examples/quant/quantize.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "dtypes/codec.h"
#include "dtypes/packing.h"

namespace nibble::examples {
namespace {

using dtypes::DataType;

// Rounds to the scale type and back: the value a kernel will read.
double representable(DataType type, double value) {
  return dtypes::decode(type, dtypes::encode(type, value));
}

void check_options(const QuantizeOptions& options, int64_t k, int64_t n, size_t weight_count) {
  const DataType type = options.weight_type;
  if (type.bits() > 8) {
    throw QuantizeError(
        fmt::format("quantize: weight type {} has {} bits; weight-only quantization is for types "
                    "of 8 bits or fewer",
                    type.name(), type.bits()));
  }
  if (type.is_integer() && type.bits() < 2 && type.is_signed()) {
    throw QuantizeError("quantize: i1 holds only 0 and -1; use u1 or a wider type");
  }
  if (type.is_integer() && type.bits() < 2 && !options.zero_points) {
    throw QuantizeError(
        "quantize: symmetric u1 has the levels -1 and 0 only; quantize u1 with zero points");
  }
  const std::string scale = options.scale_type.name();
  if (scale != "f16" && scale != "bf16") {
    throw QuantizeError(fmt::format("quantize: scales must be f16 or bf16, not {}", scale));
  }
  if (options.zero_points && !(type.is_integer() && !type.is_signed())) {
    throw QuantizeError(
        fmt::format("quantize: zero points are for unsigned integer weights, not {}", type.name()));
  }
  if (k <= 0 || n <= 0) throw QuantizeError(fmt::format("quantize: shape [{}, {}] is empty", k, n));
  if (weight_count != static_cast<size_t>(k * n)) {
    throw QuantizeError(
        fmt::format("quantize: {} weights given for a [{}, {}] matrix", weight_count, k, n));
  }
  const int64_t group = options.group_size == 0 ? k : options.group_size;
  if (group < 0 || k % group != 0) {
    throw QuantizeError(
        fmt::format("quantize: K = {} is not a multiple of the group size {}", k, group));
  }
}

}  // namespace

double QuantizedWeight::scale(int64_t group, int64_t column) const {
  return dtypes::decode(scale_type, scales[static_cast<size_t>(group * n + column)]);
}

double QuantizedWeight::zero(int64_t group, int64_t column) const {
  if (zeros.empty()) return implicit_zero;
  return dtypes::decode(scale_type, zeros[static_cast<size_t>(group * n + column)]);
}

uint64_t QuantizedWeight::code(int64_t row, int64_t column) const {
  return dtypes::read_packed(weight_type, packed.data(), static_cast<size_t>(row * n + column));
}

QuantizedWeight quantize(std::span<const double> weights, int64_t k, int64_t n,
                         const QuantizeOptions& options) {
  check_options(options, k, n, weights.size());
  const DataType type = options.weight_type;
  QuantizedWeight result;
  result.weight_type = type;
  result.scale_type = options.scale_type;
  result.k = k;
  result.n = n;
  result.group_size = options.group_size == 0 ? k : options.group_size;
  const bool is_unsigned = type.is_integer() && !type.is_signed();
  const double half_range = is_unsigned ? std::ldexp(1.0, type.bits() - 1) : 0.0;
  result.implicit_zero = is_unsigned && !options.zero_points ? half_range : 0.0;
  const double largest = type.is_float() ? dtypes::largest_finite(type)
                         : is_unsigned   ? half_range - 1
                                         : dtypes::largest_finite(type);

  for (int64_t i = 0; i < k * n; ++i) {
    if (!std::isfinite(weights[static_cast<size_t>(i)])) {
      throw QuantizeError(fmt::format("quantize: weight [{}, {}] is {}", i / n, i % n,
                                      weights[static_cast<size_t>(i)]));
    }
  }
  std::vector<uint64_t> codes(static_cast<size_t>(k * n));
  result.scales.resize(static_cast<size_t>(result.groups() * n));
  if (options.zero_points) result.zeros.resize(result.scales.size());
  for (int64_t g = 0; g < result.groups(); ++g) {
    for (int64_t column = 0; column < n; ++column) {
      double low = 0, high = 0, max_abs = 0;
      for (int64_t row = g * result.group_size; row < (g + 1) * result.group_size; ++row) {
        const double w = weights[static_cast<size_t>(row * n + column)];
        low = std::min(low, w);
        high = std::max(high, w);
        max_abs = std::max(max_abs, std::fabs(w));
      }
      double scale = 0;
      double zero = result.implicit_zero;
      if (options.zero_points) {
        const double levels = std::ldexp(1.0, type.bits()) - 1;
        scale = representable(options.scale_type, high > low ? (high - low) / levels : 1.0);
        if (scale == 0) scale = dtypes::smallest_positive(options.scale_type);
        zero = representable(options.scale_type,
                             std::clamp(std::nearbyint(-low / scale), 0.0, levels));
      } else {
        scale = representable(options.scale_type, max_abs > 0 ? max_abs / largest : 1.0);
        if (scale == 0) scale = dtypes::smallest_positive(options.scale_type);  // tiny weights
      }
      const size_t slot = static_cast<size_t>(g * n + column);
      result.scales[slot] = static_cast<uint16_t>(dtypes::encode(options.scale_type, scale));
      if (options.zero_points)
        result.zeros[slot] = static_cast<uint16_t>(dtypes::encode(options.scale_type, zero));
      for (int64_t row = g * result.group_size; row < (g + 1) * result.group_size; ++row) {
        const double w = weights[static_cast<size_t>(row * n + column)];
        codes[static_cast<size_t>(row * n + column)] = dtypes::encode(type, w / scale + zero);
      }
    }
  }
  result.packed = dtypes::pack(type, codes);
  return result;
}

std::vector<double> dequantize(const QuantizedWeight& weight) {
  std::vector<double> values(static_cast<size_t>(weight.k * weight.n));
  for (int64_t row = 0; row < weight.k; ++row) {
    const int64_t g = row / weight.group_size;
    for (int64_t column = 0; column < weight.n; ++column) {
      const double decoded = dtypes::decode(weight.weight_type, weight.code(row, column));
      values[static_cast<size_t>(row * weight.n + column)] =
          (decoded - weight.zero(g, column)) * weight.scale(g, column);
    }
  }
  return values;
}

std::vector<double> reference_matmul(std::span<const double> a, int64_t m,
                                     const QuantizedWeight& weight) {
  if (a.size() != static_cast<size_t>(m * weight.k)) {
    throw QuantizeError(fmt::format("reference_matmul: A has {} values, [{}, {}] needs {}",
                                    a.size(), m, weight.k, m * weight.k));
  }
  const std::vector<double> w = dequantize(weight);
  std::vector<double> c(static_cast<size_t>(m * weight.n), 0.0);
  for (int64_t row = 0; row < m; ++row) {
    for (int64_t inner = 0; inner < weight.k; ++inner) {
      const double x = a[static_cast<size_t>(row * weight.k + inner)];
      for (int64_t column = 0; column < weight.n; ++column) {
        c[static_cast<size_t>(row * weight.n + column)] +=
            x * w[static_cast<size_t>(inner * weight.n + column)];
      }
    }
  }
  return c;
}

double matmul_tolerance(DataType activation, double magnitude, double reference) {
  const double eps = activation == DataType::bf16() ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  return 2 * eps * magnitude + eps * std::abs(reference) + 1e-6;
}

}  // namespace nibble::examples
