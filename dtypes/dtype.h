// Element types of any bit width.
//
// A DataType is a small value: what kind of number it is, how many bits it occupies, and for
// floats how those bits split into sign, exponent and mantissa and which special values exist.
//
// Names (parse() accepts exactly these; name() prints them back):
//   u1 … u8, u16, u32        unsigned integers
//   i1 … i8, i16, i32, i64   two's-complement signed integers (i1 holds 0 and -1)
//   f16, bf16, f32, f64      IEEE-754 binary16, bfloat16, binary32, binary64 (inf and NaN)
//   f8e4m3                   OCP FP8 E4M3 "fn": finite values plus NaN (S.1111.111), no inf
//   f8e5m2                   OCP FP8 E5M2: IEEE-like, with inf and NaN
//   fNeXmY                   any other small float: 1 sign bit, X exponent bits, Y mantissa
//                            bits, N = 1 + X + Y, 3 <= N <= 8, X >= 1, Y >= 0. Bias is
//                            2^(X-1) - 1, subnormals are supported, and every bit pattern is a
//                            finite number (no inf, no NaN), as in the OCP MX element types
//                            f6e3m2, f6e2m3 and f4e2m1.
// f8e4m3 and f8e5m2 are spelled as above and keep their OCP meaning; the IEEE-like 8-bit split
// with inf (e.g. f8e3m4) is the generic finite-only type.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace nibble::dtypes {

enum class Kind : uint8_t { UInt, Int, Float };

// Thrown for a type name or a value that the type system rejects; the message names the
// offending input and what is wrong with it.
class DTypeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class DataType {
 public:
  // Integer types: bits in 1..8, 16, 32 (u) or 1..8, 16, 32, 64 (i).
  static DataType uint(int bits);
  static DataType sint(int bits);
  // A float with the given split. Throws DTypeError for splits outside the ranges above.
  static DataType floating(int exponent_bits, int mantissa_bits);
  static DataType f16() { return floating(5, 10); }
  static DataType bf16() { return floating(8, 7); }
  static DataType f32() { return floating(8, 23); }
  static DataType f64() { return floating(11, 52); }

  // Parses a name listed above; throws DTypeError naming the problem otherwise.
  static DataType parse(std::string_view name);
  // The canonical name; parse(t.name()) == t.
  std::string name() const;

  Kind kind() const { return kind_; }
  int bits() const { return bits_; }
  int exponent_bits() const { return exponent_bits_; }  // 0 for integers
  int mantissa_bits() const { return mantissa_bits_; }  // 0 for integers
  bool has_inf() const { return has_inf_; }
  bool has_nan() const { return has_nan_; }

  bool is_float() const { return kind_ == Kind::Float; }
  bool is_integer() const { return kind_ != Kind::Float; }
  bool is_signed() const { return kind_ != Kind::UInt; }
  bool is_sub_byte() const { return bits_ < 8; }
  // Exponent bias of a float type: 2^(exponent_bits-1) - 1.
  int exponent_bias() const { return (1 << (exponent_bits_ - 1)) - 1; }
  // All bit patterns of the type, as the low bits() bits of a uint64_t.
  uint64_t bit_mask() const { return bits_ == 64 ? ~uint64_t{0} : (uint64_t{1} << bits_) - 1; }

  friend bool operator==(const DataType&, const DataType&) = default;

 private:
  DataType(Kind kind, int bits, int exponent_bits, int mantissa_bits, bool has_inf, bool has_nan)
      : kind_(kind),
        bits_(static_cast<uint8_t>(bits)),
        exponent_bits_(static_cast<uint8_t>(exponent_bits)),
        mantissa_bits_(static_cast<uint8_t>(mantissa_bits)),
        has_inf_(has_inf),
        has_nan_(has_nan) {}

  Kind kind_;
  uint8_t bits_;
  uint8_t exponent_bits_;
  uint8_t mantissa_bits_;
  bool has_inf_;
  bool has_nan_;
};

// The named types, in the order `nibble dtypes` lists them.
std::vector<DataType> named_types();

}  // namespace nibble::dtypes
