#include "codegen/emit/register_map.h"

#include <fmt/format.h>

#include <numeric>

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

  // Check the decoding against the layout itself.
  int64_t places = 0;
  for (int64_t x = 0; x < original.size(); ++x) {
    for (const layout::Coord& place : original.apply(x)) {
      const int64_t t = layout::thread_of(place);
      const int64_t r = place.get(Axis::reg());
      if (t >= threads) {
        fail(original,
             fmt::format("element {} is placed in thread {} of a {}-thread block", x, t, threads));
      }
      if (map.element_at(t, r) != x) {
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

}  // namespace nibble::codegen
