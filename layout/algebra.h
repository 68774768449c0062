// The operations of the layout algebra.
//
// Every function is pure: it returns a new layout or throws LayoutError saying, in the terms of
// the notation, why it cannot. Laws that hold (and are property-tested in tests/layout):
//
//   canonicalize(L)(x) == L(x)                               for every x
//   tile(A, B)(a * |B| + b) == A'(a) + B(b)                  (A' = A scaled by the spans of B)
//   divide(tile(A, B), B) == A,  divide_outer(tile(A, B), A) == B       (as functions)
//   compose(A, B)(x) == union of A(y) for y in B(x)
//   complement(L): {C(c) + L(x) - O} is every point of the box exactly once
//   inverse(L, axes)(box_index(p)) contains x  for every p in L(x) projected onto axes
//   pack(unpack(L, n, a), n, a) == canonicalize(L),  unpack(pack(L, n, a), n, a) == L
//
// Shapes. Layouts are functions of a flat row-major index; an operation that needs dimensions
// (tile, divide, slice, permute, group) takes the tensor shape and splits the shard into one
// group of iters per dimension. That split exists when every dimension boundary falls on an
// iter boundary after splitting iters (4:1 = (2,2):(2,1)); group() says which dimension fails.
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "layout/layout.h"

namespace nibble::layout {

// ---- Normal form ----------------------------------------------------------------------------

// Drops extent-1 iters, writes stride-0 shard iters as 0@idx and merges neighbours that walk
// on as one iter (outer stride == inner stride * inner extent, same axis). The replica loses
// stride-0 iters (they add no place), is sorted by axis and descending stride, and merged the
// same way. Zero offsets disappear.
Layout canonicalize(const Layout& layout);

// Exhaustive comparison of L(x) for every x (both sizes must match); for tests and checks of
// small layouts. Throws LayoutError when size * replication exceeds `limit`.
bool same_function(const Layout& a, const Layout& b, int64_t limit = int64_t{1} << 22);

// ---- Shapes ---------------------------------------------------------------------------------

// The shard split into one iter list per dimension of `shape` (size must match).
std::vector<std::vector<Iter>> group(const Layout& layout, const Shape& shape);
// The same function with its shard split at the boundaries of `shape` where possible, so the
// printout shows the dimensions. Throws when the sizes differ.
Layout reshape(const Layout& layout, const Shape& shape);
// Dimension `dim` restricted to [begin, end): a layout over the shape with that extent replaced.
Layout slice(const Layout& layout, const Shape& shape, size_t dim, int64_t begin, int64_t end);
// Dimensions reordered: result dimension i is input dimension perm[i].
Layout permute(const Layout& layout, const Shape& shape, const std::vector<size_t>& perm);

// ---- Products and quotients -----------------------------------------------------------------

// Every axis of `layout` scaled: strides and offset on axis a multiplied by factor(a).
Layout scale(const Layout& layout, const std::vector<std::pair<Axis, int64_t>>& factors);

// A(x / |B|) + B(x % |B|) per dimension: the shape is outer_shape * inner_shape elementwise, the
// coordinates add, nothing is rescaled. Replicas and offsets add.
Layout direct_sum(const Layout& outer, const Layout& inner);
Layout direct_sum(const Layout& outer, const Shape& outer_shape, const Layout& inner,
                  const Shape& inner_shape);

// The Kronecker product: a layout of tiles `inner` arranged by `outer`. Outer strides and
// offsets on every axis are multiplied by inner.span(axis) first, so tiles never overlap on an
// axis both use (two lane tiles of 32 become lanes 0..31 and 32..63; a warp layout over a lane
// tile is left alone).
Layout tile(const Layout& outer, const Layout& inner);
Layout tile(const Layout& outer, const Shape& outer_shape, const Layout& inner,
            const Shape& inner_shape);

// The outer factor A with tile(A, inner) == whole, or LayoutError with the reason (the tile's
// iters are not the innermost iters of a dimension, an extent does not divide, a stride of the
// rest is not a multiple of the tile's span, ...). The result shape is whole / inner.
Layout divide(const Layout& whole, const Layout& inner);
Layout divide(const Layout& whole, const Shape& whole_shape, const Layout& inner,
              const Shape& inner_shape);
// The inner factor B with tile(outer, B) == whole.
Layout divide_outer(const Layout& whole, const Layout& outer);
Layout divide_outer(const Layout& whole, const Shape& whole_shape, const Layout& outer,
                    const Shape& outer_shape);

// ---- Functions of layouts -------------------------------------------------------------------

// outer o inner: x -> outer(inner(x)). `inner` must live on one axis (any: its values are read
// as flat indices of `outer`; idx is customary) and stay inside [0, outer.size()). Its iters
// must not carry across the digits of outer's shard: each inner step moves whole digits or
// stays inside one.
Layout compose(const Layout& outer, const Layout& inner);

// The layout C that fills the gaps of `layout`: every point of the box
// prod_a [0, bound_a) is C(c) + L(x) - O for exactly one (c, x). Axes of the layout without a
// bound use span(L) - O as their bound; bounds may name axes the layout does not use.
// The layout must be injective (no overlapping steps) with strides that divide each other.
Layout complement(const Layout& layout, const std::vector<std::pair<Axis, int64_t>>& bounds = {});

// The inverse of a layout on a subset of its axes: which logical elements live at a point.
struct InverseLayout {
  // From the box index of a point to the flat logical indices there (on idx). Shard digits of
  // the layout that do not move on the chosen axes become the replica: those elements share
  // the point.
  Layout layout;
  std::vector<Axis> axes;        // the chosen axes, outermost first
  std::vector<int64_t> extents;  // the box: span - offset per chosen axis
  Coord origin;                  // the layout's offset on the chosen axes

  // Row-major index of a point of the box (the point's other axes are ignored).
  int64_t box_index(const Coord& point) const;
};
// The chosen iters must cover each chosen axis without gaps or overlap (lane 0..31 exactly).
InverseLayout inverse(const Layout& layout, const std::vector<Axis>& axes);

// ---- Projections and re-typing --------------------------------------------------------------

// The layout restricted to axes satisfying `keep`: other shard iters become stride 0, other
// replica iters and offsets disappear.
Layout restrict_to(const Layout& layout, bool (*keep)(Axis));
// Drops the thread axes: where the data sits in storage (register slot, smem offset) as a
// function of the element, whichever thread holds it.
Layout storage(const Layout& layout);
// Rewrites every axis whose parent is `parent` onto the parent (lane/warp/warpgroup onto
// thread, mesh axes onto gpu).
Layout fuse(const Layout& layout, Axis parent);

// Sub-byte packing. pack(L, n, a) views n consecutive elements (along the innermost iter, which
// must be n contiguous steps of stride 1 on memory axis a) as one element of n times the width:
// size and every coordinate on a are divided by n. unpack is its inverse.
Layout pack(const Layout& layout, int64_t n, Axis axis);
Layout unpack(const Layout& layout, int64_t n, Axis axis);

}  // namespace nibble::layout
