// Packing of sub-byte (and any-width) tensors into bytes.
//
// A tensor of n elements of b bits occupies ceil(n*b/8) bytes. Element i sits in bits
// [i*b, (i+1)*b) of the little-endian bit stream: the low bits of byte 0 come first, and an
// element may straddle a byte boundary (b = 3, 5, 6, 7). Unused high bits of the last byte are
// zero. The same order holds for widths 16, 32 and 64 (little-endian words).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "dtypes/dtype.h"

namespace nibble::dtypes {

size_t packed_size_bytes(DataType type, size_t element_count);

// Each code must fit in type.bits(); a wider code throws DTypeError naming its index.
std::vector<uint8_t> pack(DataType type, std::span<const uint64_t> codes);
// Throws DTypeError if `bytes` is shorter than packed_size_bytes(type, element_count).
std::vector<uint64_t> unpack(DataType type, std::span<const uint8_t> bytes, size_t element_count);

// Single-element access into a packed buffer (no bounds checks beyond debug asserts).
uint64_t read_packed(DataType type, const uint8_t* bytes, size_t index);
void write_packed(DataType type, uint8_t* bytes, size_t index, uint64_t code);

}  // namespace nibble::dtypes
