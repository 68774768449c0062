#include "codegen/llvm_backend.h"

#include <fmt/format.h>
#include <llvm/Analysis/CGSCCPassManager.h>
#include <llvm/Analysis/LoopAnalysisManager.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/PassManager.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/Error.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>

#include <chrono>
#include <memory>
#include <mutex>

#include "codegen/errors.h"

// Only the NVPTX target is linked in, so initialize it by name instead of through
// llvm/Support/TargetSelect.h (which would reference every configured target).
extern "C" {
void LLVMInitializeNVPTXTargetInfo();
void LLVMInitializeNVPTXTarget();
void LLVMInitializeNVPTXTargetMC();
void LLVMInitializeNVPTXAsmPrinter();
}

namespace nibble::codegen {
namespace {

constexpr const char* kTriple = "nvptx64-nvidia-cuda";

void initialize_nvptx_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    LLVMInitializeNVPTXTargetInfo();
    LLVMInitializeNVPTXTarget();
    LLVMInitializeNVPTXTargetMC();
    LLVMInitializeNVPTXAsmPrinter();
  });
}

// The lean pipeline (CompileOptions::llvm_pipeline): the passes of LLVM 19's O3 pipeline (one
// kernel, nothing to inline, so its function simplification pipeline flattened) that matter for
// our kernels, in O3's order and with O3's options. Found by dropping O3's passes one at a time,
// most expensive first, and keeping each whose absence changed, for any example kernel or quant
// GEMM schedule, a hot loop's SASS instructions or raised its registers (bench/NOTES.md, "compile
// latency"). The emitters unroll everything and keep register tensors in allocas, so what counts
// is SROA, redundancy elimination and instruction combining over straight-line code; most of O3's
// repeated clean-ups, DSE, jump threading and the loop vectorizer find nothing more, and ptxas
// optimizes the PTX again. Revalidate (NIBBLE_LLVM_PIPELINE=o3 against the default, SASS of every
// example) when the emitters change what they produce or LLVM is upgraded.
#define NIBBLE_INSTCOMBINE "instcombine<max-iterations=1;no-use-loop-info;no-verify-fixpoint>"
constexpr const char* kLeanPipeline =
    // Registers out of allocas, the first round of redundancy elimination. (callsite-splitting
    // and mem2reg below do nothing to our code, but which analyses they keep alive changes the
    // later passes' results: dropping them changed the SASS of the prefill schedule.)
    "function(nvvm-intr-range,sroa<modify-cfg>,early-cse<>,callsite-splitting),"
    // Facts about the entry block's values (the thread index's range, constants) everywhere.
    "ipsccp,"
    "function(mem2reg," NIBBLE_INSTCOMBINE
    ",early-cse<memssa>,"
    "simplifycfg<bonus-inst-threshold=1;no-forward-switch-cond;switch-range-to-icmp;"
    "no-switch-to-lookup;keep-loops;no-hoist-common-insts;no-sink-common-insts;speculate-blocks;"
    "simplify-cond-branch;no-speculate-unpredictables>,"
    // Address arithmetic regrouped so that loop-invariant parts leave the k loop.
    "reassociate,"
    "loop-mssa(loop-instsimplify,loop-simplifycfg,licm<no-allowspeculation>,"
    "loop-rotate<header-duplication;no-prepare-for-lto>,licm<allowspeculation>,"
    "simple-loop-unswitch<nontrivial;trivial>)," NIBBLE_INSTCOMBINE
    ","
    "loop(loop-idiom,indvars,simple-loop-unswitch<nontrivial;trivial>,loop-deletion,"
    "loop-unroll-full),"
    "vector-combine,gvn<>,bdce,correlated-propagation,move-auto-init),"
    // Read-only pointer parameters, so that noalias ones load through the non-coherent path
    // (ld.global.nc), where O3 infers the same at this point.
    "cgscc(function-attrs),"
    "function("
    "simplifycfg<bonus-inst-threshold=1;forward-switch-cond;switch-range-to-icmp;switch-to-lookup;"
    "no-keep-loops;hoist-common-insts;sink-common-insts;speculate-blocks;simplify-cond-branch;"
    "no-speculate-unpredictables>," NIBBLE_INSTCOMBINE ",loop-unroll<O3>,infer-alignment)";
#undef NIBBLE_INSTCOMBINE

std::unique_ptr<llvm::TargetMachine> make_target_machine(const Target& target,
                                                         llvm::CodeGenOptLevel level) {
  initialize_nvptx_once();
  std::string error;
  const llvm::Target* nvptx = llvm::TargetRegistry::lookupTarget(kTriple, error);
  if (nvptx == nullptr) throw CodegenError("LLVM has no NVPTX target: " + error);
  const std::string features = fmt::format("+ptx{}", target.ptx_version);
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(nvptx->createTargetMachine(
      kTriple, target.name(), features, options, std::nullopt, std::nullopt, level));
  if (!machine) throw CodegenError("LLVM could not create a target machine for " + target.name());
  return machine;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

void configure_module_for_target(llvm::Module& module, const Target& target) {
  std::unique_ptr<llvm::TargetMachine> machine =
      make_target_machine(target, llvm::CodeGenOptLevel::Aggressive);
  module.setTargetTriple(kTriple);
  module.setDataLayout(machine->createDataLayout());
}

std::string emit_ptx(llvm::Module& module, const Target& target, LlvmPipeline pipeline,
                     LlvmStageTimes* times) {
  LlvmStageTimes local_times;
  // The backend's aggressive level differs from its default only in running GVN instead of
  // EarlyCSE in its IR passes: after the lean pipeline that gives the same PTX, for less time.
  std::unique_ptr<llvm::TargetMachine> machine =
      make_target_machine(target, pipeline == LlvmPipeline::O3 ? llvm::CodeGenOptLevel::Aggressive
                                                               : llvm::CodeGenOptLevel::Default);
  module.setTargetTriple(kTriple);
  module.setDataLayout(machine->createDataLayout());

  auto start = std::chrono::steady_clock::now();
  std::string verifier_message;
  llvm::raw_string_ostream verifier_stream(verifier_message);
  if (llvm::verifyModule(module, &verifier_stream)) {
    throw CodegenError(fmt::format("LLVM IR of module '{}' does not verify:\n{}",
                                   module.getName().str(), verifier_stream.str()));
  }
  local_times.verify_ms = milliseconds_since(start);

  start = std::chrono::steady_clock::now();
  {
    llvm::LoopAnalysisManager loop_analyses;
    llvm::FunctionAnalysisManager function_analyses;
    llvm::CGSCCAnalysisManager cgscc_analyses;
    llvm::ModuleAnalysisManager module_analyses;
    llvm::PassBuilder builder(machine.get());
    builder.registerModuleAnalyses(module_analyses);
    builder.registerCGSCCAnalyses(cgscc_analyses);
    builder.registerFunctionAnalyses(function_analyses);
    builder.registerLoopAnalyses(loop_analyses);
    builder.crossRegisterProxies(loop_analyses, function_analyses, cgscc_analyses, module_analyses);
    llvm::ModulePassManager passes;
    if (pipeline == LlvmPipeline::O3) {
      passes = builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
    } else if (llvm::Error error = builder.parsePassPipeline(passes, kLeanPipeline)) {
      throw CodegenError("the lean LLVM pipeline does not parse: " +
                         llvm::toString(std::move(error)));
    }
    passes.run(module, module_analyses);
  }
  local_times.optimize_ms = milliseconds_since(start);

  start = std::chrono::steady_clock::now();
  llvm::SmallString<0> ptx;
  {
    llvm::raw_svector_ostream ptx_stream(ptx);
    llvm::legacy::PassManager emit_passes;
    if (machine->addPassesToEmitFile(emit_passes, ptx_stream, nullptr,
                                     llvm::CodeGenFileType::AssemblyFile)) {
      throw CodegenError("the NVPTX backend cannot emit PTX for " + target.name());
    }
    emit_passes.run(module);
  }
  local_times.emit_ms = milliseconds_since(start);
  if (times != nullptr) *times = local_times;
  return std::string(ptx.str());
}

std::string module_to_text(const llvm::Module& module) {
  std::string text;
  llvm::raw_string_ostream stream(text);
  module.print(stream, nullptr);
  return stream.str();
}

}  // namespace nibble::codegen
