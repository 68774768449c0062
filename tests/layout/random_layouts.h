// Seeded generators of small random layouts for the property tests. The generator is a plain
// 64-bit LCG/xorshift so the sequence is the same on every platform and standard library.
#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include <catch2/catch.hpp>

#include "layout/algebra.h"
#include "layout/layout.h"

// Failures print coordinates and layouts in the notation.
namespace Catch {
template <>
struct StringMaker<nibble::layout::Coord> {
  static std::string convert(const nibble::layout::Coord& coord) { return coord.to_string(); }
};
template <>
struct StringMaker<nibble::layout::Layout> {
  static std::string convert(const nibble::layout::Layout& layout) { return layout.to_string(); }
};
}  // namespace Catch

// REQUIRE for the inner loops of exhaustive checks: Catch only sees the failing evaluation, so
// millions of passing comparisons stay cheap.
#define REQUIRE_FAST(...)                     \
  do {                                        \
    if (!(__VA_ARGS__)) REQUIRE(__VA_ARGS__); \
  } while (false)

namespace nibble::layout::testing {

class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}

  uint64_t next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
  template <typename T>
  T pick(const std::vector<T>& items) {
    return items[static_cast<size_t>(below(static_cast<int64_t>(items.size())))];
  }
  bool chance(int percent) { return below(100) < percent; }

 private:
  uint64_t state_;
};

inline std::vector<Axis> small_axes() {
  return {Axis::lane(), Axis::warp(), Axis::reg(), Axis::smem()};
}

inline Iter random_iter(Random& random, const std::vector<int64_t>& extents,
                        const std::vector<int64_t>& strides) {
  return Iter{random.pick(extents), random.pick(strides), random.pick(small_axes())};
}

// Shard of `count` iters (size <= 256), optional replica and offset.
inline Layout random_layout(Random& random, bool with_replica = true, bool with_offset = true) {
  std::vector<Iter> shard;
  int64_t size = 1;
  int64_t count = 1 + random.below(4);
  for (int64_t i = 0; i < count; ++i) {
    Iter iter = random_iter(random, {1, 2, 2, 3, 4, 4, 8}, {0, 1, 1, 2, 3, 4, 8, 16});
    if (size * iter.extent > 256) break;
    size *= iter.extent;
    shard.push_back(iter);
  }
  std::vector<Iter> replica;
  if (with_replica && random.chance(30)) {
    int64_t replicas = 1 + random.below(2);
    for (int64_t i = 0; i < replicas; ++i)
      replica.push_back(random_iter(random, {2, 3}, {1, 2, 4, 32}));
  }
  Coord offset;
  if (with_offset && random.chance(30)) offset.add(random.pick(small_axes()), random.below(5));
  return Layout(shard, replica, offset);
}

// A layout over a random 2-D shape whose shard splits at the dimension boundary.
struct Shaped {
  Layout layout;
  Shape shape;
};
inline Shaped random_shaped(Random& random, bool with_replica = true, bool with_offset = true) {
  Layout rows = random_layout(random, false, false);
  Layout columns = random_layout(random, with_replica, with_offset);
  while (rows.size() * columns.size() > 1024)
    rows = random_layout(random, false, false);
  std::vector<Iter> shard = rows.shard();
  shard.insert(shard.end(), columns.shard().begin(), columns.shard().end());
  return Shaped{Layout(shard, columns.replica(), columns.offset()),
                Shape{rows.size(), columns.size()}};
}

// An injective layout on one or two axes built from a mixed radix with gaps: the digits it
// skips are exactly what a complement must fill.
inline Layout random_injective(Random& random) {
  std::vector<Iter> iters;
  for (Axis axis : {Axis::reg(), Axis::smem()}) {
    if (random.chance(40)) continue;
    int64_t place = 1;
    int64_t digits = 1 + random.below(2);
    for (int64_t i = 0; i < digits; ++i) {
      int64_t gap = random.pick<int64_t>({1, 1, 2, 3});
      place *= gap;
      int64_t extent = random.pick<int64_t>({2, 3, 4});
      iters.push_back(Iter{extent, place, axis});
      place *= extent;
    }
  }
  // Random order of the digits in the logical index.
  for (size_t i = iters.size(); i > 1; --i) {
    std::swap(iters[i - 1], iters[static_cast<size_t>(random.below(static_cast<int64_t>(i)))]);
  }
  Coord offset;
  if (random.chance(30)) offset.add(Axis::smem(), random.below(4));
  return Layout(iters, {}, offset);
}

// A layout whose lane and reg iters cover [0, span) of each exactly (like every register
// layout), with some digits on warp and some broadcast (stride 0).
inline Layout random_register_layout(Random& random) {
  std::vector<Iter> iters;
  for (Axis axis : {Axis::lane(), Axis::reg(), Axis::warp()}) {
    int64_t place = 1;
    int64_t digits = axis == Axis::warp() ? random.below(2) : 1 + random.below(2);
    for (int64_t i = 0; i < digits; ++i) {
      int64_t extent = random.pick<int64_t>({2, 2, 4});
      iters.push_back(Iter{extent, place, axis});
      place *= extent;
    }
  }
  if (random.chance(25)) iters.push_back(Iter{2, 0, Axis::reg()});
  for (size_t i = iters.size(); i > 1; --i) {
    std::swap(iters[i - 1], iters[static_cast<size_t>(random.below(static_cast<int64_t>(i)))]);
  }
  std::vector<Iter> replica;
  if (random.chance(20)) replica.push_back(Iter{2, 1, Axis::gmem()});
  return Layout(iters, replica);
}

}  // namespace nibble::layout::testing
