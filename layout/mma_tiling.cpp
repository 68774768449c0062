#include "layout/mma_tiling.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace nibble::layout {
namespace {

Iter lane_iter(int64_t extent, int64_t stride) {
  return Iter{extent, stride, Axis::lane()};
}
Iter reg_iter(int64_t extent, int64_t stride) {
  return Iter{extent, stride, Axis::reg()};
}
Iter warp_iter(int64_t extent, int64_t stride) {
  return Iter{extent, stride, Axis::warp()};
}

Layout fragment_layout(std::vector<Iter> shard, std::vector<Iter> replica = {}) {
  std::erase_if(shard, [](const Iter& iter) { return iter.extent == 1; });
  std::erase_if(replica, [](const Iter& iter) { return iter.extent == 1; });
  return Layout(std::move(shard), std::move(replica));
}

bool has_mma_atom(dtypes::DataType input) {
  using dtypes::DataType;
  for (const char* name : {"f16", "bf16", "i8", "u8", "f8e4m3", "f8e5m2"}) {
    if (input == DataType::parse(name)) return true;
  }
  return false;
}

}  // namespace

Layout MmaTiling::a_layout() const {
  const int64_t p = per_register();
  return fragment_layout({warp_iter(warps_m, warps_n), reg_iter(tiles_m(), steps_k() * 4 * p),
                          reg_iter(2, p), lane_iter(8, 4), reg_iter(steps_k(), 4 * p),
                          reg_iter(2, 2 * p), lane_iter(4, 1), reg_iter(p, 1)},
                         {warp_iter(warps_n, 1)});
}

Layout MmaTiling::b_layout() const {
  const int64_t p = per_register();
  return fragment_layout(
      {reg_iter(steps_k(), tiles_n() * 2 * p), reg_iter(2, p), lane_iter(4, 1), reg_iter(p, 1),
       warp_iter(warps_n, 1), reg_iter(tiles_n(), 2 * p), lane_iter(8, 4)},
      {warp_iter(warps_m, warps_n)});
}

Layout MmaTiling::c_layout() const {
  return fragment_layout({warp_iter(warps_m, warps_n), reg_iter(tiles_m(), tiles_n() * 4),
                          reg_iter(2, 2), lane_iter(8, 4), warp_iter(warps_n, 1),
                          reg_iter(tiles_n(), 4), lane_iter(4, 1), reg_iter(2, 1)});
}

std::optional<MmaTiling> choose_mma_tiling(int64_t m, int64_t n, int64_t k, int64_t warps,
                                           dtypes::DataType input) {
  if (!has_mma_atom(input)) return std::nullopt;
  MmaTiling tiling;
  tiling.input = input;
  if (m <= 0 || n <= 0 || k <= 0 || warps <= 0) return std::nullopt;
  if (m % 16 != 0 || n % 8 != 0 || k % tiling.atom_k() != 0) return std::nullopt;
  tiling.m = m;
  tiling.n = n;
  tiling.k = k;
  int64_t best_cost = -1;
  for (int64_t wm = 1; wm <= warps; ++wm) {
    const int64_t wn = warps / wm;
    if (warps % wm != 0 || (m / 16) % wm != 0 || (n / 8) % wn != 0) continue;
    const int64_t cost = 2 * (m / 16 / wm) + n / 8 / wn;
    if (best_cost >= 0 && cost >= best_cost) continue;
    best_cost = cost;
    tiling.warps_m = wm;
    tiling.warps_n = wn;
  }
  if (best_cost < 0) return std::nullopt;
  if (tiling.tiles_m() * tiling.tiles_n() * 4 > kMaxMmaAccumulatorRegisters) return std::nullopt;
  return tiling;
}

}  // namespace nibble::layout
