// Axes: the named physical dimensions a layout maps logical elements onto.
//
// An axis is a name with a kind. The kinds, from the outside in:
//   Device   a GPU of a device mesh: `gpu`, or user-named mesh axes such as `dp` and `tp`
//   Grid     a thread block of the launch grid: `block`
//   Thread   a thread of the block: `lane` (32 per warp), `warp`, `warpgroup`, and the fused
//            `thread`
//   Memory   a storage slot: `reg` (per-thread register slot, in elements), `smem`, `gmem`
//            (element offsets; byte addresses are offset * element_bits / 8)
//   Logical  `idx`: a flat logical index. It is the output axis of an inverse and the input
//            axis of a composition, and where a stride-0 iter is written in canonical form.
//
// Axes know how they fuse into a parent: each child carries a scale, and the parent coordinate
// is the sum of child coordinates times their scales. The built-in thread axes fuse as
//   thread = 128 * warpgroup + 32 * warp + lane
// and device-mesh axes defined with define_mesh() fuse into `gpu` in row-major mesh order, so a
// 2 x 4 mesh (dp, tp) has gpu = 4 * dp + tp. fuse() in algebra.h rewrites a layout this way.
//
// The registry is global, append-only and thread-safe. Axes are small value handles (an index
// into the registry) compared by identity; their order is registration order, which is also
// the order in which coordinates and pictures list them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace nibble::layout {

enum class AxisKind : uint8_t { Logical, Device, Grid, Thread, Memory };

class Axis;

struct AxisInfo {
  std::string name;
  AxisKind kind = AxisKind::Logical;
  // The axis this one fuses into, and the weight of one step of this axis in the parent.
  // parent_id < 0: no parent.
  int parent_id = -1;
  int64_t scale_in_parent = 1;
  // A hardware limit on the coordinate (lane: 32; a mesh axis: its size); 0 = none.
  int64_t natural_extent = 0;
};

class Axis {
 public:
  // The logical index axis `idx`.
  Axis() = default;

  static Axis idx();
  static Axis lane();
  static Axis warp();
  static Axis warpgroup();
  static Axis thread();
  static Axis reg();
  static Axis smem();
  static Axis gmem();
  static Axis block();
  static Axis gpu();

  // The registered axis with this name; throws LayoutError listing the known names otherwise.
  static Axis named(std::string_view name);
  static std::optional<Axis> find(std::string_view name);

  // Registers an axis (or returns the existing one when name, kind and fusion agree; throws
  // LayoutError when an axis of that name exists with another definition). Names are
  // identifiers: a letter or '_' followed by letters, digits or '_'.
  static Axis define(std::string_view name, AxisKind kind, std::optional<Axis> parent = {},
                     int64_t scale_in_parent = 1, int64_t natural_extent = 0);

  // Defines the axes of a device mesh, outermost first, fused row-major into `gpu`:
  // define_mesh({{"dp", 2}, {"tp", 4}}) gives dp (scale 4) and tp (scale 1).
  static std::vector<Axis> define_mesh(const std::vector<std::pair<std::string, int64_t>>& axes);

  const std::string& name() const;
  AxisKind kind() const;
  const AxisInfo& info() const;
  std::optional<Axis> parent() const;
  int64_t scale_in_parent() const;
  bool is_thread() const { return kind() == AxisKind::Thread; }
  bool is_memory() const { return kind() == AxisKind::Memory; }
  bool is_device() const { return kind() == AxisKind::Device; }

  int id() const { return id_; }
  auto operator<=>(const Axis&) const = default;

 private:
  explicit Axis(int id) : id_(id) {}
  int id_ = 0;
};

// Every registered axis, in registration order.
std::vector<Axis> all_axes();

// "thread", "memory", ... for messages and the README table.
std::string_view kind_name(AxisKind kind);

}  // namespace nibble::layout
