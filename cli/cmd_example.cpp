// `nibble example [NAME]`: the example kernels (examples/) in the VM's text format, ready for
// `nibble check` and `nibble run`. Without NAME, lists them.
#include <fmt/format.h>

#include <functional>
#include <map>

#include "cli/commands.h"
#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/quant_gemm.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "vm/printer.h"

namespace nibble::cli {
namespace {

vm::Program quant_gemm_for(int64_t m) {
  return examples::quant_gemm(examples::choose_quant_gemm_config(
      m, 8192, 8192, dtypes::DataType::uint(4), dtypes::DataType::f16(), 128, false));
}

}  // namespace

int run_example(Arguments args, std::ostream& out) {
  const std::map<std::string, std::pair<std::string, std::function<vm::Program()>>> examples = {
      {"vector_add", {"out = x + y (f32)", [] { return examples::vector_add(); }}},
      {"softmax", {"row softmax of an f32 matrix", [] { return examples::softmax(); }}},
      {"gemm", {"tiled f16 GEMM through shared memory", [] { return examples::gemm(); }}},
      {"gemv_u4",
       {"dequantizing GEMV, u4 weights with f16 group scales", [] { return examples::gemv_u4(); }}},
      {"quant_gemm_decode",
       {"quantized GEMM, u4 g128, the decode schedule for M=1, K=N=8192",
        [] { return quant_gemm_for(1); }}},
      {"quant_gemm_prefill",
       {"quantized GEMM, u4 g128, the prefill schedule for M=4096, K=N=8192",
        [] { return quant_gemm_for(4096); }}},
  };
  if (args.empty()) {
    for (const auto& [name, entry] : examples)
      out << fmt::format("{:<20} {}\n", name, entry.first);
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
