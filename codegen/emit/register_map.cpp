#include "codegen/emit/register_map.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <utility>

#include "codegen/errors.h"
#include "layout/algebra.h"
#include "layout/queries.h"

namespace nibble::codegen {
namespace {

using layout::Axis;
using layout::Iter;

struct RegIter {
  int64_t extent;
  int64_t stride;
  int dimension;  // -1: replica
  int64_t weight;
  int64_t flat_weight;
};

[[noreturn]] void fail(const layout::Layout& l, const std::string& why) {
  throw CodegenError(fmt::format("register layout {}: {}", l.to_string(), why));
}

}  // namespace

int64_t RegisterMap::thread_part_divisor(int dimension) const {
  int64_t divisor = 0;
  for (const ThreadIter& iter : thread_iters) {
    if (iter.dimension == dimension && iter.extent > 1) divisor = std::gcd(divisor, iter.weight);
  }
  if (divisor == 0) return int64_t{1} << 20;
  return divisor & -divisor;
}

const SlotEntry* RegisterMap::entry_of_slot(int64_t slot) const {
  for (const SlotEntry& entry : entries) {
    if (entry.slot == slot) return &entry;
  }
  return nullptr;
}

std::string register_map_key(const layout::Layout& layout, const layout::Shape& shape) {
  return layout.to_string() + " " + layout::shape_to_string(shape);
}

RegisterMap build_register_map(const layout::Layout& original, const layout::Shape& shape,
                               int64_t threads) {
  const layout::Layout fused = layout::fuse(original, Axis::thread());
  std::vector<std::vector<Iter>> groups;
  try {
    groups = layout::group(fused, shape);
  } catch (const std::exception& error) {
    fail(original, fmt::format("cannot be split by the shape {}: {}",
                               layout::shape_to_string(shape), error.what()));
  }
  RegisterMap map;
  map.shape = shape;
  map.threads = threads;
  map.slots = std::max<int64_t>(1, fused.span(Axis::reg()));

  std::vector<RegIter> reg_iters;
  int64_t flat_stride = 1;
  for (size_t d = groups.size(); d-- > 0;) {
    int64_t weight = 1;
    for (size_t i = groups[d].size(); i-- > 0;) {
      const Iter& iter = groups[d][i];
      if (iter.extent > 1) {
        if (iter.axis == Axis::reg()) {
          reg_iters.push_back(
              {iter.extent, iter.stride, static_cast<int>(d), weight, weight * flat_stride});
        } else if (iter.axis == Axis::thread()) {
          map.thread_iters.push_back(
              {iter.extent, iter.stride, static_cast<int>(d), weight, weight * flat_stride});
        } else if (iter.stride != 0) {
          fail(original, fmt::format("axis {} has no place in registers", iter.axis.name()));
        } else {
          fail(original, "two elements share one place");
        }
      }
      weight *= iter.extent;
    }
    flat_stride *= shape[d];
  }
  for (const Iter& iter : fused.replica()) {
    if (iter.extent <= 1 || iter.stride == 0) continue;
    if (iter.axis == Axis::reg()) {
      reg_iters.push_back({iter.extent, iter.stride, -1, 0, 0});
    } else if (iter.axis == Axis::thread()) {
      map.thread_iters.push_back({iter.extent, iter.stride, -1, 0, 0});
      map.has_thread_replicas = true;
    } else {
      fail(original, fmt::format("replica axis {} has no place in registers", iter.axis.name()));
    }
  }
  for (const auto& [axis, value] : fused.offset().entries()) {
    if (axis == Axis::thread()) {
      map.thread_offset = value;
    } else if (axis != Axis::reg()) {
      fail(original, fmt::format("offset on axis {}", axis.name()));
    }
  }
  const int64_t reg_offset = fused.offset().get(Axis::reg());

  // Every combination of reg digits is one slot entry.
  const size_t rank = shape.size();
  std::vector<int64_t> digits(reg_iters.size(), 0);
  std::vector<int> slot_owner(static_cast<size_t>(map.slots), -1);
  while (true) {
    SlotEntry entry;
    entry.slot = reg_offset;
    entry.index.assign(rank, 0);
    for (size_t i = 0; i < reg_iters.size(); ++i) {
      const RegIter& iter = reg_iters[i];
      entry.slot += digits[i] * iter.stride;
      if (iter.dimension >= 0) {
        entry.index[static_cast<size_t>(iter.dimension)] += digits[i] * iter.weight;
        entry.flat += digits[i] * iter.flat_weight;
      } else if (digits[i] != 0) {
        entry.primary = false;
      }
    }
    if (entry.slot >= map.slots || slot_owner[static_cast<size_t>(entry.slot)] >= 0) {
      fail(original, fmt::format("register slot {} holds two elements", entry.slot));
    }
    slot_owner[static_cast<size_t>(entry.slot)] = static_cast<int>(map.entries.size());
    map.entries.push_back(std::move(entry));
    size_t i = 0;
    for (; i < reg_iters.size(); ++i) {
      if (++digits[i] < reg_iters[i].extent) break;
      digits[i] = 0;
    }
    if (i == reg_iters.size()) break;
  }

  // Simulate the run-time decoding for every thread.
  map.element_of.assign(static_cast<size_t>(threads * map.slots), -1);
  for (int64_t t = 0; t < threads; ++t) {
    const int64_t local = t - map.thread_offset;
    if (local < 0) {
      map.every_thread_valid = false;
      continue;
    }
    int64_t rebuilt = 0;
    int64_t flat = 0;
    for (const ThreadIter& iter : map.thread_iters) {
      const int64_t digit = (local / iter.stride) % iter.extent;
      rebuilt += digit * iter.stride;
      flat += digit * iter.flat_weight;
    }
    if (rebuilt != local) {
      map.every_thread_valid = false;
      continue;
    }
    for (const SlotEntry& entry : map.entries) {
      map.element_of[static_cast<size_t>(t * map.slots + entry.slot)] = entry.flat + flat;
    }
  }

  // Check the decoding against the layout itself: every place of every element, enumerated from
  // the fused layout's iters in integers (Layout::apply builds coordinate maps, which made this
  // check most of the cost of building the IR of a GEMM).
  std::vector<std::pair<int64_t, int64_t>> replica_steps = {{0, 0}};  // (thread, reg)
  for (const Iter& iter : fused.replica()) {
    if (iter.axis != Axis::thread() && iter.axis != Axis::reg()) continue;
    std::vector<std::pair<int64_t, int64_t>> next;
    for (const auto& [thread, reg] : replica_steps) {
      for (int64_t i = 0; i < iter.extent; ++i) {
        next.emplace_back(thread + (iter.axis == Axis::thread() ? i * iter.stride : 0),
                          reg + (iter.axis == Axis::reg() ? i * iter.stride : 0));
      }
    }
    replica_steps = std::move(next);
  }
  std::sort(replica_steps.begin(), replica_steps.end());
  replica_steps.erase(std::unique(replica_steps.begin(), replica_steps.end()), replica_steps.end());
  int64_t places = 0;
  for (int64_t x = 0; x < fused.size(); ++x) {
    int64_t base_thread = map.thread_offset;
    int64_t base_reg = reg_offset;
    int64_t rest = x;
    for (size_t i = fused.shard().size(); i-- > 0;) {
      const Iter& iter = fused.shard()[i];
      const int64_t digit = rest % iter.extent;
      rest /= iter.extent;
      if (iter.axis == Axis::thread()) base_thread += digit * iter.stride;
      if (iter.axis == Axis::reg()) base_reg += digit * iter.stride;
    }
    for (const auto& [thread_step, reg_step] : replica_steps) {
      const int64_t t = base_thread + thread_step;
      const int64_t r = base_reg + reg_step;
      if (t < 0 || t >= threads) {
        fail(original,
             fmt::format("element {} is placed in thread {} of a {}-thread block", x, t, threads));
      }
      if (r < 0 || r >= map.slots || map.element_at(t, r) != x) {
        fail(original, "its thread iters do not nest, which codegen needs");
      }
      ++places;
    }
  }
  int64_t held = 0;
  for (int64_t element : map.element_of)
    held += element >= 0 ? 1 : 0;
  if (held != places) fail(original, "its thread iters do not nest, which codegen needs");
  return map;
}

std::vector<int64_t> slot_permutation(const RegisterMap& from, const RegisterMap& to,
                                      const std::vector<int64_t>& source_of) {
  std::vector<int64_t> permutation(to.entries.size(), -1);
  const int64_t threads = std::min(from.threads, to.threads);
  for (size_t e = 0; e < to.entries.size(); ++e) {
    const int64_t slot = to.entries[e].slot;
    for (int64_t t = 0; t < threads; ++t) {
      const int64_t x = to.element_at(t, slot);
      if (x < 0) continue;
      const int64_t wanted = source_of[static_cast<size_t>(x)];
      int64_t found = -1;
      if (permutation[e] >= 0 && from.element_at(t, permutation[e]) == wanted) {
        found = permutation[e];
      } else {
        for (int64_t r = 0; r < from.slots; ++r) {
          if (from.element_at(t, r) == wanted) {
            found = r;
            break;
          }
        }
      }
      if (found < 0) return {};
      if (permutation[e] >= 0 && permutation[e] != found) return {};
      permutation[e] = found;
    }
  }
  return permutation;
}

// ---- warp-level atoms -----------------------------------------------------------------------

namespace {

// The top-left element of the 8x8 matrix that lane `lane` holds (row, col) of, or nullopt when the
// pair of elements is not a matrix row (or column, transposed) as the atom places it.
std::optional<std::pair<int64_t, int64_t>> matrix_origin(int64_t first, int64_t second,
                                                         int64_t columns, int64_t lane,
                                                         bool transpose) {
  const int64_t row = first / columns;
  const int64_t col = first % columns;
  const int64_t next_row = second / columns;
  const int64_t next_col = second % columns;
  const int64_t group = lane / 4;
  const int64_t in_group = lane % 4;
  std::pair<int64_t, int64_t> origin;
  if (transpose) {
    if (next_row != row + 1 || next_col != col) return std::nullopt;
    origin = {row - 2 * in_group, col - group};
  } else {
    if (next_row != row || next_col != col + 1) return std::nullopt;
    origin = {row - group, col - 2 * in_group};
  }
  if (origin.first < 0 || origin.second < 0 || origin.first % 8 != 0 || origin.second % 8 != 0) {
    return std::nullopt;
  }
  return origin;
}

bool matrices_hold(const RegisterMap& map, bool transpose) {
  const int64_t columns = map.shape[1];
  for (int64_t word = 0; word < map.slots / 2; ++word) {
    for (int64_t warp = 0; warp < map.threads / 32; ++warp) {
      std::optional<std::pair<int64_t, int64_t>> warp_origin;
      for (int64_t lane = 0; lane < 32; ++lane) {
        const int64_t thread = warp * 32 + lane;
        const auto origin =
            matrix_origin(map.element_at(thread, 2 * word), map.element_at(thread, 2 * word + 1),
                          columns, lane, transpose);
        if (!origin || (warp_origin && *origin != *warp_origin)) return false;
        warp_origin = origin;
      }
    }
  }
  return true;
}

int bits_of_threads(int64_t threads) {
  int bits = 0;
  while ((int64_t{1} << bits) < threads)
    ++bits;
  return bits;
}

// One value a thread needs: the target entry it fills, and the thread and slot that hold it.
struct Need {
  int64_t entry = 0;
  int64_t sender = 0;
  int64_t slot = 0;
};

// What every thread needs from other threads or itself, or false when an element is not held in
// the receiver's warp. The thread itself is preferred as the holder, then the warp's lanes in
// order.
bool collect_needs(const RegisterMap& from, const RegisterMap& to,
                   const std::vector<int64_t>& source_of, std::vector<std::vector<Need>>& needs) {
  needs.assign(static_cast<size_t>(to.threads), {});
  for (int64_t t = 0; t < to.threads; ++t) {
    for (size_t e = 0; e < to.entries.size(); ++e) {
      const int64_t x = to.element_at(t, to.entries[e].slot);
      if (x < 0) continue;
      const int64_t wanted = source_of[static_cast<size_t>(x)];
      const int64_t warp_start = t / 32 * 32;
      bool found = false;
      for (int64_t k = -1; k < 32 && !found; ++k) {
        const int64_t s = k < 0 ? t : warp_start + k;
        if (s >= from.threads) break;
        for (int64_t r = 0; r < from.slots && !found; ++r) {
          if (from.element_at(s, r) != wanted) continue;
          needs[static_cast<size_t>(t)].push_back({static_cast<int64_t>(e), s, r});
          found = true;
        }
      }
      if (!found) return false;
    }
  }
  return true;
}

// One round: each thread takes the first need whose sender is not yet asked for another slot.
// Fills per thread the source lane (-1: any), the target entry (`nothing`: the thread keeps
// nothing this round) and per sender the slot sent (-1: nobody asks).
void schedule_round(std::vector<std::vector<Need>>& needs, int64_t nothing,
                    std::vector<int64_t>& source_lane, std::vector<int64_t>& receive_entry,
                    std::vector<int64_t>& send_slot) {
  const size_t threads = needs.size();
  source_lane.assign(threads, -1);
  receive_entry.assign(threads, nothing);
  send_slot.assign(threads, -1);
  for (size_t t = 0; t < threads; ++t) {
    std::vector<Need>& pending = needs[t];
    for (auto it = pending.begin(); it != pending.end(); ++it) {
      int64_t& asked = send_slot[static_cast<size_t>(it->sender)];
      if (asked >= 0 && asked != it->slot) continue;
      asked = it->slot;
      source_lane[t] = it->sender % 32;
      receive_entry[t] = it->entry;
      pending.erase(it);
      break;
    }
  }
}

// lane_constant and lane_columns from the values at thread 0 and the powers of two, checked at
// every thread that receives.
bool fit_source_lane(const std::vector<int64_t>& source_lane, int bits, LaneShuffle& shuffle) {
  auto at = [&](int64_t t) { return source_lane[static_cast<size_t>(t)]; };
  shuffle.lane_constant = std::max<int64_t>(at(0), 0);
  shuffle.lane_columns.assign(static_cast<size_t>(bits), 0);
  for (int i = 0; i < bits; ++i) {
    const int64_t value = at(int64_t{1} << i);
    if (value >= 0) shuffle.lane_columns[static_cast<size_t>(i)] = value ^ shuffle.lane_constant;
  }
  for (int64_t t = 0; t < static_cast<int64_t>(source_lane.size()); ++t) {
    if (at(t) < 0) continue;
    int64_t predicted = shuffle.lane_constant;
    for (int i = 0; i < bits; ++i) {
      if ((t >> i) & 1) predicted ^= shuffle.lane_columns[static_cast<size_t>(i)];
    }
    if (predicted != at(t)) return false;
  }
  return true;
}

// Whether the defined values (>= 0) are a function of the thread bits in `mask`.
bool follows_bits(const std::vector<int64_t>& values, int64_t mask) {
  std::map<int64_t, int64_t> seen;
  for (int64_t t = 0; t < static_cast<int64_t>(values.size()); ++t) {
    const int64_t value = values[static_cast<size_t>(t)];
    if (value < 0) continue;
    auto [it, inserted] = seen.emplace(t & mask, value);
    if (!inserted && it->second != value) return false;
  }
  return true;
}

// The table of the fewest thread bits (found greedily, at most 4) that decide the defined values.
std::optional<ThreadBitTable> fit_bit_table(const std::vector<int64_t>& values, int bits) {
  int64_t mask = (int64_t{1} << bits) - 1;
  for (int i = bits - 1; i >= 0; --i) {
    if (follows_bits(values, mask & ~(int64_t{1} << i))) mask &= ~(int64_t{1} << i);
  }
  ThreadBitTable table;
  for (int i = 0; i < bits; ++i) {
    if ((mask >> i) & 1) table.bits.push_back(i);
  }
  if (table.bits.size() > 4) return std::nullopt;
  table.values.assign(size_t{1} << table.bits.size(), -1);
  for (int64_t t = 0; t < static_cast<int64_t>(values.size()); ++t) {
    const int64_t value = values[static_cast<size_t>(t)];
    if (value < 0) continue;
    size_t pattern = 0;
    for (size_t b = 0; b < table.bits.size(); ++b)
      pattern |= static_cast<size_t>((t >> table.bits[b]) & 1) << b;
    table.values[pattern] = value;
  }
  // Patterns no thread uses take a defined value, so that every thread reads a real slot.
  int64_t some = 0;
  for (int64_t value : table.values)
    if (value >= 0) some = value;
  for (int64_t& value : table.values)
    if (value < 0) value = some;
  return table;
}

}  // namespace

std::optional<MatrixFragments> match_matrix_fragments(const RegisterMap& map,
                                                      bool replicas_allowed) {
  // Within a warp, every lane has its own place in a matrix (matrices_hold), so replicas can
  // only be in other warps.
  if (map.shape.size() != 2 || (map.has_thread_replicas && !replicas_allowed) ||
      !map.every_thread_valid || map.threads % 32 != 0 || map.slots % 2 != 0 ||
      static_cast<int64_t>(map.entries.size()) != map.slots) {
    return std::nullopt;
  }
  for (const SlotEntry& entry : map.entries) {
    if (!entry.primary) return std::nullopt;
  }
  for (bool transpose : {false, true}) {
    if (!matrices_hold(map, transpose)) continue;
    MatrixFragments fragments;
    fragments.transpose = transpose;
    for (int64_t word = 0; word < map.slots / 2; ++word)
      fragments.words.push_back(word);
    return fragments;
  }
  return std::nullopt;
}

bool LaneShuffle::stays_in_thread() const {
  if (lane_constant != 0) return false;
  for (size_t i = 0; i < lane_columns.size(); ++i) {
    if (lane_columns[i] != (i < 5 ? int64_t{1} << i : 0)) return false;
  }
  return true;
}

int64_t ThreadBitTable::of(int64_t thread) const {
  size_t pattern = 0;
  for (size_t b = 0; b < bits.size(); ++b)
    pattern |= static_cast<size_t>((thread >> bits[b]) & 1) << b;
  return values[pattern];
}

std::optional<std::vector<LaneShuffle>> warp_shuffle_plan(const RegisterMap& from,
                                                          const RegisterMap& to,
                                                          const std::vector<int64_t>& source_of) {
  if (to.threads % 32 != 0 || from.threads != to.threads) return std::nullopt;
  std::vector<std::vector<Need>> needs;
  if (!collect_needs(from, to, source_of, needs)) return std::nullopt;
  const int bits = bits_of_threads(to.threads);
  const size_t max_rounds = 2 * to.entries.size();
  std::vector<LaneShuffle> rounds;
  std::vector<int64_t> source_lane;
  std::vector<int64_t> receive_entry;
  std::vector<int64_t> send_slot;
  auto pending = [&] {
    return std::any_of(needs.begin(), needs.end(), [](const auto& n) { return !n.empty(); });
  };
  while (pending()) {
    if (rounds.size() == max_rounds) return std::nullopt;
    schedule_round(needs, static_cast<int64_t>(to.entries.size()), source_lane, receive_entry,
                   send_slot);
    LaneShuffle round;
    if (!fit_source_lane(source_lane, bits, round)) return std::nullopt;
    std::optional<ThreadBitTable> sends = fit_bit_table(send_slot, bits);
    std::optional<ThreadBitTable> receives = fit_bit_table(receive_entry, bits);
    if (!sends || !receives) return std::nullopt;
    round.send_slot = std::move(*sends);
    round.receive_entry = std::move(*receives);
    rounds.push_back(std::move(round));
  }
  return rounds;
}

}  // namespace nibble::codegen
