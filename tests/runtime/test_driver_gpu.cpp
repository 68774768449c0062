// The driver on a real GPU: the smoke kernel compiled in process (PTX through the driver's JIT,
// and a ptxas cubin), launched, and checked; and the driver's errors name what failed.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "codegen/ptxas.h"
#include "codegen/smoke_kernel.h"
#include "runtime/driver.h"
#include "tests/gpu_support.h"

using namespace nibble;
using runtime::CudaError;

namespace {

codegen::Target device_target() {
  const int sm = runtime::Driver::get().device().compute_capability;
  return sm >= 90 ? codegen::Target::parse("sm_90a")
                  : codegen::Target::parse(sm >= 89 ? "sm_89" : "sm_80");
}

std::span<const uint8_t> text_bytes(const std::string& text) {
  return {reinterpret_cast<const uint8_t*>(text.c_str()), text.size() + 1};
}

// Runs y = fma(a, x, y) for n elements with the given module and compares with the host.
void run_axpy(const runtime::Module& module, int n) {
  std::mt19937 random(n);
  std::uniform_real_distribution<float> uniform(-1, 1);
  std::vector<float> x(static_cast<size_t>(n)), y(static_cast<size_t>(n));
  for (float& v : x)
    v = uniform(random);
  for (float& v : y)
    v = uniform(random);
  const float a = 1.75f;
  runtime::DeviceBuffer x_device(x.size() * 4), y_device(y.size() * 4 + 64);
  y_device.fill_bytes(0xff);  // poison, including past the end
  x_device.upload(std::as_bytes(std::span(x)));
  y_device.upload(std::as_bytes(std::span(y)));
  runtime::DevicePointer x_pointer = x_device.pointer(), y_pointer = y_device.pointer();
  float a_value = a;
  int n_value = n;
  void* arguments[] = {&y_pointer, &x_pointer, &a_value, &n_value};
  runtime::LaunchConfig config;
  config.block = {128, 1, 1};
  config.grid = {static_cast<uint32_t>((n + 127) / 128), 1, 1};
  runtime::launch(module.function(codegen::kSmokeKernelName), codegen::kSmokeKernelName, config,
                  arguments);
  std::vector<float> result(y.size() + 16);
  y_device.download(std::as_writable_bytes(std::span(result)));
  for (size_t i = 0; i < y.size(); ++i)
    REQUIRE(result[i] == std::fma(a, x[i], y[i]));
  uint32_t past_end = 0;
  std::memcpy(&past_end, &result[y.size()], 4);
  CHECK(past_end == 0xffffffffu);  // the kernel wrote nothing beyond n
}

}  // namespace

TEST_CASE("device facts", "[runtime][gpu]") {
  testing::require_gpu();
  const runtime::DeviceInfo& device = runtime::Driver::get().device();
  INFO(device.name);
  CHECK(device.compute_capability >= 80);
  CHECK(device.multiprocessors > 0);
  CHECK(device.max_shared_memory_per_block_optin >= 100 * 1024);
  std::printf("device: %s, sm_%d, %d SMs, %.1f GiB, L2 %lld MiB\n", device.name.c_str(),
              device.compute_capability, device.multiprocessors,
              static_cast<double>(device.global_memory_bytes) / (1 << 30),
              static_cast<long long>(device.l2_cache_bytes >> 20));
}

TEST_CASE("smoke kernel: PTX through the driver JIT", "[runtime][gpu]") {
  testing::require_gpu();
  const codegen::SmokeKernel kernel = codegen::build_smoke_kernel(device_target());
  const runtime::Module module = runtime::Module::load(text_bytes(kernel.ptx), "smoke kernel PTX");
  for (int n : {1, 127, 128, 1000, 1 << 20})
    run_axpy(module, n);
}

TEST_CASE("smoke kernel: cubin from ptxas", "[runtime][gpu]") {
  testing::require_gpu();
  const codegen::Target target = device_target();
  const codegen::SmokeKernel kernel = codegen::build_smoke_kernel(target);
  if (!codegen::find_ptxas()) {
    WARN("ptxas not found; the cubin path is covered on machines with the CUDA toolkit");
    return;
  }
  const codegen::PtxasResult cubin = codegen::assemble_ptx(kernel.ptx, target);
  const runtime::Module module = runtime::Module::load(cubin.cubin, "smoke kernel cubin");
  run_axpy(module, 4097);
}

TEST_CASE("driver errors name the call, the kernel and the configuration",
          "[runtime][gpu][errors]") {
  testing::require_gpu();
  const codegen::SmokeKernel kernel = codegen::build_smoke_kernel(device_target());
  const runtime::Module module = runtime::Module::load(text_bytes(kernel.ptx), "smoke kernel PTX");
  CHECK_THROWS_WITH(
      module.function("no_such_kernel"),
      Catch::Contains("cuModuleGetFunction failed") && Catch::Contains("no_such_kernel"));
  const std::string broken =
      ".version 8.3\n.target sm_80\n.address_size 64\n.visible .entry k() { bogus; }\n";
  CHECK_THROWS_WITH(runtime::Module::load(text_bytes(broken), "broken PTX"),
                    Catch::Contains("cuModuleLoadDataEx failed") && Catch::Contains("broken PTX"));
  runtime::LaunchConfig config;
  config.block = {4096, 1, 1};  // more threads than a block can have
  runtime::DevicePointer null_pointer = 0;
  float a = 1;
  int n = 0;
  void* arguments[] = {&null_pointer, &null_pointer, &a, &n};
  CHECK_THROWS_WITH(runtime::launch(module.function(codegen::kSmokeKernelName),
                                    codegen::kSmokeKernelName, config, arguments),
                    Catch::Contains("cuLaunchKernel failed") &&
                        Catch::Contains("nibble_smoke_axpy") &&
                        Catch::Contains("block (4096, 1, 1)"));
}

TEST_CASE("event timing measures kernel time", "[runtime][gpu]") {
  testing::require_gpu();
  runtime::DeviceBuffer buffer(256 << 20);
  runtime::EventTimer timer;
  timer.start();
  buffer.fill_bytes(1);
  const float milliseconds = timer.stop();
  CHECK(milliseconds > 0);
  CHECK(milliseconds < 1000);
}
