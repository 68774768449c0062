// Hardware atoms: the layouts the GPU's data-movement and tensor-core instructions impose.
//
// Each atom is a layout over a 2-D logical shape (rows, columns; row-major flat index) on the
// axes the instruction defines: `lane` and `reg` for per-warp register fragments (plus `warp`
// for warpgroup instructions, where it is the warp inside the warpgroup), `smem` for
// shared-memory operands. Register slots count *elements*: the two f16 halves of one 32-bit
// register are slots 2r and 2r+1, the four bytes of an i8 register slots 4r..4r+3;
// pack(atom.layout, 32 / element_bits, reg) gives the view in 32-bit registers.
//
// Instruction selection divides an operand's layout by an atom's layout (algebra.h): the
// widest atom that divides, and whose alignment holds, is the instruction to use.
//
// The fragment tables come from the PTX ISA ("Matrix Fragments for mma.m16n8k16", ".m16n8k32",
// "ldmatrix", "wgmma .m64nNk16 register fragments"); tests/layout/test_atoms.cpp checks every
// (lane, register) -> (row, column) entry against tables written from those figures.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "layout/layout.h"
#include "layout/swizzle.h"

namespace nibble::layout {

struct Atom {
  std::string name;  // e.g. "mma.m16n8k16.a"
  Shape shape;       // {rows, columns}
  Layout layout;
  int element_bits = 16;
  int64_t alignment_bits = 0;  // required alignment of the memory side, 0 when not a memory op
  Swizzle swizzle;             // for shared-memory operand atoms
};

// mma.sync.aligned.m16n8k16 with f16/bf16 inputs. A: 16x16 (m x k), B: 16x8 (k x n),
// C/D: 16x8 (m x n) with f32 (accumulator_bits 32) or f16 accumulators.
Atom mma_m16n8k16_a();
Atom mma_m16n8k16_b();
Atom mma_m16n8k16_c(int accumulator_bits = 32);
// mma.sync.aligned.m16n8k32 with 8-bit inputs (s8/u8, e4m3/e5m2). A: 16x32, B: 32x8,
// C/D: 16x8 (s32 or f32).
Atom mma_m16n8k32_a();
Atom mma_m16n8k32_b();
Atom mma_m16n8k32_c();

// ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].b16: `count` 8x8 matrices of 16-bit elements,
// stacked vertically (matrix m is rows 8m..8m+7), as the destination registers hold them.
// Without .trans lane l holds row l/4, columns 2(l%4) and 2(l%4)+1 of each matrix; with .trans
// it holds column l/4, rows 2(l%4) and 2(l%4)+1. Each row is 16 contiguous bytes in memory
// (alignment_bits 128).
Atom ldmatrix(int count, bool transpose);
// Which lane supplies the address of which row: row r of the stack comes from lane r.
Layout ldmatrix_row_addresses(int count);
// stmatrix: the same fragments, stored.
Atom stmatrix(int count, bool transpose);

// cp.async.{ca,cg}.shared.global with 4, 8 or 16 bytes: one thread copies bytes * 8 /
// element_bits contiguous elements (shape {1, n}); the layout is the shared-memory side, the
// global side is the same run on gmem; both aligned to the copy size.
Atom cp_async(int bytes, int element_bits);

// wgmma.mma_async.m64nNk16 (f16/bf16): the warpgroup's register fragments. A from registers:
// 64x16; accumulator D: 64xN (N a multiple of 8 up to 256), f32 or f16. Warp w of the
// warpgroup owns rows 16w..16w+15.
Atom wgmma_a();
Atom wgmma_d(int n, int accumulator_bits = 32);
// The shared-memory operand unit of wgmma and TMA in K-major form: 8 rows of
// swizzle-width bytes (16, 32, 64 or 128; 16 means no swizzle), rows contiguous, with the
// matching swizzle.
Atom wgmma_smem_operand(int swizzle_bytes, int element_bits);

// Every atom above with its default parameters, and lookup by name.
std::vector<Atom> all_atoms();
std::optional<Atom> find_atom(std::string_view name);

}  // namespace nibble::layout
