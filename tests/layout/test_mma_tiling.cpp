// The warp tilings of mma.sync (layout/mma_tiling.h): a tiling of one atom gives the atom's own
// fragments (layout/atoms.h, checked against the PTX ISA in test_atoms.cpp) for 16- and 8-bit
// inputs, and larger tilings place each atom's fragment at the slots and warps they promise.
#include <catch2/catch.hpp>

#include "layout/atoms.h"
#include "layout/mma_tiling.h"

using namespace nibble::layout;
using nibble::dtypes::DataType;

namespace {

// Same element -> places map on every element.
void check_same_function(const Layout& got, const Layout& want) {
  CAPTURE(got.to_string(), want.to_string());
  REQUIRE(got.size() == want.size());
  for (int64_t x = 0; x < want.size(); ++x) {
    CAPTURE(x);
    CHECK(got.apply(x) == want.apply(x));
  }
}

}  // namespace

TEST_CASE("a one-atom tiling holds the mma atoms' fragments", "[layout][mma]") {
  // 16-bit inputs run on m16n8k16 atoms, 8-bit ones on m16n8k32.
  for (const char* name : {"f16", "bf16", "i8", "u8", "f8e4m3", "f8e5m2"}) {
    const DataType type = DataType::parse(name);
    const bool wide = type.bits() == 16;
    const int64_t k = wide ? 16 : 32;
    const auto tiling = choose_mma_tiling(16, 8, k, 1, type);
    REQUIRE(tiling);
    CHECK(tiling->atom_k() == k);
    check_same_function(tiling->a_layout(), (wide ? mma_m16n8k16_a() : mma_m16n8k32_a()).layout);
    check_same_function(tiling->b_layout(), (wide ? mma_m16n8k16_b() : mma_m16n8k32_b()).layout);
    check_same_function(tiling->c_layout(), (wide ? mma_m16n8k16_c() : mma_m16n8k32_c()).layout);
  }
}

TEST_CASE("8-bit tilings step k by 32 and place atoms where the slots say", "[layout][mma]") {
  CHECK_FALSE(choose_mma_tiling(32, 32, 48, 4, DataType::sint(8)));  // k not a multiple of 32
  CHECK_FALSE(choose_mma_tiling(32, 32, 32, 4, DataType::f32()));    // no atom
  const auto tiling = choose_mma_tiling(32, 32, 64, 4, DataType::sint(8));
  REQUIRE(tiling);
  CHECK(tiling->steps_k() == 2);
  CHECK(tiling->a_atom_slots() == 16);
  CHECK(tiling->b_atom_slots() == 8);
  const Atom a = mma_m16n8k32_a();
  const Layout layout = tiling->a_layout();
  // Atom (i, s) of warp row wr: the atom's element (r, c) is A[(wr * tiles_m + i) * 16 + r,
  // s * 32 + c], in slot a_slot(i, s) + the atom's slot, in the same lane.
  for (int64_t wr = 0; wr < tiling->warps_m; ++wr) {
    for (int64_t i = 0; i < tiling->tiles_m(); ++i) {
      for (int64_t s = 0; s < tiling->steps_k(); ++s) {
        for (int64_t x = 0; x < a.layout.size(); ++x) {
          const int64_t row = (wr * tiling->tiles_m() + i) * 16 + x / 32;
          const int64_t col = s * 32 + x % 32;
          const Coord atom_place = a.layout.apply(x).front();
          bool found = false;
          for (const Coord& place : layout.apply(row * tiling->k + col)) {
            found |= place.get(Axis::lane()) == atom_place.get(Axis::lane()) &&
                     place.get(Axis::reg()) == tiling->a_slot(i, s) + atom_place.get(Axis::reg()) &&
                     place.get(Axis::warp()) / tiling->warps_n == wr;
          }
          CAPTURE(wr, i, s, x);
          CHECK(found);
        }
      }
    }
  }
}
