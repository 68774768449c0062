// Questions codegen asks of layouts.
//
// Threads. A thread is identified by its index in the block, fused from the thread axes the way
// axis.h defines (thread = 128 * warpgroup + 32 * warp + lane + thread); its warp is index / 32.
// A layout without thread axes is held entirely by thread 0 (a shared-memory tile, a global
// view).
#pragma once

#include <cstdint>
#include <vector>

#include "layout/layout.h"
#include "layout/swizzle.h"

namespace nibble::layout {

// The block-level thread index of a point (its thread-axis entries fused).
int64_t thread_of(const Coord& point);
// The point without its thread-axis entries: where, inside the thread, it lives.
Coord within_thread(const Coord& point);
// 1 + the largest thread index any element maps to.
int64_t threads_used(const Layout& layout);

// An element a thread holds, and where it holds it (the point's non-thread entries: register
// slot, smem offset, ...).
struct OwnedElement {
  int64_t index;
  Coord place;
  bool operator==(const OwnedElement&) const = default;
};
// Every (element, place) of `thread`, by logical index then place.
std::vector<OwnedElement> owned_by_thread(const Layout& layout, int64_t thread);

// Vectorization: for a thread, the largest power of two k such that the elements it holds come
// in groups of k consecutive logical indices (starting at a multiple of k) that sit at
// consecutive coordinates of `memory_axis` (all other entries equal). alignment_bits is the
// largest power of two (capped at 2^20) dividing the bit address (coordinate * element_bits)
// of every group start.
struct ContiguousRun {
  int64_t elements = 1;
  int64_t alignment_bits = 0;
};
ContiguousRun contiguous_run(const Layout& layout, int64_t thread, Axis memory_axis,
                             int element_bits);
// The same over every thread of the layout (the minimum of elements and of alignment).
ContiguousRun contiguous_run(const Layout& layout, Axis memory_axis, int element_bits);
// The widest vector access (in bits, a power of two, at most max_bits) that every thread can use:
// at most elements * element_bits and at most the alignment. At least element_bits.
int64_t vector_width_bits(const Layout& layout, Axis memory_axis, int element_bits,
                          int64_t max_bits = 128);

// How data moves when a register layout is converted to another over the same elements.
enum class ConversionKind {
  RegisterPermutation,  // every thread already holds every element it needs
  WarpShuffle,          // each needed element is held by some thread of the same warp
  SharedMemory,         // some element must cross warps: store to and load from shared memory
};
const char* conversion_name(ConversionKind kind);
// Both layouts must have the same size and only thread axes and `reg` (plus equal device and
// grid placement); throws LayoutError otherwise.
ConversionKind classify_conversion(const Layout& from, const Layout& to);

// Shared-memory bank conflicts of one warp's access. `access` says which thread reads or
// writes which element (thread axes + reg); `smem` where each element lives (smem offsets, in
// elements of element_bits), both over the same elements. Each thread accesses its elements in
// register-slot order, vector_bytes at a time (one instruction per vector). The model of the
// hardware: 32 banks of 4 bytes; a 4-byte-or-narrower access is served for the whole warp at
// once, 8-byte accesses per half warp, 16-byte accesses per quarter warp; each phase costs as
// many wavefronts as the largest number of distinct 4-byte words it touches in one bank.
struct BankReport {
  int64_t instructions = 0;
  int64_t wavefronts = 0;        // total over the instructions
  int64_t ideal_wavefronts = 0;  // what the same bytes cost without conflicts
  int64_t conflicts() const { return wavefronts - ideal_wavefronts; }
};
BankReport shared_memory_wavefronts(const Layout& access, const Layout& smem, int element_bits,
                                    int64_t vector_bytes, const Swizzle& swizzle = {},
                                    int64_t warp = 0);

}  // namespace nibble::layout
