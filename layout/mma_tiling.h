// How a block's warps tile a dot C[m, n] += A[m, k] · B[k, n] with mma.sync atoms, and the
// register layouts that tiling gives the operands.
//
// The atom follows the width of the inputs: m16n8k16 for 16-bit inputs (f16, bf16), m16n8k32 for
// 8-bit ones (s8/u8, e4m3/e5m2). Both hold p = 32 / bits elements per 32-bit register and take
// k = 8p per atom; their fragments differ only in p (layout/atoms.h). The warps form a
// warps_m x warps_n grid over C; each warp owns tiles_m() x tiles_n() atoms of C and walks
// steps_k() atoms along K. With g = lane / 4, t = lane % 4, warp = (wr, wc) and atom
// (i, j, s) (tile_m, tile_n, step_k):
//   C: row = ((wr * tiles_m + i) * 2 + h) * 8 + g,  col = (wc * tiles_n + j) * 8 + 2t + e
//   A: row as C,                                   col = (s * 2 + kh) * 4p + p t + e
//   B: k = (s * 2 + kh) * 4p + p t + e,             n = (wc * tiles_n + j) * 8 + g
// (e < 2 in C, e < p in A and B.) The register slots follow the atoms of layout/atoms.h (c0..c3;
// a0..a(4p-1) and b0..b(2p-1), p to a register), atom after atom in the order of a_slot / b_slot /
// c_slot. A is replicated over the warps_n warps of a row, B over the warps_m warps of a column.
//
// Codegen puts every dot that such a tiling fits on mma.sync (choose_mma_tiling), and kernels
// that lay out an operand themselves (a quantized weight loaded straight into B fragments) call
// the same function, so both agree on where every element lives.
#pragma once

#include <cstdint>
#include <optional>

#include "dtypes/dtype.h"
#include "layout/layout.h"

namespace nibble::layout {

struct MmaTiling {
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  int64_t warps_m = 1;
  int64_t warps_n = 1;
  dtypes::DataType input = dtypes::DataType::f16();

  // Inputs per 32-bit register (p above): 2 for 16-bit inputs, 4 for 8-bit ones.
  int64_t per_register() const { return 32 / input.bits(); }
  int64_t atom_k() const { return 8 * per_register(); }        // 16 or 32
  int64_t a_atom_slots() const { return 4 * per_register(); }  // per thread
  int64_t b_atom_slots() const { return 2 * per_register(); }  // per thread
  int64_t tiles_m() const { return m / 16 / warps_m; }         // per warp
  int64_t tiles_n() const { return n / 8 / warps_n; }          // per warp
  int64_t steps_k() const { return k / atom_k(); }
  // Register slot of the first element of an atom, per thread (the atom's slots follow).
  int64_t a_slot(int64_t tile_m, int64_t step_k) const {
    return (tile_m * steps_k() + step_k) * a_atom_slots();
  }
  int64_t b_slot(int64_t step_k, int64_t tile_n) const {
    return (step_k * tiles_n() + tile_n) * b_atom_slots();
  }
  int64_t c_slot(int64_t tile_m, int64_t tile_n) const { return (tile_m * tiles_n() + tile_n) * 4; }
  Layout a_layout() const;  // m x k
  Layout b_layout() const;  // k x n
  Layout c_layout() const;  // m x n
};

// Largest accumulator tile per thread (f32 registers) the chooser accepts: beyond it the
// accumulators would spill.
inline constexpr int64_t kMaxMmaAccumulatorRegisters = 128;

// The tiling of an m x n x k dot of `input` elements (f16, bf16: m16n8k16; i8, u8, f8e4m3,
// f8e5m2: m16n8k32) over `warps` warps: the warp grid that loads the fewest operand elements per
// warp, the first such in warps_m order; or nullopt when the tile does not divide into atoms, no
// grid divides it, or the accumulators would exceed kMaxMmaAccumulatorRegisters. Which target
// has which atom is codegen's business (target.h).
std::optional<MmaTiling> choose_mma_tiling(int64_t m, int64_t n, int64_t k, int64_t warps,
                                           dtypes::DataType input);

}  // namespace nibble::layout
