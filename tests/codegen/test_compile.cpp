// Codegen on a machine without a GPU: every case (examples and per-instruction programs) compiles
// to LLVM IR that verifies and PTX that ptxas assembles for sm_80 and sm_90a without local-memory
// spills, and the SASS of the hot kernels holds the intended instructions.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "codegen/compile.h"
#include "codegen/ptxas.h"
#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/quant_gemm.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "frontend/cpp/kernel_builder.h"
#include "tests/codegen/cases.h"
#include "tests/source_dir.h"

namespace nibble {
namespace {

namespace fs = std::filesystem;

// nvdisasm from PATH or from NVIDIA's pip package in the repository's .venv.
std::optional<fs::path> find_nvdisasm() {
  if (const char* path = std::getenv("PATH")) {
    std::string list = path;
    size_t start = 0;
    while (start <= list.size()) {
      const size_t end = list.find(':', start);
      const fs::path candidate = fs::path(list.substr(start, end - start)) / "nvdisasm";
      if (fs::exists(candidate)) return candidate;
      if (end == std::string::npos) break;
      start = end + 1;
    }
  }
  const fs::path lib = nibble::testing::source_dir() / ".venv" / "lib";
  if (!fs::exists(lib)) return std::nullopt;
  for (const auto& python : fs::directory_iterator(lib)) {
    const fs::path nvidia = python.path() / "site-packages" / "nvidia";
    if (!fs::exists(nvidia)) continue;
    for (const auto& package : fs::directory_iterator(nvidia)) {
      const fs::path candidate = package.path() / "bin" / "nvdisasm";
      if (fs::exists(candidate)) return candidate;
    }
  }
  return std::nullopt;
}

std::string sass_of(const codegen::CompiledKernel& kernel, const fs::path& nvdisasm) {
  const fs::path cubin =
      fs::temp_directory_path() / fmt::format("nibble_{}_{}.cubin", kernel.name, ::getpid());
  {
    std::ofstream out(cubin, std::ios::binary);
    out.write(reinterpret_cast<const char*>(kernel.cubin.data()),
              static_cast<std::streamsize>(kernel.cubin.size()));
  }
  std::string text;
  FILE* pipe =
      ::popen(fmt::format("'{}' -c '{}' 2>&1", nvdisasm.string(), cubin.string()).c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  while (size_t read = std::fread(buffer.data(), 1, buffer.size(), pipe))
    text.append(buffer.data(), read);
  ::pclose(pipe);
  fs::remove(cubin);
  return text;
}

const std::vector<codegen::Target> kTargets = {codegen::Target::parse("sm_80"),
                                               codegen::Target::parse("sm_90a")};

TEST_CASE("every codegen case compiles, verifies, assembles, and does not spill", "[codegen]") {
  const bool assembles = codegen::find_ptxas().has_value();
  if (!assembles) WARN("ptxas not found: PTX is generated but not assembled");
  for (const testing::CodegenCase& c : testing::codegen_cases()) {
    for (const codegen::Target& target : kTargets) {
      INFO(c.name << " for " << target.name());
      codegen::CompileOptions options;
      options.keep_llvm_ir = true;
      const codegen::CompiledKernel kernel = codegen::compile(c.program, target, options);
      CHECK(kernel.llvm_ir.find("define ptx_kernel void") != std::string::npos);
      CHECK(kernel.ptx.find(".entry " + kernel.name) != std::string::npos);
      if (!assembles) continue;
      REQUIRE_FALSE(kernel.cubin.empty());
      INFO(kernel.report.ptxas_log);
      CHECK(kernel.report.spill_store_bytes == 0);
      CHECK(kernel.report.spill_load_bytes == 0);
      // vprintf takes its arguments in a local buffer: only a kernel that prints has a stack.
      if (kernel.ptx.find("vprintf") == std::string::npos) {
        CHECK(kernel.report.stack_frame_bytes == 0);
      }
    }
  }
}

TEST_CASE("compile reports stages, parameters and launch shape", "[codegen]") {
  const codegen::CompiledKernel kernel =
      codegen::compile(examples::gemm({}), codegen::Target::parse("sm_90a"));
  CHECK(kernel.name == "gemm_f16");
  REQUIRE(kernel.parameters.size() == 6);
  CHECK(kernel.parameters[0].kind == codegen::KernelParameter::Kind::Pointer);
  CHECK(kernel.parameters[3].kind == codegen::KernelParameter::Kind::Scalar);
  CHECK(kernel.parameters[3].size_bytes == 4);
  CHECK(kernel.block_threads == 128);
  CHECK(kernel.dynamic_shared_bytes >= kernel.report.shared_tile_bytes);
  CHECK(kernel.report.ir_build_ms > 0);
  CHECK(kernel.report.optimize_ms > 0);
  CHECK(kernel.report.emit_ms > 0);
  // Compile latency is measured by bench/bench_compile on the GPU machine, not asserted here.
  CHECK(codegen::to_string(kernel.report).find("opt (lean)") != std::string::npos);
}

TEST_CASE("dot of f16/bf16 into f32 goes through mma.sync and ldmatrix; f32 stays SIMT",
          "[codegen]") {
  const codegen::Target target = codegen::Target::parse("sm_80");
  auto notes_of = [&](const vm::Program& program) {
    std::string text;
    for (const std::string& note : codegen::compile(program, target).report.notes)
      text += note + "\n";
    return text;
  };
  const std::string gemm = notes_of(examples::gemm({}));
  INFO(gemm);
  CHECK(gemm.find("mma.sync m16n8k16 f16") != std::string::npos);
  CHECK(gemm.find("ldmatrix per warp (mma operand a)") != std::string::npos);
  CHECK(gemm.find("ldmatrix.trans per warp (mma operand b)") != std::string::npos);
  CHECK(gemm.find("SIMT") == std::string::npos);
  for (const testing::CodegenCase& c : testing::codegen_cases()) {
    if (c.name != "dot_f32" && c.name != "dot_bf16") continue;
    const std::string notes = notes_of(c.program);
    INFO(c.name << "\n" << notes);
    if (c.name == "dot_f32") {
      CHECK(notes.find("SIMT") != std::string::npos);
    } else {
      CHECK(notes.find("mma.sync m16n8k16 bf16") != std::string::npos);
    }
  }
}

TEST_CASE("row reductions within a warp go through warp shuffles", "[codegen]") {
  const vm::Program softmax = examples::softmax({.block_rows = 4, .block_cols = 128, .warps = 4});
  const codegen::CompiledKernel kernel = codegen::compile(softmax, codegen::Target::parse("sm_80"));
  std::string notes;
  for (const std::string& note : kernel.report.notes)
    notes += note + "\n";
  INFO(notes);
  CHECK(notes.find("shuffle steps") != std::string::npos);
  // Not the serial path (every thread walking each line in the scratch region); the result
  // layout holds every row in every thread, so the row values still cross warps once.
  CHECK(notes.find("across threads through shared memory") == std::string::npos);
  CHECK(kernel.ptx.find("shfl.sync.bfly.b32") != std::string::npos);
}

TEST_CASE("unsupported instructions name the kernel, the instruction and the line", "[codegen]") {
  dsl::KernelBuilder b("prints");
  b.launch({1}, 1);
  dsl::Tensor tile = b.alloc_shared({32}, dsl::f32, "tile");
  b.print("tile", tile);  // of a shared tensor: the interpreter's only
  const vm::Program program = b.finish();
  try {
    codegen::compile(program, codegen::Target::parse("sm_80"));
    FAIL("print of a shared tensor compiled");
  } catch (const codegen::CodegenError& error) {
    const std::string message = error.what();
    CHECK(message.find("'prints'") != std::string::npos);
    CHECK(message.find("print at") != std::string::npos);
    CHECK(message.find("test_compile.cpp") != std::string::npos);
  }
}

TEST_CASE("SASS holds the intended instructions", "[codegen][sass]") {
  if (!codegen::find_ptxas()) {
    WARN("SKIPPED: no ptxas");
    return;
  }
  const std::optional<fs::path> nvdisasm = find_nvdisasm();
  if (!nvdisasm) {
    WARN("SKIPPED: nvdisasm not found (PATH or .venv/lib/python3*/site-packages/nvidia/*/bin)");
    return;
  }
  const codegen::Target target = codegen::Target::parse("sm_90a");
  const std::string vector_add =
      sass_of(codegen::compile(examples::vector_add({}), target), *nvdisasm);
  CHECK(vector_add.find("LDG.E.128") != std::string::npos);
  CHECK(vector_add.find("STG.E.128") != std::string::npos);
  const std::string gemm = sass_of(codegen::compile(examples::gemm({}), target), *nvdisasm);
  CHECK(gemm.find("LDGSTS.E.BYPASS.128") != std::string::npos);
  CHECK(gemm.find("HMMA.16816.F32") != std::string::npos);
  CHECK(gemm.find("LDSM.16.M88.4") != std::string::npos);
  CHECK(gemm.find("LDSM.16.MT88.4") != std::string::npos);
  const std::string gemm_swizzled =
      sass_of(codegen::compile(
                  examples::gemm({.stages = 3, .swizzle = layout::Swizzle::bytes128()}), target),
              *nvdisasm);
  CHECK(gemm_swizzled.find("HMMA.16816.F32") != std::string::npos);
  CHECK(gemm_swizzled.find("LDSM.16.MT88.4") != std::string::npos);
  const std::string softmax = sass_of(
      codegen::compile(examples::softmax({.block_rows = 4, .block_cols = 128, .warps = 4}), target),
      *nvdisasm);
  CHECK(softmax.find("SHFL.BFLY") != std::string::npos);
  const std::string gemv = sass_of(codegen::compile(examples::gemv_u4({}), target), *nvdisasm);
  CHECK(gemv.find("LOP3") != std::string::npos);
  CHECK(gemv.find("HFMA2") != std::string::npos);
  // The quantized GEMM's decode kernel: A, W and the scales through cp.async, the W runs read
  // back with 16-byte shared loads, A as ldmatrix fragments, lop3 dequantization, packed f16
  // scaling, mma; nothing in local memory.
  const std::string quant = sass_of(
      codegen::compile(
          examples::quant_gemm(examples::choose_quant_gemm_config(
              1, 8192, 8192, dtypes::DataType::uint(4), dtypes::DataType::f16(), 128, false)),
          target),
      *nvdisasm);
  CHECK(quant.find("LDGSTS.E.BYPASS.128") != std::string::npos);
  CHECK(quant.find("LDS.128") != std::string::npos);
  CHECK(quant.find("LDSM.16.M88.4") != std::string::npos);
  CHECK(quant.find("LOP3.LUT") != std::string::npos);
  CHECK(quant.find("HMUL2") != std::string::npos);
  CHECK(quant.find("HMMA.16816.F32") != std::string::npos);
  CHECK(quant.find("LDL") == std::string::npos);
  CHECK(quant.find("STL") == std::string::npos);
}

}  // namespace
}  // namespace nibble
