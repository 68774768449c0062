// The warp-level plans codegen finds in register maps, run on the CPU as the GPU would run them:
// the ldmatrix/stmatrix matrices (each lane's row address and the 8 elements stored there) and
// the rounds of warp shuffles of a layout conversion (every thread ends with its elements).
#include <catch2/catch.hpp>

#include "codegen/emit/register_map.h"
#include "dtypes/dtype.h"
#include "layout/algebra.h"
#include "layout/mma_tiling.h"

namespace nibble {
namespace {

using codegen::RegisterMap;
using dtypes::DataType;
using layout::Axis;
using layout::Iter;
using layout::Layout;

struct Index {
  int64_t row, col;
};

Index index_of(const RegisterMap& map, int64_t thread, int64_t slot) {
  const int64_t flat = map.element_at(thread, slot);
  return {flat / map.shape[1], flat % map.shape[1]};
}

// stmatrix as codegen emits it: lane q addresses row q % 8 of matrix q / 8 of a group of four
// words, found from its own index minus its place in the atom plus the slot part of that
// matrix's word; the hardware writes there the 8 elements of that matrix row. Every element must
// land at its own index.
void check_stmatrix(const RegisterMap& map, const codegen::MatrixFragments& fragments) {
  REQUIRE(fragments.words.size() % 4 == 0);
  for (int64_t warp = 0; warp < map.threads / 32; ++warp) {
    for (size_t first = 0; first < fragments.words.size(); first += 4) {
      for (int64_t q = 0; q < 32; ++q) {
        const int64_t thread = warp * 32 + q;
        const int64_t word = fragments.words[first + static_cast<size_t>(q / 8)];
        const int64_t place_row = fragments.transpose ? 2 * (q % 4) : q / 4;
        const int64_t place_col = fragments.transpose ? q / 4 : 2 * (q % 4);
        const Index own = index_of(map, thread, 2 * word);
        const Index row_start{own.row - place_row + q % 8, own.col - place_col};
        const int64_t matrix_row = q % 8;
        for (int64_t c = 0; c < 8; ++c) {
          // The lane and half that hold (matrix_row, c) of the stored matrix.
          const int64_t lane =
              fragments.transpose ? 4 * c + matrix_row / 2 : 4 * matrix_row + c / 2;
          const int64_t half = fragments.transpose ? matrix_row % 2 : c % 2;
          const Index held = index_of(map, warp * 32 + lane, 2 * word + half);
          CAPTURE(warp, q, c, word);
          CHECK(held.row == row_start.row);
          CHECK(held.col == row_start.col + c);
        }
      }
    }
  }
}

TEST_CASE("the mma C fragments of 16-bit values are ldmatrix/stmatrix matrices", "[codegen]") {
  const Layout fragments = layout::choose_mma_tiling(32, 32, 16, 4, DataType::f16())->c_layout();
  const RegisterMap map = codegen::build_register_map(fragments, {32, 32}, 128);
  const auto found = codegen::match_matrix_fragments(map, false);
  REQUIRE(found);
  CHECK_FALSE(found->transpose);
  check_stmatrix(map, *found);

  const Layout transposed = layout::permute(fragments, {32, 32}, {1, 0});
  const RegisterMap transposed_map = codegen::build_register_map(transposed, {32, 32}, 128);
  const auto found_transposed = codegen::match_matrix_fragments(transposed_map, false);
  REQUIRE(found_transposed);
  CHECK(found_transposed->transpose);
  check_stmatrix(transposed_map, *found_transposed);

  // Rows of 8 consecutive elements per thread are not the atom.
  const Layout rows({Iter{4, 1, Axis::warp()}, Iter{8, 4, Axis::lane()}, Iter{4, 1, Axis::lane()},
                     Iter{8, 1, Axis::reg()}});
  CHECK_FALSE(
      codegen::match_matrix_fragments(codegen::build_register_map(rows, {32, 32}, 128), false));
}

TEST_CASE("operand fragments copied in every warp are matrices for loads only", "[codegen]") {
  // The B operand [32, 8] of a 64x8x32 tiling over 4 warps: every warp holds all of it, read as
  // an [8, 32] tile (the activations of the transposed quantized GEMM).
  const auto tiling = layout::choose_mma_tiling(64, 8, 32, 4, DataType::f16());
  REQUIRE(tiling);
  REQUIRE(tiling->warps_m == 4);
  const Layout rows = layout::permute(tiling->b_layout(), {32, 8}, {1, 0});
  const RegisterMap map = codegen::build_register_map(rows, {8, 32}, 128);
  CHECK_FALSE(codegen::match_matrix_fragments(map, false));
  const auto found = codegen::match_matrix_fragments(map, true);
  REQUIRE(found);
  CHECK_FALSE(found->transpose);
  CHECK(found->words.size() == 4);
  check_stmatrix(map, *found);
}

// Runs the rounds: each thread sends its slot, takes its source lane's value and keeps it in its
// entry; then every entry must hold its element.
void check_shuffles(const RegisterMap& from, const RegisterMap& to,
                    const std::vector<codegen::LaneShuffle>& rounds) {
  const int64_t threads = to.threads;
  std::vector<std::vector<int64_t>> held(static_cast<size_t>(threads),
                                         std::vector<int64_t>(to.entries.size(), -1));
  for (const codegen::LaneShuffle& round : rounds) {
    for (int64_t t = 0; t < threads; ++t) {
      int64_t lane = round.lane_constant;
      for (size_t i = 0; i < round.lane_columns.size(); ++i) {
        if ((t >> i) & 1) lane ^= round.lane_columns[i];
      }
      const int64_t sender = t / 32 * 32 + lane;
      const int64_t value = from.element_at(sender, round.send_slot.of(sender));
      const auto entry = static_cast<size_t>(round.receive_entry.of(t));
      if (entry < to.entries.size()) held[static_cast<size_t>(t)][entry] = value;
    }
  }
  for (int64_t t = 0; t < threads; ++t) {
    for (size_t e = 0; e < to.entries.size(); ++e) {
      CAPTURE(t, e);
      CHECK(held[static_cast<size_t>(t)][e] == to.element_at(t, to.entries[e].slot));
    }
  }
}

std::vector<int64_t> identity(int64_t size) {
  std::vector<int64_t> map(static_cast<size_t>(size));
  for (int64_t x = 0; x < size; ++x)
    map[static_cast<size_t>(x)] = x;
  return map;
}

TEST_CASE("layout conversions inside warps become rounds of shuffles", "[codegen]") {
  // mma C fragments of [32, 8] over 2 warps to one row per lane pair.
  const Layout fragments = layout::choose_mma_tiling(32, 8, 16, 2, DataType::f16())->c_layout();
  const Layout rows({Iter{2, 1, Axis::warp()}, Iter{16, 2, Axis::lane()}, Iter{2, 1, Axis::lane()},
                     Iter{4, 1, Axis::reg()}});
  const RegisterMap from = codegen::build_register_map(fragments, {32, 8}, 64);
  const RegisterMap to = codegen::build_register_map(rows, {32, 8}, 64);
  const auto rounds = codegen::warp_shuffle_plan(from, to, identity(256));
  REQUIRE(rounds);
  CHECK(rounds->size() == 4);
  check_shuffles(from, to, *rounds);
  // ... and back.
  const auto back = codegen::warp_shuffle_plan(to, from, identity(256));
  REQUIRE(back);
  check_shuffles(to, from, *back);

  // The C fragments of one warp's [16, 8] tile to four rows of one column per lane (a
  // transpose of the lane's share).
  const Layout one_warp = layout::choose_mma_tiling(16, 8, 16, 1, DataType::f16())->c_layout();
  const Layout columns(
      {Iter{4, 1, Axis::lane()}, Iter{4, 1, Axis::reg()}, Iter{8, 4, Axis::lane()}});
  const RegisterMap c_map = codegen::build_register_map(one_warp, {16, 8}, 32);
  const RegisterMap column_map = codegen::build_register_map(columns, {16, 8}, 32);
  const auto to_columns = codegen::warp_shuffle_plan(c_map, column_map, identity(128));
  REQUIRE(to_columns);
  check_shuffles(c_map, column_map, *to_columns);

  // Elements that live in another warp cannot be shuffled.
  const Layout warp_rows({Iter{2, 1, Axis::warp()}, Iter{32, 1, Axis::lane()}});
  const Layout warp_columns({Iter{32, 1, Axis::lane()}, Iter{2, 1, Axis::warp()}});
  CHECK_FALSE(
      codegen::warp_shuffle_plan(codegen::build_register_map(warp_rows, {2, 32}, 64),
                                 codegen::build_register_map(warp_columns, {32, 2}, 64), [] {
                                   // element (c, w) of the [32, 2] target is (w, c) of the
                                   // [2, 32] source
                                   std::vector<int64_t> map(64);
                                   for (int64_t c = 0; c < 32; ++c)
                                     for (int64_t w = 0; w < 2; ++w)
                                       map[static_cast<size_t>(c * 2 + w)] = (1 - w) * 32 + c;
                                   return map;
                                 }()));
}

}  // namespace
}  // namespace nibble
