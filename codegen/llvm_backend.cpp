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

std::unique_ptr<llvm::TargetMachine> make_target_machine(const Target& target) {
  initialize_nvptx_once();
  std::string error;
  const llvm::Target* nvptx = llvm::TargetRegistry::lookupTarget(kTriple, error);
  if (nvptx == nullptr) throw CodegenError("LLVM has no NVPTX target: " + error);
  const std::string features = fmt::format("+ptx{}", target.ptx_version);
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(
      nvptx->createTargetMachine(kTriple, target.name(), features, options, std::nullopt,
                                 std::nullopt, llvm::CodeGenOptLevel::Aggressive));
  if (!machine) throw CodegenError("LLVM could not create a target machine for " + target.name());
  return machine;
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

void configure_module_for_target(llvm::Module& module, const Target& target) {
  std::unique_ptr<llvm::TargetMachine> machine = make_target_machine(target);
  module.setTargetTriple(kTriple);
  module.setDataLayout(machine->createDataLayout());
}

std::string emit_ptx(llvm::Module& module, const Target& target, LlvmStageTimes* times) {
  LlvmStageTimes local_times;
  std::unique_ptr<llvm::TargetMachine> machine = make_target_machine(target);
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
    llvm::ModulePassManager passes =
        builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
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
