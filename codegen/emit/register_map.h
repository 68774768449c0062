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

}  // namespace nibble::codegen
