// Conversion plans and the bit-exact instruction models they run on.
//
// [bit_ops]: the instruction models against their definitions (lop3 truth tables, prmt
// selectors, shift clamping), against the host's IEEE float arithmetic (f32), and against the
// exact codec where the real result is known exactly (f16, bf16), including rounding ties,
// fused-versus-unfused cases and subnormals.
// [plans]: every plan run over every source code in every element position, with random
// neighbours, compared bit for bit with encode(target, decode(source, code)).
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "dtypes/bit_ops.h"
#include "dtypes/codec.h"
#include "dtypes/conversion_plan.h"
#include "dtypes/dtype.h"
#include "dtypes/packing.h"

namespace nd = nibble::dtypes;
using nd::DataType;

namespace {

const DataType kF16 = DataType::f16();
const DataType kBF16 = DataType::bf16();

uint16_t f16_bits(double value) {
  return static_cast<uint16_t>(nd::encode(kF16, value));
}
uint16_t bf16_bits(double value) {
  return static_cast<uint16_t>(nd::encode(kBF16, value));
}
double f16_value(uint32_t bits) {
  return nd::decode(kF16, bits & 0xFFFF);
}
double bf16_value(uint32_t bits) {
  return nd::decode(kBF16, bits & 0xFFFF);
}

// a + b with its rounding error (Knuth's TwoSum): the sum is exact when the error is zero.
bool sum_is_exact(double a, double b, double& sum) {
  sum = a + b;
  const double b_virtual = sum - a;
  const double a_virtual = sum - b_virtual;
  const double error = (a - a_virtual) + (b - b_virtual);
  return error == 0;
}

uint32_t draw(std::mt19937& rng) {
  return static_cast<uint32_t>(rng());
}

// A random 16-bit pattern biased towards interesting exponents (tiny, around 1, huge).
uint16_t random_half(std::mt19937& rng, int exponent_bits, int mantissa_bits) {
  const uint32_t sign = (draw(rng) & 1) << (exponent_bits + mantissa_bits);
  const uint32_t max_exponent = (1u << exponent_bits) - 1;
  uint32_t exponent = draw(rng) % (max_exponent + 1);
  if (draw(rng) % 4 == 0) exponent = draw(rng) % 3;  // zero, subnormal, smallest normal
  const uint32_t mantissa = draw(rng) & ((1u << mantissa_bits) - 1);
  return static_cast<uint16_t>(sign | (exponent << mantissa_bits) | mantissa);
}

}  // namespace

// --- Logic and shifts ----------------------------------------------------------------------------

TEST_CASE("lop3 applies the truth table of immLut bit by bit", "[bit_ops]") {
  // The defining property: F(0xF0, 0xCC, 0xAA) == immLut for every table.
  for (uint32_t lut = 0; lut < 256; ++lut) {
    CHECK((nd::lop3(0xF0, 0xCC, 0xAA, static_cast<uint8_t>(lut)) & 0xFF) == lut);
    // Replicated to all four bytes the table still reads back in each byte.
    CHECK(nd::lop3(0xF0F0F0F0, 0xCCCCCCCC, 0xAAAAAAAA, static_cast<uint8_t>(lut)) ==
          lut * 0x01010101u);
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 1000; ++i) {
    const uint32_t a = draw(rng), b = draw(rng), c = draw(rng);
    CHECK(nd::lop3(a, b, c, nd::lop3_lut((nd::kLopA & nd::kLopB) | nd::kLopC)) == ((a & b) | c));
    CHECK(nd::lop3(a, b, c, 0x6A) == ((a & b) ^ c));
    CHECK(nd::lop3(a, b, c, 0x96) == (a ^ b ^ c));
    CHECK(nd::lop3(a, b, c, 0xE8) == ((a & b) | (a & c) | (b & c)));  // majority
    CHECK(nd::lop3(a, b, c, 0xF8) == (a | (b & c)));
    CHECK(nd::lop3(a, b, c, 0x70) == (a & ~(b & c)));
    CHECK(nd::lop3(a, b, c, 0x00) == 0);
    CHECK(nd::lop3(a, b, c, 0xFF) == 0xFFFFFFFF);
  }
  CHECK(nd::lop3_lut(nd::kLopA & nd::kLopB) == 0xC0);
  CHECK(nd::lop3_lut(nd::kLopA & ~(nd::kLopB & nd::kLopC)) == 0x70);
}

TEST_CASE("prmt picks bytes of {b, a} and replicates sign bits on request", "[bit_ops]") {
  const uint32_t a = 0x03020100;
  const uint32_t b = 0x07060504;
  CHECK(nd::prmt(a, b, 0x3210) == a);
  CHECK(nd::prmt(a, b, 0x7654) == b);
  CHECK(nd::prmt(a, b, 0x7531) == 0x07050301);
  CHECK(nd::prmt(a, b, 0x0123) == 0x00010203);
  CHECK(nd::prmt(a, b, 0xFFFF7531) == 0x07050301);  // only the low 16 selector bits count
  // Bit 3 of a selector nibble: all 8 bits become bit 7 of the selected byte.
  CHECK(nd::prmt(0x0000807F, 0, 0x9898) == 0xFF00FF00);
  CHECK(nd::prmt(0x0000807F, 0, 0x1010) == 0x807F807F);
  CHECK(nd::prmt(0x12345678, 0xF0000000, 0xF0F0) == 0xFF78FF78);
  CHECK(nd::prmt(0x12345678, 0xF0000000, 0xC0C0) == 0x00780078);  // 0x78 has bit 7 clear
  // The magic-exponent uses: bytes under 0x64, and a 16-bit sign extension.
  CHECK(nd::prmt(0xAABBCCDD, 0x64646464, 0x4140) == 0x64CC64DD);
  CHECK(nd::prmt(0x000000F0, 0, 0x4480) == 0x0000FFF0);
}

TEST_CASE("shifts clamp at 32, funnel shifts wrap", "[bit_ops]") {
  CHECK(nd::shl_b32(1, 31) == 0x80000000u);
  CHECK(nd::shl_b32(1, 32) == 0);
  CHECK(nd::shl_b32(0xFFFFFFFF, 100) == 0);
  CHECK(nd::shr_u32(0x80000000u, 31) == 1);
  CHECK(nd::shr_u32(0x80000000u, 32) == 0);
  CHECK(nd::shr_u32(0x80000000u, 0) == 0x80000000u);
  CHECK(nd::shf_r_wrap(0x89ABCDEF, 0x01234567, 0) == 0x89ABCDEF);
  CHECK(nd::shf_r_wrap(0x89ABCDEF, 0x01234567, 8) == 0x6789ABCD);
  CHECK(nd::shf_r_wrap(0x89ABCDEF, 0x01234567, 40) == 0x6789ABCD);  // 40 & 31 = 8
  CHECK(nd::shf_r_wrap(0x89ABCDEF, 0x01234567, 31) == 0x02468ACF);
  CHECK(nd::shf_l_wrap(0x89ABCDEF, 0x01234567, 0) == 0x01234567);
  CHECK(nd::shf_l_wrap(0x89ABCDEF, 0x01234567, 8) == 0x23456789);
  CHECK(nd::shf_l_wrap(0x89ABCDEF, 0x01234567, 36) == 0x12345678);
  CHECK(nd::add_u32(0xFFFFFFFF, 2) == 1);
}

// --- Floating point ------------------------------------------------------------------------------

TEST_CASE("f16 add, sub and mul round the exact result once", "[bit_ops]") {
  // Sums and products of two f16 values are exact doubles, so encode() gives the reference.
  std::mt19937 rng(11);
  for (int i = 0; i < 200000; ++i) {
    const uint16_t a = random_half(rng, 5, 10);
    const uint16_t b = random_half(rng, 5, 10);
    const double x = f16_value(a), y = f16_value(b);
    INFO("a = " << a << ", b = " << b);
    const auto check = [](uint16_t got, double exact) {
      if (std::isnan(exact)) {
        CHECK(got == 0x7FFF);
      } else {
        CHECK(got == f16_bits(exact));
      }
    };
    check(nd::add_f16(a, b), x + y);
    check(nd::sub_f16(a, b), x - y);
    check(nd::mul_f16(a, b), x * y);
  }
  // Signed zeros.
  CHECK(nd::add_f16(0x3C00, 0xBC00) == 0x0000);  // 1 + -1 = +0
  CHECK(nd::add_f16(0x8000, 0x8000) == 0x8000);  // -0 + -0 = -0
  CHECK(nd::sub_f16(0x8000, 0x0000) == 0x8000);  // -0 - +0 = -0
  CHECK(nd::mul_f16(0x8000, 0x3C00) == 0x8000);
  // Overflow: 65504 + 16 is the midpoint to 65536 and rounds (to even) to infinity.
  CHECK(nd::add_f16(0x7BFF, 0x4C00) == 0x7C00);
  CHECK(nd::add_f16(0x7BFF, 0x4BFF) == 0x7BFF);
  CHECK(nd::mul_f16(0x7BFF, 0xC000) == 0xFC00);
  // Special values.
  CHECK(nd::add_f16(0x7C00, 0xFC00) == 0x7FFF);  // inf - inf
  CHECK(nd::mul_f16(0x7C00, 0x0000) == 0x7FFF);  // inf * 0
  CHECK(nd::add_f16(0x7E00, 0x3C00) == 0x7FFF);  // NaN in, canonical NaN out
  CHECK(nd::add_f16(0x7C00, 0x3C00) == 0x7C00);
}

TEST_CASE("f16 results keep subnormals and round ties to even", "[bit_ops]") {
  CHECK(nd::mul_f16(0x0400, 0x3800) == 0x0200);  // 2^-14 * 0.5 = 2^-15, subnormal
  CHECK(nd::mul_f16(0x0001, 0x3800) == 0x0000);  // 2^-25: tie between 0 and 2^-24 -> 0
  CHECK(nd::mul_f16(0x0003, 0x3800) == 0x0002);  // 1.5 * 2^-24: tie -> 2 * 2^-24
  CHECK(nd::mul_f16(0x0001, 0xB800) == 0x8000);  // underflow keeps the sign
  CHECK(nd::add_f16(0x0001, 0x0001) == 0x0002);
  CHECK(nd::sub_f16(0x0400, 0x0001) == 0x03FF);          // largest subnormal
  CHECK(nd::fma_f16(0x0001, 0x0001, 0x0000) == 0x0000);  // 2^-48 underflows to +0
  CHECK(nd::fma_f16(0x8001, 0x0001, 0x0000) == 0x8000);
}

TEST_CASE("f16 fma rounds once", "[bit_ops]") {
  // (1 + 2^-10)^2 = 1 + 2^-9 + 2^-20 exactly; the addends below are exact f16 values.
  const uint16_t a = 0x3C01;
  // ... - (3 * 2^-11 + 2^-20) = 1 + 2^-11: the midpoint of 1 and 1 + 2^-10 -> even (1).
  CHECK(nd::fma_f16(a, a, f16_bits(-(3 * std::ldexp(1.0, -11) + std::ldexp(1.0, -20)))) == 0x3C00);
  // ... - (2^-11 + 2^-20) = 1 + 3 * 2^-11: midpoint of 1 + 2^-10 and 1 + 2^-9 -> even (the
  // latter).
  CHECK(nd::fma_f16(a, a, f16_bits(-(std::ldexp(1.0, -11) + std::ldexp(1.0, -20)))) == 0x3C02);
  // ... - 3 * 2^-11 = 1 + 2^-11 + 2^-20: just above the midpoint -> up.
  CHECK(nd::fma_f16(a, a, f16_bits(-3 * std::ldexp(1.0, -11))) == 0x3C01);
  // ... - (1 + 2^-9) = 2^-20 exactly; rounding the product first would give 0.
  CHECK(nd::fma_f16(a, a, 0xBC02) == f16_bits(std::ldexp(1.0, -20)));
  CHECK(nd::add_f16(nd::mul_f16(a, a), 0xBC02) == 0x0000);
  // A tiny product next to a large addend: 1 - 2^-48 rounds to 1, 1 + 2^-48 to 1.
  CHECK(nd::fma_f16(0x8001, 0x0001, 0x3C00) == 0x3C00);
  CHECK(nd::fma_f16(0x0001, 0x0001, 0x3C00) == 0x3C00);
  // Against exact doubles wherever a * b + c is exact in double (a * b always is).
  std::mt19937 rng(13);
  int exact_cases = 0;
  for (int i = 0; i < 300000; ++i) {
    const uint16_t x = random_half(rng, 5, 10);
    const uint16_t y = random_half(rng, 5, 10);
    const uint16_t z = random_half(rng, 5, 10);
    double sum = 0;
    const double product = f16_value(x) * f16_value(y);
    if (std::isnan(product) || std::isinf(product) || std::isinf(f16_value(z)) ||
        std::isnan(f16_value(z)) || !sum_is_exact(product, f16_value(z), sum)) {
      continue;
    }
    ++exact_cases;
    INFO("fma(" << x << ", " << y << ", " << z << ")");
    CHECK(nd::fma_f16(x, y, z) == f16_bits(sum));
  }
  CHECK(exact_cases > 100000);
}

TEST_CASE("bf16 arithmetic rounds once and keeps subnormals", "[bit_ops]") {
  std::mt19937 rng(17);
  for (int i = 0; i < 200000; ++i) {
    const uint16_t a = random_half(rng, 8, 7);
    const uint16_t b = random_half(rng, 8, 7);
    const double x = bf16_value(a), y = bf16_value(b);
    if (std::isnan(x) || std::isnan(y) || std::isnan(x + y) || std::isnan(x * y)) continue;
    INFO("a = " << a << ", b = " << b);
    CHECK(nd::add_bf16(a, b) == bf16_bits(x + y));
    CHECK(nd::sub_bf16(a, b) == bf16_bits(x - y));
    CHECK(nd::mul_bf16(a, b) == bf16_bits(x * y));
    CHECK(nd::add_bf16x2(a | (uint32_t{b} << 16), b | (uint32_t{a} << 16)) ==
          (bf16_bits(x + y) * 0x10001u));
  }
  // (1 + 2^-7)^2 = 1 + 2^-6 + 2^-14; subtracting 3 * 2^-8 + 2^-14 leaves the tie 1 + 2^-8.
  const uint16_t a = 0x3F81;
  CHECK(nd::fma_bf16(a, a, bf16_bits(-(3 * std::ldexp(1.0, -8) + std::ldexp(1.0, -14)))) == 0x3F80);
  CHECK(nd::fma_bf16(a, a, bf16_bits(-(std::ldexp(1.0, -8) + std::ldexp(1.0, -14)))) == 0x3F82);
  CHECK(nd::fma_bf16(a, a, 0xBF82) == bf16_bits(std::ldexp(1.0, -14)));  // fused
  CHECK(nd::mul_bf16(0x0001, 0x3F00) == 0x0000);                         // 2^-134: tie -> 0
  CHECK(nd::mul_bf16(0x0003, 0x3F00) == 0x0002);                         // tie -> even
  CHECK(nd::mul_bf16(0x0080, 0x3F00) == 0x0040);          // smallest normal / 2: subnormal
  CHECK(nd::fma_bf16(0x7F7F, 0x4000, 0x8000) == 0x7F80);  // overflow -> inf
  CHECK(nd::fma_bf16(0x8000, 0x3F80, 0x8000) == 0x8000);  // -0 * 1 + -0 = -0
  CHECK(nd::fma_bf16(0x0000, 0x3F80, 0x8000) == 0x0000);  // +0 + -0 = +0
  CHECK(nd::fma_bf16(0x7F80, 0x0000, 0x3F80) == 0x7FFF);  // inf * 0
  // Random fma against exact doubles.
  int exact_cases = 0;
  for (int i = 0; i < 200000; ++i) {
    const uint16_t x = random_half(rng, 8, 7);
    const uint16_t y = random_half(rng, 8, 7);
    const uint16_t z = random_half(rng, 8, 7);
    double sum = 0;
    const double product = bf16_value(x) * bf16_value(y);
    if (!std::isfinite(product) || !std::isfinite(bf16_value(z)) ||
        !sum_is_exact(product, bf16_value(z), sum)) {
      continue;
    }
    ++exact_cases;
    INFO("fma(" << x << ", " << y << ", " << z << ")");
    CHECK(nd::fma_bf16(x, y, z) == bf16_bits(sum));
  }
  CHECK(exact_cases > 30000);
}

TEST_CASE("f32 arithmetic matches the host's IEEE single precision", "[bit_ops]") {
  std::mt19937 rng(19);
  const auto random_f32 = [&rng]() {
    uint32_t bits = draw(rng);
    if (draw(rng) % 4 == 0) bits &= 0x807FFFFF;                       // zero or subnormal
    if (draw(rng) % 8 == 0) bits = (bits & 0x80FFFFFF) | 0x3F000000;  // near 1
    return bits;
  };
  const auto same = [](uint32_t got, float expected) {
    if (std::isnan(expected)) return got == 0x7FFFFFFF;
    return got == std::bit_cast<uint32_t>(expected);
  };
  for (int i = 0; i < 300000; ++i) {
    const uint32_t a = random_f32(), b = random_f32(), c = random_f32();
    const float x = std::bit_cast<float>(a), y = std::bit_cast<float>(b),
                z = std::bit_cast<float>(c);
    INFO("a = " << a << ", b = " << b << ", c = " << c);
    CHECK(same(nd::add_f32(a, b), x + y));
    CHECK(same(nd::sub_f32(a, b), x - y));
    CHECK(same(nd::mul_f32(a, b), x * y));
    CHECK(same(nd::fma_f32(a, b, c), std::fma(x, y, z)));
  }
  // (1 + 2^-23) * 1.5 = 1.5 + 2^-23 + 2^-24 is a midpoint; an addend of +-2^-149, far below
  // the product's last bit, only decides which way the tie goes.
  CHECK(nd::fma_f32(0x3F800001, 0x3FC00000, 0x00000000) == 0x3FC00002);  // tie -> even
  CHECK(nd::fma_f32(0x3F800001, 0x3FC00000, 0x00000001) == 0x3FC00002);  // above
  CHECK(nd::fma_f32(0x3F800001, 0x3FC00000, 0x80000001) == 0x3FC00001);  // below
  CHECK(nd::fma_f32(0x33800000, 0x3F800000, 0x3F800000) == 0x3F800000);  // 1 + 2^-24 -> 1
}

TEST_CASE("conversions: cvt f32 <-> f16/bf16 and the sm_89 fp8 converts", "[bit_ops]") {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const double value = f16_value(h);
    const float widened = std::bit_cast<float>(nd::cvt_f32_f16(static_cast<uint16_t>(h)));
    if (std::isnan(value)) {
      CHECK(std::isnan(widened));
    } else {
      CHECK(static_cast<double>(widened) == value);
    }
  }
  std::mt19937 rng(23);
  for (int i = 0; i < 100000; ++i) {
    const uint32_t a = draw(rng), b = draw(rng);
    const double x = static_cast<double>(std::bit_cast<float>(a));
    const double y = static_cast<double>(std::bit_cast<float>(b));
    const uint32_t packed = nd::cvt_rn_bf16x2_f32(a, b);
    // The first source lands in the high half.
    if (!std::isnan(x)) CHECK((packed >> 16) == bf16_bits(x));
    if (!std::isnan(y)) CHECK((packed & 0xFFFF) == bf16_bits(y));
    if (!std::isnan(x)) CHECK(nd::cvt_rn_f16_f32(a) == f16_bits(x));
  }
  CHECK(nd::cvt_rn_bf16x2_f32(0x3F808000, 0x3F818000) == 0x3F803F82);  // ties to even
  const DataType e4m3 = DataType::floating(4, 3);
  const DataType e5m2 = DataType::floating(5, 2);
  for (uint32_t pair = 0; pair < 0x10000; ++pair) {
    const uint32_t from_e4m3 = nd::cvt_rn_f16x2_e4m3x2(static_cast<uint16_t>(pair));
    const uint32_t from_e5m2 = nd::cvt_rn_f16x2_e5m2x2(static_cast<uint16_t>(pair));
    for (int half = 0; half < 2; ++half) {
      const uint32_t code = (pair >> (8 * half)) & 0xFF;
      const auto got_e4m3 = (from_e4m3 >> (16 * half)) & 0xFFFF;
      const auto got_e5m2 = (from_e5m2 >> (16 * half)) & 0xFFFF;
      const double v4 = nd::decode(e4m3, code), v5 = nd::decode(e5m2, code);
      if (std::isnan(v4)) {
        CHECK(std::isnan(f16_value(got_e4m3)));
      } else {
        CHECK(got_e4m3 == f16_bits(v4));
      }
      if (std::isnan(v5)) {
        CHECK(std::isnan(f16_value(got_e5m2)));
      } else {
        CHECK(got_e5m2 == f16_bits(v5));
      }
    }
  }
}

// --- Plans ---------------------------------------------------------------------------------------

namespace {

// Every source the plans cover: integers of 1..8 bits and every float of at most 8 bits (which
// includes f4e2m1, f6e3m2, f6e2m3, f8e4m3 and f8e5m2).
std::vector<DataType> plan_sources() {
  std::vector<DataType> types;
  for (int bits = 1; bits <= 8; ++bits) {
    types.push_back(DataType::uint(bits));
    types.push_back(DataType::sint(bits));
  }
  for (int total = 3; total <= 8; ++total) {
    for (int exponent = 1; exponent < total; ++exponent)
      types.push_back(DataType::floating(exponent, total - 1 - exponent));
  }
  return types;
}

bool has_f16_plan(DataType source) {
  return source.is_integer() || source.exponent_bits() <= 5;
}

std::vector<uint32_t> pack_words(DataType type, const std::vector<uint64_t>& codes) {
  const std::vector<uint8_t> bytes = nd::pack(type, codes);
  std::vector<uint32_t> words(bytes.size() / 4, 0);
  for (size_t i = 0; i < bytes.size(); ++i)
    words[i / 4] |= uint32_t{bytes[i]} << (8 * (i % 4));
  return words;
}

// Runs the plan for every code in every element position (the other positions random) and
// returns a description of the first mismatch, or "" when every output half is right.
std::string first_mismatch(const nd::ConversionPlan& plan) {
  const DataType source = plan.source;
  const DataType target = plan.target;
  const int elements = plan.element_count();
  const uint64_t codes = uint64_t{1} << source.bits();
  std::mt19937_64 rng(std::hash<std::string>{}(source.name() + target.name()));
  std::vector<uint64_t> input(static_cast<size_t>(elements));
  for (int position = 0; position < elements; ++position) {
    for (uint64_t code = 0; code < codes; ++code) {
      for (uint64_t& neighbour : input)
        neighbour = rng() & source.bit_mask();
      input[static_cast<size_t>(position)] = code;
      const std::vector<uint32_t> output = nd::run_plan(plan, pack_words(source, input));
      for (int slot = 0; slot < elements; ++slot) {
        const int element = plan.output_element[static_cast<size_t>(slot)];
        const uint64_t element_code = input[static_cast<size_t>(element)];
        const auto got = (output[static_cast<size_t>(slot / 2)] >> (16 * (slot % 2))) & 0xFFFF;
        const double value = nd::decode(source, element_code);
        const bool ok = std::isnan(value) ? std::isnan(nd::decode(target, got))
                                          : got == nd::encode(target, value);
        if (!ok) {
          return "element " + std::to_string(element) + " code " + std::to_string(element_code) +
                 " (" + std::to_string(value) + ") gave " + std::to_string(got) + ", expected " +
                 std::to_string(std::isnan(value) ? 0 : nd::encode(target, value));
        }
      }
    }
  }
  return "";
}

// The plan's shape: single assignment, sources defined before use, outputs a permutation.
void check_well_formed(const nd::ConversionPlan& plan) {
  REQUIRE(plan.element_count() * plan.source.bits() == 32 * plan.input_words);
  REQUIRE(plan.output_registers.size() == static_cast<size_t>(plan.output_words));
  std::set<int> defined;
  for (int word = 0; word < plan.input_words; ++word)
    defined.insert(word);
  int sm = 20;
  for (const nd::PlanOp& op : plan.ops) {
    for (int i = 0; i < nd::source_count(op.op); ++i) {
      const nd::Operand& source = op.src[static_cast<size_t>(i)];
      CHECK(source.kind != nd::Operand::Kind::None);
      if (source.is_register()) CHECK(defined.contains(static_cast<int>(source.value)));
    }
    CHECK(!defined.contains(op.dst));
    CHECK(op.dst < plan.register_count);
    defined.insert(op.dst);
    sm = std::max(sm, nd::min_sm(op.op));
  }
  CHECK(plan.min_sm == sm);
  for (int reg : plan.output_registers)
    CHECK(defined.contains(reg));
  std::vector<int> elements = plan.output_element;
  std::sort(elements.begin(), elements.end());
  for (int i = 0; i < plan.element_count(); ++i)
    CHECK(elements[static_cast<size_t>(i)] == i);
}

}  // namespace

TEST_CASE("every plan converts every code in every position exactly", "[plans]") {
  for (const DataType& source : plan_sources()) {
    for (const DataType& target : {kF16, kBF16}) {
      INFO(source.name() << " -> " << target.name());
      const auto plan = nd::find_conversion_plan(source, target);
      if (target == kF16 && !has_f16_plan(source)) {
        CHECK(!plan);
        continue;
      }
      REQUIRE(plan);
      check_well_formed(*plan);
      CHECK(first_mismatch(*plan) == "");
    }
  }
}

TEST_CASE("the sm_89 E4M3 plan uses the hardware convert and is exact too", "[plans]") {
  const DataType e4m3 = DataType::floating(4, 3);
  const auto hardware = nd::find_conversion_plan(e4m3, kF16, 89);
  REQUIRE(hardware);
  CHECK(hardware->min_sm == 89);
  CHECK(hardware->ops.size() == 2);
  check_well_formed(*hardware);
  CHECK(first_mismatch(*hardware) == "");
  const auto portable = nd::find_conversion_plan(e4m3, kF16, 80);
  REQUIRE(portable);
  CHECK(portable->min_sm <= 80);
}

TEST_CASE("plans keep their expected cost and element order", "[plans]") {
  const auto ops = [](const char* source, const char* target, int sm = 80) {
    const auto plan =
        nd::find_conversion_plan(DataType::parse(source), DataType::parse(target), sm);
    REQUIRE(plan);
    return plan->ops.size();
  };
  // Per 32-bit input word: lop3 and one sub (f16) or fma (bf16) per output word.
  CHECK(ops("u4", "f16") == 9);
  CHECK(ops("i4", "f16") == 9);
  CHECK(ops("u4", "bf16") == 11);
  CHECK(ops("u8", "f16") == 4);
  CHECK(ops("i8", "f16") == 5);
  CHECK(ops("u8", "bf16") == 10);
  CHECK(ops("f8e5m2", "f16") == 2);
  CHECK(ops("f8e4m3", "f16", 89) == 2);

  const auto u4 = nd::find_conversion_plan(DataType::uint(4), kF16);
  REQUIRE(u4);
  CHECK(u4->output_element == std::vector<int>{0, 4, 1, 5, 2, 6, 3, 7});
  const auto e4m3 = nd::find_conversion_plan(DataType::floating(4, 3), kBF16);
  REQUIRE(e4m3);
  CHECK(e4m3->output_element == std::vector<int>{0, 1, 2, 3});
}

TEST_CASE("unsupported conversions have no plan", "[plans]") {
  const auto none = [](DataType source, DataType target, int sm = 80) {
    return !nd::find_conversion_plan(source, target, sm).has_value();
  };
  CHECK(none(kF16, DataType::uint(4)));
  CHECK(none(DataType::uint(4), DataType::f32()));
  CHECK(none(DataType::uint(16), kF16));
  CHECK(none(DataType::sint(32), kBF16));
  CHECK(none(kBF16, kF16));
  CHECK(none(DataType::f32(), kBF16));
  CHECK(none(DataType::floating(6, 1), kF16));  // 2^32 does not fit f16
  // bf16 arithmetic needs sm_80, f16x2 arithmetic sm_53.
  CHECK(none(DataType::uint(4), kBF16, 75));
  CHECK(!none(DataType::uint(4), kF16, 75));
  CHECK(none(DataType::uint(4), kF16, 52));
}

TEST_CASE("plans print as PTX-like listings", "[plans]") {
  const auto plan = nd::find_conversion_plan(DataType::uint(4), kF16);
  REQUIRE(plan);
  const std::string text = nd::to_string(*plan);
  CHECK(text.find("// u4 -> f16:") == 0);
  CHECK(text.find("lop3.b32 %r1, %r0, 0x000f000f, 0x64006400, 0xea;") != std::string::npos);
  CHECK(text.find("sub.rn.f16x2 %r2, %r1, 0x64006400;") != std::string::npos);
  // A field four bits up sits under the exponent of 2^6, whose ulp there is one.
  CHECK(text.find("lop3.b32 %r3, %r0, 0x00f000f0, 0x54005400, 0xea;") != std::string::npos);
  CHECK(text.find("fma.rn.f16x2") == std::string::npos);
  CHECK(text.find("shr.u32") != std::string::npos);
  size_t instruction_lines = 0;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    if (text.compare(start, 2, "//") != 0) ++instruction_lines;
    start = end + 1;
  }
  CHECK(instruction_lines == plan->ops.size());

  const auto bf16 = nd::find_conversion_plan(DataType::uint(8), kBF16);
  REQUIRE(bf16);
  CHECK(nd::to_string(*bf16).find("sub.rn.f32 %r") != std::string::npos);
  CHECK(nd::to_string(*bf16).find("0f4B000000") != std::string::npos);
  const auto hardware = nd::find_conversion_plan(DataType::floating(4, 3), kF16, 89);
  REQUIRE(hardware);
  CHECK(nd::to_string(*hardware).find("cvt.rn.f16x2.e4m3x2 %r2, %r0.hi;") != std::string::npos);
}

TEST_CASE("run_plan checks the number of input words", "[plans]") {
  const auto plan = nd::find_conversion_plan(DataType::uint(3), kF16);
  REQUIRE(plan);
  CHECK(plan->input_words == 3);
  const std::vector<uint32_t> one_word{0};
  CHECK_THROWS_AS(nd::run_plan(*plan, one_word), std::invalid_argument);
}
