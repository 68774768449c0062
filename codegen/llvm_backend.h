// The LLVM end of codegen: target machines, the optimization pipelines and PTX emission.
//
// Internal to codegen: only codegen's sources include this header, and it names LLVM types by
// forward declaration only, so no LLVM header leaks out of this folder.
#pragma once

#include <string>

#include "codegen/compile.h"
#include "codegen/target.h"

namespace llvm {
class Module;
}  // namespace llvm

namespace nibble::codegen {

// Time spent in each LLVM stage, for the compile report.
struct LlvmStageTimes {
  double verify_ms = 0;
  double optimize_ms = 0;
  double emit_ms = 0;
};

// Sets the NVPTX triple and data layout of `module` for `target`.
void configure_module_for_target(llvm::Module& module, const Target& target);

// Verifies `module` (throws CodegenError quoting the verifier), runs `pipeline` with the NVPTX
// target machine, and returns the PTX text.
std::string emit_ptx(llvm::Module& module, const Target& target, LlvmPipeline pipeline,
                     LlvmStageTimes* times = nullptr);

// The IR text of a module, for `--emit llvm` and dumps.
std::string module_to_text(const llvm::Module& module);

}  // namespace nibble::codegen
