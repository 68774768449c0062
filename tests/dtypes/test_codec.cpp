// Exact encode/decode. Decoding is also checked against ml_dtypes by the Python suite; here the
// checks are an independent formula, round trips, rounding ties and saturation.
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <limits>
#include <string>

#include "dtypes/codec.h"
#include "dtypes/dtype.h"

using nibble::dtypes::DataType;
using nibble::dtypes::decode;
using nibble::dtypes::encode;

namespace {

// Every type of 16 bits or fewer: the named ones and every generic small float.
std::vector<DataType> small_types() {
  std::vector<DataType> types;
  for (const DataType& type : nibble::dtypes::named_types()) {
    if (type.bits() <= 16) types.push_back(type);
  }
  for (int exponent = 1; exponent <= 7; ++exponent) {
    for (int mantissa = 0; 1 + exponent + mantissa <= 8; ++mantissa) {
      if (1 + exponent + mantissa >= 3) types.push_back(DataType::floating(exponent, mantissa));
    }
  }
  return types;
}

// An independent statement of the float formula: (-1)^s * 2^(e - bias) * (1 + m / 2^M), with
// e = 0 meaning 2^(1 - bias) * (m / 2^M). Special codes are excluded by the caller.
double float_formula(DataType type, uint64_t code) {
  const int m_bits = type.mantissa_bits();
  const uint64_t m = code & ((uint64_t{1} << m_bits) - 1);
  const uint64_t e = (code >> m_bits) & ((uint64_t{1} << type.exponent_bits()) - 1);
  const bool negative = (code >> (type.bits() - 1)) & 1;
  const double fraction = static_cast<double>(m) / std::pow(2.0, m_bits);
  const double magnitude =
      e == 0 ? std::pow(2.0, 1 - type.exponent_bias()) * fraction
             : std::pow(2.0, static_cast<double>(e) - type.exponent_bias()) * (1.0 + fraction);
  return negative ? -magnitude : magnitude;
}

bool is_special(DataType type, uint64_t code) {
  if (!type.is_float()) return false;
  const uint64_t magnitude = code & ~(uint64_t{1} << (type.bits() - 1));
  const uint64_t top = ((uint64_t{1} << type.exponent_bits()) - 1) << type.mantissa_bits();
  if (type.has_inf()) return (magnitude & top) == top;
  if (type.has_nan()) return magnitude == (top | ((uint64_t{1} << type.mantissa_bits()) - 1));
  return false;
}

}  // namespace

TEST_CASE("decode matches the formula and encode inverts it, every code", "[dtypes][codec]") {
  for (const DataType& type : small_types()) {
    INFO(type.name());
    const uint64_t count = uint64_t{1} << type.bits();
    for (uint64_t code = 0; code < count; ++code) {
      const double value = decode(type, code);
      if (type.is_float() && !is_special(type, code)) {
        REQUIRE(value == float_formula(type, code));
        REQUIRE(std::signbit(value) == (((code >> (type.bits() - 1)) & 1) != 0));
      }
      if (type.is_integer()) {
        const double expected = type.is_signed() && code >= count / 2
                                    ? static_cast<double>(code) - static_cast<double>(count)
                                    : static_cast<double>(code);
        REQUIRE(value == expected);
      }
      if (!std::isnan(value)) REQUIRE(encode(type, value) == code);
    }
  }
}

TEST_CASE("special values", "[dtypes][codec]") {
  const DataType f16 = DataType::f16();
  CHECK(std::isinf(decode(f16, 0x7c00)));
  CHECK(std::isnan(decode(f16, 0x7e00)));
  CHECK(decode(f16, 0x0001) == std::ldexp(1.0, -24));
  CHECK(decode(f16, 0x7bff) == 65504.0);
  const DataType e4m3 = DataType::parse("f8e4m3");
  CHECK(decode(e4m3, 0x7e) == 448.0);
  CHECK(std::isnan(decode(e4m3, 0x7f)));
  CHECK(std::isnan(decode(e4m3, 0xff)));
  CHECK(decode(e4m3, 0x78) == 256.0);  // exponent all ones is an ordinary binade here
  const DataType e2m1 = DataType::parse("f4e2m1");
  CHECK(decode(e2m1, 0x7) == 6.0);
  CHECK(decode(e2m1, 0x1) == 0.5);
  CHECK(decode(e2m1, 0xf) == -6.0);
  CHECK(decode(DataType::parse("i1"), 1) == -1.0);
  CHECK(decode(DataType::parse("i4"), 0x8) == -8.0);
  CHECK(decode(DataType::f32(), 0x3f800000) == 1.0);
  CHECK(decode(DataType::f64(), 0x3ff0000000000000) == 1.0);
}

TEST_CASE("ties round to even", "[dtypes][codec]") {
  for (const DataType& type : small_types()) {
    if (!type.is_float()) continue;
    INFO(type.name());
    // Between each pair of adjacent positive finite codes, the midpoint goes to the even code.
    const uint64_t largest = encode(type, nibble::dtypes::largest_finite(type));
    for (uint64_t code = 0; code < largest; ++code) {
      const double low = decode(type, code);
      const double high = decode(type, code + 1);
      const double midpoint = low + (high - low) / 2;
      const uint64_t even = (code % 2 == 0) ? code : code + 1;
      REQUIRE(encode(type, midpoint) == even);
      REQUIRE(encode(type, std::nextafter(midpoint, 0.0)) == code);
      REQUIRE(encode(type, std::nextafter(midpoint, 1e300)) == code + 1);
    }
  }
  CHECK(encode(DataType::sint(8), 2.5) == 2);
  CHECK(encode(DataType::sint(8), 3.5) == 4);
  CHECK(encode(DataType::sint(8), -2.5) == 0xfe);
}

TEST_CASE("overflow saturates without inf and rounds to inf with it", "[dtypes][codec]") {
  const DataType e4m3 = DataType::parse("f8e4m3");
  CHECK(encode(e4m3, 464.0) == 0x7e);  // tie between 448 and the NaN code: even side, 448
  CHECK(encode(e4m3, 470.0) == 0x7e);  // would round to the NaN code: saturate
  CHECK(encode(e4m3, 1e9) == 0x7e);
  CHECK(encode(e4m3, -1e9) == 0xfe);
  CHECK(encode(e4m3, std::numeric_limits<double>::infinity()) == 0x7e);
  const DataType e2m1 = DataType::parse("f4e2m1");
  CHECK(encode(e2m1, 7.0) == 0x7);
  CHECK(encode(e2m1, -1e300) == 0xf);
  const DataType f16 = DataType::f16();
  CHECK(encode(f16, 65519.0) == 0x7bff);
  CHECK(encode(f16, 65520.0) == 0x7c00);  // max + half ulp rounds to inf
  CHECK(encode(DataType::parse("f8e5m2"), 1e6) == 0x7c);
  CHECK(encode(DataType::uint(4), 99.0) == 15);
  CHECK(encode(DataType::uint(4), -3.0) == 0);
  CHECK(encode(DataType::sint(4), -99.0) == 0x8);
  CHECK(encode(DataType::sint(64), 1e30) == 0x7fffffffffffffff);
  CHECK(encode(DataType::sint(64), -1e30) == 0x8000000000000000);
  CHECK(encode(DataType::uint(32), 1e30) == 0xffffffff);
}

TEST_CASE("NaN handling", "[dtypes][codec]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(encode(DataType::parse("f8e4m3"), nan) == 0x7f);
  CHECK(encode(DataType::parse("f8e4m3"), -nan) == 0xff);
  CHECK(encode(DataType::parse("f8e5m2"), nan) == 0x7e);
  CHECK(encode(DataType::f16(), nan) == 0x7e00);
  CHECK(encode(DataType::bf16(), nan) == 0x7fc0);
  CHECK_THROWS_WITH(encode(DataType::parse("f4e2m1"), nan),
                    Catch::Contains("cannot encode NaN as f4e2m1"));
  CHECK_THROWS_WITH(encode(DataType::uint(4), nan), Catch::Contains("cannot encode NaN as u4"));
  CHECK_THROWS_WITH(decode(DataType::uint(4), 0x10), Catch::Contains("does not fit in u4"));
}

TEST_CASE("signed zero", "[dtypes][codec]") {
  CHECK(encode(DataType::f16(), -0.0) == 0x8000);
  CHECK(encode(DataType::parse("f4e2m1"), -0.0) == 0x8);
  CHECK(encode(DataType::sint(4), -0.0) == 0);
  CHECK(encode(DataType::f16(), -1e-30) == 0x8000);  // underflow keeps the sign
}

TEST_CASE("f32 encode agrees with the host's float conversion", "[dtypes][codec]") {
  const DataType f32 = DataType::f32();
  uint64_t state = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 200000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const double value = std::bit_cast<double>((state >> 2) | (i % 2 ? 0x3000000000000000ull : 0));
    if (std::isnan(value)) continue;
    const float expected = static_cast<float>(value);
    INFO(value);
    REQUIRE(encode(f32, value) == std::bit_cast<uint32_t>(expected));
  }
}
