// Swizzles, the codegen queries (ownership, vector widths, conversion classes, bank conflicts)
// and pictures.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "layout/algebra.h"
#include "layout/atoms.h"
#include "layout/error.h"
#include "layout/picture.h"
#include "layout/queries.h"
#include "layout/swizzle.h"
#include "random_layouts.h"

using namespace nibble::layout;
using nibble::layout::testing::Random;

TEST_CASE("swizzles are bijections that keep the vector unit intact", "[layout][swizzle]") {
  for (int bits = 0; bits <= 3; ++bits) {
    for (int base = 0; base <= 4; ++base) {
      for (int shift = bits; shift <= bits + 3; ++shift) {
        if (bits > 0 && shift == 0) continue;
        Swizzle swizzle(bits, base, shift);
        CAPTURE(swizzle.to_string());
        const int64_t period = swizzle.period_bytes();
        std::set<int64_t> images;
        for (int64_t address = 0; address < 2 * period; ++address) {
          int64_t image = swizzle(address);
          REQUIRE_FAST(swizzle(image) == address);           // an involution
          REQUIRE_FAST(image / period == address / period);  // stays in its period
          const int64_t unit = swizzle.unit_bytes();
          REQUIRE_FAST(image % unit == address % unit);  // the unit moves as one
          REQUIRE_FAST(swizzle(address - address % unit) == image - image % unit);
          images.insert(image);
        }
        REQUIRE_FAST(static_cast<int64_t>(images.size()) == 2 * period);  // a bijection
      }
    }
  }
  CHECK(Swizzle::parse("128B") == Swizzle(3, 4, 3));
  CHECK(Swizzle::parse("Sw<2,4,3>") == Swizzle::bytes64());
  CHECK(Swizzle::parse("none").is_identity());
  CHECK_THROWS_WITH(Swizzle(3, 4, 2), Catch::Contains("not a bijective involution") &&
                                          Catch::Contains("bits read [6, 9) overlap the bits "
                                                          "written [4, 7)"));
  CHECK_THROWS_WITH(Swizzle(2, 4, 0), Catch::Contains("shift must be at least bits"));
  CHECK_THROWS_WITH(Swizzle(-1, 4, 3), Catch::Contains("non-negative"));
  CHECK_THROWS_WITH(Swizzle::parse("Sw<3,4>"), Catch::Contains("expected none, 32B"));
  CHECK_THROWS_WITH(Swizzle::parse("Sw<3,4,1>"), Catch::Contains("not a bijective"));
}

TEST_CASE("a 128-byte swizzled 64x64 f16 tile keeps 16-byte chunks and permutes them",
          "[layout][swizzle]") {
  Layout tile = Layout::row_major({64, 64}, Axis::smem());
  Swizzle swizzle = Swizzle::bytes128();
  std::set<int64_t> addresses;
  for (int64_t r = 0; r < 64; ++r) {
    for (int64_t c = 0; c < 64; ++c) {
      int64_t byte = swizzle.on_element(tile.place(r * 64 + c).get(Axis::smem()), 16) * 2;
      CHECK(byte == r * 128 + ((c / 8) ^ (r % 8)) * 16 + (c % 8) * 2);
      addresses.insert(byte);
    }
  }
  CHECK(addresses.size() == 64 * 64);
}

TEST_CASE("elements and register slots a thread owns", "[layout][queries]") {
  Atom atom = mma_m16n8k16_a();
  std::vector<OwnedElement> owned = owned_by_thread(atom.layout, 5);  // g = 1, t = 1
  REQUIRE(owned.size() == 8);
  std::map<int64_t, int64_t> slot_of;
  for (const OwnedElement& element : owned)
    slot_of[element.index] = element.place.get(Axis::reg());
  CHECK(slot_of == std::map<int64_t, int64_t>{{1 * 16 + 2, 0},
                                              {1 * 16 + 3, 1},
                                              {9 * 16 + 2, 2},
                                              {9 * 16 + 3, 3},
                                              {1 * 16 + 10, 4},
                                              {1 * 16 + 11, 5},
                                              {9 * 16 + 10, 6},
                                              {9 * 16 + 11, 7}});
  CHECK(threads_used(atom.layout) == 32);
  CHECK(threads_used(wgmma_d(64).layout) == 128);
  CHECK(thread_of(Coord{{Axis::warp(), 2}, {Axis::lane(), 3}}) == 67);
  // A broadcast over warps: every warp's lane 0 owns element 0.
  Layout broadcast = Layout::parse("S[(32,2):(1@lane,1@reg)] + R[4:1@warp]");
  CHECK(owned_by_thread(broadcast, 96).size() == 2);
  CHECK(owned_by_thread(broadcast, 200).empty());
}

TEST_CASE("vector widths on known layouts", "[layout][queries]") {
  // The A fragment holds pairs of columns: 32-bit vectors of f16 in registers.
  CHECK(vector_width_bits(mma_m16n8k16_a().layout, Axis::reg(), 16) == 32);
  // A row-major smem tile: 128-bit accesses everywhere (capped at max_bits).
  Layout smem_tile = Layout::row_major({64, 64}, Axis::smem());
  CHECK(vector_width_bits(smem_tile, Axis::smem(), 16) == 128);
  CHECK(vector_width_bits(smem_tile, Axis::smem(), 16, 64) == 64);
  CHECK(contiguous_run(smem_tile, Axis::smem(), 16).elements == 4096);
  // Each lane holding 8 consecutive f16 of a row in 8 register slots: 128-bit registers vectors.
  Layout rows = Layout::parse("S[(64,8,8):(8@reg,1@lane,1@reg)]");
  CHECK(vector_width_bits(rows, Axis::reg(), 16) == 128);
  CHECK(contiguous_run(rows, 3, Axis::reg(), 16).elements == 8);
  // Eight u4 in one register slot run: 32 bits.
  CHECK(vector_width_bits(Layout::parse("S[(32,8):(1@lane,1@reg)]"), Axis::reg(), 4) == 32);
  // An offset of 4 f16 halves the alignment: 64-bit vectors.
  CHECK(vector_width_bits(Layout::parse("S[(64,64):(64@smem,1@smem)] + 4@smem"), Axis::smem(),
                          16) == 64);
  CHECK(contiguous_run(Layout::parse("S[(64,64):(64@smem,1@smem)] + 4@smem"), Axis::smem(), 16)
            .alignment_bits == 64);
  // Column-major access to a row-major tile: scalars.
  CHECK(vector_width_bits(Layout::parse("S[(8,32):(1@smem,8@smem)]"), Axis::smem(), 16) == 16);
}

TEST_CASE("every vector width the query returns is contiguous and aligned", "[layout][queries]") {
  Random random(21);
  int vectorized = 0;
  for (int i = 0; i < 2000; ++i) {
    Layout layout = testing::random_layout(random, false, true);
    Axis axis = random.pick(std::vector<Axis>{Axis::reg(), Axis::smem()});
    int bits = static_cast<int>(random.pick<int64_t>({4, 8, 16, 32}));
    int64_t width = vector_width_bits(layout, axis, bits);
    CAPTURE(layout.to_string(), axis.name(), bits, width);
    REQUIRE(width % bits == 0);
    REQUIRE(width <= 128);
    const int64_t n = width / bits;
    if (n > 1) ++vectorized;
    // Every thread: its elements come in aligned groups of n at consecutive addresses.
    std::map<int64_t, std::map<int64_t, Coord>> by_thread;
    for (int64_t x = 0; x < layout.size(); ++x) {
      for (const Coord& point : layout.apply(x))
        by_thread[thread_of(point)][x] = within_thread(point);
    }
    for (const auto& [thread, places] : by_thread) {
      for (const auto& [x, place] : places) {
        int64_t start = x - x % n;
        REQUIRE_FAST(places.count(start));
        Coord expected = places.at(start);
        REQUIRE_FAST((expected.get(axis) * bits) % width == 0);
        expected.add(axis, x - start);
        REQUIRE_FAST(place == expected);
      }
    }
  }
  CHECK(vectorized > 50);
}

TEST_CASE("conversion classes of known pairs", "[layout][queries]") {
  Layout c_fragment = mma_m16n8k16_c().layout;
  // The same layout, or its register slots renumbered: no data moves between threads.
  CHECK(classify_conversion(c_fragment, c_fragment) == ConversionKind::RegisterPermutation);
  Layout renumbered = Layout::parse("S[(2,8,4,2):(1@reg,4@lane,1@lane,2@reg)]");
  CHECK(classify_conversion(c_fragment, renumbered) == ConversionKind::RegisterPermutation);
  // The mma C fragment to one row per lane group of four (a transpose inside the warp).
  Layout rows_by_lane = Layout::parse("S[(16,8):(2@lane,1@reg)]");
  CHECK(classify_conversion(c_fragment, rows_by_lane) == ConversionKind::WarpShuffle);
  // Two warps swapping halves of a tile: through shared memory.
  Layout by_warp = Layout::parse("S[(2,32,4):(1@warp,1@lane,1@reg)]");
  Layout swapped = Layout::parse("S[(2,32,4):(1@reg,1@lane,2@reg)] + R[2:1@warp]");
  CHECK(classify_conversion(by_warp, Layout::parse("S[(2,32,4):(1@warp,1@lane,1@reg)]")) ==
        ConversionKind::RegisterPermutation);
  CHECK(classify_conversion(Layout::parse("S[(2,32,4):(1@reg,1@lane,2@reg)]"), by_warp) ==
        ConversionKind::SharedMemory);
  // Replicated sources make a gather from any warp free.
  CHECK(classify_conversion(swapped, by_warp) == ConversionKind::RegisterPermutation);
  CHECK(std::string(conversion_name(ConversionKind::WarpShuffle)) == "warp shuffle");
  CHECK_THROWS_WITH(classify_conversion(c_fragment, mma_m16n8k16_a().layout),
                    Catch::Contains("has 128 elements but") && Catch::Contains("has 256"));
  CHECK_THROWS_WITH(classify_conversion(c_fragment, Layout::row_major({16, 8}, Axis::smem())),
                    Catch::Contains("lives on smem, not in registers"));
  Axis::define_mesh({{"dp", 2}, {"tp", 4}});
  CHECK_THROWS_WITH(classify_conversion(Layout::parse("S[(2,64):(1@tp,1@reg)]"),
                                        Layout::parse("S[(2,64):(1@dp,1@reg)]")),
                    Catch::Contains("collective"));
}

TEST_CASE("bank conflicts of a warp's shared-memory access", "[layout][queries]") {
  // A 32 x 64 f16 tile, row-major: each row is 128 bytes, so column 0 of every row sits in bank 0.
  Layout tile = Layout::row_major({32, 64}, Axis::smem());
  // One f16 of column 0 per lane.
  Layout column = slice(tile, {32, 64}, 1, 0, 1);
  Layout lane_per_row = Layout::parse("S[32:1@lane]");
  BankReport plain = shared_memory_wavefronts(lane_per_row, column, 16, 2);
  CHECK(plain.instructions == 1);
  CHECK(plain.wavefronts == 32);
  CHECK(plain.ideal_wavefronts == 1);
  CHECK(plain.conflicts() == 31);
  // With the 128-byte swizzle row r's first chunk moves to chunk r % 8: 8 banks, 4 words each.
  BankReport swizzled = shared_memory_wavefronts(lane_per_row, column, 16, 2, Swizzle::bytes128());
  CHECK(swizzled.wavefronts == 4);
  // 16-byte vectors of the first 8 columns, one row per lane (what ldmatrix does).
  Layout chunk = slice(tile, {32, 64}, 1, 0, 8);
  Layout lane_rows = Layout::parse("S[(32,8):(1@lane,1@reg)]");
  BankReport rows16 = shared_memory_wavefronts(lane_rows, chunk, 16, 16);
  CHECK(rows16.instructions == 1);
  CHECK(rows16.wavefronts == 32);  // 4 phases of 8 lanes, each 8 words deep in banks 0..3
  CHECK(rows16.ideal_wavefronts == 4);
  CHECK(shared_memory_wavefronts(lane_rows, chunk, 16, 16, Swizzle::bytes128()).wavefronts == 4);
  // A conflict-free row read: lane l reads column l of row 0 (f32): one wavefront.
  Layout row = Layout::row_major({32}, Axis::smem());
  CHECK(shared_memory_wavefronts(lane_per_row, row, 32, 4).wavefronts == 1);
  // Two lanes reading the same word is a broadcast, not a conflict.
  Layout same_word = Layout::parse("S[(16,2):(2@lane,1@lane)]");
  CHECK(shared_memory_wavefronts(same_word, Layout::parse("S[(16,2):(1@smem,0@smem)]"), 32, 4)
            .wavefronts == 1);
  CHECK_THROWS_WITH(shared_memory_wavefronts(lane_rows, tile, 16, 16),
                    Catch::Contains("has 256 elements but the smem layout"));
  CHECK_THROWS_WITH(shared_memory_wavefronts(lane_rows, chunk, 16, 12),
                    Catch::Contains("12-byte access"));
}

TEST_CASE("pictures of a fragment and a swizzled tile", "[layout][picture]") {
  Atom atom = mma_m16n8k16_a();
  std::string grid = text_grid(atom.layout, 16, 16, {0, {}, "mma.m16n8k16.a"});
  CHECK_THAT(grid, Catch::StartsWith("mma.m16n8k16.a\n"));
  // Row 0 begins T0:r0 T0:r1 T1:r0 T1:r1; row 8 begins T0:r2; column 8 of row 0 is T0:r4.
  CHECK(cell_label(atom.layout, 0) == "T0:r0");
  CHECK(cell_label(atom.layout, 1) == "T0:r1");
  CHECK(cell_label(atom.layout, 2) == "T1:r0");
  CHECK(cell_label(atom.layout, 8 * 16) == "T0:r2");
  CHECK(cell_label(atom.layout, 8) == "T0:r4");
  CHECK_THAT(grid, Catch::Contains("T0:r0  T0:r1  T1:r0  T1:r1"));
  // Memory layouts show byte addresses, swizzled.
  Layout tile = Layout::row_major({64, 64}, Axis::smem());
  PictureOptions bytes{16, Swizzle::bytes128(), ""};
  CHECK(cell_label(tile, 1 * 64 + 0, bytes) == std::to_string(128 + 16));
  CHECK(cell_label(tile, 1 * 64 + 8, bytes) == "128");
  CHECK(cell_label(Layout::parse("S[4:1@lane] + R[2:1@warp]"), 1) == "T1+1");
  std::string picture = svg(atom.layout, 16, 16, {0, {}, "A <fragment>"});
  CHECK_THAT(picture, Catch::StartsWith("<svg") && Catch::Contains("A &lt;fragment&gt;") &&
                          Catch::Contains(">T31:r7<"));
  CHECK_THROWS_WITH(text_grid(atom.layout, 16, 8),
                    Catch::Contains("16x8 grid does not hold the 256"));
}
