// The verifier: every ill-formed program is rejected before it reaches the interpreter or
// codegen, with a message that names the instruction, where it came from, and what is wrong in
// the terms the author used:
//
//   gemm.cpp:42:7: error: in kernel 'gemm': dot: k extent 48 of %a does not match 64 of %b
//
// It checks the program (parameters, grid, warps, shared-memory budget), scoping (tensors and
// variables used where defined, break inside a loop), and each instruction's rule (ranks,
// shapes, dtypes, scopes, layouts placed on the right axes). One check function per instruction
// lives in verifier.cpp, next to the others.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "vm/program.h"

namespace nibble::vm {

struct Diagnostic {
  SourceLocation location;
  std::string message;  // "dot: k extent 48 of %a does not match 64 of %b"
};
// "gemm.cpp:42:7: error: in kernel 'gemm': <message>"
std::string format_diagnostic(const Program& program, const Diagnostic& diagnostic);

// A program the verifier rejects; what() lists every diagnostic, one per line.
class VerifyError : public std::invalid_argument {
 public:
  VerifyError(std::string message, std::vector<Diagnostic> diagnostics)
      : std::invalid_argument(std::move(message)), diagnostics_(std::move(diagnostics)) {}
  const std::vector<Diagnostic>& diagnostics() const { return diagnostics_; }

 private:
  std::vector<Diagnostic> diagnostics_;
};

// Every problem found (empty: the program is well formed).
std::vector<Diagnostic> verify(const Program& program);
// Throws VerifyError when verify() finds anything.
void verify_or_throw(const Program& program);

// Largest shared-memory budget of a block on the supported GPUs (sm_90: 227 KB).
inline constexpr int64_t kMaxSharedMemoryBytes = 227 * 1024;
// Threads one SM can hold at once (sm_80, sm_90): the bound on min_blocks_per_sm * threads.
inline constexpr int64_t kMaxThreadsPerSm = 2048;
// Blocks per cluster (sm_90: 8 portable, 16 where the kernel allows non-portable sizes).
inline constexpr int64_t kMaxClusterBlocks = 16;

}  // namespace nibble::vm
