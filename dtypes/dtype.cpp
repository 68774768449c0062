#include "dtypes/dtype.h"

#include <fmt/format.h>

#include <charconv>
#include <optional>

namespace nibble::dtypes {
namespace {

bool is_valid_uint_width(int bits) {
  return (bits >= 1 && bits <= 8) || bits == 16 || bits == 32;
}
bool is_valid_int_width(int bits) {
  return is_valid_uint_width(bits) || bits == 64;
}

// Reads a decimal number at the front of `text` and advances past it.
std::optional<int> take_number(std::string_view& text) {
  int value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end == text.data()) return std::nullopt;
  text.remove_prefix(static_cast<size_t>(end - text.data()));
  return value;
}

[[noreturn]] void reject(std::string_view name, std::string_view problem) {
  throw DTypeError(fmt::format("invalid dtype '{}': {}", name, problem));
}

DataType parse_integer(std::string_view name) {
  std::string_view digits = name.substr(1);
  std::optional<int> bits = take_number(digits);
  if (!bits || !digits.empty()) reject(name, "expected u<bits> or i<bits> with a decimal width");
  if (name[0] == 'u') {
    if (!is_valid_uint_width(*bits)) {
      reject(name, fmt::format("unsigned width {} is not one of 1..8, 16, 32", *bits));
    }
    return DataType::uint(*bits);
  }
  if (!is_valid_int_width(*bits)) {
    reject(name, fmt::format("signed width {} is not one of 1..8, 16, 32, 64", *bits));
  }
  return DataType::sint(*bits);
}

DataType parse_float(std::string_view name) {
  if (name == "f16") return DataType::f16();
  if (name == "bf16") return DataType::bf16();
  if (name == "f32") return DataType::f32();
  if (name == "f64") return DataType::f64();
  // fNeXmY
  std::string_view rest = name.substr(1);
  std::optional<int> total = take_number(rest);
  if (!total) reject(name, "expected f16, bf16, f32, f64 or fNeXmY");
  if (rest.empty()) {
    reject(name,
           "a float name needs its exponent/mantissa split, e.g. f8e4m3 (only f16, f32 "
           "and f64 stand alone)");
  }
  if (rest.front() != 'e') reject(name, "expected 'e' after the bit width, as in f6e3m2");
  rest.remove_prefix(1);
  std::optional<int> exponent = take_number(rest);
  if (!exponent || rest.empty() || rest.front() != 'm') {
    reject(name, "expected fNeXmY, as in f6e3m2");
  }
  rest.remove_prefix(1);
  std::optional<int> mantissa = take_number(rest);
  if (!mantissa || !rest.empty()) reject(name, "expected fNeXmY, as in f6e3m2");
  if (*total < 3 || *total > 8) {
    reject(name, fmt::format("small floats have 3 to 8 bits, not {} (wider floats are f16, bf16, "
                             "f32, f64)",
                             *total));
  }
  if (*exponent < 1) reject(name, "a float needs at least one exponent bit");
  if (1 + *exponent + *mantissa != *total) {
    reject(name, fmt::format("1 sign + {} exponent + {} mantissa bits = {}, not {}", *exponent,
                             *mantissa, 1 + *exponent + *mantissa, *total));
  }
  return DataType::floating(*exponent, *mantissa);
}

}  // namespace

DataType DataType::uint(int bits) {
  if (!is_valid_uint_width(bits)) {
    throw DTypeError(fmt::format("u{}: unsigned width must be one of 1..8, 16, 32", bits));
  }
  return DataType(Kind::UInt, bits, 0, 0, false, false);
}

DataType DataType::sint(int bits) {
  if (!is_valid_int_width(bits)) {
    throw DTypeError(fmt::format("i{}: signed width must be one of 1..8, 16, 32, 64", bits));
  }
  return DataType(Kind::Int, bits, 0, 0, false, false);
}

DataType DataType::floating(int exponent_bits, int mantissa_bits) {
  const int bits = 1 + exponent_bits + mantissa_bits;
  // The IEEE formats and bfloat16.
  if ((exponent_bits == 5 && mantissa_bits == 10) || (exponent_bits == 8 && mantissa_bits == 7) ||
      (exponent_bits == 8 && mantissa_bits == 23) || (exponent_bits == 11 && mantissa_bits == 52)) {
    return DataType(Kind::Float, bits, exponent_bits, mantissa_bits, true, true);
  }
  if (exponent_bits < 1 || mantissa_bits < 0 || bits < 3 || bits > 8) {
    throw DTypeError(fmt::format(
        "float with {} exponent and {} mantissa bits: small floats need 3 to 8 bits in all and at "
        "least one exponent bit",
        exponent_bits, mantissa_bits));
  }
  if (exponent_bits == 4 && mantissa_bits == 3) {  // OCP E4M3 "fn": NaN, no inf
    return DataType(Kind::Float, bits, exponent_bits, mantissa_bits, false, true);
  }
  if (exponent_bits == 5 && mantissa_bits == 2) {  // OCP E5M2: IEEE-like
    return DataType(Kind::Float, bits, exponent_bits, mantissa_bits, true, true);
  }
  return DataType(Kind::Float, bits, exponent_bits, mantissa_bits, false, false);
}

DataType DataType::parse(std::string_view name) {
  if (name.empty()) throw DTypeError("invalid dtype '': the name is empty");
  if (name == "bf16") return DataType::bf16();
  switch (name.front()) {
    case 'u':
    case 'i':
      return parse_integer(name);
    case 'f':
      return parse_float(name);
    default:
      reject(name, "a dtype name starts with u, i, f or bf (e.g. u4, i8, f16, bf16, f8e4m3)");
  }
}

std::string DataType::name() const {
  switch (kind_) {
    case Kind::UInt:
      return fmt::format("u{}", bits_);
    case Kind::Int:
      return fmt::format("i{}", bits_);
    case Kind::Float:
      break;
  }
  if (exponent_bits_ == 8 && mantissa_bits_ == 7) return "bf16";
  if (bits_ >= 16) return fmt::format("f{}", bits_);
  return fmt::format("f{}e{}m{}", bits_, exponent_bits_, mantissa_bits_);
}

std::vector<DataType> named_types() {
  std::vector<DataType> types;
  for (int bits = 1; bits <= 8; ++bits)
    types.push_back(DataType::uint(bits));
  types.push_back(DataType::uint(16));
  types.push_back(DataType::uint(32));
  for (int bits = 1; bits <= 8; ++bits)
    types.push_back(DataType::sint(bits));
  for (int bits : {16, 32, 64})
    types.push_back(DataType::sint(bits));
  for (auto [exponent, mantissa] : {std::pair{2, 1}, {3, 2}, {2, 3}, {4, 3}, {5, 2}}) {
    types.push_back(DataType::floating(exponent, mantissa));
  }
  types.push_back(DataType::f16());
  types.push_back(DataType::bf16());
  types.push_back(DataType::f32());
  types.push_back(DataType::f64());
  return types;
}

}  // namespace nibble::dtypes
