#include "dtypes/packing.h"

#include <fmt/format.h>

#include <cassert>

namespace nibble::dtypes {

size_t packed_size_bytes(DataType type, size_t element_count) {
  return (element_count * static_cast<size_t>(type.bits()) + 7) / 8;
}

uint64_t read_packed(DataType type, const uint8_t* bytes, size_t index) {
  const size_t width = static_cast<size_t>(type.bits());
  const size_t first_bit = index * width;
  // Gather the bytes the element touches (at most 9 for a 64-bit element at an odd offset).
  uint64_t code = 0;
  size_t taken = 0;
  size_t bit = first_bit;
  while (taken < width) {
    const size_t offset_in_byte = bit % 8;
    const size_t available = 8 - offset_in_byte;
    const size_t take = std::min(available, width - taken);
    const uint64_t piece = (bytes[bit / 8] >> offset_in_byte) & ((1u << take) - 1);
    code |= piece << taken;
    taken += take;
    bit += take;
  }
  return code;
}

void write_packed(DataType type, uint8_t* bytes, size_t index, uint64_t code) {
  const size_t width = static_cast<size_t>(type.bits());
  assert((code & ~type.bit_mask()) == 0);
  size_t written = 0;
  size_t bit = index * width;
  while (written < width) {
    const size_t offset_in_byte = bit % 8;
    const size_t take = std::min(8 - offset_in_byte, width - written);
    const auto field_mask = static_cast<uint8_t>(((1u << take) - 1) << offset_in_byte);
    const auto piece = static_cast<uint8_t>(((code >> written) << offset_in_byte) & field_mask);
    bytes[bit / 8] = static_cast<uint8_t>((bytes[bit / 8] & ~field_mask) | piece);
    written += take;
    bit += take;
  }
}

std::vector<uint8_t> pack(DataType type, std::span<const uint64_t> codes) {
  std::vector<uint8_t> bytes(packed_size_bytes(type, codes.size()), 0);
  for (size_t i = 0; i < codes.size(); ++i) {
    if ((codes[i] & ~type.bit_mask()) != 0) {
      throw DTypeError(fmt::format("pack: element {} has code {:#x}, wider than {} ({} bits)", i,
                                   codes[i], type.name(), type.bits()));
    }
    write_packed(type, bytes.data(), i, codes[i]);
  }
  return bytes;
}

std::vector<uint64_t> unpack(DataType type, std::span<const uint8_t> bytes, size_t element_count) {
  const size_t needed = packed_size_bytes(type, element_count);
  if (bytes.size() < needed) {
    throw DTypeError(fmt::format("unpack: {} elements of {} need {} bytes, got {}", element_count,
                                 type.name(), needed, bytes.size()));
  }
  std::vector<uint64_t> codes(element_count);
  for (size_t i = 0; i < element_count; ++i)
    codes[i] = read_packed(type, bytes.data(), i);
  return codes;
}

}  // namespace nibble::dtypes
