// Iters and layouts: where every logical element of a tensor lives.
//
// An Iter (extent, stride, axis) walks `extent` steps of `stride` along one axis.
//
// A Layout L = (D, R, O) maps a flat logical index x in [0, size) to a *set* of coordinates:
//   - the shard D, an ordered list of iters, consumes x row-major: the last iter takes the
//     fastest-varying digit. With D = (e0:s0@a0, ..., ek:sk@ak) and x written in the mixed radix
//     (e0, ..., ek) as digits (d0, ..., dk), the shard puts x at sum_i di*si on axis ai;
//   - the replica R, an unordered list of iters independent of x: the element also lives at
//     every sum of the replica's steps (the same value held by several warps, or by every GPU
//     of a data-parallel group);
//   - the offset O, one constant per axis.
// So L(x) = { D(x) + r + O : r in R }: a set, because of the replica. A tensor of shape
// (n0, ..., nr) is indexed by its row-major flat index; algebra.h groups the shard by a shape
// when an operation needs the dimensions.
//
// Notation (printed by to_string, read by parse):
//   S[(8,4,2):(4@lane,1@lane,1@reg)] + R[4:1@warp] + 16@smem
// The shard S[...] comes first (S[8:1@lane] for one iter, S[():()] for a layout of one
// element), then the replica R[...] if any, then one `value@axis` term per non-zero offset.
// Whitespace is free. Extents are positive, strides and offsets non-negative.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "layout/axis.h"

namespace nibble::layout {

using Shape = std::vector<int64_t>;

struct Iter {
  int64_t extent = 1;
  int64_t stride = 0;
  Axis axis;

  bool operator==(const Iter&) const = default;
};

// A point in the physical space: a value per axis, zero where unmentioned. Entries are kept
// sorted by axis and never hold a zero, so equal points compare equal.
class Coord {
 public:
  Coord() = default;
  Coord(std::initializer_list<std::pair<Axis, int64_t>> entries);

  int64_t get(Axis axis) const;
  void add(Axis axis, int64_t value);
  void set(Axis axis, int64_t value);
  const std::vector<std::pair<Axis, int64_t>>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

  Coord operator+(const Coord& other) const;
  bool operator==(const Coord&) const = default;
  auto operator<=>(const Coord&) const = default;

  // "(lane=3, reg=1)"; "()" for the origin.
  std::string to_string() const;

 private:
  std::vector<std::pair<Axis, int64_t>> entries_;
};

class Layout {
 public:
  // The layout of a single element at the origin: S[():()].
  Layout() = default;
  // Throws LayoutError for a non-positive extent or a negative stride or offset.
  explicit Layout(std::vector<Iter> shard, std::vector<Iter> replica = {}, Coord offset = {});

  // Reads the notation above; errors name the column (1-based) and what was expected.
  static Layout parse(std::string_view text);
  // A row-major layout of `shape` on one axis: S[(4,8):(8@smem,1@smem)].
  static Layout row_major(const Shape& shape, Axis axis);
  // A column-major layout: the first dimension is contiguous.
  static Layout column_major(const Shape& shape, Axis axis);

  const std::vector<Iter>& shard() const { return shard_; }
  const std::vector<Iter>& replica() const { return replica_; }
  const Coord& offset() const { return offset_; }

  // Number of logical elements: the product of the shard extents.
  int64_t size() const;
  // Number of places each element lives in (counting coinciding ones): product of replica
  // extents.
  int64_t replication() const;
  // Axes mentioned by any iter or offset, in axis order.
  std::vector<Axis> axes() const;
  bool uses(Axis axis) const;
  // One past the largest coordinate on `axis` over all elements and replicas (1 if unused).
  int64_t span(Axis axis) const;

  // The set L(x), sorted. Throws LayoutError when x is outside [0, size).
  std::vector<Coord> apply(int64_t x) const;
  // D(x) + O: the place of x with every replica digit zero.
  Coord place(int64_t x) const;
  // Every replica displacement r (sum of replica steps), with repetitions, in a fixed order.
  std::vector<Coord> replica_steps() const;

  std::string to_string() const;
  bool operator==(const Layout&) const = default;

 private:
  std::vector<Iter> shard_;
  std::vector<Iter> replica_;
  Coord offset_;
};

// The notation of a list of iters: "(8,4):(4@lane,1@reg)", "8:1@lane", "():()".
std::string iters_to_string(const std::vector<Iter>& iters);
std::string shape_to_string(const Shape& shape);
int64_t shape_size(const Shape& shape);

}  // namespace nibble::layout
