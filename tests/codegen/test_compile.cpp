// Codegen on a machine without a GPU: every case (examples and per-instruction programs) compiles
// to LLVM IR that verifies and PTX that ptxas assembles for sm_80 and sm_90a without local-memory
// spills, and the SASS of the hot kernels holds the intended instructions.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>

#include "codegen/compile.h"
#include "codegen/ptxas.h"
#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/quant_gemm.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "frontend/cpp/kernel_builder.h"
#include "tests/codegen/cases.h"
#include "tests/source_dir.h"
#include "vm/interpreter.h"

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
      if (c.wgmma && !target.has_wgmma()) continue;
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

TEST_CASE("min_blocks_per_sm holds registers to what that many blocks per SM allow", "[codegen]") {
  vm::Program program = examples::gemm({});
  const auto target = codegen::Target::parse("sm_90a");
  const codegen::CompiledKernel free = codegen::compile(program, target);
  program.min_blocks_per_sm = 8;  // 8 blocks of 128 threads: at most 64 registers a thread
  const codegen::CompiledKernel held = codegen::compile(program, target);
  CHECK(free.report.registers > 64);
  CHECK(held.report.registers <= 64);
  CHECK(held.ptx.find(".minnctapersm 8") != std::string::npos);
}

TEST_CASE("programmatic dependent launch: griddepcontrol on sm_90, nothing before", "[codegen]") {
  vm::Program program = examples::vector_add({});
  program.dependent_launch = true;
  program.early_trigger = true;
  const codegen::CompiledKernel hopper =
      codegen::compile(program, codegen::Target::parse("sm_90a"));
  const size_t wait = hopper.ptx.find("griddepcontrol.wait;");
  const size_t trigger = hopper.ptx.find("griddepcontrol.launch_dependents;");
  REQUIRE(wait != std::string::npos);
  REQUIRE(trigger != std::string::npos);
  // The wait comes before the kernel's first global access.
  CHECK(wait < hopper.ptx.find("ld.global"));
  const codegen::CompiledKernel ampere = codegen::compile(program, codegen::Target::parse("sm_80"));
  CHECK(ampere.ptx.find("griddepcontrol") == std::string::npos);
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

// The notes of a case compiled for `target` (the cases of tests/codegen/cases.cpp by name).
std::string case_notes(const std::string& name, const codegen::Target& target,
                       std::string* ptx = nullptr) {
  for (const testing::CodegenCase& c : testing::codegen_cases()) {
    if (c.name != name) continue;
    const codegen::CompiledKernel kernel = codegen::compile(c.program, target);
    if (ptx != nullptr) *ptx = kernel.ptx;
    std::string text;
    for (const std::string& note : kernel.report.notes)
      text += note + "\n";
    return text;
  }
  FAIL("no codegen case " << name);
  return {};
}

TEST_CASE("8-bit dots go through mma.sync m16n8k32: integers everywhere, fp8 from sm_89",
          "[codegen]") {
  const codegen::Target sm80 = codegen::Target::parse("sm_80");
  const codegen::Target sm90 = codegen::Target::parse("sm_90a");
  std::string ptx;
  const std::string i8 = case_notes("dot_i8", sm80, &ptx);
  INFO(i8);
  CHECK(i8.find("mma.sync m16n8k32 s8 -> i32") != std::string::npos);
  CHECK(i8.find("ldmatrix per warp (mma operand a)") != std::string::npos);
  CHECK(ptx.find("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32") != std::string::npos);
  CHECK(ptx.find(".version 8.3") != std::string::npos);
  const std::string mixed = case_notes("dot_u8_i8", sm80, &ptx);
  INFO(mixed);
  CHECK(mixed.find("mma.sync m16n8k32 u8.s8 -> i32") != std::string::npos);
  // fp8: SIMT on sm_80, mma.sync on sm_90a with PTX ISA 8.4 (which fp8 mma needs).
  CHECK(case_notes("dot_f8e4m3", sm80).find("SIMT") != std::string::npos);
  const std::string fp8 = case_notes("dot_f8e4m3", sm90, &ptx);
  INFO(fp8);
  CHECK(fp8.find("mma.sync m16n8k32 e4m3 -> f32") != std::string::npos);
  CHECK(ptx.find("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32") != std::string::npos);
  CHECK(ptx.find(".version 8.4") != std::string::npos);
  CHECK(case_notes("dot_f8e5m2_f8e4m3", sm90).find("mma.sync m16n8k32 e5m2.e4m3 -> f32") !=
        std::string::npos);
}

TEST_CASE("stores of ldmatrix-shaped fragments to shared memory use stmatrix on sm_90",
          "[codegen]") {
  const std::string sm90 = case_notes("store_shared_fragments", codegen::Target::parse("sm_90a"));
  INFO(sm90);
  CHECK(sm90.find("store_shared 'half': 1 stmatrix per warp") != std::string::npos);
  CHECK(sm90.find("store_shared 'transposed': 1 stmatrix.trans per warp") != std::string::npos);
  CHECK(case_notes("store_shared_fragments", codegen::Target::parse("sm_80")).find("stmatrix") ==
        std::string::npos);
}

TEST_CASE("layout conversions inside warps go through warp shuffles", "[codegen]") {
  std::string ptx;
  const std::string notes =
      case_notes("convert_fragments_to_rows", codegen::Target::parse("sm_80"), &ptx);
  INFO(notes);
  CHECK(notes.find("'acc' moves between lanes by 4 warp shuffles") != std::string::npos);
  CHECK(notes.find("through shared memory") == std::string::npos);
  CHECK(ptx.find("shfl.sync.idx.b32") != std::string::npos);
}

// The new warp-level cases on the interpreter, with the layouts compile gives them (the GPU test's
// oracle), against plain references: the 8-bit dots, the stored fragments and the conversion.
struct InterpretedCase {
  std::vector<std::vector<double>> values;  // per argument: decoded elements (buffers only)
};

InterpretedCase interpret_case(const testing::CodegenCase& c) {
  const codegen::CompiledKernel kernel =
      codegen::compile(c.program, codegen::Target::parse("sm_90a"), {.assemble = false});
  std::mt19937_64 rng(7);
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<vm::Argument> arguments;
  buffers.reserve(c.arguments.size());
  for (const testing::CaseArgument& argument : c.arguments) {
    const auto* spec = std::get_if<testing::BufferArgument>(&argument);
    REQUIRE(spec != nullptr);
    std::uniform_real_distribution<double> real(spec->lo, spec->hi);
    std::vector<uint64_t> codes(static_cast<size_t>(spec->elements), 0);
    for (uint64_t& code : codes) {
      if (spec->output) continue;
      code = spec->dtype.is_float()
                 ? dtypes::encode(spec->dtype, real(rng))
                 : static_cast<uint64_t>(static_cast<int64_t>(std::floor(real(rng)))) &
                       spec->dtype.bit_mask();
    }
    buffers.push_back(dtypes::pack(spec->dtype, codes));
  }
  for (std::vector<uint8_t>& buffer : buffers)
    arguments.push_back(vm::HostBuffer{buffer.data(), buffer.size()});
  vm::interpret(kernel.program, arguments);
  InterpretedCase result;
  for (size_t i = 0; i < buffers.size(); ++i) {
    const auto& spec = std::get<testing::BufferArgument>(c.arguments[i]);
    std::vector<double> decoded;
    for (uint64_t code :
         dtypes::unpack(spec.dtype, buffers[i], static_cast<size_t>(spec.elements))) {
      if (spec.dtype.is_float()) {
        decoded.push_back(dtypes::decode(spec.dtype, code));
      } else {
        const int bits = spec.dtype.bits();
        const bool negative = spec.dtype.is_signed() && ((code >> (bits - 1)) & 1) != 0;
        decoded.push_back(static_cast<double>(static_cast<int64_t>(code)) -
                          (negative ? std::ldexp(1.0, bits) : 0.0));
      }
    }
    result.values.push_back(std::move(decoded));
  }
  return result;
}

const testing::CodegenCase& find_case(const std::vector<testing::CodegenCase>& cases,
                                      const std::string& name) {
  for (const testing::CodegenCase& c : cases) {
    if (c.name == name) return c;
  }
  FAIL("no codegen case " << name);
  return cases.front();
}

TEST_CASE("fetch_add hands the blocks' stores to the last block, on any number of host threads",
          "[codegen]") {
  const std::vector<testing::CodegenCase> cases = testing::codegen_cases();
  const codegen::CompiledKernel kernel =
      codegen::compile(find_case(cases, "fetch_add_last_block").program,
                       codegen::Target::parse("sm_90a"), {.assemble = false});
  CHECK(kernel.ptx.find("atom.global.add") != std::string::npos);
  CHECK(kernel.ptx.find("fence.acq_rel.gpu") != std::string::npos);
  for (int threads : {1, 4}) {
    INFO("host threads " << threads);
    std::vector<float> x(16 * 64);
    for (size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<float>(i % 29) - 7.5F;
    std::vector<float> workspace(16 * 64, -1.0F);
    std::vector<int32_t> counter{0};
    std::vector<float> y(64, -1.0F);
    auto host = [](auto& v) {
      return vm::Argument{vm::HostBuffer{v.data(), v.size() * sizeof(v[0])}};
    };
    vm::InterpreterOptions options;
    options.host_threads = threads;
    for (int run = 0; run < 2; ++run) {
      const std::vector<vm::Argument> arguments{host(x), host(workspace), host(counter), host(y)};
      vm::interpret(kernel.program, arguments, options);
      CHECK(counter[0] == 0);
      for (size_t j = 0; j < 64; ++j) {
        float sum = 0;
        for (size_t r = 0; r < 16; ++r)
          sum += 2 * x[r * 64 + j];
        CHECK(y[j] == sum);
      }
    }
  }
}

TEST_CASE("the warp-level cases run on the interpreter and match plain references", "[codegen]") {
  const std::vector<testing::CodegenCase> cases = testing::codegen_cases();
  // C[32, 32] = initial + A[32, 64] · B[64, 32].
  for (const char* name : {"dot_i8", "dot_u8_i8", "dot_f8e4m3", "dot_f8e5m2_f8e4m3"}) {
    INFO(name);
    const InterpretedCase run = interpret_case(find_case(cases, name));
    const bool fp8 = std::string(name).find("f8") != std::string::npos;
    const double initial = fp8 ? 0.5 : 7;
    for (int64_t m = 0; m < 32; ++m) {
      for (int64_t n = 0; n < 32; ++n) {
        double sum = initial;
        for (int64_t k = 0; k < 64; ++k)
          sum += run.values[0][static_cast<size_t>(m * 64 + k)] *
                 run.values[1][static_cast<size_t>(k * 32 + n)];
        // Integers exactly; fp8 within the f32 roundings of the interpreter's k-ordered sum.
        const double tolerance = fp8 ? 1e-4 + 1e-5 * std::abs(sum) : 0;
        CHECK(std::abs(run.values[2][static_cast<size_t>(m * 32 + n)] - sum) <= tolerance);
      }
    }
  }
  {
    // y = f16(x), z = f16(x) transposed.
    const InterpretedCase run = interpret_case(find_case(cases, "store_shared_fragments"));
    for (int64_t r = 0; r < 32; ++r) {
      for (int64_t c = 0; c < 32; ++c) {
        const double x = run.values[0][static_cast<size_t>(r * 32 + c)];
        const double half =
            dtypes::decode(dtypes::DataType::f16(), dtypes::encode(dtypes::DataType::f16(), x));
        CHECK(run.values[1][static_cast<size_t>(r * 32 + c)] == half);
        CHECK(run.values[2][static_cast<size_t>(c * 32 + r)] == half);
      }
    }
  }
  {
    // y = x + x.
    const InterpretedCase run = interpret_case(find_case(cases, "convert_fragments_to_rows"));
    for (size_t i = 0; i < 32 * 8; ++i)
      CHECK(run.values[1][i] == 2 * run.values[0][i]);
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
  // 8-bit dots: IMMA for integers; fp8 mma.sync, which sm_90 runs as f16 HMMA after unpacking.
  auto case_sass = [&](const std::string& name) {
    for (const testing::CodegenCase& c : testing::codegen_cases()) {
      if (c.name == name) return sass_of(codegen::compile(c.program, target), *nvdisasm);
    }
    FAIL("no codegen case " << name);
    return std::string();
  };
  const std::string dot_i8 = case_sass("dot_i8");
  CHECK(dot_i8.find("IMMA.16832.S8.S8") != std::string::npos);
  CHECK(dot_i8.find("LDSM.16.M88.4") != std::string::npos);
  CHECK(case_sass("dot_u8_i8").find("IMMA.16832.U8.S8") != std::string::npos);
  const std::string dot_f8 = case_sass("dot_f8e4m3");
  CHECK(dot_f8.find("F2FP.F16.E4M3.UNPACK_B") != std::string::npos);
  CHECK(dot_f8.find("HMMA.16816.F32") != std::string::npos);
  const std::string fragments = case_sass("store_shared_fragments");
  CHECK(fragments.find("STSM.16.M88.4") != std::string::npos);
  CHECK(fragments.find("STSM.16.MT88.4") != std::string::npos);
  CHECK(case_sass("convert_fragments_to_rows").find("SHFL.IDX") != std::string::npos);
  const std::string softmax = sass_of(
      codegen::compile(examples::softmax({.block_rows = 4, .block_cols = 128, .warps = 4}), target),
      *nvdisasm);
  CHECK(softmax.find("SHFL.BFLY") != std::string::npos);
  const std::string gemv = sass_of(codegen::compile(examples::gemv_u4({}), target), *nvdisasm);
  CHECK(gemv.find("LOP3") != std::string::npos);
  CHECK(gemv.find("HFMA2") != std::string::npos);
  // The quantized GEMM's decode kernel: A, W and the scales through cp.async, the W runs read
  // back with 16-byte shared loads, A as ldmatrix fragments, lop3 dequantization, packed f16
  // scaling (or, scaled after the mma, one f32 fma per accumulator), mma; nothing in local
  // memory. With the weights as the A operand (M ≤ 8) the activations' B fragments, copied in
  // every warp, are ldmatrix loads too.
  const examples::QuantGemmConfig transposed = examples::choose_quant_gemm_config(
      1, 8192, 8192, dtypes::DataType::uint(4), dtypes::DataType::f16(), 128, false);
  REQUIRE(transposed.weights_as_a);
  const std::string weights_as_a =
      sass_of(codegen::compile(examples::quant_gemm(transposed), target), *nvdisasm);
  CHECK(weights_as_a.find("LDSM.16.M88.4") != std::string::npos);
  CHECK(weights_as_a.find("HMMA.16816.F32") != std::string::npos);
  CHECK(weights_as_a.find("LDL") == std::string::npos);
  examples::QuantGemmConfig decode = examples::choose_quant_gemm_config(
      16, 8192, 8192, dtypes::DataType::uint(4), dtypes::DataType::f16(), 128, false);
  REQUIRE(decode.scale_after_mma);
  decode.weights_as_a = false;
  const std::string scaled_after =
      sass_of(codegen::compile(examples::quant_gemm(decode), target), *nvdisasm);
  CHECK(scaled_after.find("FFMA") != std::string::npos);
  CHECK(scaled_after.find("HMUL2") == std::string::npos);
  decode.scale_after_mma = false;
  const std::string quant =
      sass_of(codegen::compile(examples::quant_gemm(decode), target), *nvdisasm);
  CHECK(quant.find("LDGSTS.E.BYPASS.128") != std::string::npos);
  CHECK(quant.find("LDS.128") != std::string::npos);
  CHECK(quant.find("LDSM.16.M88.4") != std::string::npos);
  CHECK(quant.find("LOP3.LUT") != std::string::npos);
  CHECK(quant.find("HMUL2") != std::string::npos);
  CHECK(quant.find("HMMA.16816.F32") != std::string::npos);
  CHECK(quant.find("LDL") == std::string::npos);
  CHECK(quant.find("STL") == std::string::npos);
}

TEST_CASE("a dot with a shared b runs on wgmma on sm_90a and is refused elsewhere", "[codegen]") {
  const codegen::Target sm90 = codegen::Target::parse("sm_90a");
  std::string ptx;
  const std::string plain = case_notes("wgmma_dot_transposed", sm90, &ptx);
  INFO(plain);
  CHECK(plain.find("wgmma m64n32k16 f16 -> f32, b from shared memory (64-byte swizzle)") !=
        std::string::npos);
  CHECK(ptx.find("wgmma.fence.sync.aligned") != std::string::npos);
  CHECK(ptx.find("wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16") != std::string::npos);
  CHECK(ptx.find("wgmma.wait_group.sync.aligned 0") != std::string::npos);
  // Async: two groups, one wait; the copies' proxy fence only where cp.async waits exist.
  case_notes("wgmma_dot_async", sm90, &ptx);
  CHECK(ptx.find("wgmma.mma_async.sync.aligned.m64n16k16") != std::string::npos);
  // Two m16 atoms per warp: two m64 instructions per k step, two k steps per dot, two dots.
  size_t instructions = 0;
  for (size_t at = ptx.find("wgmma.mma_async"); at != std::string::npos;
       at = ptx.find("wgmma.mma_async", at + 1))
    ++instructions;
  CHECK(instructions == 8);
  size_t commits = 0;
  for (size_t at = ptx.find("wgmma.commit_group"); at != std::string::npos;
       at = ptx.find("wgmma.commit_group", at + 1))
    ++commits;
  CHECK(commits == 2);

  for (const testing::CodegenCase& c : testing::codegen_cases()) {
    if (c.name != "wgmma_dot_transposed") continue;
    CHECK_THROWS_WITH(codegen::compile(c.program, codegen::Target::parse("sm_80")),
                      Catch::Contains("wgmma needs sm_90a, not sm_80"));
    // The accumulator in another layout than the fragments wgmma writes.
    vm::Program other = c.program;
    for (vm::TensorInfo& tensor : other.tensors) {
      if (tensor.name == "acc") {
        tensor.type.layout =
            layout::choose_mma_tiling(64, 32, 16, 4, dtypes::DataType::f16())->c_layout();
      }
    }
    CHECK_THROWS_WITH(codegen::compile(other, sm90),
                      Catch::Contains("must be in the A and C fragments"));
  }
}

}  // namespace
}  // namespace nibble
