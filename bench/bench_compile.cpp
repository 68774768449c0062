// Compile latency and launch overhead, on the GPU machine.
//
// For each example kernel (and the u4 quantized GEMM's decode and prefill schedules): the time of
// each compile stage (VM passes, IR build, LLVM IR passes, PTX emission, ptxas), the PTX -> cubin
// time of the driver's JIT, and the first-call total (compile, load, launch, synchronize) with no
// cache. Each kernel is compiled `repeats` times and the median reported (the first compile of the
// process, which initializes LLVM, separately). Launch overhead: the host time per launch of a
// prepared, checked GpuKernel::launch against a bare cuLaunchKernel of the same loaded kernel, over
// many launches of a one-block kernel.
//
//   bench_compile [--out DIR] [--repeats N]      writes DIR/compile.json and DIR/compile.md
//
// NIBBLE_LLVM_PIPELINE=o3 measures LLVM's O3 pipeline instead of the default lean one.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "codegen/compile.h"
#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/quant_gemm.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "frontend/cpp/compiled_kernel.h"
#include "runtime/driver.h"

using namespace nibble;
using Clock = std::chrono::steady_clock;

namespace {

double milliseconds_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// `sm` 80: the kernels for every target; 90: sm_90a's (the wgmma prefill).
vm::Program quant_gemm_u4(int64_t m, int sm = 80) {
  return examples::quant_gemm(examples::choose_quant_gemm_config(
      m, 8192, 8192, dtypes::DataType::uint(4), dtypes::DataType::f16(), 128, false, 132, sm));
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

struct CompileRow {
  std::string kernel;
  double passes_ms, ir_ms, optimize_ms, emit_ms, vm_to_ptx_ms, ptxas_ms, jit_ms, first_call_ms;
  int registers;
};

}  // namespace

int main(int argc, char** argv) {
  std::filesystem::path out_directory = ".";
  int repeats = 9;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--out" && i + 1 < argc) {
      out_directory = argv[++i];
    } else if (arg == "--repeats" && i + 1 < argc) {
      repeats = std::max(1, std::stoi(argv[++i]));
    } else {
      fmt::print(stderr, "usage: bench_compile [--out DIR] [--repeats N]\n");
      return 2;
    }
  }
  runtime::Driver& driver = runtime::Driver::get();
  const codegen::Target target =
      dsl::target_for_compute_capability(driver.device().compute_capability);
  fmt::print("device: {} (sm_{}), target {}\n", driver.device().name,
             driver.device().compute_capability, target.name());

  std::vector<std::pair<std::string, std::function<vm::Program()>>> kernels = {
      {"vector_add", [] { return examples::vector_add(); }},
      {"softmax", [] { return examples::softmax(); }},
      {"gemm_f16", [] { return examples::gemm(); }},
      {"gemv_u4", [] { return examples::gemv_u4(); }},
      // The product's kernels, as `nibble example quant_gemm_decode|quant_gemm_prefill` gives them.
      {"quant_gemm_decode", [] { return quant_gemm_u4(1); }},
      {"quant_gemm_prefill", [] { return quant_gemm_u4(4096); }},
  };
  if (target.has_wgmma())
    kernels.push_back({"quant_gemm_prefill_wgmma", [] { return quant_gemm_u4(4096, 90); }});

  // The process's first compile pays for LLVM's one-time initialization: report it apart.
  const auto cold_start = Clock::now();
  codegen::compile(kernels.front().second(), target);
  const double cold_first_compile_ms = milliseconds_since(cold_start);

  std::vector<CompileRow> rows;
  for (const auto& [name, build] : kernels) {
    const vm::Program program = build();
    std::vector<double> passes, ir, optimize, emit, to_ptx, ptxas, jit, first_call;
    int registers = -1;
    for (int r = 0; r < repeats; ++r) {
      codegen::CompiledKernel compiled = codegen::compile(program, target);
      const auto& report = compiled.report;
      passes.push_back(report.passes_ms);
      ir.push_back(report.ir_build_ms);
      optimize.push_back(report.optimize_ms);
      emit.push_back(report.emit_ms);
      to_ptx.push_back(report.passes_ms + report.ir_build_ms + report.verify_ms +
                       report.optimize_ms + report.emit_ms);
      ptxas.push_back(report.ptxas_ms);
      registers = report.registers;
      // PTX -> cubin through the driver's JIT (what a machine without ptxas pays).
      compiled.cubin.clear();
      const auto jit_start = Clock::now();
      dsl::GpuKernel loaded(std::move(compiled));
      jit.push_back(milliseconds_since(jit_start));
      (void)loaded;
      // First call: compile (with ptxas) and load, bypassing the kernel cache.
      const auto call_start = Clock::now();
      dsl::GpuKernel kernel(codegen::compile(program, target));
      driver.synchronize();
      first_call.push_back(milliseconds_since(call_start));
    }
    rows.push_back({name, median(passes), median(ir), median(optimize), median(emit),
                    median(to_ptx), median(ptxas), median(jit), median(first_call), registers});
  }

  // Launch overhead: one block of the vector add, n = 1, launched many times back to back.
  dsl::GpuKernel add = dsl::GpuKernel::build(examples::vector_add());
  runtime::DeviceBuffer x(1024), y(1024), out(1024);
  x.fill_bytes(0);
  y.fill_bytes(0);
  const std::vector<dsl::DeviceArgument> arguments = {
      dsl::device_pointer(x), dsl::device_pointer(y), dsl::device_pointer(out), int64_t{1}};
  constexpr int kLaunches = 20000;
  for (int i = 0; i < 1000; ++i)
    add.launch(arguments);
  driver.synchronize();
  auto start = Clock::now();
  for (int i = 0; i < kLaunches; ++i)
    add.launch(arguments);
  const double checked_us = milliseconds_since(start) * 1000 / kLaunches;
  driver.synchronize();

  // The same kernel loaded separately, launched with no checks and no argument packing.
  const std::vector<uint8_t>& image = add.compiled().cubin;
  const runtime::Module bare_module =
      image.empty()
          ? runtime::Module::load({reinterpret_cast<const uint8_t*>(add.compiled().ptx.c_str()),
                                   add.compiled().ptx.size() + 1},
                                  "vector_add PTX")
          : runtime::Module::load(image, "vector_add cubin");
  void* function = bare_module.function(add.compiled().name);
  runtime::DevicePointer xp = x.pointer(), yp = y.pointer(), op = out.pointer();
  int n = 1;
  void* raw_arguments[] = {&xp, &yp, &op, &n};
  runtime::LaunchConfig config;
  config.block = {static_cast<uint32_t>(add.compiled().block_threads), 1, 1};
  config.shared_memory_bytes = static_cast<uint32_t>(add.compiled().dynamic_shared_bytes);
  for (int i = 0; i < 1000; ++i)
    runtime::launch(function, add.compiled().name, config, raw_arguments);
  driver.synchronize();
  start = Clock::now();
  for (int i = 0; i < kLaunches; ++i)
    runtime::launch(function, add.compiled().name, config, raw_arguments);
  const double bare_us = milliseconds_since(start) * 1000 / kLaunches;
  driver.synchronize();

  // Report.
  const char* pipeline = codegen::to_string(codegen::default_llvm_pipeline());
  std::filesystem::create_directories(out_directory);
  std::string markdown = fmt::format(
      "Compile latency on {} ({}), LLVM pipeline '{}', median of {} compiles; the process's first "
      "compile (LLVM initialization included): {:.1f} ms.\n\n"
      "| kernel | VM passes | IR build | LLVM opt | PTX emit | VM → PTX | ptxas | driver JIT | "
      "first call | "
      "registers |\n|---|---|---|---|---|---|---|---|---|---|\n",
      driver.device().name, target.name(), pipeline, repeats, cold_first_compile_ms);
  std::string json = fmt::format(
      R"({{"device": "{}", "target": "{}", "llvm_pipeline": "{}", "repeats": {}, "cold_first_compile_ms": {:.3f}, "kernels": [)",
      driver.device().name, target.name(), pipeline, repeats, cold_first_compile_ms);
  for (size_t i = 0; i < rows.size(); ++i) {
    const CompileRow& row = rows[i];
    markdown += fmt::format(
        "| {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {:.2f} | {} |\n",
        row.kernel, row.passes_ms, row.ir_ms, row.optimize_ms, row.emit_ms, row.vm_to_ptx_ms,
        row.ptxas_ms, row.jit_ms, row.first_call_ms, row.registers);
    json += fmt::format(
        R"({}{{"kernel": "{}", "passes_ms": {:.3f}, "ir_build_ms": {:.3f}, "optimize_ms": {:.3f}, "emit_ms": {:.3f}, "vm_to_ptx_ms": {:.3f}, "ptxas_ms": {:.3f}, "driver_jit_ms": {:.3f}, "first_call_ms": {:.3f}, "registers": {}}})",
        i ? ", " : "", row.kernel, row.passes_ms, row.ir_ms, row.optimize_ms, row.emit_ms,
        row.vm_to_ptx_ms, row.ptxas_ms, row.jit_ms, row.first_call_ms, row.registers);
  }
  markdown += fmt::format(
      "\nLaunch overhead (host time per launch, {} back-to-back launches of one block): checked "
      "GpuKernel::launch {:.2f} µs, bare cuLaunchKernel {:.2f} µs, difference {:.2f} µs.\n",
      kLaunches, checked_us, bare_us, checked_us - bare_us);
  json += fmt::format(R"(], "launch_overhead_us": {{"checked": {:.3f}, "bare": {:.3f}}}}})",
                      checked_us, bare_us);
  std::ofstream(out_directory / "compile.md") << markdown;
  std::ofstream(out_directory / "compile.json") << json << "\n";
  fmt::print("{}", markdown);
  return 0;
}
