// Compiling through the kernel cache: hits in memory and on disk give the same kernel; the key
// follows the program, the target and the build id, and ignores source locations.
#include <catch2/catch.hpp>

#include <filesystem>
#include <random>

#include "examples/vector_add.h"
#include "frontend/cpp/cached_compile.h"
#include "vm/equality.h"

using namespace nibble;
namespace fs = std::filesystem;

namespace {

fs::path fresh_directory() {
  std::random_device random;
  const fs::path path =
      fs::temp_directory_path() / ("nibble-compile-cache-" + std::to_string(random()));
  fs::create_directories(path);
  return path;
}

}  // namespace

TEST_CASE("compile_cached: a miss compiles, hits return the same kernel", "[frontend][cache]") {
  const fs::path directory = fresh_directory();
  const vm::Program program = examples::vector_add();
  const codegen::Target target = codegen::Target::parse("sm_90a");
  runtime::KernelCache cache(directory);
  const codegen::CompiledKernel first = dsl::compile_cached(program, target, {}, cache);
  CHECK(cache.stats().misses == 1);
  const codegen::CompiledKernel memory_hit = dsl::compile_cached(program, target, {}, cache);
  CHECK(cache.stats().memory_hits == 1);
  runtime::KernelCache next_process(directory);
  const codegen::CompiledKernel disk_hit = dsl::compile_cached(program, target, {}, next_process);
  CHECK(next_process.stats().disk_hits == 1);
  for (const codegen::CompiledKernel* hit : {&memory_hit, &disk_hit}) {
    CHECK(hit->name == first.name);
    CHECK(hit->ptx == first.ptx);
    CHECK(hit->cubin == first.cubin);
    CHECK(hit->block_threads == first.block_threads);
    CHECK(hit->dynamic_shared_bytes == first.dynamic_shared_bytes);
    CHECK(hit->report.registers == first.report.registers);
    REQUIRE(hit->parameters.size() == first.parameters.size());
    for (size_t i = 0; i < first.parameters.size(); ++i) {
      CHECK(hit->parameters[i].name == first.parameters[i].name);
      CHECK(hit->parameters[i].kind == first.parameters[i].kind);
      CHECK(hit->parameters[i].dtype == first.parameters[i].dtype);
      CHECK(hit->parameters[i].size_bytes == first.parameters[i].size_bytes);
      CHECK(hit->parameters[i].alignment_bytes == first.parameters[i].alignment_bytes);
    }
    CHECK(hit->program == first.program);
  }
  fs::remove_all(directory);
}

TEST_CASE("compile cache keys", "[frontend][cache]") {
  const vm::Program program = examples::vector_add();
  const codegen::Target sm90 = codegen::Target::parse("sm_90a");
  const codegen::Target sm80 = codegen::Target::parse("sm_80");
  const auto key = dsl::compile_cache_key(program, sm90, {}, "build A");
  CHECK(key == dsl::compile_cache_key(program, sm90, {}, "build A"));
  CHECK_FALSE(key == dsl::compile_cache_key(program, sm80, {}, "build A"));
  CHECK_FALSE(key == dsl::compile_cache_key(program, sm90, {}, "build B"));
  CHECK_FALSE(key ==
              dsl::compile_cache_key(examples::vector_add({.block = 512}), sm90, {}, "build A"));
  vm::Program moved = program;
  for (vm::Statement& statement : moved.body)
    statement.location.line += 100;
  CHECK(key == dsl::compile_cache_key(moved, sm90, {}, "build A"));
  CHECK(dsl::compiler_build_id().find(':') != std::string::npos);
}
