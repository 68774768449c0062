#include "vm/types.h"
#include <algorithm>

#include <fmt/format.h>

namespace nibble::vm {

std::string_view to_string(Scope scope) {
  switch (scope) {
    case Scope::Global:
      return "global";
    case Scope::Shared:
      return "shared";
    case Scope::Register:
      return "register";
  }
  return "?";
}

int64_t TensorType::element_count() const {
  return layout::shape_size(shape);
}

std::string to_string(const TensorType& type) {
  if (type.scope == Scope::Global) {
    std::string shape;
    std::string strides;
    for (size_t d = 0; d < type.global_shape.size(); ++d) {
      shape += (d ? ", " : "") + to_string(type.global_shape[d]);
      strides += (d ? ", " : "") + to_string(type.global_strides[d]);
    }
    return fmt::format("{} global[{}] strides [{}]", type.dtype.name(), shape, strides);
  }
  std::string text = fmt::format("{} {}{}", type.dtype.name(), to_string(type.scope),
                                 layout::shape_to_string(type.shape));
  text += type.layout ? " @ " + type.layout->to_string() : " @ ?";
  if (type.scope == Scope::Shared && !type.swizzle.is_identity()) {
    text += " swizzle " + type.swizzle.to_string();
  }
  return text;
}

int64_t shared_tile_alignment(const TensorType& type) {
  if (type.swizzle.is_identity()) return 128;
  return std::max<int64_t>(128, type.swizzle.period_bytes());
}

}  // namespace nibble::vm
