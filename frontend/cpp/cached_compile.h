// Compiling through the kernel cache (runtime/kernel_cache.h): a program compiled once for a
// target is not compiled again, in this process or the next.
//
// The key hashes the program's printed form with source locations left out (they change no
// generated code), the target, the compile options, and the compiler's build id. The build id
// names this very libnibble.so (its git revision, size and modification time), so a rebuilt
// compiler never reuses kernels another build compiled.
#pragma once

#include <string>

#include "codegen/compile.h"
#include "runtime/kernel_cache.h"

namespace nibble::dsl {

// "<git revision>:<library size>:<library mtime>"
const std::string& compiler_build_id();

runtime::CacheKey compile_cache_key(const vm::Program& program, const codegen::Target& target,
                                    const codegen::CompileOptions& options,
                                    const std::string& build_id);

// codegen::compile, or the cached result of an earlier identical compile. A hit carries the
// program (after the default passes), name, parameters, launch shape, PTX and cubin; its report
// keeps the register and shared-memory figures and says it came from the cache.
codegen::CompiledKernel compile_cached(
    const vm::Program& program, const codegen::Target& target,
    const codegen::CompileOptions& options = {},
    runtime::KernelCache& cache = runtime::KernelCache::process_cache());

}  // namespace nibble::dsl
