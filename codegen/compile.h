// Compiling a VM program for a GPU: vm::Program -> LLVM IR -> PTX (LLVM's NVPTX backend) ->
// cubin (ptxas), with a report of what it cost and what the kernel uses.
//
// The model of the generated code (codegen/emit/ holds one emitter per instruction family):
// every thread of the block runs the block-level program; a register tensor is a per-thread array
// of span(reg) slots, and each instruction is unrolled over the slots the layout gives the thread
// (slot indices are compile-time constants, so the arrays live in registers). The logical element
// of (thread, slot) comes from the layout (codegen/emit/register_map.h). Stores of replicated
// elements are done by one replica. Shared tiles sit in one dynamic shared-memory array at the
// interpreter's offsets (bump allocation, 128-byte aligned, program order), followed by a scratch
// region for data that has to cross threads (layout conversions, reductions, SIMT dot).
//
// No LLVM type appears here: this header is what the front ends and the command line include.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codegen/errors.h"
#include "codegen/target.h"
#include "vm/program.h"

namespace nibble::codegen {

// The LLVM pipeline between the emitted IR and PTX. `lean` (the default) is a short list of IR
// passes and the backend at its default level: on the examples it gives the SASS that `o3` gives
// (ptxas optimizes again) in a fraction of the compile time. `o3` is LLVM's O3 pipeline and the
// backend at its aggressive level. NIBBLE_LLVM_PIPELINE=o3|lean sets the default
// (codegen/README.md).
enum class LlvmPipeline : uint8_t { Lean, O3 };
LlvmPipeline default_llvm_pipeline();
const char* to_string(LlvmPipeline pipeline);

struct CompileOptions {
  bool keep_llvm_ir = false;  // fill CompiledKernel::llvm_ir (before optimization)
  bool assemble = true;       // run ptxas (when found) for the cubin and the resource report
  bool ptxas_verbose = true;  // registers, spills, shared memory in the report
  LlvmPipeline llvm_pipeline = default_llvm_pipeline();
};

// One kernel parameter as the launch passes it (compile-time parameters are not passed).
struct KernelParameter {
  enum class Kind : uint8_t { Pointer, Scalar };
  std::string name;
  Kind kind = Kind::Scalar;
  dtypes::DataType dtype = dtypes::DataType::sint(32);  // the pointee for pointers
  int program_index = 0;                                // position in Program::params
  int64_t size_bytes = 8;                               // of the argument value
  int64_t alignment_bytes = 0;                          // pointers: assumed base alignment
  int64_t divisor = 1;                                  // scalars: assumed divisor
};

struct CompileReport {
  // Milliseconds per stage.
  double passes_ms = 0;    // vm::run_default_passes on a copy
  double ir_build_ms = 0;  // emitters
  double verify_ms = 0;
  double optimize_ms = 0;  // LLVM IR passes (CompileOptions::llvm_pipeline)
  double emit_ms = 0;      // PTX
  double ptxas_ms = 0;
  double total_ms = 0;
  LlvmPipeline llvm_pipeline = LlvmPipeline::Lean;
  // From `ptxas -v` (when assembled): -1 when unknown.
  int registers = -1;
  int64_t spill_store_bytes = -1;
  int64_t spill_load_bytes = -1;
  int64_t stack_frame_bytes = -1;
  int64_t static_shared_bytes = -1;
  std::string ptxas_log;
  // Facts of the generated code.
  int64_t shared_tile_bytes = 0;     // the program's tiles
  int64_t shared_scratch_bytes = 0;  // codegen's scratch region
  std::vector<std::string> notes;    // choices made: vector widths, mma, conversion paths
};

struct CompiledKernel {
  std::string name;  // the kernel's symbol
  Target target;
  vm::Program program;  // after the default passes: what the code was generated from
  std::string llvm_ir;  // when CompileOptions::keep_llvm_ir
  std::string ptx;
  std::vector<uint8_t> cubin;  // empty when not assembled
  std::vector<KernelParameter> parameters;
  // Launch shape: grid = program.grid evaluated on the arguments, block = 32 * warps threads.
  int block_threads = 128;
  int64_t dynamic_shared_bytes = 0;
  CompileReport report;
};

// Compiles `program` (a copy; the default passes run first). Throws vm::VerifyError for an
// ill-formed program, and CodegenError naming the kernel and the instruction (mnemonic and
// source location) for anything codegen does not support; never generates wrong code.
CompiledKernel compile(const vm::Program& program, const Target& target,
                       const CompileOptions& options = {});

// "registers 40, spills 0/0 bytes, shared 8192 + 4096 bytes, passes 0.3 ms, ir 1.2 ms, ..."
std::string to_string(const CompileReport& report);

}  // namespace nibble::codegen
