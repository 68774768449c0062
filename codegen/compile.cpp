#include "codegen/compile.h"

#include <fmt/format.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <string_view>

#include "codegen/dump.h"
#include "codegen/emit/kernel_emitter.h"
#include "codegen/llvm_backend.h"
#include "codegen/ptxas.h"
#include "vm/passes.h"
#include "vm/verifier.h"

namespace nibble::codegen {
namespace {

double milliseconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// "ptxas info    : Used 40 registers, used 1 barriers, 384 bytes smem, 380 bytes cmem[0]" and
// "    0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads".
void read_ptxas_log(CompileReport& report) {
  std::smatch match;
  const std::string& log = report.ptxas_log;
  if (std::regex_search(log, match, std::regex(R"(Used (\d+) registers)")))
    report.registers = std::stoi(match[1]);
  if (std::regex_search(log, match, std::regex(R"((\d+) bytes stack frame)"))) {
    report.stack_frame_bytes = std::stoll(match[1]);
  }
  if (std::regex_search(log, match, std::regex(R"((\d+) bytes spill stores)"))) {
    report.spill_store_bytes = std::stoll(match[1]);
  }
  if (std::regex_search(log, match, std::regex(R"((\d+) bytes spill loads)"))) {
    report.spill_load_bytes = std::stoll(match[1]);
  }
  report.static_shared_bytes = 0;
  if (std::regex_search(log, match, std::regex(R"((\d+) bytes smem)"))) {
    report.static_shared_bytes = std::stoll(match[1]);
  }
}

}  // namespace

LlvmPipeline default_llvm_pipeline() {
  const char* value = std::getenv("NIBBLE_LLVM_PIPELINE");
  if (value == nullptr || *value == '\0') return LlvmPipeline::Lean;
  const std::string_view name(value);
  if (name == "lean") return LlvmPipeline::Lean;
  if (name == "o3" || name == "O3") return LlvmPipeline::O3;
  throw CodegenError(fmt::format("NIBBLE_LLVM_PIPELINE='{}': expected 'lean' or 'o3'", name));
}

const char* to_string(LlvmPipeline pipeline) {
  return pipeline == LlvmPipeline::O3 ? "o3" : "lean";
}

CompiledKernel compile(const vm::Program& source, const Target& target,
                       const CompileOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  CompiledKernel kernel;
  kernel.target = target;
  kernel.program = source;
  auto stage = std::chrono::steady_clock::now();
  vm::run_default_passes(kernel.program);
  assign_mma_layouts(kernel.program, target);
  kernel.report.passes_ms = milliseconds_since(stage);
  kernel.name = kernel.program.name;
  kernel.block_threads = kernel.program.threads();

  llvm::LLVMContext context;
  stage = std::chrono::steady_clock::now();
  KernelEmitter emitter(kernel.program, target, context);
  std::unique_ptr<llvm::Module> module = emitter.emit();
  kernel.report.ir_build_ms = milliseconds_since(stage);
  const std::optional<std::filesystem::path> dump = dump_directory();
  if (options.keep_llvm_ir || dump) kernel.llvm_ir = module_to_text(*module);
  kernel.parameters = emitter.parameters();
  kernel.report.shared_tile_bytes = emitter.tile_bytes();
  kernel.report.shared_scratch_bytes = emitter.scratch_bytes();
  kernel.report.notes = emitter.notes();
  kernel.dynamic_shared_bytes =
      emitter.scratch_bytes() > 0
          ? (emitter.tile_bytes() + 127) / 128 * 128 + emitter.scratch_bytes()
          : emitter.tile_bytes();
  if (kernel.dynamic_shared_bytes > vm::kMaxSharedMemoryBytes) {
    throw CodegenError(
        fmt::format("codegen of kernel '{}': {} bytes of shared memory ({} of tiles, {} of scratch "
                    "for data that "
                    "crosses threads) exceed the {}-byte limit",
                    kernel.name, kernel.dynamic_shared_bytes, emitter.tile_bytes(),
                    emitter.scratch_bytes(), vm::kMaxSharedMemoryBytes));
  }

  // The target's PTX ISA version unless an instruction needs a newer one (fp8 mma: 8.4), so
  // that kernels without it keep their PTX.
  Target emitted = target;
  emitted.ptx_version = std::max(target.ptx_version, emitter.required_ptx_version());
  LlvmStageTimes times;
  kernel.ptx = emit_ptx(*module, emitted, options.llvm_pipeline, &times);
  kernel.report.llvm_pipeline = options.llvm_pipeline;
  kernel.report.verify_ms = times.verify_ms;
  kernel.report.optimize_ms = times.optimize_ms;
  kernel.report.emit_ms = times.emit_ms;

  if (options.assemble && find_ptxas()) {
    PtxasResult assembled = assemble_ptx(kernel.ptx, emitted, options.ptxas_verbose);
    kernel.cubin = std::move(assembled.cubin);
    kernel.report.ptxas_ms = assembled.milliseconds;
    kernel.report.ptxas_log = std::move(assembled.log);
    read_ptxas_log(kernel.report);
  }
  kernel.report.total_ms = milliseconds_since(start);
  if (dump) dump_stages(kernel, *dump);
  return kernel;
}

std::string to_string(const CompileReport& report) {
  std::string text = fmt::format(
      "registers {}, spills {}/{} bytes (stores/loads), stack {} bytes, shared {} bytes of tiles + "
      "{} bytes of scratch\n"
      "times: passes {:.2f} ms, ir {:.2f} ms, verify {:.2f} ms, opt ({}) {:.2f} ms, ptx {:.2f} ms, "
      "ptxas {:.2f} ms, total {:.2f} ms\n",
      report.registers, report.spill_store_bytes, report.spill_load_bytes, report.stack_frame_bytes,
      report.shared_tile_bytes, report.shared_scratch_bytes, report.passes_ms, report.ir_build_ms,
      report.verify_ms, to_string(report.llvm_pipeline), report.optimize_ms, report.emit_ms,
      report.ptxas_ms, report.total_ms);
  for (const std::string& note : report.notes)
    text += "  " + note + "\n";
  return text;
}

}  // namespace nibble::codegen
