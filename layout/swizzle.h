// Swizzles: bijective post-maps on byte addresses that spread a tile's rows over the
// shared-memory banks.
//
//   swizzle(addr) = addr ^ ((addr >> shift) & mask),   mask = ((1 << bits) - 1) << base
//
// The `bits` bits at [base + shift, base + shift + bits) are XORed into [base, base + bits).
// The low `base` bits are never touched, so a unit of 2^base bytes (the vector unit: 16 bytes
// for the usual patterns) stays contiguous and aligned. With shift >= bits the bits read and
// the bits written do not overlap, so the map is an involution (its own inverse) and a
// bijection on every aligned block of 2^(base + shift + bits) bytes (the period).
//
// The patterns of TMA and wgmma (and of the classic ldmatrix-friendly smem tiles), in bytes:
//   none      bits 0
//   32-byte   (1, 4, 3): 16-byte unit, 2 units per row, period 256 bytes
//   64-byte   (2, 4, 3): 16-byte unit, 4 units per row, period 512 bytes
//   128-byte  (3, 4, 3): 16-byte unit, 8 units per row, period 1024 bytes
// Printed and parsed as "Sw<3,4,3>" (or "128B", "64B", "32B", "none" by parse()).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "layout/layout.h"

namespace nibble::layout {

class Swizzle {
 public:
  // The identity.
  Swizzle() = default;
  // Throws LayoutError for negative parameters, or shift < bits (the map would not be an
  // involution, and for shift 0 not even a bijection), or a period beyond 2^40 bytes.
  Swizzle(int bits, int base, int shift);

  static Swizzle none() { return Swizzle(); }
  static Swizzle bytes32() { return Swizzle(1, 4, 3); }
  static Swizzle bytes64() { return Swizzle(2, 4, 3); }
  static Swizzle bytes128() { return Swizzle(3, 4, 3); }
  // "none", "32B", "64B", "128B" or "Sw<bits,base,shift>".
  static Swizzle parse(std::string_view text);

  int bits() const { return bits_; }
  int base() const { return base_; }
  int shift() const { return shift_; }
  bool is_identity() const { return bits_ == 0; }
  int64_t unit_bytes() const { return int64_t{1} << base_; }
  int64_t period_bytes() const { return int64_t{1} << (base_ + shift_ + bits_); }

  int64_t operator()(int64_t byte_address) const {
    return byte_address ^ ((byte_address >> shift_) & mask());
  }
  // The same map on an element offset of `element_bits`-wide elements: the element's first bit
  // goes through the byte map; bits below a byte stay where they are.
  int64_t on_element(int64_t element, int element_bits) const;
  // The layout coordinate with its `axis` entry swizzled.
  Coord on_coord(const Coord& coord, Axis axis, int element_bits) const;

  // The bits written: [base, base + bits).
  int64_t mask() const { return ((int64_t{1} << bits_) - 1) << base_; }

  std::string to_string() const;
  bool operator==(const Swizzle&) const = default;

 private:
  int bits_ = 0;
  int base_ = 0;
  int shift_ = 0;
};

}  // namespace nibble::layout
