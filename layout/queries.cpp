#include "layout/queries.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "layout/algebra.h"
#include "layout/error.h"

namespace nibble::layout {
namespace {

constexpr int64_t kAlignmentCap = int64_t{1} << 20;

int64_t lowest_power_of_two(int64_t value) {
  if (value == 0) return kAlignmentCap;
  return std::min(value & -value, kAlignmentCap);
}

int64_t power_of_two_floor(int64_t value) {
  int64_t result = 1;
  while (result * 2 <= value)
    result *= 2;
  return result;
}

// Every (element, place) of every thread, grouped by thread.
std::map<int64_t, std::vector<OwnedElement>> by_thread(const Layout& layout) {
  std::map<int64_t, std::vector<OwnedElement>> result;
  std::vector<Coord> steps = layout.replica_steps();
  for (int64_t x = 0; x < layout.size(); ++x) {
    Coord base = layout.place(x);
    std::set<std::pair<int64_t, Coord>> seen;
    for (const Coord& step : steps) {
      Coord point = base + step;
      seen.insert({thread_of(point), within_thread(point)});
    }
    for (const auto& [thread, place] : seen)
      result[thread].push_back(OwnedElement{x, place});
  }
  return result;
}

ContiguousRun run_of(const Layout& layout, const std::vector<OwnedElement>& owned, Axis axis,
                     int element_bits) {
  std::map<int64_t, Coord> place_of;
  bool unique = true;
  for (const OwnedElement& element : owned) {
    unique = unique && place_of.emplace(element.index, element.place).second;
  }
  // Every held element sits k-aligned group of held elements at consecutive coordinates.
  auto groups_hold = [&](int64_t k) {
    for (const auto& [x, place] : place_of) {
      auto first = place_of.find(x - x % k);
      if (first == place_of.end()) return false;
      Coord expected = first->second;
      expected.add(axis, x % k);
      if (place != expected) return false;
    }
    return true;
  };
  ContiguousRun run;
  run.elements = 1;
  if (unique) {
    for (int64_t k = 2; k <= layout.size() && layout.size() % k == 0 && groups_hold(k); k *= 2) {
      run.elements = k;
    }
  }
  run.alignment_bits = kAlignmentCap;
  for (const auto& [x, place] : place_of) {
    if (x % run.elements != 0) continue;
    run.alignment_bits =
        std::min(run.alignment_bits, lowest_power_of_two(place.get(axis) * element_bits));
  }
  return run;
}

void check_register_layout(const Layout& layout, const char* which) {
  for (Axis axis : layout.axes()) {
    if (axis.is_memory() && axis != Axis::reg()) {
      throw LayoutError(fmt::format("conversion: the {} layout {} lives on {}, not in registers",
                                    which, layout.to_string(), axis.name()));
    }
  }
}

}  // namespace

int64_t thread_of(const Coord& point) {
  int64_t thread = 0;
  for (const auto& [axis, value] : point.entries()) {
    if (!axis.is_thread()) continue;
    std::optional<Axis> parent = axis.parent();
    thread += value * (parent && *parent == Axis::thread() ? axis.scale_in_parent() : 1);
  }
  return thread;
}

Coord within_thread(const Coord& point) {
  Coord result;
  for (const auto& [axis, value] : point.entries()) {
    if (!axis.is_thread()) result.add(axis, value);
  }
  return result;
}

int64_t threads_used(const Layout& layout) {
  Coord last;
  for (Axis axis : layout.axes()) {
    if (axis.is_thread()) last.add(axis, layout.span(axis) - 1);
  }
  return thread_of(last) + 1;
}

std::vector<OwnedElement> owned_by_thread(const Layout& layout, int64_t thread) {
  auto all = by_thread(layout);
  auto it = all.find(thread);
  if (it == all.end()) return {};
  return it->second;
}

ContiguousRun contiguous_run(const Layout& layout, int64_t thread, Axis memory_axis,
                             int element_bits) {
  return run_of(layout, owned_by_thread(layout, thread), memory_axis, element_bits);
}

ContiguousRun contiguous_run(const Layout& layout, Axis memory_axis, int element_bits) {
  ContiguousRun result{layout.size(), kAlignmentCap};
  for (const auto& [thread, owned] : by_thread(layout)) {
    ContiguousRun run = run_of(layout, owned, memory_axis, element_bits);
    result.elements = std::min(result.elements, run.elements);
    result.alignment_bits = std::min(result.alignment_bits, run.alignment_bits);
  }
  return result;
}

int64_t vector_width_bits(const Layout& layout, Axis memory_axis, int element_bits,
                          int64_t max_bits) {
  if (element_bits < 1) throw LayoutError("vector_width_bits: element width must be positive");
  ContiguousRun run = contiguous_run(layout, memory_axis, element_bits);
  int64_t elements = power_of_two_floor(run.elements);
  while (elements > 1 &&
         (elements * element_bits > max_bits || elements * element_bits > run.alignment_bits)) {
    elements /= 2;
  }
  return elements * element_bits;
}

const char* conversion_name(ConversionKind kind) {
  switch (kind) {
    case ConversionKind::RegisterPermutation:
      return "register permutation";
    case ConversionKind::WarpShuffle:
      return "warp shuffle";
    case ConversionKind::SharedMemory:
      return "through shared memory";
  }
  return "unknown";
}

ConversionKind classify_conversion(const Layout& from, const Layout& to) {
  if (from.size() != to.size()) {
    throw LayoutError(fmt::format("conversion: {} has {} elements but {} has {}", from.to_string(),
                                  from.size(), to.to_string(), to.size()));
  }
  check_register_layout(from, "source");
  check_register_layout(to, "target");
  auto outside_block = [](Axis axis) { return axis.is_device() || axis.kind() == AxisKind::Grid; };
  Layout from_placement = restrict_to(from, outside_block);
  Layout to_placement = restrict_to(to, outside_block);
  if (!same_function(from_placement, to_placement)) {
    throw LayoutError(
        fmt::format("conversion: {} and {} place elements on different GPUs or blocks; that is a "
                    "collective, not a register conversion",
                    from.to_string(), to.to_string()));
  }
  ConversionKind kind = ConversionKind::RegisterPermutation;
  for (int64_t x = 0; x < from.size(); ++x) {
    std::set<int64_t> holders;
    for (const Coord& point : from.apply(x))
      holders.insert(thread_of(point));
    for (const Coord& point : to.apply(x)) {
      int64_t thread = thread_of(point);
      if (holders.count(thread)) continue;
      bool same_warp = std::any_of(holders.begin(), holders.end(),
                                   [&](int64_t holder) { return holder / 32 == thread / 32; });
      if (!same_warp) return ConversionKind::SharedMemory;
      kind = ConversionKind::WarpShuffle;
    }
  }
  return kind;
}

BankReport shared_memory_wavefronts(const Layout& access, const Layout& smem, int element_bits,
                                    int64_t vector_bytes, const Swizzle& swizzle, int64_t warp) {
  if (access.size() != smem.size()) {
    throw LayoutError(
        fmt::format("bank conflicts: the access {} has {} elements but the smem "
                    "layout {} has {}",
                    access.to_string(), access.size(), smem.to_string(), smem.size()));
  }
  if (element_bits < 1 || vector_bytes < 1 || vector_bytes > 16 ||
      (vector_bytes & (vector_bytes - 1)) != 0 || (vector_bytes * 8) % element_bits != 0) {
    throw LayoutError(
        fmt::format("bank conflicts: a {}-byte access of {}-bit elements is not a "
                    "valid vector (1, 2, 4, 8 or 16 bytes of whole elements)",
                    vector_bytes, element_bits));
  }
  const int64_t per_vector = vector_bytes * 8 / element_bits;
  auto threads = by_thread(access);
  // Each lane's elements in register order, cut into vectors.
  std::vector<std::vector<std::vector<int64_t>>> vectors(32);
  BankReport report;
  for (int64_t lane = 0; lane < 32; ++lane) {
    auto it = threads.find(warp * 32 + lane);
    if (it == threads.end()) continue;
    std::vector<OwnedElement> owned = it->second;
    std::stable_sort(owned.begin(), owned.end(), [](const OwnedElement& a, const OwnedElement& b) {
      return a.place.get(Axis::reg()) < b.place.get(Axis::reg());
    });
    auto& lane_vectors = vectors[static_cast<size_t>(lane)];
    for (size_t i = 0; i < owned.size(); ++i) {
      if (i % static_cast<size_t>(per_vector) == 0) lane_vectors.emplace_back();
      lane_vectors.back().push_back(owned[i].index);
    }
    report.instructions = std::max(report.instructions, static_cast<int64_t>(lane_vectors.size()));
  }
  const int64_t lanes_per_phase = vector_bytes <= 4 ? 32 : 32 / (vector_bytes / 4);
  for (int64_t instruction = 0; instruction < report.instructions; ++instruction) {
    for (int64_t first = 0; first < 32; first += lanes_per_phase) {
      std::map<int64_t, std::set<int64_t>> words_of_bank;
      std::set<int64_t> words;
      for (int64_t lane = first; lane < first + lanes_per_phase; ++lane) {
        const auto& lane_vectors = vectors[static_cast<size_t>(lane)];
        if (instruction >= static_cast<int64_t>(lane_vectors.size())) continue;
        for (int64_t x : lane_vectors[static_cast<size_t>(instruction)]) {
          int64_t offset = swizzle.on_element(smem.place(x).get(Axis::smem()), element_bits);
          int64_t first_byte = offset * element_bits / 8;
          int64_t last_byte = (offset * element_bits + element_bits - 1) / 8;
          for (int64_t word = first_byte / 4; word <= last_byte / 4; ++word) {
            words_of_bank[word % 32].insert(word);
            words.insert(word);
          }
        }
      }
      int64_t phase = 0;
      for (const auto& [bank, bank_words] : words_of_bank) {
        phase = std::max(phase, static_cast<int64_t>(bank_words.size()));
      }
      report.wavefronts += phase;
      report.ideal_wavefronts += (static_cast<int64_t>(words.size()) + 31) / 32;
    }
  }
  return report;
}

}  // namespace nibble::layout
