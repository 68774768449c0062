#include "layout/atoms.h"

#include <fmt/format.h>

#include "layout/error.h"

namespace nibble::layout {
namespace {

// Shorthands for writing fragment layouts close to the PTX figures.
Iter L(int64_t extent, int64_t stride) {
  return Iter{extent, stride, Axis::lane()};
}
Iter R(int64_t extent, int64_t stride) {
  return Iter{extent, stride, Axis::reg()};
}
Iter W(int64_t extent, int64_t stride) {
  return Iter{extent, stride, Axis::warp()};
}

Atom make(std::string name, Shape shape, std::vector<Iter> iters, int element_bits,
          int64_t alignment_bits = 0, Swizzle swizzle = {}) {
  // Written as the figures read (not canonicalized): only the iters of one step go.
  std::erase_if(iters, [](const Iter& iter) { return iter.extent == 1; });
  return Atom{std::move(name), std::move(shape), Layout(std::move(iters)),
              element_bits,    alignment_bits,   swizzle};
}

void check_count(int count, const char* op) {
  if (count != 1 && count != 2 && count != 4) {
    throw LayoutError(fmt::format("{}: .x{} does not exist; use x1, x2 or x4", op, count));
  }
}

}  // namespace

// In every mma fragment, with g = lane / 4 (groupID) and t = lane % 4 (threadID_in_group), the
// bits of the register slot select the half of the tile, and g and t select row and column.

Atom mma_m16n8k16_a() {
  // row = 8 * slot[1] + g, col = 8 * slot[2] + 2t + slot[0]
  return make("mma.m16n8k16.a", {16, 16}, {R(2, 2), L(8, 4), R(2, 4), L(4, 1), R(2, 1)}, 16);
}

Atom mma_m16n8k16_b() {
  // k = 8 * slot[1] + 2t + slot[0], n = g
  return make("mma.m16n8k16.b", {16, 8}, {R(2, 2), L(4, 1), R(2, 1), L(8, 4)}, 16);
}

Atom mma_m16n8k16_c(int accumulator_bits) {
  if (accumulator_bits != 16 && accumulator_bits != 32) {
    throw LayoutError(
        fmt::format("mma.m16n8k16: accumulators are 16 or 32 bits, not {}", accumulator_bits));
  }
  // row = 8 * slot[1] + g, col = 2t + slot[0]
  return make("mma.m16n8k16.c", {16, 8}, {R(2, 2), L(8, 4), L(4, 1), R(2, 1)}, accumulator_bits);
}

Atom mma_m16n8k32_a() {
  // row = 8 * slot[2] + g, col = 16 * slot[3] + 4t + slot[1:0]
  return make("mma.m16n8k32.a", {16, 32}, {R(2, 4), L(8, 4), R(2, 8), L(4, 1), R(4, 1)}, 8);
}

Atom mma_m16n8k32_b() {
  // k = 16 * slot[2] + 4t + slot[1:0], n = g
  return make("mma.m16n8k32.b", {32, 8}, {R(2, 4), L(4, 1), R(4, 1), L(8, 4)}, 8);
}

Atom mma_m16n8k32_c() {
  Atom atom = mma_m16n8k16_c(32);
  atom.name = "mma.m16n8k32.c";
  return atom;
}

Atom ldmatrix(int count, bool transpose) {
  check_count(count, "ldmatrix");
  std::string name = fmt::format("ldmatrix.x{}{}", count, transpose ? ".trans" : "");
  if (transpose) {
    // matrix m in register m; inside it row = 2t + half, col = g
    return make(name, {8 * count, 8}, {R(count, 2), L(4, 1), R(2, 1), L(8, 4)}, 16, 128);
  }
  // matrix m in register m; inside it row = g, col = 2t + half
  return make(name, {8 * count, 8}, {R(count, 2), L(8, 4), L(4, 1), R(2, 1)}, 16, 128);
}

Layout ldmatrix_row_addresses(int count) {
  check_count(count, "ldmatrix");
  return Layout({L(8 * count, 1)});
}

Atom stmatrix(int count, bool transpose) {
  check_count(count, "stmatrix");
  Atom atom = ldmatrix(count, transpose);
  atom.name = "st" + atom.name.substr(2);
  return atom;
}

Atom cp_async(int bytes, int element_bits) {
  if (bytes != 4 && bytes != 8 && bytes != 16) {
    throw LayoutError(fmt::format("cp.async copies 4, 8 or 16 bytes, not {}", bytes));
  }
  if (element_bits < 1 || (bytes * 8) % element_bits != 0) {
    throw LayoutError(fmt::format("cp.async.{}: {}-bit elements do not fill {} bytes", bytes,
                                  element_bits, bytes));
  }
  int64_t elements = bytes * 8 / element_bits;
  return make(fmt::format("cp.async.{}", bytes), {1, elements}, {Iter{elements, 1, Axis::smem()}},
              element_bits, bytes * 8);
}

Atom wgmma_a() {
  // warp w owns rows 16w..16w+15 and holds them like the mma.m16n8k16 A fragment
  return make("wgmma.m64nNk16.a", {64, 16}, {W(4, 1), R(2, 2), L(8, 4), R(2, 4), L(4, 1), R(2, 1)},
              16);
}

Atom wgmma_d(int n, int accumulator_bits) {
  if (n < 8 || n > 256 || n % 8 != 0) {
    throw LayoutError(fmt::format("wgmma.m64n{}k16: N must be a multiple of 8 in [8, 256]", n));
  }
  if (accumulator_bits != 16 && accumulator_bits != 32) {
    throw LayoutError(
        fmt::format("wgmma: accumulators are 16 or 32 bits, not {}", accumulator_bits));
  }
  // row = 16w + 8 * slot[1] + g, col = 8 * slot[high] + 2t + slot[0]
  return make(fmt::format("wgmma.m64n{}k16.d", n), {64, n},
              {W(4, 1), R(2, 2), L(8, 4), R(n / 8, 4), L(4, 1), R(2, 1)}, accumulator_bits);
}

Atom wgmma_smem_operand(int swizzle_bytes, int element_bits) {
  Swizzle swizzle;
  switch (swizzle_bytes) {
    case 16:
      break;
    case 32:
      swizzle = Swizzle::bytes32();
      break;
    case 64:
      swizzle = Swizzle::bytes64();
      break;
    case 128:
      swizzle = Swizzle::bytes128();
      break;
    default:
      throw LayoutError(
          fmt::format("wgmma/TMA swizzle widths are 16 (none), 32, 64 or 128 "
                      "bytes, not {}",
                      swizzle_bytes));
  }
  if (element_bits < 1 || (swizzle_bytes * 8) % element_bits != 0) {
    throw LayoutError(fmt::format("wgmma smem operand: {}-bit elements do not fill {} bytes",
                                  element_bits, swizzle_bytes));
  }
  int64_t columns = swizzle_bytes * 8 / element_bits;
  return make(fmt::format("wgmma.smem.{}B", swizzle_bytes), {8, columns},
              {Iter{8, columns, Axis::smem()}, Iter{columns, 1, Axis::smem()}}, element_bits, 128,
              swizzle);
}

std::vector<Atom> all_atoms() {
  std::vector<Atom> atoms = {mma_m16n8k16_a(), mma_m16n8k16_b(), mma_m16n8k16_c(),
                             mma_m16n8k32_a(), mma_m16n8k32_b(), mma_m16n8k32_c()};
  for (int count : {1, 2, 4}) {
    for (bool transpose : {false, true}) {
      atoms.push_back(ldmatrix(count, transpose));
      atoms.push_back(stmatrix(count, transpose));
    }
  }
  for (int bytes : {4, 8, 16})
    atoms.push_back(cp_async(bytes, 8));
  atoms.push_back(wgmma_a());
  for (int n : {8, 16, 32, 64, 128, 256})
    atoms.push_back(wgmma_d(n));
  for (int bytes : {16, 32, 64, 128})
    atoms.push_back(wgmma_smem_operand(bytes, 16));
  return atoms;
}

std::optional<Atom> find_atom(std::string_view name) {
  for (Atom& atom : all_atoms()) {
    if (atom.name == name) return std::move(atom);
  }
  return std::nullopt;
}

}  // namespace nibble::layout
