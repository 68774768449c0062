#include "cli/npy.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <iterator>
#include <regex>
#include <stdexcept>

namespace nibble::cli {

std::optional<std::string> numpy_descr(dtypes::DataType type) {
  const std::string name = type.name();
  if (name == "f16") return "<f2";
  if (name == "f32") return "<f4";
  if (name == "f64") return "<f8";
  if (name == "u1") return std::nullopt;  // packed bits, not numpy bools
  if (type.is_integer() && type.bits() >= 8) {
    const char kind = type.is_signed() ? 'i' : 'u';
    return type.bits() == 8 ? fmt::format("|{}1", kind)
                            : fmt::format("<{}{}", kind, type.bits() / 8);
  }
  return std::nullopt;
}

NpyArray read_npy(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot open '{}'", path.string()));
  const std::vector<uint8_t> file(std::istreambuf_iterator<char>(in), {});
  auto fail = [&](std::string_view what) {
    throw std::runtime_error(
        fmt::format("'{}' is not a readable .npy file: {}", path.string(), what));
  };
  if (file.size() < 10 || std::string(file.begin(), file.begin() + 6) != "\x93NUMPY")
    fail("no NUMPY magic");
  const int major = file[6];
  size_t header_length = 0;
  size_t header_start = 0;
  if (major == 1) {
    header_length = file[8] | (size_t{file[9]} << 8);
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (file.size() < 12) fail("truncated header");
    header_length =
        file[8] | (size_t{file[9]} << 8) | (size_t{file[10]} << 16) | (size_t{file[11]} << 24);
    header_start = 12;
  } else {
    fail(fmt::format("format version {} is unknown", major));
  }
  if (header_start + header_length > file.size()) fail("truncated header");
  const std::string header(
      file.begin() + static_cast<std::ptrdiff_t>(header_start),
      file.begin() + static_cast<std::ptrdiff_t>(header_start + header_length));
  std::smatch match;
  NpyArray array;
  if (!std::regex_search(header, match, std::regex(R"('descr'\s*:\s*'([^']+)')")))
    fail("no 'descr'");
  array.descr = match[1];
  if (!std::regex_search(header, match, std::regex(R"('fortran_order'\s*:\s*(True|False))")))
    fail("no 'fortran_order'");
  if (match[1] == "True") fail("Fortran order is not supported (save a C-contiguous array)");
  if (!std::regex_search(header, match, std::regex(R"('shape'\s*:\s*\(([^)]*)\))")))
    fail("no 'shape'");
  const std::string dims = match[1];
  int64_t count = 1;
  const std::regex integer(R"(\d+)");
  for (std::sregex_iterator it(dims.begin(), dims.end(), integer), end; it != end; ++it) {
    array.shape.push_back(std::stoll(it->str()));
    count *= array.shape.back();
  }
  if (array.descr.size() < 3 || (array.descr[0] != '<' && array.descr[0] != '|')) {
    fail(fmt::format("dtype '{}' is not little-endian", array.descr));
  }
  const int64_t item_size = std::stoll(array.descr.substr(2));
  const size_t data_start = header_start + header_length;
  const auto expected = static_cast<size_t>(count * item_size);
  if (file.size() - data_start != expected) {
    fail(fmt::format("shape ({}) of '{}' needs {} bytes of data, the file has {}",
                     fmt::join(array.shape, ", "), array.descr, expected,
                     file.size() - data_start));
  }
  array.bytes.assign(file.begin() + static_cast<std::ptrdiff_t>(data_start), file.end());
  return array;
}

void write_npy(const std::filesystem::path& path, const NpyArray& array) {
  std::string shape = fmt::format("{}", fmt::join(array.shape, ", "));
  if (array.shape.size() == 1) shape += ",";
  std::string header =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", array.descr, shape);
  // Pad with spaces so that magic + length + header + newline is a multiple of 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error(fmt::format("cannot write '{}'", path.string()));
  out.write("\x93NUMPY\x01\x00", 8);
  const char length[2] = {static_cast<char>(header.size() & 0xff),
                          static_cast<char>(header.size() >> 8)};
  out.write(length, 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(reinterpret_cast<const char*>(array.bytes.data()),
            static_cast<std::streamsize>(array.bytes.size()));
  if (!out) throw std::runtime_error(fmt::format("writing '{}' failed", path.string()));
}

}  // namespace nibble::cli
