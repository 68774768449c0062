#include "dtypes/codec.h"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <limits>

namespace nibble::dtypes {
namespace {

struct FloatFields {
  bool negative;
  uint64_t exponent;  // biased exponent field
  uint64_t mantissa;  // mantissa field
};

FloatFields split_float(DataType type, uint64_t bits) {
  const int mantissa_bits = type.mantissa_bits();
  return {((bits >> (type.bits() - 1)) & 1) != 0,
          (bits >> mantissa_bits) & ((uint64_t{1} << type.exponent_bits()) - 1),
          bits & ((uint64_t{1} << mantissa_bits) - 1)};
}

uint64_t all_ones(int count) {
  return (uint64_t{1} << count) - 1;
}

// The magnitude code (all bits but the sign) of the largest finite value.
uint64_t largest_finite_magnitude(DataType type) {
  const int m = type.mantissa_bits();
  const uint64_t top_exponent = all_ones(type.exponent_bits());
  if (type.has_inf()) return ((top_exponent - 1) << m) | all_ones(m);  // IEEE-like
  if (type.has_nan()) return (top_exponent << m) | (all_ones(m) - 1);  // "fn": S.1..1.1..1 is NaN
  return (top_exponent << m) | all_ones(m);                            // finite only
}

uint64_t sign_bit(DataType type) {
  return uint64_t{1} << (type.bits() - 1);
}

double decode_float(DataType type, uint64_t bits) {
  if (type.bits() == 64) return std::bit_cast<double>(bits);
  const FloatFields f = split_float(type, bits);
  const uint64_t top_exponent = all_ones(type.exponent_bits());
  const double sign = f.negative ? -1.0 : 1.0;
  if (type.has_inf() && f.exponent == top_exponent) {
    return f.mantissa == 0 ? sign * std::numeric_limits<double>::infinity()
                           : std::copysign(std::numeric_limits<double>::quiet_NaN(), sign);
  }
  if (!type.has_inf() && type.has_nan() && f.exponent == top_exponent &&
      f.mantissa == all_ones(type.mantissa_bits())) {
    return std::copysign(std::numeric_limits<double>::quiet_NaN(), sign);
  }
  const int m = type.mantissa_bits();
  const int bias = type.exponent_bias();
  if (f.exponent == 0) {
    return sign * std::ldexp(static_cast<double>(f.mantissa), 1 - bias - m);
  }
  const uint64_t significand = (uint64_t{1} << m) | f.mantissa;
  return sign *
         std::ldexp(static_cast<double>(significand), static_cast<int>(f.exponent) - bias - m);
}

uint64_t encode_float(DataType type, double value) {
  if (type.bits() == 64) return std::bit_cast<uint64_t>(value);
  const uint64_t sign = std::signbit(value) ? sign_bit(type) : 0;
  if (std::isnan(value)) {
    if (!type.has_nan()) {
      throw DTypeError(
          fmt::format("cannot encode NaN as {}: the type has no NaN encoding", type.name()));
    }
    return sign | canonical_nan_bits(type);
  }
  const int m = type.mantissa_bits();
  const uint64_t largest = largest_finite_magnitude(type);
  const uint64_t overflow_code =
      type.has_inf() ? all_ones(type.exponent_bits()) << m : largest;  // inf, or saturate
  const double magnitude = std::fabs(value);
  if (std::isinf(magnitude)) return sign | overflow_code;
  if (magnitude == 0) return sign;

  // Find the quantum (spacing of representable values) at the magnitude's binade, clamped to
  // the subnormal spacing, then round the magnitude to a multiple of it, ties to even.
  const int bias = type.exponent_bias();
  int binary_exponent = 0;
  std::frexp(magnitude, &binary_exponent);  // magnitude = f * 2^binary_exponent, f in [0.5, 1)
  const int unbiased = std::max(binary_exponent - 1, 1 - bias);
  // Far above the largest binade the quotient below would not fit; saturate directly.
  if (unbiased > static_cast<int>(all_ones(type.exponent_bits())) - bias + 1) {
    return sign | overflow_code;
  }
  // Consecutive codes are consecutive values, across binades too, so rounding up is "code + 1"
  // and a tie goes to the even code (for a mantissa of 0 bits, the even exponent).
  const double units = std::ldexp(magnitude, m - unbiased);  // exact: a power-of-two scaling
  const double whole = std::floor(units);
  const double fraction = units - whole;
  const auto significand = static_cast<uint64_t>(whole);
  uint64_t magnitude_code = significand;  // subnormal (or zero)
  if (significand >= (uint64_t{1} << m)) {
    const auto biased = static_cast<uint64_t>(unbiased + bias);
    magnitude_code = (biased << m) | (significand - (uint64_t{1} << m));
  }
  if (fraction > 0.5 || (fraction == 0.5 && (magnitude_code & 1) != 0)) ++magnitude_code;
  if (magnitude_code > largest) return sign | overflow_code;
  return sign | magnitude_code;
}

double decode_integer(DataType type, uint64_t bits) {
  if (!type.is_signed()) return static_cast<double>(bits);
  if ((bits & sign_bit(type)) == 0) return static_cast<double>(bits);
  // Two's complement: the value is bits - 2^width.
  const uint64_t magnitude = (~bits & type.bit_mask()) + 1;
  return -static_cast<double>(magnitude);
}

uint64_t encode_integer(DataType type, double value) {
  if (std::isnan(value)) {
    throw DTypeError(fmt::format("cannot encode NaN as {}: integers have no NaN", type.name()));
  }
  const double lowest = lowest_finite(type);
  const double rounded = std::nearbyint(value);
  if (rounded <= lowest) return type.is_signed() ? sign_bit(type) : 0;
  // The largest value of 64-bit types is not a double; compare against 2^(width) instead.
  const int value_bits = type.is_signed() ? type.bits() - 1 : type.bits();
  if (rounded >= std::ldexp(1.0, value_bits)) return all_ones(value_bits);
  if (rounded >= 0) return static_cast<uint64_t>(rounded);
  return static_cast<uint64_t>(static_cast<int64_t>(rounded)) & type.bit_mask();
}

void check_code_fits(DataType type, uint64_t bits) {
  if ((bits & ~type.bit_mask()) != 0) {
    throw DTypeError(fmt::format("bit pattern {:#x} does not fit in {} ({} bits)", bits,
                                 type.name(), type.bits()));
  }
}

}  // namespace

double decode(DataType type, uint64_t bits) {
  check_code_fits(type, bits);
  return type.is_float() ? decode_float(type, bits) : decode_integer(type, bits);
}

uint64_t encode(DataType type, double value) {
  return type.is_float() ? encode_float(type, value) : encode_integer(type, value);
}

double largest_finite(DataType type) {
  if (type.is_float()) return decode_float(type, largest_finite_magnitude(type));
  const int value_bits = type.is_signed() ? type.bits() - 1 : type.bits();
  return std::ldexp(1.0, value_bits) - 1;  // rounds to 2^63 for i64, as a double must
}

double lowest_finite(DataType type) {
  if (type.is_float()) return -largest_finite(type);
  return type.is_signed() ? -std::ldexp(1.0, type.bits() - 1) : 0.0;
}

double smallest_positive(DataType type) {
  return type.is_float() ? decode_float(type, 1) : 1.0;
}

double smallest_normal(DataType type) {
  if (!type.is_float()) return 1.0;
  return std::ldexp(1.0, 1 - type.exponent_bias());
}

uint64_t canonical_nan_bits(DataType type) {
  if (!type.has_nan()) {
    throw DTypeError(fmt::format("{} has no NaN encoding", type.name()));
  }
  const int m = type.mantissa_bits();
  const uint64_t top_exponent = all_ones(type.exponent_bits());
  if (!type.has_inf()) return (top_exponent << m) | all_ones(m);  // "fn" types: S.1..1.1..1
  return (top_exponent << m) | (uint64_t{1} << (m - 1));          // IEEE quiet NaN
}

}  // namespace nibble::dtypes
