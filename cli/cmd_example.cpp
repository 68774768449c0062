// `nibble example [NAME]`: the example kernels (examples/) in the VM's text format, ready for
// `nibble check` and `nibble run`. Without NAME, lists them.
#include <fmt/format.h>

#include <functional>
#include <map>

#include "cli/commands.h"
#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "vm/printer.h"

namespace nibble::cli {

int run_example(Arguments args, std::ostream& out) {
  const std::map<std::string, std::pair<std::string, std::function<vm::Program()>>> examples = {
      {"vector_add", {"out = x + y (f32)", [] { return examples::vector_add(); }}},
      {"softmax", {"row softmax of an f32 matrix", [] { return examples::softmax(); }}},
      {"gemm", {"tiled f16 GEMM through shared memory", [] { return examples::gemm(); }}},
      {"gemv_u4",
       {"dequantizing GEMV, u4 weights with f16 group scales", [] { return examples::gemv_u4(); }}},
  };
  if (args.empty()) {
    for (const auto& [name, entry] : examples)
      out << fmt::format("{:<12} {}\n", name, entry.first);
    return 0;
  }
  if (args.size() > 1) throw UsageError{fmt::format("unexpected argument '{}'", args[1])};
  auto found = examples.find(args[0]);
  if (found == examples.end()) {
    throw UsageError{fmt::format("no example '{}' (nibble example lists them)", args[0])};
  }
  out << vm::print(found->second.second());
  return 0;
}

}  // namespace nibble::cli
