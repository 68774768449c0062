// Where the elements of a register tensor live, as codegen needs it: for every register slot of a
// thread, which logical element it holds, split into a part known at compile time (from the
// slot) and a part computed once per thread at run time (from the thread index).
//
// A register layout, with its thread axes fused into `thread` (layout::fuse), has shard iters on
// `thread` and `reg` and replica iters on the same axes. Grouped by the tensor's shape
// (layout::group), each dimension's index is a sum of digit * weight over its iters. The digits
// of `reg` iters are fixed by the slot, the digits of `thread` iters by the thread:
//
//   index[d] = slot_part[d](slot) + thread_part[d](thread)
//   digit_j  = ((thread - thread_offset) / stride_j) % extent_j
//
// The digit formula holds when the thread iters nest (each stride is a multiple of the span of
// the smaller ones); build_register_map() checks the whole map against layout.apply() for every
// thread of the block, so codegen never relies on a formula that does not hold.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "layout/layout.h"

namespace nibble::codegen {

// One register slot a thread uses: its compile-time share of the element it holds.
struct SlotEntry {
  int64_t slot = 0;
  std::vector<int64_t> index;  // per dimension: the slot's part of the logical index
  int64_t flat = 0;            // the same, as a row-major flat index
  bool primary = true;         // every reg-replica digit is 0
};

// An iter on the fused thread axis.
struct ThreadIter {
  int64_t extent = 1;
  int64_t stride = 1;       // in threads
  int dimension = -1;       // -1: a replica iter
  int64_t weight = 0;       // within its dimension
  int64_t flat_weight = 0;  // in the row-major flat index
};

struct RegisterMap {
  layout::Shape shape;
  int64_t slots = 1;  // span(reg): the per-thread array length
  std::vector<SlotEntry> entries;
  std::vector<ThreadIter> thread_iters;
  int64_t thread_offset = 0;
  int64_t threads = 32;            // of the block
  bool every_thread_valid = true;  // every thread of the block decodes to elements
  bool has_thread_replicas = false;
  // [thread * slots + slot] -> flat element held there, -1 where nothing is.
  std::vector<int64_t> element_of;

  int64_t element_at(int64_t thread, int64_t slot) const {
    return element_of[static_cast<size_t>(thread * slots + slot)];
  }
  // The largest power of two known to divide thread_part[d] for every thread.
  int64_t thread_part_divisor(int dimension) const;
  // The entry of `slot`, or nullptr.
  const SlotEntry* entry_of_slot(int64_t slot) const;
};

// Throws CodegenError (naming the layout) when the layout cannot be mapped this way.
RegisterMap build_register_map(const layout::Layout& layout, const layout::Shape& shape,
                               int64_t threads);

// A key identifying the map of (layout, shape).
std::string register_map_key(const layout::Layout& layout, const layout::Shape& shape);

// For each slot entry of `to` (by index into to.entries): the slot of `from` in the same thread
// that holds element source_of(element of `to`), the same for every thread of the block; or an
// empty vector when no such thread-independent slot map exists (data must cross threads).
// source_of[x] is the flat index in `from` of flat element x of `to`.
std::vector<int64_t> slot_permutation(const RegisterMap& from, const RegisterMap& to,
                                      const std::vector<int64_t>& source_of);

// ---- warp-level atoms found in a register map -----------------------------------------------

// The 8x8 matrices of 16-bit elements that ldmatrix/stmatrix move (layout/atoms.h), found in the
// register slots of a 2-D tensor. A 32-bit register word w (slots 2w, 2w+1) of every warp is one
// matrix whose top-left element (row0, col0), both multiples of 8, is the same for all lanes of
// the warp, lane l holding
//   without .trans: (row0 + l / 4, col0 + 2 (l % 4) + h)      h = 0, 1 (slots 2w, 2w+1)
//   with .trans:    (row0 + 2 (l % 4) + h, col0 + l / 4)
// Row r of the matrix is then the 8 elements (row0 + r, col0 ..col0 + 7) in both forms, which
// is what each lane addresses.
struct MatrixFragments {
  bool transpose = false;
  std::vector<int64_t> words;  // every word of the thread, ascending
};
// The matrices of `map` when every slot of every thread is in one, every thread of the block
// holds elements and each element is held once, or (replicas_allowed, for loads) once per warp
// that holds it; else nullopt.
std::optional<MatrixFragments> match_matrix_fragments(const RegisterMap& map,
                                                      bool replicas_allowed);

// A function of a few bits of the thread index: values[the bits `bits` of t, bits[0] lowest].
struct ThreadBitTable {
  std::vector<int> bits;
  std::vector<int64_t> values;
  int64_t of(int64_t thread) const;
};

// A layout conversion inside warps by shfl.sync.idx, in rounds of one shuffle each. In a round,
// every thread t sends its slot send_slot(t), receives from lane source_lane(t) of its own warp,
// and keeps what it receives as its entry receive_entry(t) of the target map (an index into
// to.entries; to.entries.size(): the thread keeps nothing this round), where
//   source_lane(t) = lane_constant ^ XOR of lane_columns[i] over the set bits i of t
// (a conversion whose layouts differ by a linear map of thread bits, the usual case for
// power-of-two layouts, has this form) and send_slot, receive_entry are ThreadBitTables of at
// most four bits (a longer chain of selects would cost more than the shared-memory route).
struct LaneShuffle {
  int64_t lane_constant = 0;
  std::vector<int64_t> lane_columns;  // per bit of the thread index
  ThreadBitTable send_slot;
  ThreadBitTable receive_entry;
  // Every thread receives from itself: a register read, no shuffle.
  bool stays_in_thread() const;
};
// Rounds of shuffles that give each entry of `to` its value source_of(element) from `from` (as
// slot_permutation), or nullopt when some element is held by no thread of the receiver's warp,
// the rounds cannot be scheduled (each sender sends one slot, each receiver takes one value per
// round) in twice the target's entries, or a round's choices are not of the form above.
std::optional<std::vector<LaneShuffle>> warp_shuffle_plan(const RegisterMap& from,
                                                          const RegisterMap& to,
                                                          const std::vector<int64_t>& source_of);

}  // namespace nibble::codegen
