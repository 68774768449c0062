#include "dtypes/bit_ops.h"

#include <bit>
#include <cmath>

#include "dtypes/codec.h"
#include "dtypes/dtype.h"

namespace nibble::dtypes {

// --- Logic and shifts ----------------------------------------------------------------------------

uint32_t lop3(uint32_t a, uint32_t b, uint32_t c, uint8_t lut) {
  // Sum of the minterms the table selects: minterm i is where (a, b, c) spells i = 4a + 2b + c.
  uint32_t result = 0;
  for (unsigned i = 0; i < 8; ++i) {
    if (((lut >> i) & 1) == 0) continue;
    const uint32_t from_a = (i & 4) != 0 ? a : ~a;
    const uint32_t from_b = (i & 2) != 0 ? b : ~b;
    const uint32_t from_c = (i & 1) != 0 ? c : ~c;
    result |= from_a & from_b & from_c;
  }
  return result;
}

uint32_t prmt(uint32_t a, uint32_t b, uint32_t selector) {
  const uint64_t pool = (uint64_t{b} << 32) | a;
  uint32_t result = 0;
  for (unsigned i = 0; i < 4; ++i) {
    const uint32_t nibble = (selector >> (4 * i)) & 0xF;
    uint32_t byte = static_cast<uint32_t>(pool >> (8 * (nibble & 7))) & 0xFF;
    if ((nibble & 8) != 0) byte = (byte & 0x80) != 0 ? 0xFF : 0x00;
    result |= byte << (8 * i);
  }
  return result;
}

uint32_t shl_b32(uint32_t a, uint32_t n) {
  return n >= 32 ? 0 : a << n;
}

uint32_t shr_u32(uint32_t a, uint32_t n) {
  return n >= 32 ? 0 : a >> n;
}

uint32_t shf_r_wrap(uint32_t a, uint32_t b, uint32_t n) {
  const uint64_t pair = (uint64_t{b} << 32) | a;
  return static_cast<uint32_t>(pair >> (n & 31));
}

uint32_t shf_l_wrap(uint32_t a, uint32_t b, uint32_t n) {
  const uint64_t pair = (uint64_t{b} << 32) | a;
  return static_cast<uint32_t>((pair << (n & 31)) >> 32);
}

uint32_t add_u32(uint32_t a, uint32_t b) {
  return a + b;
}

// --- Exact IEEE arithmetic -----------------------------------------------------------------------
//
// Operands are unpacked to significand * 2^exponent with integer significands, the exact real
// result is formed in 128-bit integers, and it is rounded once. Products of two significands of
// at most 24 bits fit in 64 bits; a sum is formed exactly when the exponents are at most 64 apart
// and otherwise the smaller term only acts as a "sticky" unit, which rounds identically (shown at
// add_exact).

namespace {

__extension__ typedef unsigned __int128 uint128;

struct BinaryFormat {
  int exponent_bits;
  int mantissa_bits;
  uint32_t canonical_nan;

  int bias() const { return (1 << (exponent_bits - 1)) - 1; }
  int width() const { return 1 + exponent_bits + mantissa_bits; }
  uint32_t sign_bit() const { return uint32_t{1} << (exponent_bits + mantissa_bits); }
  uint32_t max_exponent_field() const { return (uint32_t{1} << exponent_bits) - 1; }
  uint32_t infinity() const { return max_exponent_field() << mantissa_bits; }
  uint32_t one() const { return static_cast<uint32_t>(bias()) << mantissa_bits; }
};

constexpr BinaryFormat kF16{5, 10, 0x7FFF};
constexpr BinaryFormat kBF16{8, 7, 0x7FFF};
constexpr BinaryFormat kF32{8, 23, 0x7FFFFFFF};

enum class Class { Zero, Finite, Inf, NaN };

// A finite nonzero value is significand * 2^exponent.
struct Unpacked {
  Class kind;
  bool negative;
  uint64_t significand;
  int exponent;
};

Unpacked unpack(BinaryFormat format, uint32_t bits) {
  const int m = format.mantissa_bits;
  const bool negative = (bits & format.sign_bit()) != 0;
  const uint32_t exponent = (bits >> m) & format.max_exponent_field();
  const uint32_t fraction = bits & ((uint32_t{1} << m) - 1);
  if (exponent == format.max_exponent_field()) {
    return {fraction == 0 ? Class::Inf : Class::NaN, negative, 0, 0};
  }
  if (exponent == 0) {
    if (fraction == 0) return {Class::Zero, negative, 0, 0};
    return {Class::Finite, negative, fraction, 1 - format.bias() - m};
  }
  return {Class::Finite, negative, (uint64_t{1} << m) | fraction,
          static_cast<int>(exponent) - format.bias() - m};
}

int bit_width(uint128 x) {
  const auto high = static_cast<uint64_t>(x >> 64);
  if (high != 0) return 64 + static_cast<int>(std::bit_width(high));
  return static_cast<int>(std::bit_width(static_cast<uint64_t>(x)));
}

// Rounds magnitude * 2^exponent (magnitude > 0) to the nearest value of `format`, ties to even,
// keeping subnormals and overflowing to infinity.
uint32_t round_pack(BinaryFormat format, bool negative, uint128 magnitude, int exponent) {
  const int m = format.mantissa_bits;
  const uint32_t sign = negative ? format.sign_bit() : 0;
  const int top = bit_width(magnitude) - 1 + exponent;  // the value lies in [2^top, 2^(top+1))
  const int min_normal = 1 - format.bias();
  // The spacing of representable values around the result: fixed below the normal range.
  int quantum = (top > min_normal ? top : min_normal) - m;
  const int shift = quantum - exponent;  // bits of `magnitude` below the quantum

  uint128 units = 0;
  if (shift <= 0) {
    units = magnitude << -shift;  // exact; at most m + 1 bits by the choice of quantum
  } else {
    uint128 remainder = magnitude;
    uint128 half = 0;
    bool half_fits = true;
    if (shift < 128) {
      units = magnitude >> shift;
      remainder = magnitude & ((uint128{1} << shift) - 1);
      half = uint128{1} << (shift - 1);
    } else if (shift == 128) {
      half = uint128{1} << 127;
    } else {
      half_fits = false;  // the half quantum exceeds every 128-bit magnitude
    }
    if (half_fits && (remainder > half || (remainder == half && (units & 1) != 0))) ++units;
  }
  if (units == 0) return sign;  // underflow to a signed zero
  if (units == uint128{1} << (m + 1)) {
    units >>= 1;  // rounding carried into the next binade
    ++quantum;
  }
  if (units < uint128{1} << m) return sign | static_cast<uint32_t>(units);  // subnormal
  const int biased = quantum + m + format.bias();
  if (biased >= static_cast<int>(format.max_exponent_field())) return sign | format.infinity();
  return sign | (static_cast<uint32_t>(biased) << m) |
         (static_cast<uint32_t>(units) & ((uint32_t{1} << m) - 1));
}

// A nonzero exact term significand * 2^exponent, normalised so the significand's top bit is
// bit 63: the exponents of two terms then order their magnitudes up to a factor of 2.
struct Term {
  bool negative;
  uint64_t significand;
  int exponent;
};

Term normalized(bool negative, uint64_t significand, int exponent) {
  const int shift = std::countl_zero(significand);
  return {negative, significand << shift, exponent - shift};
}

// x + y, rounded once. When the exponents are more than 64 apart, |y| < 2^-64 |x| (both
// significands are normalised) and y is replaced by one unit of 2^(x.exponent - 64): the true sum
// and the substitute then lie on the same side of x and closer to it than 2^x.exponent, while every
// rounding boundary (a multiple of half the result's quantum, which is at least 2^x.exponent for
// formats of at most 24 significant bits, subnormal ones included) is a multiple of 2^x.exponent.
// So no boundary separates them and both round to the same value.
uint32_t add_exact(BinaryFormat format, Term x, Term y) {
  if (x.exponent < y.exponent) std::swap(x, y);
  const int distance = x.exponent - y.exponent;
  uint128 x_units = 0;
  uint128 y_units = 0;
  int exponent = 0;
  if (distance <= 64) {
    x_units = uint128{x.significand} << distance;
    y_units = y.significand;
    exponent = y.exponent;
  } else {
    x_units = uint128{x.significand} << 64;
    y_units = 1;  // sticky
    exponent = x.exponent - 64;
  }
  if (x.negative == y.negative) return round_pack(format, x.negative, x_units + y_units, exponent);
  if (x_units == y_units) return 0;  // exact cancellation is +0 when rounding to nearest
  if (x_units > y_units) return round_pack(format, x.negative, x_units - y_units, exponent);
  return round_pack(format, y.negative, y_units - x_units, exponent);
}

// a * b + c with one rounding, IEEE 754 special cases, canonical NaN.
uint32_t fused_multiply_add(BinaryFormat format, uint32_t a_bits, uint32_t b_bits,
                            uint32_t c_bits) {
  const Unpacked a = unpack(format, a_bits);
  const Unpacked b = unpack(format, b_bits);
  const Unpacked c = unpack(format, c_bits);
  if (a.kind == Class::NaN || b.kind == Class::NaN || c.kind == Class::NaN) {
    return format.canonical_nan;
  }
  const bool product_negative = a.negative != b.negative;
  const uint32_t product_sign = product_negative ? format.sign_bit() : 0;
  if (a.kind == Class::Inf || b.kind == Class::Inf) {
    if (a.kind == Class::Zero || b.kind == Class::Zero) return format.canonical_nan;  // inf * 0
    if (c.kind == Class::Inf && c.negative != product_negative) return format.canonical_nan;
    return product_sign | format.infinity();
  }
  if (c.kind == Class::Inf) return c_bits;
  if (a.kind == Class::Zero || b.kind == Class::Zero) {
    if (c.kind != Class::Zero) return c_bits;  // exact
    return (product_negative && c.negative) ? format.sign_bit() : 0;
  }
  const uint64_t product = a.significand * b.significand;  // < 2^48
  const int product_exponent = a.exponent + b.exponent;
  if (c.kind == Class::Zero) {
    return round_pack(format, product_negative, product, product_exponent);
  }
  return add_exact(format, normalized(product_negative, product, product_exponent),
                   normalized(c.negative, c.significand, c.exponent));
}

uint32_t add_in(BinaryFormat format, uint32_t a, uint32_t b) {
  return fused_multiply_add(format, a, format.one(), b);  // a * 1 + b is a + b exactly
}
uint32_t sub_in(BinaryFormat format, uint32_t a, uint32_t b) {
  return add_in(format, a, b ^ format.sign_bit());
}
uint32_t mul_in(BinaryFormat format, uint32_t a, uint32_t b) {
  // Adding -0 changes no product: a nonzero one is unaffected, and +0 + -0 = +0, -0 + -0 = -0.
  return fused_multiply_add(format, a, b, format.sign_bit());
}

// Converts between the binary formats (exact when widening).
uint32_t convert(BinaryFormat from, BinaryFormat to, uint32_t bits) {
  const Unpacked value = unpack(from, bits);
  const uint32_t sign = value.negative ? to.sign_bit() : 0;
  switch (value.kind) {
    case Class::NaN:
      return to.canonical_nan;
    case Class::Inf:
      return sign | to.infinity();
    case Class::Zero:
      return sign;
    case Class::Finite:
      break;
  }
  return round_pack(to, value.negative, value.significand, value.exponent);
}

uint16_t lane16(uint32_t bits) {
  return static_cast<uint16_t>(bits);
}
uint16_t lo(uint32_t packed) {
  return static_cast<uint16_t>(packed);
}
uint16_t hi(uint32_t packed) {
  return static_cast<uint16_t>(packed >> 16);
}
uint32_t pack(uint16_t low, uint16_t high) {
  return uint32_t{low} | (uint32_t{high} << 16);
}

// An 8-bit float converted to f16 through the exact codec: every E4M3/E5M2 value is an f16 value.
uint16_t f8_to_f16(DataType f8, uint32_t code) {
  const double value = decode(f8, code & 0xFF);
  if (std::isnan(value)) return static_cast<uint16_t>(kF16.canonical_nan);
  return static_cast<uint16_t>(encode(DataType::f16(), value));
}

}  // namespace

// --- Scalar arithmetic ---------------------------------------------------------------------------

uint16_t add_f16(uint16_t a, uint16_t b) {
  return lane16(add_in(kF16, a, b));
}
uint16_t sub_f16(uint16_t a, uint16_t b) {
  return lane16(sub_in(kF16, a, b));
}
uint16_t mul_f16(uint16_t a, uint16_t b) {
  return lane16(mul_in(kF16, a, b));
}
uint16_t fma_f16(uint16_t a, uint16_t b, uint16_t c) {
  return lane16(fused_multiply_add(kF16, a, b, c));
}

uint16_t add_bf16(uint16_t a, uint16_t b) {
  return lane16(add_in(kBF16, a, b));
}
uint16_t sub_bf16(uint16_t a, uint16_t b) {
  return lane16(sub_in(kBF16, a, b));
}
uint16_t mul_bf16(uint16_t a, uint16_t b) {
  return lane16(mul_in(kBF16, a, b));
}
uint16_t fma_bf16(uint16_t a, uint16_t b, uint16_t c) {
  return lane16(fused_multiply_add(kBF16, a, b, c));
}

uint32_t add_f32(uint32_t a, uint32_t b) {
  return add_in(kF32, a, b);
}
uint32_t sub_f32(uint32_t a, uint32_t b) {
  return sub_in(kF32, a, b);
}
uint32_t mul_f32(uint32_t a, uint32_t b) {
  return mul_in(kF32, a, b);
}
uint32_t fma_f32(uint32_t a, uint32_t b, uint32_t c) {
  return fused_multiply_add(kF32, a, b, c);
}

// --- Packed arithmetic ---------------------------------------------------------------------------

uint32_t add_f16x2(uint32_t a, uint32_t b) {
  return pack(add_f16(lo(a), lo(b)), add_f16(hi(a), hi(b)));
}
uint32_t sub_f16x2(uint32_t a, uint32_t b) {
  return pack(sub_f16(lo(a), lo(b)), sub_f16(hi(a), hi(b)));
}
uint32_t mul_f16x2(uint32_t a, uint32_t b) {
  return pack(mul_f16(lo(a), lo(b)), mul_f16(hi(a), hi(b)));
}
uint32_t fma_f16x2(uint32_t a, uint32_t b, uint32_t c) {
  return pack(fma_f16(lo(a), lo(b), lo(c)), fma_f16(hi(a), hi(b), hi(c)));
}

uint32_t add_bf16x2(uint32_t a, uint32_t b) {
  return pack(add_bf16(lo(a), lo(b)), add_bf16(hi(a), hi(b)));
}
uint32_t sub_bf16x2(uint32_t a, uint32_t b) {
  return pack(sub_bf16(lo(a), lo(b)), sub_bf16(hi(a), hi(b)));
}
uint32_t mul_bf16x2(uint32_t a, uint32_t b) {
  return pack(mul_bf16(lo(a), lo(b)), mul_bf16(hi(a), hi(b)));
}
uint32_t fma_bf16x2(uint32_t a, uint32_t b, uint32_t c) {
  return pack(fma_bf16(lo(a), lo(b), lo(c)), fma_bf16(hi(a), hi(b), hi(c)));
}

// --- Conversions ---------------------------------------------------------------------------------

uint32_t cvt_f32_f16(uint16_t a) {
  return convert(kF16, kF32, a);
}
uint16_t cvt_rn_bf16_f32(uint32_t a) {
  return lane16(convert(kF32, kBF16, a));
}
uint16_t cvt_rn_f16_f32(uint32_t a) {
  return lane16(convert(kF32, kF16, a));
}
uint32_t cvt_rn_bf16x2_f32(uint32_t a, uint32_t b) {
  return pack(cvt_rn_bf16_f32(b), cvt_rn_bf16_f32(a));
}
uint32_t cvt_rn_f16x2_e4m3x2(uint16_t a) {
  const DataType e4m3 = DataType::floating(4, 3);
  return pack(f8_to_f16(e4m3, a), f8_to_f16(e4m3, a >> 8u));
}
uint32_t cvt_rn_f16x2_e5m2x2(uint16_t a) {
  const DataType e5m2 = DataType::floating(5, 2);
  return pack(f8_to_f16(e5m2, a), f8_to_f16(e5m2, a >> 8u));
}

}  // namespace nibble::dtypes
