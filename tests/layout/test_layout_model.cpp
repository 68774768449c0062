// Axes, coordinates, apply, and the notation (printing and parsing, including its errors).
#include <catch2/catch.hpp>

#include "layout/algebra.h"
#include "layout/axis.h"
#include "layout/error.h"
#include "layout/layout.h"
#include "random_layouts.h"

using namespace nibble::layout;

namespace {

std::string parse_error(const std::string& text) {
  try {
    Layout::parse(text);
  } catch (const LayoutError& error) {
    return error.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("axis registry knows the built-in axes and their fusion", "[layout][axis]") {
  CHECK(Axis::named("lane") == Axis::lane());
  CHECK(Axis::lane().is_thread());
  CHECK(Axis::reg().is_memory());
  CHECK(Axis::gpu().is_device());
  CHECK(Axis::lane().parent() == Axis::thread());
  CHECK(Axis::warp().scale_in_parent() == 32);
  CHECK(Axis::warpgroup().scale_in_parent() == 128);
  CHECK(Axis::lane().info().natural_extent == 32);
  CHECK_FALSE(Axis::find("nonsense").has_value());
  CHECK_THROWS_WITH(Axis::named("nonsense"), Catch::Contains("unknown axis 'nonsense'"));
}

TEST_CASE("device mesh axes fuse row-major into gpu", "[layout][axis]") {
  auto mesh = Axis::define_mesh({{"dp", 2}, {"tp", 4}});
  CHECK(mesh[0].name() == "dp");
  CHECK(mesh[0].scale_in_parent() == 4);
  CHECK(mesh[1].scale_in_parent() == 1);
  CHECK(mesh[1].parent() == Axis::gpu());
  // Defining the same mesh again is harmless; a conflicting definition is an error.
  CHECK(Axis::define_mesh({{"dp", 2}, {"tp", 4}}) == mesh);
  CHECK_THROWS_WITH(Axis::define_mesh({{"dp", 4}, {"tp", 4}}),
                    Catch::Contains("axis 'dp' is already defined"));
  CHECK_THROWS_WITH(Axis::define("9x", AxisKind::Device), Catch::Contains("not an identifier"));
  Layout layout = Layout::parse("S[(2,4):(1@dp,1@tp)]");
  Layout fused = fuse(layout, Axis::gpu());
  CHECK(fused.to_string() == "S[(2,4):(4@gpu,1@gpu)]");
  CHECK(canonicalize(fused).to_string() == "S[8:1@gpu]");
}

TEST_CASE("coordinates ignore zero entries", "[layout][coord]") {
  Coord a{{Axis::lane(), 3}, {Axis::reg(), 0}};
  Coord b{{Axis::lane(), 3}};
  CHECK(a == b);
  a.add(Axis::lane(), -3);
  CHECK(a.empty());
  CHECK((b + Coord{{Axis::reg(), 1}}).to_string() == "(lane=3, reg=1)");
}

TEST_CASE("apply walks the shard row-major and adds replicas and offset", "[layout][apply]") {
  Layout layout = Layout::parse("S[(8,4,2):(4@lane,1@lane,1@reg)] + R[4:1@warp] + 16@smem");
  CHECK(layout.size() == 64);
  CHECK(layout.replication() == 4);
  CHECK(layout.span(Axis::lane()) == 32);
  CHECK(layout.span(Axis::reg()) == 2);
  CHECK(layout.span(Axis::warp()) == 4);
  CHECK(layout.span(Axis::smem()) == 17);
  CHECK(layout.span(Axis::gmem()) == 1);
  // x = 13 = (1, 2, 1) in radix (8, 4, 2): lane 4 + 2, reg 1.
  std::vector<Coord> places = layout.apply(13);
  REQUIRE(places.size() == 4);
  for (int64_t w = 0; w < 4; ++w) {
    Coord expected{{Axis::lane(), 6}, {Axis::reg(), 1}, {Axis::smem(), 16}, {Axis::warp(), w}};
    CHECK(std::find(places.begin(), places.end(), expected) != places.end());
  }
  CHECK_THROWS_WITH(layout.apply(64), Catch::Contains("index 64 is outside [0, 64)"));
}

TEST_CASE("row-major and column-major builders", "[layout][apply]") {
  Layout row = Layout::row_major({4, 8}, Axis::smem());
  Layout column = Layout::column_major({4, 8}, Axis::smem());
  CHECK(row.to_string() == "S[(4,8):(8@smem,1@smem)]");
  CHECK(column.to_string() == "S[(4,8):(1@smem,4@smem)]");
  for (int64_t r = 0; r < 4; ++r) {
    for (int64_t c = 0; c < 8; ++c) {
      CHECK(row.place(r * 8 + c).get(Axis::smem()) == r * 8 + c);
      CHECK(column.place(r * 8 + c).get(Axis::smem()) == c * 4 + r);
    }
  }
}

TEST_CASE("printing and parsing round-trip", "[layout][notation]") {
  for (const char* text : {"S[(8,4,2):(4@lane,1@lane,1@reg)] + R[4:1@warp] + 16@smem",
                           "S[8:1@lane]", "S[():()]", "S[(2,2):(0@idx,1@reg)] + 1@reg + 3@gmem"}) {
    CAPTURE(text);
    CHECK(Layout::parse(text).to_string() == text);
  }
  // Whitespace and term order are free; offsets on one axis add up.
  CHECK(Layout::parse(" 4@smem+S[ ( 2 , 2 ) : ( 1 @ lane , 2@ lane ) ]+12@smem ").to_string() ==
        "S[(2,2):(1@lane,2@lane)] + 16@smem");
  testing::Random random(1);
  for (int i = 0; i < 2000; ++i) {
    Layout layout = testing::random_layout(random);
    CAPTURE(layout.to_string());
    REQUIRE(Layout::parse(layout.to_string()) == layout);
  }
}

TEST_CASE("malformed notation is reported with its column", "[layout][notation][errors]") {
  CHECK_THAT(parse_error("S[(8,4):(4@lane,1@lan)]"),
             Catch::Contains("column 19") && Catch::Contains("unknown axis 'lan'"));
  CHECK_THAT(parse_error("S[(8,4):(4@lane)]"),
             Catch::Contains("column 3") && Catch::Contains("2 extents but 1 strides"));
  CHECK_THAT(parse_error("S[(8,0):(4@lane,1@reg)]"),
             Catch::Contains("column 6") && Catch::Contains("extent 0"));
  CHECK_THAT(parse_error("S[8:4lane]"), Catch::Contains("column 6") && Catch::Contains("'@'"));
  CHECK_THAT(parse_error("S[8:-4@lane]"),
             Catch::Contains("column 5") && Catch::Contains("negative"));
  CHECK_THAT(parse_error("R[2:1@warp]"), Catch::Contains("needs a shard"));
  CHECK_THAT(parse_error("S[2:1@warp] S[2:1@lane]"),
             Catch::Contains("column 13") && Catch::Contains("expected '+'"));
  CHECK_THAT(parse_error("S[2:1@warp] + S[2:1@lane]"), Catch::Contains("a second shard"));
  CHECK_THAT(parse_error("S[2:1@warp"), Catch::Contains("column 11") && Catch::Contains("the end"));
  CHECK_THAT(parse_error("S[99999999999999999999:1@reg]"), Catch::Contains("does not fit"));
  CHECK_THAT(parse_error(""), Catch::Contains("column 1"));
}

TEST_CASE("bad iters are rejected when a layout is built", "[layout][errors]") {
  CHECK_THROWS_WITH(Layout({Iter{0, 1, Axis::reg()}}), Catch::Contains("extent 0"));
  CHECK_THROWS_WITH(Layout({Iter{2, -1, Axis::reg()}}), Catch::Contains("negative stride"));
  CHECK_THROWS_WITH(
      Layout({Iter{int64_t{1} << 40, 1, Axis::reg()}, Iter{int64_t{1} << 40, 1, Axis::reg()}}),
      Catch::Contains("overflows"));
  CHECK_THROWS_AS(Layout({Iter{0, 1, Axis::reg()}}), std::invalid_argument);
}
