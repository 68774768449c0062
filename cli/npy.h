// NumPy .npy files (format 1.0/2.0/3.0, little-endian, C order) for `nibble run`.
//
// Element types numpy has (f2, f4, f8, i1…i8, u1…u8, bool) are written as such; types it lacks
// (bf16, the f8/f6/f4 floats, sub-byte integers) are written as their packed bytes, a 1-D u1
// array, and read back the same way. Reading checks the magic, the header and the size.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dtypes/dtype.h"

namespace nibble::cli {

struct NpyArray {
  std::string descr;  // numpy's dtype string: "<f4", "|u1", …
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;  // the raw data, C order
};

// The numpy dtype string of a nibble type, or nullopt when numpy has none.
std::optional<std::string> numpy_descr(dtypes::DataType type);

// Throws std::runtime_error naming the file and what is wrong.
NpyArray read_npy(const std::filesystem::path& path);
void write_npy(const std::filesystem::path& path, const NpyArray& array);

}  // namespace nibble::cli
