// The weight-only quantized GEMM of LLM serving: C[M, N] = A[M, K] · dequant(W[K, N]).
//
// A and C are f16 or bf16; W holds codes of any integer or small-float type of at most 8 bits
// with one scale (of A's type) per group of `group_size` rows in each column, and optionally
// zero points (examples/quant/quantize.h defines dequant exactly). The kernels run on mma.sync,
// or on sm_90a's wgmma past M = 16 (past 8 for weights of 5 bits or more):
//
//   - W is re-packed offline (repack_weight) so that each thread of a block reads its B
//     fragments of a whole [block_k, block_n] tile as one contiguous run of bytes (16 bytes for
//     4-bit weights in 64-column tiles, 32 in the 128-column decode tiles; 48 for 3- and 6-bit
//     weights in 64-column tiles). Where the conversion plan pairs the halves of a word
//     (integers of 1, 2, 4 bits), the elements of a run follow its output order, so the lop3
//     dequantization leaves each f16x2 word exactly where the mma wants it; other widths pay a
//     byte permute per word when the operands are assembled.
//   - One ring of `stages` slots in shared memory holds what a k tile reads: the A tile (zeros
//     past M, read as A fragments with ldmatrix), the W tile (copied as bytes, 16 contiguous bytes
//     per thread and cp.async, so that a warp reads whole sectors; each thread reads its own run
//     back with 16-byte shared loads and bitcasts it to the weight type) and the scale rows. The
//     copies run stages - 1 iterations ahead of the math.
//   - The decode schedule (small M: memory-bound) uses 8- to 32-row tiles (the transposed dot of
//     weights_as_a where its tiling allows) and splits K over
//     blockIdx.z when N alone gives too few blocks; split partial sums meet in an f32 workspace
//     through atomics, and a second small kernel (quant_gemm_finish) rounds them into C and clears
//     the workspace for the next call, or (finish_in_gemm) the last split of each tile does; on
//     sm_90a two splits may instead form a cluster that adds through shared memory
//     (cluster_split). The prefill schedule (large M: compute-bound) uses large
//     tiles and no split on mma.sync. Its wgmma form (config.wgmma) runs the transposed dot with
//     the dequantized, scaled weights as wgmma's A operand in registers and the activation ring
//     read in place by wgmma as B; each k tile's dot is async and overlaps the dequantization of
//     the next; K is split (through the workspace) where the blocks fill at most half the SMs.
//     The decode's wgmma form dots the unscaled weights and scales each pair of k tiles' partial
//     product into the accumulator while the next pair's dots run.
//
// What a configuration requires of a call (check_quant_gemm_shape, before any launch):
// N a multiple of block_n, K a multiple of block_k * split_k * unroll (of 2 * block_k with wgmma)
// and of the group size (which must be a multiple of 16 and divide block_k or be a multiple of it),
// M ≥ 1; A, W, the scales and zero points 16-byte aligned (checked at launch).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "dtypes/dtype.h"
#include "layout/mma_tiling.h"
#include "vm/program.h"

namespace nibble::examples {

enum class QuantSchedule { Decode, Prefill };

struct QuantGemmConfig {
  dtypes::DataType weight = dtypes::DataType::uint(4);
  dtypes::DataType activation = dtypes::DataType::f16();  // A, C and the scales
  int64_t group_size = 128;  // 0: per-channel (one group spans all of K)
  bool zero_points = false;  // unsigned integer weights only: W = (q - zero) · scale
  QuantSchedule schedule = QuantSchedule::Decode;
  int64_t block_m = 16;
  int64_t block_n = 64;
  int64_t block_k = 128;
  int warps = 4;
  int64_t split_k = 1;  // blocks along K; > 1 writes the f32 workspace
  int64_t unroll = 1;   // k tiles per iteration (per ring slot)
  int64_t stages = 2;   // slots of the A ring (1: no overlap of copy and math)
  // Decode only, with split_k 1: > 0 launches this many blocks per row of M tiles, each taking
  // an equal share of the (column tile, k iteration) pairs in order (stream-K); shares that
  // cross a column tile add their partial sums through the f32 workspace like split K.
  int64_t persistent_blocks = 0;
  // Decode only, where every iteration's k range lies in one group: the mma runs on the unscaled
  // weights into an f32 partial sum per iteration, which the group's scale multiplies into the
  // accumulator (one fma per accumulator per iteration instead of one f16x2 multiply per two
  // weights; the products are not rounded to the activation type first).
  bool scale_after_mma = false;
  // > 0: registers held to what this many blocks per SM allow (vm::Program::min_blocks_per_sm).
  int min_blocks_per_sm = 0;
  // Decode with scale_after_mma and no zero points, or wgmma: the dot runs transposed,
  // C^T[block_n, block_m] += dequant(W)^T · A^T, so the dequantized weights are the mma's A
  // operand and the activations its B operand. A tile of block_m = 8 rows is then one n8 atom:
  // for M ≤ 8 half the activation traffic through shared memory and half the mma instructions
  // of a 16-row tile whose rows past M are zeros.
  bool weights_as_a = false;
  // With weights_as_a, sm_90a only: the transposed dot runs on wgmma, the dequantized weights its
  // A operand in registers and the activation tile its B operand, read by wgmma from shared
  // memory where cp.async left it (K-major rows of 128 bytes, 128-byte swizzle). Needs block_n a
  // multiple of 16 * warps (m16 rows of fragments over the warps of whole warpgroups), block_k *
  // unroll = 128 bytes of activations, and block_m a multiple of 8 up to 256. Prefill scales the
  // weights (and subtracts zero points) before the dot, as the other prefill kernels do; decode
  // takes scale_after_mma, each pair of k tiles (one iteration) in one group, its partial sum
  // scaled into the accumulator while the next pair's dots run.
  bool wgmma = false;
  // The mma.sync loop (no wgmma), stages > 1: each iteration waits for its tile, passes the
  // barrier, and only then issues the copy of the tile stages - 1 ahead, into the slot every thread
  // has finished reading (the previous iteration's): one barrier per iteration instead of two, the
  // copy issued one wait later.
  bool copy_after_wait = false;
  // Split K (no persistent blocks): the last of a tile's split_k blocks to add its partial sums
  // to the workspace (a counter per output tile, vm fetch_add) rounds the tile's sums into C and
  // clears them and the counter, so that no quant_gemm_finish launch follows the GEMM.
  bool finish_in_gemm = false;
  // sm_90a, 2 to 16 splits of K (no persistent blocks): the split_k blocks of an output tile form
  // a cluster and add their partial sums through distributed shared memory, in split order, each
  // rounding block_n / split_k of the tile's columns into C: no workspace, no atomics, no
  // quant_gemm_finish.
  bool cluster_split = false;

  // Partial sums meet in the f32 workspace (split K without clusters, or persistent blocks), and
  // quant_gemm_finish (or, with finish_in_gemm, the tile's last block) rounds them into C.
  bool uses_workspace() const { return (split_k > 1 && !cluster_split) || persistent_blocks > 0; }
  bool launches_finish() const { return uses_workspace() && !finish_in_gemm; }
  std::string name() const;  // e.g. "quant_gemm_u4_f16_g128_decode_16x64x128_w4_s1_u1"
};

class QuantGemmError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// The type W is stored and read as. Unsigned integers with the implicit zero point 2^(B-1) are
// stored as the signed integers q - 2^(B-1) of the same width (the code with its top bit
// flipped), so the signed conversion plan yields the centred value in the same instructions and
// the kernel subtracts nothing. Every other type is stored as it is.
dtypes::DataType stored_weight_type(const QuantGemmConfig& config);
// The stored code of weight code `code` (quantize.h's code of config.weight).
uint64_t stored_code(const QuantGemmConfig& config, uint64_t code);

// Where each element of a re-packed W tile goes: the tile's [block_k, block_n] elements are
// stored thread after thread (`threads` = 32 * warps_n runs of `per_thread` elements, or
// 32 * warps_m with weights_as_a, whose tiling is that of the transposed dot); the run of thread
// t holds, at position r, tile element (k_of(t, r), n_of(t, r)). The bits of the
// flat index t * per_thread + r map one to one onto bits of the tile's flat index
// k * block_n + n (every extent is a power of two), which is what lets the kernel turn the
// loaded runs into B fragments (A fragments of the transposed tile with weights_as_a) by
// reshape and permute alone.
struct FragmentOrder {
  // The dot's tiling: [block_m, block_n, block_k], or [block_n, block_m, block_k] with
  // weights_as_a.
  layout::MmaTiling tiling;
  int64_t threads = 0;
  int64_t per_thread = 0;
  // destination_bit[b]: the bit of k * block_n + n that bit b of t * per_thread + r becomes.
  std::vector<int> destination_bit;

  int64_t tile_index(int64_t thread, int64_t position) const;  // k * block_n + n
};

// Throws QuantGemmError when the configuration cannot be built (naming the field): tiles that
// do not divide into mma atoms or warps, extents that are not powers of two, a weight type with
// no conversion plan to the activation type, zero points on a type that is not unsigned.
FragmentOrder fragment_order(const QuantGemmConfig& config);

// The GEMM kernel. Parameters: a, w (re-packed), s, [z], then c (the activation type), or
// workspace (uses_workspace(): f32 [M, N], zero on entry and left to quant_gemm_finish), or with
// finish_in_gemm workspace, counters and c (workspace and counters zero on entry and left zero);
// then m, n, k. Grid: (N / block_n, cdiv(M, block_m), split_k), or (persistent_blocks,
// cdiv(M, block_m), 1).
vm::Program quant_gemm(const QuantGemmConfig& config);
// The i32 counters a finish_in_gemm call of M rows and N columns needs: one per output tile.
int64_t quant_gemm_counters(const QuantGemmConfig& config, int64_t m, int64_t n);

// c[i] = round(workspace[i]) and workspace[i] = 0, for i < count: the end of a split-K GEMM.
// Parameters: workspace (f32), c (`activation`), count.
vm::Program quant_gemm_finish(dtypes::DataType activation);

// Picks a configuration for a call of shape (m, n, k) with the given weight: the decode
// schedule up to M = 64 (K split until the grid has 4 to 16 blocks per SM of `sm_count`, by tile
// and width, 16-row 4-bit tiles split 16 ways on 256 columns; the splits finished by a second
// kernel, by each tile's last block, or on sm_90a by a cluster), prefill beyond; on wgmma where the
// kernel is for `sm` 90 (sm_90a; the default, 80, gives kernels every target from sm_80 on runs):
// prefill past M = 32, decode past M = 16 (past 8 for weights of 5 bits or more). Throws
// QuantGemmError when no configuration fits the shape.
QuantGemmConfig choose_quant_gemm_config(int64_t m, int64_t n, int64_t k, dtypes::DataType weight,
                                         dtypes::DataType activation, int64_t group_size,
                                         bool zero_points, int sm_count = 132, int sm = 80);

// Throws QuantGemmError naming what the call (m, n, k) violates for `config`.
void check_quant_gemm_shape(const QuantGemmConfig& config, int64_t m, int64_t n, int64_t k);

}  // namespace nibble::examples
