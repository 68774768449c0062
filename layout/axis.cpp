#include "layout/axis.h"

#include <fmt/format.h>

#include <cctype>
#include <deque>
#include <mutex>

#include "layout/error.h"

namespace nibble::layout {
namespace {

// Built-in axes in registration order; their ids are their positions here.
enum BuiltinId : int {
  kIdx = 0,
  kGpu,
  kBlock,
  kThread,
  kWarpgroup,
  kWarp,
  kLane,
  kReg,
  kSmem,
  kGmem,
};

class Registry {
 public:
  static Registry& get() {
    static Registry registry;
    return registry;
  }

  const AxisInfo& at(int id) {
    std::lock_guard lock(mutex_);
    return axes_.at(static_cast<size_t>(id));
  }

  std::optional<int> find(std::string_view name) {
    std::lock_guard lock(mutex_);
    return find_locked(name);
  }

  int define(AxisInfo info) {
    std::lock_guard lock(mutex_);
    if (std::optional<int> existing = find_locked(info.name)) {
      const AxisInfo& old = axes_[static_cast<size_t>(*existing)];
      if (old.kind == info.kind && old.parent_id == info.parent_id &&
          old.scale_in_parent == info.scale_in_parent &&
          old.natural_extent == info.natural_extent) {
        return *existing;
      }
      throw LayoutError(
          fmt::format("axis '{}' is already defined as a {} axis with another fusion or extent",
                      info.name, kind_name(old.kind)));
    }
    axes_.push_back(std::move(info));
    return static_cast<int>(axes_.size() - 1);
  }

  std::vector<std::string> names() {
    std::lock_guard lock(mutex_);
    std::vector<std::string> result;
    for (const AxisInfo& info : axes_)
      result.push_back(info.name);
    return result;
  }

 private:
  Registry() {
    auto add = [&](const char* name, AxisKind kind, int parent, int64_t scale, int64_t extent) {
      axes_.push_back(AxisInfo{name, kind, parent, scale, extent});
    };
    add("idx", AxisKind::Logical, -1, 1, 0);
    add("gpu", AxisKind::Device, -1, 1, 0);
    add("block", AxisKind::Grid, -1, 1, 0);
    add("thread", AxisKind::Thread, -1, 1, 0);
    add("warpgroup", AxisKind::Thread, kThread, 128, 0);
    add("warp", AxisKind::Thread, kThread, 32, 0);
    add("lane", AxisKind::Thread, kThread, 1, 32);
    add("reg", AxisKind::Memory, -1, 1, 0);
    add("smem", AxisKind::Memory, -1, 1, 0);
    add("gmem", AxisKind::Memory, -1, 1, 0);
  }

  std::optional<int> find_locked(std::string_view name) const {
    for (size_t i = 0; i < axes_.size(); ++i) {
      if (axes_[i].name == name) return static_cast<int>(i);
    }
    return std::nullopt;
  }

  std::mutex mutex_;
  std::deque<AxisInfo> axes_;  // a deque keeps references stable while it grows
};

bool is_identifier(std::string_view name) {
  if (name.empty()) return false;
  if (!std::isalpha(static_cast<unsigned char>(name[0])) && name[0] != '_') return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

}  // namespace

Axis Axis::idx() {
  return Axis(kIdx);
}
Axis Axis::lane() {
  return Axis(kLane);
}
Axis Axis::warp() {
  return Axis(kWarp);
}
Axis Axis::warpgroup() {
  return Axis(kWarpgroup);
}
Axis Axis::thread() {
  return Axis(kThread);
}
Axis Axis::reg() {
  return Axis(kReg);
}
Axis Axis::smem() {
  return Axis(kSmem);
}
Axis Axis::gmem() {
  return Axis(kGmem);
}
Axis Axis::block() {
  return Axis(kBlock);
}
Axis Axis::gpu() {
  return Axis(kGpu);
}

std::optional<Axis> Axis::find(std::string_view name) {
  if (std::optional<int> id = Registry::get().find(name)) return Axis(*id);
  return std::nullopt;
}

Axis Axis::named(std::string_view name) {
  if (std::optional<Axis> axis = find(name)) return *axis;
  throw LayoutError(fmt::format("unknown axis '{}' (known: {}; define mesh axes with define_mesh)",
                                name, fmt::join(Registry::get().names(), ", ")));
}

Axis Axis::define(std::string_view name, AxisKind kind, std::optional<Axis> parent,
                  int64_t scale_in_parent, int64_t natural_extent) {
  if (!is_identifier(name)) {
    throw LayoutError(fmt::format("axis name '{}' is not an identifier", name));
  }
  if (scale_in_parent < 1 || natural_extent < 0) {
    throw LayoutError(fmt::format("axis '{}': scale {} and extent {} must be positive", name,
                                  scale_in_parent, natural_extent));
  }
  AxisInfo info{std::string(name), kind, parent ? parent->id() : -1, scale_in_parent,
                natural_extent};
  return Axis(Registry::get().define(std::move(info)));
}

std::vector<Axis> Axis::define_mesh(const std::vector<std::pair<std::string, int64_t>>& axes) {
  std::vector<int64_t> scales(axes.size());
  int64_t scale = 1;
  for (size_t i = axes.size(); i-- > 0;) {
    const auto& [name, extent] = axes[i];
    if (extent < 1) {
      throw LayoutError(
          fmt::format("mesh axis '{}' has extent {}; extents must be positive", name, extent));
    }
    scales[i] = scale;
    scale *= extent;
  }
  // Registered outermost first, so coordinates and pictures list them in mesh order.
  std::vector<Axis> result;
  for (size_t i = 0; i < axes.size(); ++i) {
    result.push_back(define(axes[i].first, AxisKind::Device, gpu(), scales[i], axes[i].second));
  }
  return result;
}

const AxisInfo& Axis::info() const {
  return Registry::get().at(id_);
}
const std::string& Axis::name() const {
  return info().name;
}
AxisKind Axis::kind() const {
  return info().kind;
}
int64_t Axis::scale_in_parent() const {
  return info().scale_in_parent;
}

std::optional<Axis> Axis::parent() const {
  int parent_id = info().parent_id;
  if (parent_id < 0) return std::nullopt;
  return Axis::named(Registry::get().at(parent_id).name);
}

std::vector<Axis> all_axes() {
  std::vector<Axis> result;
  for (const std::string& name : Registry::get().names())
    result.push_back(Axis::named(name));
  return result;
}

std::string_view kind_name(AxisKind kind) {
  switch (kind) {
    case AxisKind::Logical:
      return "logical";
    case AxisKind::Device:
      return "device";
    case AxisKind::Grid:
      return "grid";
    case AxisKind::Thread:
      return "thread";
    case AxisKind::Memory:
      return "memory";
  }
  return "unknown";
}

}  // namespace nibble::layout
