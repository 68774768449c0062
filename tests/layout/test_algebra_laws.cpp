// The laws of the algebra, checked by exhaustive evaluation on thousands of seeded random
// layouts (section 4 of DESIGN.md).
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "layout/algebra.h"
#include "layout/error.h"
#include "random_layouts.h"

using namespace nibble::layout;
using nibble::layout::testing::Random;

namespace {

std::set<Coord> sum_sets(const std::vector<Coord>& a, const std::vector<Coord>& b) {
  std::set<Coord> result;
  for (const Coord& p : a) {
    for (const Coord& q : b)
      result.insert(p + q);
  }
  return result;
}

std::set<Coord> as_set(const std::vector<Coord>& points) {
  return {points.begin(), points.end()};
}

std::vector<std::pair<Axis, int64_t>> spans_of(const Layout& inner, const Layout& outer) {
  std::vector<std::pair<Axis, int64_t>> factors;
  for (Axis axis : outer.axes())
    factors.push_back({axis, inner.span(axis)});
  return factors;
}

// The single value a point has on the axis an inner layout of compose() uses.
int64_t index_value(const Coord& point) {
  return point.entries().empty() ? 0 : point.entries().front().second;
}

}  // namespace

TEST_CASE("canonicalize preserves apply", "[layout][laws]") {
  Random random(11);
  for (int i = 0; i < 3000; ++i) {
    Layout layout = testing::random_layout(random);
    Layout canonical = canonicalize(layout);
    CAPTURE(layout.to_string(), canonical.to_string());
    REQUIRE(same_function(layout, canonical));
    REQUIRE(canonicalize(canonical) == canonical);  // idempotent
  }
  CHECK(canonicalize(Layout::parse("S[(2,4,1,2):(8@reg,2@reg,5@lane,1@reg)]")).to_string() ==
        "S[16:1@reg]");
  CHECK(canonicalize(Layout::parse("S[(2,2):(0@lane,0@reg)] + R[(2,2,3):(2@warp,1@warp,0@lane)]"))
            .to_string() == "S[4:0@idx] + R[4:1@warp]");
}

TEST_CASE("tile is the Kronecker product and direct_sum adds coordinates", "[layout][laws]") {
  Random random(12);
  for (int i = 0; i < 1500; ++i) {
    Layout outer = testing::random_layout(random);
    Layout inner = testing::random_layout(random);
    if (outer.size() * inner.size() > 4096) continue;
    Layout tiled = tile(outer, inner);
    Layout summed = direct_sum(outer, inner);
    Layout scaled = scale(outer, spans_of(inner, outer));
    CAPTURE(outer.to_string(), inner.to_string(), tiled.to_string());
    for (int64_t a = 0; a < outer.size(); ++a) {
      for (int64_t b = 0; b < inner.size(); ++b) {
        int64_t x = a * inner.size() + b;
        REQUIRE_FAST(as_set(tiled.apply(x)) == sum_sets(scaled.apply(a), inner.apply(b)));
        REQUIRE_FAST(as_set(summed.apply(x)) == sum_sets(outer.apply(a), inner.apply(b)));
      }
    }
  }
}

TEST_CASE("2-D tile interleaves the dimensions", "[layout][laws]") {
  Random random(13);
  for (int i = 0; i < 800; ++i) {
    auto outer = testing::random_shaped(random);
    auto inner = testing::random_shaped(random);
    if (outer.layout.size() * inner.layout.size() > 4096) continue;
    Layout tiled = tile(outer.layout, outer.shape, inner.layout, inner.shape);
    Layout scaled = scale(outer.layout, spans_of(inner.layout, outer.layout));
    const int64_t columns = outer.shape[1] * inner.shape[1];
    CAPTURE(outer.layout.to_string(), inner.layout.to_string(), tiled.to_string());
    for (int64_t r = 0; r < outer.shape[0] * inner.shape[0]; ++r) {
      for (int64_t c = 0; c < columns; ++c) {
        int64_t a = (r / inner.shape[0]) * outer.shape[1] + c / inner.shape[1];
        int64_t b = (r % inner.shape[0]) * inner.shape[1] + c % inner.shape[1];
        REQUIRE_FAST(as_set(tiled.apply(r * columns + c)) ==
                     sum_sets(scaled.apply(a), inner.layout.apply(b)));
      }
    }
  }
}

TEST_CASE("divide(tile(A, B)) recovers both factors", "[layout][laws]") {
  Random random(14);
  int checked = 0;
  for (int i = 0; i < 2000; ++i) {
    Layout outer = testing::random_layout(random);
    Layout inner = testing::random_layout(random);
    if (outer.size() * inner.size() > 4096) continue;
    Layout whole = tile(outer, inner);
    CAPTURE(outer.to_string(), inner.to_string(), whole.to_string());
    REQUIRE(same_function(divide(whole, inner), outer));
    REQUIRE(same_function(divide_outer(whole, outer), inner));
    ++checked;
  }
  CHECK(checked > 1500);
  for (int i = 0; i < 800; ++i) {
    auto outer = testing::random_shaped(random);
    auto inner = testing::random_shaped(random);
    if (outer.layout.size() * inner.layout.size() > 4096) continue;
    Shape whole_shape = {outer.shape[0] * inner.shape[0], outer.shape[1] * inner.shape[1]};
    Layout whole = tile(outer.layout, outer.shape, inner.layout, inner.shape);
    CAPTURE(outer.layout.to_string(), inner.layout.to_string(), whole.to_string());
    REQUIRE(same_function(divide(whole, whole_shape, inner.layout, inner.shape), outer.layout));
    REQUIRE(
        same_function(divide_outer(whole, whole_shape, outer.layout, outer.shape), inner.layout));
  }
}

TEST_CASE("divide explains why a layout is not a tile", "[layout][errors]") {
  Layout whole = Layout::parse("S[(4,8):(8@lane,1@reg)]");
  CHECK_THROWS_WITH(divide(whole, Layout::parse("S[3:1@reg]")),
                    Catch::Contains("size 3 of S[3:1@reg] does not divide size 32"));
  CHECK_THROWS_WITH(
      divide(whole, Layout::parse("S[2:1@lane]")),
      Catch::Contains("divide: S[2:1@lane] is not a tile of S[(4,8):(8@lane,1@reg)]") &&
          Catch::Contains("does not match iter 8:1@reg"));
  CHECK_THROWS_WITH(divide(Layout::parse("S[(4,2):(3@reg,1@reg)]"), Layout::parse("S[2:1@reg]")),
                    Catch::Contains("stride 3@reg of the outer part is not a multiple of the "
                                    "tile's span 2"));
  CHECK_THROWS_WITH(divide(whole, {4, 8}, Layout::parse("S[(3,2):(2@reg,1@reg)]"), {3, 2}),
                    Catch::Contains("extent 3 does not divide extent 4 of dimension 0"));
  CHECK_THROWS_WITH(divide(whole, {4, 8}, Layout::parse("S[2:1@reg]"), {2}),
                    Catch::Contains("different ranks"));
  CHECK_THROWS_WITH(divide(whole, {4, 8}, Layout::parse("S[(2,2):(1@reg,2@reg)]"), {2, 2}),
                    Catch::Contains("in dimension 0"));
  CHECK_THROWS_WITH(
      divide(Layout::parse("S[4:1@reg] + R[2:1@warp]"), Layout::parse("S[2:1@reg] + R[2:1@lane]")),
      Catch::Contains("replica iter 2:1@lane is not part"));
  CHECK_THROWS_WITH(divide_outer(whole, Layout::parse("S[2:1@reg]")),
                    Catch::Contains("divide_outer") && Catch::Contains("not a multiple"));
  CHECK_THROWS_WITH(tile(whole, {4, 8}, whole, {32}), Catch::Contains("different ranks"));
  CHECK_THROWS_WITH(
      tile(whole, {4, 4}, whole, {4, 8}),
      Catch::Contains("shape [4,4] has 16 elements but S[(4,8):(8@lane,1@reg)] has 32"));
  CHECK_THROWS_WITH(group(Layout::parse("S[(4,6):(6@reg,1@reg)]"), {6, 4}),
                    Catch::Contains("dimension 1 (extent 4) ends inside iter 6:1@reg"));
}

TEST_CASE("compose is function composition", "[layout][laws]") {
  Random random(15);
  auto check = [](const Layout& outer, const Layout& inner, const Layout& composed) {
    REQUIRE(composed.size() == inner.size());
    for (int64_t x = 0; x < inner.size(); ++x) {
      std::set<Coord> expected;
      for (const Coord& y : inner.apply(x)) {
        for (const Coord& p : outer.apply(index_value(y)))
          expected.insert(p);
      }
      REQUIRE(as_set(composed.apply(x)) == expected);
    }
  };
  // Structured inner layouts (walks over the outer's digits) always compose.
  int structured = 0;
  for (int i = 0; i < 1500; ++i) {
    Layout outer = canonicalize(testing::random_layout(random, true, true));
    std::vector<Iter> digits = outer.shard();
    std::vector<int64_t> place(digits.size());
    int64_t p = 1;
    for (size_t k = digits.size(); k-- > 0;) {
      place[k] = p;
      p *= digits[k].extent;
    }
    std::vector<Iter> walk;
    for (size_t k = 0; k < digits.size(); ++k) {
      if (random.chance(70)) walk.push_back(Iter{digits[k].extent, place[k], Axis::idx()});
    }
    for (size_t k = walk.size(); k > 1; --k) {
      std::swap(walk[k - 1], walk[static_cast<size_t>(random.below(static_cast<int64_t>(k)))]);
    }
    if (random.chance(20)) walk.push_back(Iter{2, 0, Axis::idx()});
    Layout inner(walk);
    CAPTURE(outer.to_string(), inner.to_string());
    check(outer, inner, compose(outer, inner));
    ++structured;
  }
  CHECK(structured == 1500);
  // Arbitrary inner layouts: when compose accepts them the law holds; count the accepted.
  int accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    Layout outer = testing::random_layout(random);
    std::vector<Iter> iters;
    for (int k = 0; k < 1 + random.below(3); ++k) {
      iters.push_back(Iter{random.pick<int64_t>({1, 2, 3, 4}),
                           random.pick<int64_t>({0, 1, 2, 3, 4, 8}), Axis::idx()});
    }
    std::vector<Iter> replica;
    if (random.chance(15)) replica.push_back(Iter{2, random.pick<int64_t>({1, 2, 4}), Axis::idx()});
    Coord offset;
    if (random.chance(30)) offset.add(Axis::idx(), random.below(4));
    Layout inner(iters, replica, offset);
    Layout composed;
    try {
      composed = compose(outer, inner);
    } catch (const LayoutError&) {
      continue;
    }
    CAPTURE(outer.to_string(), inner.to_string(), composed.to_string());
    check(outer, inner, composed);
    ++accepted;
  }
  CHECK(accepted > 500);
  CHECK_THROWS_WITH(
      compose(Layout::parse("S[(2,2):(10@smem,1@smem)]"), Layout::parse("S[(2,2):(1@idx,1@idx)]")),
      Catch::Contains("carry across digit 1"));
  CHECK_THROWS_WITH(compose(Layout::parse("S[8:1@reg]"), Layout::parse("S[4:4@idx]")),
                    Catch::Contains("beyond the size 8"));
  CHECK_THROWS_WITH(compose(Layout::parse("S[8:1@reg]"), Layout::parse("S[(2,2):(1@lane,2@reg)]")),
                    Catch::Contains("one axis"));
}

TEST_CASE("complement is disjoint and covers", "[layout][laws]") {
  Random random(16);
  for (int i = 0; i < 2000; ++i) {
    Layout layout = testing::random_injective(random);
    std::vector<std::pair<Axis, int64_t>> bounds;
    for (Axis axis : {Axis::reg(), Axis::smem()}) {
      int64_t span = layout.span(axis) - layout.offset().get(axis);
      // Round the bound up to a multiple of what the layout covers on that axis.
      Layout alone = restrict_to(
          layout, axis == Axis::reg() ? +[](Axis a) { return a == Axis::reg(); }
                                      : +[](Axis a) { return a == Axis::smem(); });
      int64_t covered = 1;
      for (const Iter& iter : alone.shard())
        covered = std::max(covered, iter.stride * iter.extent);
      int64_t bound = covered * random.pick<int64_t>({1, 1, 2});
      if (bound >= span) bounds.push_back({axis, bound});
    }
    Layout rest = complement(layout, bounds);
    CAPTURE(layout.to_string(), rest.to_string());
    std::map<Axis, int64_t> box;
    for (Axis axis : {Axis::reg(), Axis::smem()}) {
      box[axis] = layout.span(axis) - layout.offset().get(axis);
      for (const auto& [a, bound] : bounds) {
        if (a == axis) box[axis] = bound;
      }
    }
    std::set<Coord> seen;
    for (int64_t c = 0; c < rest.size(); ++c) {
      for (int64_t x = 0; x < layout.size(); ++x) {
        Coord point = rest.place(c) + layout.place(x);
        for (const auto& [axis, value] : layout.offset().entries())
          point.add(axis, -value);
        for (const auto& [axis, value] : point.entries())
          REQUIRE(value < box[axis]);
        REQUIRE_FAST(seen.insert(point).second);  // disjoint
      }
    }
    REQUIRE(static_cast<int64_t>(seen.size()) == box[Axis::reg()] * box[Axis::smem()]);  // covers
  }
  CHECK_THROWS_WITH(complement(Layout::parse("S[(2,2):(2@reg,3@reg)]")),
                    Catch::Contains("overlaps"));
  CHECK_THROWS_WITH(complement(Layout::parse("S[(2,2):(2@reg,1@reg)]"), {{Axis::reg(), 6}}),
                    Catch::Contains("bound 6@reg is not a multiple of the 4"));
  CHECK(complement(Layout::parse("S[(4,2):(4@smem,1@smem)]"), {{Axis::smem(), 32}}).to_string() ==
        "S[(2,2):(16@smem,2@smem)]");
}

TEST_CASE("inverse on a subset of axes inverts", "[layout][laws]") {
  Random random(17);
  for (int i = 0; i < 2000; ++i) {
    Layout layout = testing::random_register_layout(random);
    std::vector<Axis> axes = random.chance(50)
                                 ? std::vector<Axis>{Axis::lane(), Axis::reg()}
                                 : std::vector<Axis>{Axis::reg(), Axis::warp(), Axis::lane()};
    InverseLayout inv = inverse(layout, axes);
    CAPTURE(layout.to_string(), inv.layout.to_string());
    // Every place of every element maps back to a set containing the element ...
    std::map<int64_t, std::set<int64_t>> expected;
    for (int64_t x = 0; x < layout.size(); ++x) {
      for (const Coord& point : layout.apply(x))
        expected[inv.box_index(point)].insert(x);
    }
    // ... and the inverse holds exactly those elements at every point of the box.
    int64_t box = 1;
    for (int64_t extent : inv.extents)
      box *= extent;
    REQUIRE(inv.layout.size() == box);
    for (int64_t p = 0; p < box; ++p) {
      std::set<int64_t> found;
      for (const Coord& q : inv.layout.apply(p))
        found.insert(q.get(Axis::idx()));
      REQUIRE(found == expected[p]);
    }
  }
  CHECK_THROWS_WITH(inverse(Layout::parse("S[(4,2):(2@lane,1@reg)]"), {Axis::lane(), Axis::reg()}),
                    Catch::Contains("do not cover it exactly: after [0, 1) comes iter 4:2@lane"));
}

TEST_CASE("pack and unpack round-trip", "[layout][laws]") {
  Random random(18);
  for (int i = 0; i < 2000; ++i) {
    Layout layout = testing::random_layout(random);
    int64_t n = random.pick<int64_t>({2, 4, 8});
    Axis axis = random.pick(std::vector<Axis>{Axis::reg(), Axis::smem()});
    Layout unpacked = unpack(layout, n, axis);
    CAPTURE(layout.to_string(), n, axis.name(), unpacked.to_string());
    REQUIRE(unpacked.size() == layout.size() * n);
    REQUIRE(same_function(pack(unpacked, n, axis), layout));
    // Element x of the packed layout is the group of unpacked elements x*n .. x*n+n-1.
    for (int64_t x = 0; x < layout.size(); ++x) {
      for (int64_t j = 0; j < n; ++j) {
        std::set<Coord> expected;
        for (Coord point : layout.apply(x)) {
          point.set(axis, point.get(axis) * n + j);
          expected.insert(point);
        }
        REQUIRE_FAST(as_set(unpacked.apply(x * n + j)) == expected);
      }
    }
    REQUIRE(same_function(unpack(pack(unpacked, n, axis), n, axis), unpacked));
  }
  CHECK(pack(Layout::parse("S[(8,4,2):(4@lane,1@lane,1@reg)]"), 2, Axis::reg()).to_string() ==
        "S[32:1@lane]");
  CHECK_THROWS_WITH(
      pack(Layout::parse("S[(2,4):(1@reg,2@reg)]"), 2, Axis::reg()),
      Catch::Contains("innermost iter must be a multiple of 2 contiguous steps 1@reg"));
  CHECK_THROWS_WITH(pack(Layout::parse("S[(2,2):(3@reg,1@reg)]"), 2, Axis::reg()),
                    Catch::Contains("stride 3 of iter 2:3@reg is not a multiple of 2"));
  CHECK_THROWS_WITH(pack(Layout::parse("S[2:1@lane]"), 2, Axis::lane()),
                    Catch::Contains("not a memory axis"));
}

TEST_CASE("slice, permute, reshape, storage and fuse by evaluation", "[layout][laws]") {
  Random random(19);
  for (int i = 0; i < 1500; ++i) {
    auto shaped = testing::random_shaped(random);
    const Layout& layout = shaped.layout;
    const int64_t rows = shaped.shape[0], columns = shaped.shape[1];
    CAPTURE(layout.to_string(), rows, columns);
    Layout transposed = permute(layout, shaped.shape, {1, 0});
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < columns; ++c) {
        REQUIRE_FAST(transposed.apply(c * rows + r) == layout.apply(r * columns + c));
      }
    }
    REQUIRE(same_function(reshape(layout, {layout.size()}), layout));
    // storage: the non-thread part of every place.
    Layout stored = storage(layout);
    Layout fused = fuse(layout, Axis::thread());
    for (int64_t x = 0; x < layout.size(); ++x) {
      std::set<Coord> expected, expected_fused;
      for (const Coord& point : layout.apply(x)) {
        Coord kept, moved;
        for (const auto& [axis, value] : point.entries()) {
          if (!axis.is_thread()) kept.add(axis, value);
          moved.add(axis.is_thread() ? Axis::thread() : axis,
                    axis.is_thread() ? value * axis.scale_in_parent() : value);
        }
        expected.insert(kept);
        expected_fused.insert(moved);
      }
      REQUIRE(as_set(stored.apply(x)) == expected);
      REQUIRE(as_set(fused.apply(x)) == expected_fused);
    }
    // slice a sub-range of the columns, where it is representable.
    int64_t begin = random.below(columns);
    int64_t end = begin + 1 + random.below(columns - begin);
    Layout part;
    try {
      part = slice(layout, shaped.shape, 1, begin, end);
    } catch (const LayoutError&) {
      continue;
    }
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = begin; c < end; ++c) {
        REQUIRE_FAST(part.apply(r * (end - begin) + c - begin) == layout.apply(r * columns + c));
      }
    }
  }
  Layout tile16 = Layout::row_major({16, 16}, Axis::smem());
  CHECK(slice(tile16, {16, 16}, 0, 8, 16).to_string() == "S[(8,16):(16@smem,1@smem)] + 128@smem");
  CHECK_THROWS_WITH(slice(tile16, {16, 16}, 2, 0, 1),
                    Catch::Contains("dimension 2 does not exist"));
  CHECK_THROWS_WITH(slice(tile16, {16, 16}, 1, 4, 20), Catch::Contains("[4, 20)"));
  CHECK_THROWS_WITH(permute(tile16, {16, 16}, {0, 0}), Catch::Contains("not a permutation"));
  CHECK_THROWS_WITH(reshape(tile16, {16, 15}), Catch::Contains("has 240 elements"));
}

TEST_CASE("the device-mesh example of the README", "[layout][mesh]") {
  Axis::define_mesh({{"dp", 2}, {"tp", 4}});
  Axis dp = Axis::named("dp"), tp = Axis::named("tp");
  Layout mesh = Layout::parse("S[4:1@tp] + R[2:1@dp]");
  Layout blocks = Layout::parse("S[(32,8):(8@block,1@block)]");
  Layout warps = Layout::parse("S[(2,2):(2@warp,1@warp)]");
  Layout repeat = Layout::parse("S[(4,8):(8@reg,1@reg)]");
  Layout c_fragment = Layout::parse("S[(2,8,4,2):(2@reg,4@lane,1@lane,1@reg)]");
  Layout warp_tile = tile(repeat, {4, 8}, c_fragment, {16, 8});
  Layout block_tile = tile(warps, {2, 2}, warp_tile, {64, 64});
  Layout gpu_tile = tile(blocks, {32, 8}, block_tile, {128, 128});
  Layout weight = tile(mesh, {1, 4}, gpu_tile, {4096, 1024});
  CHECK(weight.to_string() ==
        "S[(32,2,4,2,8,4,8,2,8,4,2):(8@block,2@warp,32@reg,2@reg,4@lane,1@tp,1@block,1@warp,"
        "4@reg,1@lane,1@reg)] + R[2:1@dp]");
  // Element (1000, 3000): tp shard 3000 / 1024 = 2, block (7, 7), both dp ranks.
  std::vector<Coord> places = weight.apply(1000 * 4096 + 3000);
  Coord first{{Axis::block(), 63}, {Axis::warp(), 2}, {Axis::reg(), 94}, {tp, 2}};
  Coord second = first + Coord{{dp, 1}};
  CHECK(as_set(places) == std::set<Coord>{first, second});
  // Every element: one place per dp rank, on the right tp rank, thread inside a 4-warp block.
  for (int64_t row = 0; row < 4096; row += 97) {
    for (int64_t column = 0; column < 4096; column += 89) {
      std::vector<Coord> at = weight.apply(row * 4096 + column);
      REQUIRE_FAST(at.size() == 2);
      REQUIRE_FAST(at[0].get(tp) == column / 1024);
      REQUIRE_FAST(at[0].get(Axis::block()) == (row / 128) * 8 + (column % 1024) / 128);
      REQUIRE_FAST(at[0].get(Axis::warp()) == ((row % 128) / 64) * 2 + (column % 128) / 64);
    }
  }
  CHECK(
      same_function(divide_outer(weight, {4096, 4096}, mesh, {1, 4}), gpu_tile, int64_t{1} << 25));
  CHECK(divide(weight, {4096, 4096}, warp_tile, {64, 64}).to_string() ==
        "S[(32,2,4,8,2):(8@block,2@warp,1@tp,1@block,1@warp)] + R[2:1@dp]");
  CHECK(fuse(mesh, Axis::gpu()).to_string() == "S[4:1@gpu] + R[2:4@gpu]");
  Layout corner = slice(slice(weight, {4096, 4096}, 0, 0, 8), {8, 4096}, 1, 0, 8);
  CHECK(corner.to_string() == "S[(8,4,2):(4@lane,1@lane,1@reg)] + R[2:1@dp]");
}
