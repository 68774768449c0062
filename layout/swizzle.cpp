#include "layout/swizzle.h"

#include <fmt/format.h>

#include <charconv>

#include "layout/error.h"

namespace nibble::layout {

Swizzle::Swizzle(int bits, int base, int shift) : bits_(bits), base_(base), shift_(shift) {
  std::string name = fmt::format("swizzle(bits={}, base={}, shift={})", bits, base, shift);
  if (bits < 0 || base < 0 || shift < 0) {
    throw LayoutError(name + ": parameters must be non-negative");
  }
  if (bits > 0 && shift < bits) {
    throw LayoutError(fmt::format(
        "{}: not a bijective involution: shift must be at least bits, but the bits read "
        "[{}, {}) overlap the bits written [{}, {})",
        name, base + shift, base + shift + bits, base, base + bits));
  }
  if (base + shift + bits > 40) {
    throw LayoutError(name + ": the period 2^(base+shift+bits) exceeds 2^40 bytes");
  }
  if (bits == 0) shift_ = base_ = 0;  // one identity
}

Swizzle Swizzle::parse(std::string_view text) {
  if (text == "none" || text == "0") return none();
  if (text == "32B") return bytes32();
  if (text == "64B") return bytes64();
  if (text == "128B") return bytes128();
  if (text.starts_with("Sw<") && text.ends_with(">")) {
    std::string_view body = text.substr(3, text.size() - 4);
    int values[3];
    for (int i = 0; i < 3; ++i) {
      size_t comma = body.find(',');
      std::string_view part = i < 2 ? body.substr(0, comma) : body;
      if ((i < 2 && comma == std::string_view::npos) || part.empty()) break;
      auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), values[i]);
      if (error != std::errc() || end != part.data() + part.size()) break;
      if (i == 2) return Swizzle(values[0], values[1], values[2]);
      body = body.substr(comma + 1);
    }
  }
  throw LayoutError(
      fmt::format("swizzle '{}': expected none, 32B, 64B, 128B or Sw<bits,base,shift>", text));
}

int64_t Swizzle::on_element(int64_t element, int element_bits) const {
  if (is_identity()) return element;
  if (element_bits < 1) throw LayoutError("swizzle: element width must be positive");
  int64_t bit = element * element_bits;
  int64_t moved = (*this)(bit / 8) * 8 + bit % 8;
  if (moved % element_bits != 0) {
    throw LayoutError(fmt::format("{}: {}-bit elements straddle the {}-byte unit", to_string(),
                                  element_bits, unit_bytes()));
  }
  return moved / element_bits;
}

Coord Swizzle::on_coord(const Coord& coord, Axis axis, int element_bits) const {
  if (is_identity()) return coord;
  Coord result = coord;
  result.set(axis, on_element(coord.get(axis), element_bits));
  return result;
}

std::string Swizzle::to_string() const {
  return fmt::format("Sw<{},{},{}>", bits_, base_, shift_);
}

}  // namespace nibble::layout
