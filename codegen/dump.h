// NIBBLE_DUMP=DIR: every kernel compiled in the process leaves each stage in DIR, so a kernel
// can be read at every level without changing the program that compiles it:
//
//   DIR/<kernel>.<n>.vm          the VM program after the default passes (layouts inferred)
//   DIR/<kernel>.<n>.ll          LLVM IR before optimization
//   DIR/<kernel>.<n>.ptx         PTX
//   DIR/<kernel>.<n>.cubin       the cubin, when ptxas ran
//   DIR/<kernel>.<n>.report.txt  registers, spills, shared memory, time per stage, codegen notes
//
// <n> counts the kernels of that name compiled by the process (0, 1, …). Failing to write a dump
// never fails a compile; it is reported once on stderr.
#pragma once

#include <filesystem>
#include <optional>

#include "codegen/compile.h"

namespace nibble::codegen {

// The dump directory when NIBBLE_DUMP is set and not empty.
std::optional<std::filesystem::path> dump_directory();
void dump_stages(const CompiledKernel& kernel, const std::filesystem::path& directory);

}  // namespace nibble::codegen
