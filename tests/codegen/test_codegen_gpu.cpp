// Every codegen case on the GPU against the interpreter: fresh random inputs, outputs poisoned
// with 0xFF on both sides first, results compared bit for bit (or within the case's tolerance:
// the hardware approximations of exp2/log2/rsqrt, float atomics and reductions in another
// order). Label `gpu`: without a GPU the executable reports itself skipped.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>

#include "codegen/compile.h"
#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "frontend/cpp/compiled_kernel.h"
#include "runtime/driver.h"
#include "tests/codegen/cases.h"
#include "tests/gpu_support.h"
#include "vm/interpreter.h"

namespace nibble {
namespace {

using dtypes::DataType;

std::vector<uint8_t> random_buffer(const testing::BufferArgument& spec, std::mt19937_64& rng) {
  const size_t bytes = dtypes::packed_size_bytes(spec.dtype, static_cast<size_t>(spec.elements));
  std::vector<uint8_t> data(bytes, 0xFF);
  if (spec.output) return data;
  std::vector<uint64_t> codes(static_cast<size_t>(spec.elements));
  std::uniform_real_distribution<double> real(spec.lo, spec.hi);
  for (uint64_t& code : codes) {
    if (spec.dtype.is_float()) {
      code = dtypes::encode(spec.dtype, real(rng));
    } else {
      const auto value = static_cast<int64_t>(std::floor(real(rng)));
      code = static_cast<uint64_t>(value) & spec.dtype.bit_mask();
    }
  }
  return dtypes::pack(spec.dtype, codes);
}

void compare(const testing::CodegenCase& c, size_t argument, const testing::BufferArgument& spec,
             const std::vector<uint8_t>& want, const std::vector<uint8_t>& got) {
  const std::vector<uint64_t> a =
      dtypes::unpack(spec.dtype, want, static_cast<size_t>(spec.elements));
  const std::vector<uint64_t> b =
      dtypes::unpack(spec.dtype, got, static_cast<size_t>(spec.elements));
  int reported = 0;
  int64_t mismatches = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    bool same = a[i] == b[i];
    if (!same && (c.rtol > 0 || c.atol > 0) && spec.dtype.is_float()) {
      const double x = dtypes::decode(spec.dtype, a[i]);
      const double y = dtypes::decode(spec.dtype, b[i]);
      same = (std::isnan(x) && std::isnan(y)) || std::abs(x - y) <= c.atol + c.rtol * std::abs(x) ||
             x == y;
    }
    if (same) continue;
    ++mismatches;
    if (reported++ < 8) {
      UNSCOPED_INFO(fmt::format("argument {} element {}: interpreter {:#x} ({}), gpu {:#x} ({})",
                                argument, i, a[i], dtypes::decode(spec.dtype, a[i]), b[i],
                                dtypes::decode(spec.dtype, b[i])));
    }
  }
  INFO(c.name << ": " << mismatches << " of " << a.size() << " elements differ");
  CHECK(mismatches == 0);
}

TEST_CASE("every codegen case runs on the GPU and matches the interpreter", "[codegen][gpu]") {
  nibble::testing::require_gpu();
  const runtime::DeviceInfo& device = runtime::Driver::get().device();
  std::printf("device: %s (sm_%d)\n", device.name.c_str(), device.compute_capability);
  std::random_device seed_source;
  const uint64_t seed = (static_cast<uint64_t>(seed_source()) << 32) | seed_source();
  std::printf("seed: %llu\n", static_cast<unsigned long long>(seed));
  int passed = 0;
  int total = 0;
  for (const testing::CodegenCase& c : testing::codegen_cases()) {
    if (c.wgmma && device.compute_capability != 90) continue;
    ++total;
    INFO("case " << c.name << ", seed " << seed);
    std::mt19937_64 rng(seed ^ std::hash<std::string>{}(c.name));
    std::vector<std::vector<uint8_t>> host;
    std::vector<runtime::DeviceBuffer> device_buffers;
    std::vector<vm::Argument> interpreter_arguments;
    std::vector<dsl::DeviceArgument> device_arguments;
    host.reserve(c.arguments.size());
    for (const testing::CaseArgument& argument : c.arguments) {
      if (const auto* spec = std::get_if<testing::BufferArgument>(&argument)) {
        host.push_back(random_buffer(*spec, rng));
        runtime::DeviceBuffer buffer(std::max<size_t>(host.back().size(), 1));
        buffer.upload(std::as_bytes(std::span(host.back())));
        device_arguments.push_back(dsl::device_pointer(buffer));
        device_buffers.push_back(std::move(buffer));
      } else {
        host.emplace_back();
        device_buffers.emplace_back();
        if (const auto* integer = std::get_if<int64_t>(&argument)) {
          device_arguments.push_back(*integer);
        } else {
          device_arguments.push_back(std::get<double>(argument));
        }
      }
    }
    for (size_t i = 0; i < c.arguments.size(); ++i) {
      if (std::holds_alternative<testing::BufferArgument>(c.arguments[i])) {
        interpreter_arguments.push_back(vm::HostBuffer{host[i].data(), host[i].size()});
      } else if (const auto* integer = std::get_if<int64_t>(&c.arguments[i])) {
        interpreter_arguments.push_back(*integer);
      } else {
        interpreter_arguments.push_back(std::get<double>(c.arguments[i]));
      }
    }
    try {
      const dsl::GpuKernel kernel = dsl::GpuKernel::build(c.program);
      kernel.launch(device_arguments);
      runtime::Driver::get().synchronize();
      vm::interpret(kernel.compiled().program, interpreter_arguments);
      for (size_t i = 0; i < c.arguments.size(); ++i) {
        const auto* spec = std::get_if<testing::BufferArgument>(&c.arguments[i]);
        if (spec == nullptr) continue;
        std::vector<uint8_t> got(host[i].size());
        device_buffers[i].download(std::as_writable_bytes(std::span(got)));
        compare(c, i, *spec, host[i], got);
      }
      ++passed;
      std::printf("%-40s ok  (compile %.1f ms: ir %.1f, O3 %.1f, ptx %.1f, ptxas %.1f; %d regs)\n",
                  c.name.c_str(), kernel.compiled().report.total_ms,
                  kernel.compiled().report.ir_build_ms, kernel.compiled().report.optimize_ms,
                  kernel.compiled().report.emit_ms, kernel.compiled().report.ptxas_ms,
                  kernel.compiled().report.registers);
    } catch (const std::exception& error) {
      FAIL_CHECK(c.name << ": " << error.what());
    }
  }
  std::printf("%d of %d cases ran\n", passed, total);
}

}  // namespace
}  // namespace nibble
