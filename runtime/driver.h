// The CUDA driver, loaded on first use.
//
// libcuda.so.1 is opened with dlopen the first time a GPU is needed, so importing nibble,
// generating code or running the interpreter never needs a GPU or a driver. Every driver call
// is checked; a failure becomes a CudaError whose message names the call, the driver's error
// name and text, and (for launches) the kernel and its launch configuration.
//
// Objects here own driver resources (RAII) and are move-only. They use the primary context of
// the device, made current on the calling thread by Driver::get().
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace nibble::runtime {

class CudaError : public std::runtime_error {
 public:
  CudaError(std::string message, int code) : std::runtime_error(std::move(message)), code_(code) {}
  // The CUresult, or -1 when the driver could not be loaded at all.
  int code() const { return code_; }

 private:
  int code_;
};

struct DeviceInfo {
  int ordinal = 0;
  std::string name;
  int compute_capability = 0;  // major * 10 + minor: 80, 89, 90
  int multiprocessors = 0;
  int64_t global_memory_bytes = 0;
  int64_t l2_cache_bytes = 0;
  int64_t max_shared_memory_per_block_optin = 0;
  int clock_rate_khz = 0;
  int memory_clock_rate_khz = 0;
  int memory_bus_width_bits = 0;
};

// Opaque driver handles (CUdeviceptr is a 64-bit address).
using DevicePointer = uint64_t;
struct DriverApi;

class Driver {
 public:
  // Loads libcuda.so.1 (or $NIBBLE_LIBCUDA), initializes it, retains the primary context of
  // device `ordinal` and makes it current. Throws CudaError with a clear reason when there is
  // no driver or no device.
  static Driver& get(int ordinal = 0);
  // Whether a driver and a device are present (never throws).
  static bool available();

  const DeviceInfo& device() const { return device_; }
  const DriverApi& api() const { return *api_; }
  // Makes this driver's context current on the calling thread.
  void make_current() const;
  void synchronize() const;

  Driver(const Driver&) = delete;
  Driver& operator=(const Driver&) = delete;
  ~Driver();

 private:
  Driver(int ordinal);
  std::unique_ptr<DriverApi> api_;
  DeviceInfo device_;
  void* context_ = nullptr;
  int device_handle_ = 0;
};

// Throws CudaError("<call> failed: <name>: <text><context>") when `result` is not success.
void check(const DriverApi& api, int result, std::string_view call, std::string_view context = {});

// Device memory of a fixed size.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;
  ~DeviceBuffer();

  DevicePointer pointer() const { return pointer_; }
  size_t bytes() const { return bytes_; }
  void upload(std::span<const std::byte> host, size_t offset = 0);
  void download(std::span<std::byte> host, size_t offset = 0) const;
  void fill_bytes(uint8_t value);
  // Copies `source` (of the same size) device to device, synchronously.
  void copy_from(const DeviceBuffer& source);

 private:
  DevicePointer pointer_ = 0;
  size_t bytes_ = 0;
};

struct LaunchConfig {
  std::array<uint32_t, 3> grid = {1, 1, 1};
  std::array<uint32_t, 3> block = {1, 1, 1};
  uint32_t shared_memory_bytes = 0;
  void* stream = nullptr;  // CUstream; null = the default stream
  // Launched as a programmatic dependent of the stream's previous kernel (sm_90; the kernel
  // waits for it itself: vm::Program::dependent_launch). A driver without cuLaunchKernelEx
  // launches it plainly, which is as correct.
  bool dependent = false;
  // Blocks per cluster (sm_90, vm::Program::cluster); {1, 1, 1}: none. Needs cuLaunchKernelEx.
  std::array<uint32_t, 3> cluster = {1, 1, 1};
};
std::string to_string(const LaunchConfig& config);

// A loaded module (cubin, or PTX compiled by the driver's JIT) and its kernels.
class Module {
 public:
  // `image` is a cubin (ELF) or NUL-terminated PTX text. A JIT failure quotes the JIT log.
  static Module load(std::span<const uint8_t> image, std::string_view description);
  Module(Module&& other) noexcept;
  Module& operator=(Module&& other) noexcept;
  ~Module();

  // The kernel's handle (CUfunction); throws CudaError naming the kernel when absent.
  void* function(std::string_view kernel_name) const;

 private:
  Module() = default;
  void* module_ = nullptr;
  std::string description_;
};

// Launches `function` with the kernel parameters in `arguments` (pointers to each argument's
// value, as cuLaunchKernel takes them). Raises the dynamic shared-memory limit when the launch
// needs more than 48 KB. Errors name the kernel and the configuration.
void launch(void* function, std::string_view kernel_name, const LaunchConfig& config,
            std::span<void*> arguments);

// Times work on a stream with driver events, in milliseconds.
class EventTimer {
 public:
  EventTimer();
  ~EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  void start(void* stream = nullptr);
  // Records the stop event, waits for it, and returns the elapsed milliseconds.
  float stop(void* stream = nullptr);

 private:
  void* start_ = nullptr;
  void* stop_ = nullptr;
};

}  // namespace nibble::runtime
