// Every hardware atom, element by element, against tables written from the PTX ISA fragment
// figures ("row = groupID for ai where ...", "col = threadID_in_group * 2 + (i & 0x1) ...").
#include <catch2/catch.hpp>

#include <functional>
#include <set>

#include "layout/algebra.h"
#include "layout/atoms.h"
#include "layout/error.h"
#include "layout/queries.h"
#include "random_layouts.h"

using namespace nibble::layout;

namespace {

struct RowColumn {
  int64_t row, column;
};

// A table entry: (warp, lane, slot) -> (row, column), as the PTX ISA states it.
using Table = std::function<RowColumn(int64_t warp, int64_t lane, int64_t slot)>;

// Checks the atom against the table for every warp, lane and slot, and that the table covers
// every element of the atom exactly once.
void check_atom(const Atom& atom, int64_t warps, int64_t slots, const Table& table) {
  CAPTURE(atom.name, atom.layout.to_string());
  const int64_t columns = atom.shape[1];
  REQUIRE(atom.layout.size() == atom.shape[0] * columns);
  REQUIRE(atom.layout.size() == warps * 32 * slots);
  std::set<int64_t> covered;
  for (int64_t warp = 0; warp < warps; ++warp) {
    for (int64_t lane = 0; lane < 32; ++lane) {
      for (int64_t slot = 0; slot < slots; ++slot) {
        RowColumn rc = table(warp, lane, slot);
        CAPTURE(warp, lane, slot, rc.row, rc.column);
        REQUIRE(rc.row < atom.shape[0]);
        REQUIRE(rc.column < columns);
        Coord expected{{Axis::warp(), warp}, {Axis::lane(), lane}, {Axis::reg(), slot}};
        int64_t index = rc.row * columns + rc.column;
        REQUIRE(atom.layout.apply(index) == std::vector<Coord>{expected});
        REQUIRE(covered.insert(index).second);
      }
    }
  }
}

int64_t group_id(int64_t lane) {
  return lane >> 2;
}
int64_t thread_in_group(int64_t lane) {
  return lane % 4;
}

}  // namespace

TEST_CASE("mma.m16n8k16 f16/bf16 fragments", "[layout][atoms]") {
  // A: a0..a7 in four .f16x2 registers.
  check_atom(mma_m16n8k16_a(), 1, 8, [](int64_t, int64_t lane, int64_t i) {
    int64_t row = (i < 2 || (i >= 4 && i < 6)) ? group_id(lane) : group_id(lane) + 8;
    int64_t column = thread_in_group(lane) * 2 + (i & 1) + (i >= 4 ? 8 : 0);
    return RowColumn{row, column};
  });
  // B: b0..b3 in two .f16x2 registers (rows are k, columns n).
  check_atom(mma_m16n8k16_b(), 1, 4, [](int64_t, int64_t lane, int64_t i) {
    int64_t row = thread_in_group(lane) * 2 + (i & 1) + (i >= 2 ? 8 : 0);
    return RowColumn{row, group_id(lane)};
  });
  // C/D: c0..c3.
  for (int bits : {16, 32}) {
    check_atom(mma_m16n8k16_c(bits), 1, 4, [](int64_t, int64_t lane, int64_t i) {
      int64_t row = i < 2 ? group_id(lane) : group_id(lane) + 8;
      return RowColumn{row, thread_in_group(lane) * 2 + (i & 1)};
    });
  }
  CHECK(mma_m16n8k16_a().layout.to_string() == "S[(2,8,2,4,2):(2@reg,4@lane,4@reg,1@lane,1@reg)]");
}

TEST_CASE("mma.m16n8k32 8-bit fragments", "[layout][atoms]") {
  // A: a0..a15, four 8-bit elements per .b32 register.
  check_atom(mma_m16n8k32_a(), 1, 16, [](int64_t, int64_t lane, int64_t i) {
    int64_t row = (i < 4 || (i >= 8 && i < 12)) ? group_id(lane) : group_id(lane) + 8;
    int64_t column = thread_in_group(lane) * 4 + (i & 3) + (i >= 8 ? 16 : 0);
    return RowColumn{row, column};
  });
  // B: b0..b7.
  check_atom(mma_m16n8k32_b(), 1, 8, [](int64_t, int64_t lane, int64_t i) {
    int64_t row = thread_in_group(lane) * 4 + (i & 3) + (i >= 4 ? 16 : 0);
    return RowColumn{row, group_id(lane)};
  });
  check_atom(mma_m16n8k32_c(), 1, 4, [](int64_t, int64_t lane, int64_t i) {
    int64_t row = i < 2 ? group_id(lane) : group_id(lane) + 8;
    return RowColumn{row, thread_in_group(lane) * 2 + (i & 1)};
  });
}

TEST_CASE("ldmatrix and stmatrix fragments", "[layout][atoms]") {
  for (int count : {1, 2, 4}) {
    for (bool transpose : {false, true}) {
      // Register m holds matrix m: two 16-bit halves, slots 2m and 2m+1.
      Table table = [transpose](int64_t, int64_t lane, int64_t slot) {
        int64_t matrix = slot / 2, half = slot % 2;
        if (transpose)
          return RowColumn{8 * matrix + thread_in_group(lane) * 2 + half, group_id(lane)};
        return RowColumn{8 * matrix + group_id(lane), thread_in_group(lane) * 2 + half};
      };
      check_atom(ldmatrix(count, transpose), 1, 2 * count, table);
      check_atom(stmatrix(count, transpose), 1, 2 * count, table);
    }
    // Lane r gives the address of row r.
    Layout rows = ldmatrix_row_addresses(count);
    for (int64_t r = 0; r < 8 * count; ++r)
      CHECK(rows.place(r) == Coord{{Axis::lane(), r}});
  }
  CHECK(ldmatrix(1, false).layout.to_string() == "S[(8,4,2):(4@lane,1@lane,1@reg)]");
  CHECK(ldmatrix(4, true).name == "ldmatrix.x4.trans");
  CHECK(stmatrix(2, false).name == "stmatrix.x2");
  CHECK_THROWS_WITH(ldmatrix(3, false), Catch::Contains("ldmatrix: .x3 does not exist"));
}

TEST_CASE("wgmma register fragments", "[layout][atoms]") {
  check_atom(wgmma_a(), 4, 8, [](int64_t warp, int64_t lane, int64_t i) {
    int64_t row = 16 * warp + ((i < 2 || (i >= 4 && i < 6)) ? group_id(lane) : group_id(lane) + 8);
    int64_t column = thread_in_group(lane) * 2 + (i & 1) + (i >= 4 ? 8 : 0);
    return RowColumn{row, column};
  });
  for (int n : {8, 16, 64, 256}) {
    check_atom(wgmma_d(n), 4, n / 2, [](int64_t warp, int64_t lane, int64_t i) {
      int64_t row = 16 * warp + group_id(lane) + 8 * ((i >> 1) & 1);
      int64_t column = (i >> 2) * 8 + thread_in_group(lane) * 2 + (i & 1);
      return RowColumn{row, column};
    });
  }
  CHECK_THROWS_WITH(wgmma_d(12), Catch::Contains("N must be a multiple of 8"));
}

TEST_CASE("cp.async and shared-memory operand atoms", "[layout][atoms]") {
  for (int bytes : {4, 8, 16}) {
    for (int bits : {4, 8, 16, 32}) {
      if (bytes * 8 < bits) continue;
      Atom atom = cp_async(bytes, bits);
      CHECK(atom.layout.size() == bytes * 8 / bits);
      CHECK(atom.alignment_bits == bytes * 8);
      for (int64_t i = 0; i < atom.layout.size(); ++i) {
        CHECK(atom.layout.place(i) == Coord{{Axis::smem(), i}});
      }
      CHECK(vector_width_bits(atom.layout, Axis::smem(), bits) == bytes * 8);
    }
  }
  CHECK_THROWS_WITH(cp_async(12, 8), Catch::Contains("4, 8 or 16 bytes"));
  // The 128-byte K-major unit: 8 rows of 64 f16; 16-byte chunk c of row r lands at chunk c ^ r.
  Atom unit = wgmma_smem_operand(128, 16);
  REQUIRE(unit.shape == Shape{8, 64});
  for (int64_t r = 0; r < 8; ++r) {
    for (int64_t c = 0; c < 64; ++c) {
      int64_t element =
          unit.swizzle.on_element(unit.layout.place(r * 64 + c).get(Axis::smem()), 16);
      CHECK(element * 2 == r * 128 + ((c / 8) ^ r) * 16 + (c % 8) * 2);
    }
  }
  CHECK(find_atom("mma.m16n8k16.a").has_value());
  CHECK(find_atom("wgmma.m64n256k16.d").has_value());
  CHECK_FALSE(find_atom("mma.m99").has_value());
}

TEST_CASE("instruction selection by division: the A fragment of a warp tile", "[layout][atoms]") {
  // A warp's 32x32 A tile made of 2x2 m16n8k16 A fragments, register slots outermost.
  Atom atom = mma_m16n8k16_a();
  Layout repeat = Layout::parse("S[(2,2):(2@reg,1@reg)]");
  Layout warp_tile = tile(repeat, {2, 2}, atom.layout, atom.shape);
  CHECK(same_function(divide(warp_tile, {32, 32}, atom.layout, atom.shape), repeat));
  // The C fragment divides it too (an A fragment is two C fragments side by side), 2 x 4 times.
  CHECK(same_function(divide(warp_tile, {32, 32}, mma_m16n8k16_c().layout, {16, 8}),
                      Layout::parse("S[(2,4):(4@reg,1@reg)]")));
  // The B fragment (lanes along columns) does not.
  CHECK_THROWS_WITH(divide(warp_tile, {32, 32}, mma_m16n8k16_b().layout, {16, 8}),
                    Catch::Contains("is not a tile of"));
  // ldmatrix.x4 gives the A fragment when its four matrices are the four 8x8 quadrants:
  // reorder the stacked (4 x 8, 8) matrices as (2 column halves, 2 row halves, 8, 8).
  Layout x4 = ldmatrix(4, false).layout;
  Layout quadrants = permute(reshape(x4, {2, 2, 8, 8}), {2, 2, 8, 8}, {1, 2, 0, 3});
  CHECK(same_function(quadrants, atom.layout));
}
