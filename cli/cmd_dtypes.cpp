// `nibble dtypes`: the table of element types, or every value of one type.
//
//   nibble dtypes                      table of the named types
//   nibble dtypes NAME                 every value of NAME (types of 8 bits or fewer)
//   nibble dtypes NAME --all           also for 16-bit types (65536 lines)
//   nibble dtypes NAME --format tsv    machine-readable: code, value as a C99 hex float
//   nibble dtypes NAME --encode V...   the code of each value (round to nearest even)
#include <fmt/format.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "dtypes/codec.h"
#include "dtypes/dtype.h"

namespace nibble::cli {
namespace {

using dtypes::DataType;

std::string format_value(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{:.10g}", value);
}

// Exact and parseable by Python's float.fromhex: hex float, inf, -inf or nan.
std::string format_value_exact(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  return fmt::format("{:a}", value);
}

std::string describe_split(DataType type) {
  if (type.is_integer()) return type.is_signed() ? "signed" : "unsigned";
  return fmt::format("e{}m{} bias {}", type.exponent_bits(), type.mantissa_bits(),
                     type.exponent_bias());
}

std::string describe_specials(DataType type) {
  if (type.is_integer()) return "-";
  if (type.has_inf()) return "inf, NaN";
  return type.has_nan() ? "NaN, no inf" : "finite only";
}

void print_table(std::ostream& out) {
  out << fmt::format("{:<8} {:>4}  {:<16} {:>14} {:>14} {:>24}  {}\n", "name", "bits", "split",
                     "min subnormal", "min normal", "max finite", "specials");
  for (DataType type : dtypes::named_types()) {
    const bool is_float = type.is_float();
    out << fmt::format("{:<8} {:>4}  {:<16} {:>14} {:>14} {:>24}  {}\n", type.name(), type.bits(),
                       describe_split(type),
                       is_float ? format_value(dtypes::smallest_positive(type)) : "-",
                       is_float ? format_value(dtypes::smallest_normal(type)) : "-",
                       format_value(dtypes::largest_finite(type)), describe_specials(type));
  }
  out << "\nAny fNeXmY with N = 1+X+Y in 3..8 and X >= 1 is also a type (finite only, bias "
         "2^(X-1)-1).\n";
}

std::string binary_code(uint64_t code, int bits) {
  std::string text;
  for (int bit = bits - 1; bit >= 0; --bit)
    text += ((code >> bit) & 1) ? '1' : '0';
  return text;
}

void print_values(std::ostream& out, DataType type, bool tsv) {
  const uint64_t count = uint64_t{1} << type.bits();
  if (!tsv) out << fmt::format("{}: {} values ({})\n", type.name(), count, describe_split(type));
  for (uint64_t code = 0; code < count; ++code) {
    const double value = dtypes::decode(type, code);
    if (tsv) {
      out << fmt::format("{:#x}\t{}\n", code, format_value_exact(value));
    } else {
      out << fmt::format("  {:#06x}  {:>{}}  {}\n", code, binary_code(code, type.bits()),
                         type.bits(), format_value(value));
    }
  }
}

double parse_number(const std::string& text) {
  char* end = nullptr;
  const double value = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size()) {
    throw UsageError{fmt::format("'{}' is not a number", text)};
  }
  return value;
}

}  // namespace

int run_dtypes(Arguments args, std::ostream& out) {
  std::string name;
  bool all = false;
  bool tsv = false;
  bool encoding = false;
  std::vector<double> to_encode;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--all") {
      all = true;
    } else if (arg == "--format") {
      if (i + 1 == args.size()) throw UsageError{"--format needs a value: text or tsv"};
      const std::string& format = args[++i];
      if (format != "text" && format != "tsv") {
        throw UsageError{fmt::format("unknown format '{}': expected text or tsv", format)};
      }
      tsv = format == "tsv";
    } else if (arg == "--encode") {
      encoding = true;
    } else if (encoding) {
      to_encode.push_back(parse_number(arg));
    } else if (arg.starts_with("--")) {
      throw UsageError{fmt::format("unknown option '{}'", arg)};
    } else if (name.empty()) {
      name = arg;
    } else {
      throw UsageError{fmt::format("unexpected argument '{}'", arg)};
    }
  }
  if (name.empty()) {
    if (encoding || all) throw UsageError{"--encode and --all need a type NAME"};
    print_table(out);
    return 0;
  }
  const DataType type = DataType::parse(name);
  if (encoding) {
    for (double value : to_encode) {
      out << fmt::format("{}\t{:#x}\n", format_value_exact(value), dtypes::encode(type, value));
    }
    return 0;
  }
  if (type.bits() > 16 || (type.bits() > 8 && !all)) {
    throw UsageError{fmt::format(
        "{} has {} bits: listing every value is for types of 8 bits or fewer (16 with --all)",
        type.name(), type.bits())};
  }
  print_values(out, type, tsv);
  return 0;
}

}  // namespace nibble::cli
