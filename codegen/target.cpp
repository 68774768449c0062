#include "codegen/target.h"

#include <fmt/format.h>

#include "codegen/errors.h"

namespace nibble::codegen {

Target Target::parse(std::string_view name) {
  for (const Target& target : supported_targets()) {
    if (target.name() == name) return target;
  }
  std::string known;
  for (const Target& target : supported_targets()) {
    known += (known.empty() ? "" : ", ") + target.name();
  }
  throw CodegenError(fmt::format("unknown target '{}': nibble supports {}", name, known));
}

std::string Target::name() const {
  return fmt::format("sm_{}{}", sm, arch_specific ? "a" : "");
}

std::vector<Target> supported_targets() {
  return {Target{80, false, 83}, Target{89, false, 83}, Target{90, true, 83}};
}

}  // namespace nibble::codegen
