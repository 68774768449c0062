#include "runtime/driver.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace nibble::runtime {

// The subset of the CUDA driver API nibble uses, declared here so that building nibble needs
// no CUDA headers. Handles are opaque pointers; CUdevice is an int; CUdeviceptr 64 bits.
struct DriverApi {
  void* library = nullptr;
  int (*cuInit)(unsigned) = nullptr;
  int (*cuDriverGetVersion)(int*) = nullptr;
  int (*cuDeviceGetCount)(int*) = nullptr;
  int (*cuDeviceGet)(int*, int) = nullptr;
  int (*cuDeviceGetName)(char*, int, int) = nullptr;
  int (*cuDeviceGetAttribute)(int*, int, int) = nullptr;
  int (*cuDeviceTotalMem)(size_t*, int) = nullptr;
  int (*cuDevicePrimaryCtxRetain)(void**, int) = nullptr;
  int (*cuDevicePrimaryCtxRelease)(int) = nullptr;
  int (*cuCtxSetCurrent)(void*) = nullptr;
  int (*cuCtxSynchronize)() = nullptr;
  int (*cuMemAlloc)(DevicePointer*, size_t) = nullptr;
  int (*cuMemFree)(DevicePointer) = nullptr;
  int (*cuMemcpyHtoD)(DevicePointer, const void*, size_t) = nullptr;
  int (*cuMemcpyDtoH)(void*, DevicePointer, size_t) = nullptr;
  int (*cuMemsetD8)(DevicePointer, unsigned char, size_t) = nullptr;
  int (*cuMemcpyDtoD)(DevicePointer, DevicePointer, size_t) = nullptr;
  int (*cuModuleLoadDataEx)(void**, const void*, unsigned, int*, void**) = nullptr;
  int (*cuModuleUnload)(void*) = nullptr;
  int (*cuModuleGetFunction)(void**, void*, const char*) = nullptr;
  int (*cuFuncSetAttribute)(void*, int, int) = nullptr;
  // Optional (CUDA 12): launches with attributes (programmatic dependent launch).
  int (*cuLaunchKernelEx)(const void*, void*, void**, void**) = nullptr;
  int (*cuLaunchKernel)(void*, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                        void*, void**, void**) = nullptr;
  int (*cuEventCreate)(void**, unsigned) = nullptr;
  int (*cuEventRecord)(void*, void*) = nullptr;
  int (*cuEventSynchronize)(void*) = nullptr;
  int (*cuEventElapsedTime)(float*, void*, void*) = nullptr;
  int (*cuEventDestroy)(void*) = nullptr;
  int (*cuGetErrorName)(int, const char**) = nullptr;
  int (*cuGetErrorString)(int, const char**) = nullptr;
};

namespace {

constexpr int kSuccess = 0;
// Values of the driver's enums (cuda.h), stable across driver versions.
constexpr int kAttributeClockRate = 13;
constexpr int kAttributeMultiprocessorCount = 16;
constexpr int kAttributeMemoryClockRate = 36;
constexpr int kAttributeMemoryBusWidth = 37;
constexpr int kAttributeL2CacheSize = 38;
constexpr int kAttributeComputeCapabilityMajor = 75;
constexpr int kAttributeComputeCapabilityMinor = 76;
constexpr int kAttributeMaxSharedPerBlockOptin = 97;
constexpr int kFunctionAttributeMaxDynamicShared = 8;
constexpr int kFunctionAttributeNonPortableClusterSizeAllowed = 14;
constexpr int kJitInfoLogBuffer = 3;
constexpr int kJitInfoLogBufferSize = 4;
constexpr int kJitErrorLogBuffer = 5;
constexpr int kJitErrorLogBufferSize = 6;
constexpr uint32_t kDefaultSharedLimit = 48 * 1024;

template <typename Function>
void resolve(DriverApi& api, Function& slot, const char* symbol) {
  void* address = dlsym(api.library, symbol);
  if (address == nullptr) {
    throw CudaError(fmt::format("the CUDA driver has no '{}' (driver too old?)", symbol), -1);
  }
  slot = reinterpret_cast<Function>(address);
}

std::unique_ptr<DriverApi> load_driver() {
  auto api = std::make_unique<DriverApi>();
  const char* override_path = std::getenv("NIBBLE_LIBCUDA");
  const char* path = override_path != nullptr ? override_path : "libcuda.so.1";
  api->library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (api->library == nullptr) {
    const char* reason = dlerror();
    throw CudaError(
        fmt::format("cannot load the CUDA driver ({}): {}; is an NVIDIA driver installed?", path,
                    reason != nullptr ? reason : "unknown error"),
        -1);
  }
  resolve(*api, api->cuInit, "cuInit");
  resolve(*api, api->cuDriverGetVersion, "cuDriverGetVersion");
  resolve(*api, api->cuDeviceGetCount, "cuDeviceGetCount");
  resolve(*api, api->cuDeviceGet, "cuDeviceGet");
  resolve(*api, api->cuDeviceGetName, "cuDeviceGetName");
  resolve(*api, api->cuDeviceGetAttribute, "cuDeviceGetAttribute");
  resolve(*api, api->cuDeviceTotalMem, "cuDeviceTotalMem_v2");
  resolve(*api, api->cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain");
  resolve(*api, api->cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2");
  resolve(*api, api->cuCtxSetCurrent, "cuCtxSetCurrent");
  resolve(*api, api->cuCtxSynchronize, "cuCtxSynchronize");
  resolve(*api, api->cuMemAlloc, "cuMemAlloc_v2");
  resolve(*api, api->cuMemFree, "cuMemFree_v2");
  resolve(*api, api->cuMemcpyHtoD, "cuMemcpyHtoD_v2");
  resolve(*api, api->cuMemcpyDtoH, "cuMemcpyDtoH_v2");
  resolve(*api, api->cuMemsetD8, "cuMemsetD8_v2");
  resolve(*api, api->cuMemcpyDtoD, "cuMemcpyDtoD_v2");
  resolve(*api, api->cuModuleLoadDataEx, "cuModuleLoadDataEx");
  resolve(*api, api->cuModuleUnload, "cuModuleUnload");
  resolve(*api, api->cuModuleGetFunction, "cuModuleGetFunction");
  resolve(*api, api->cuFuncSetAttribute, "cuFuncSetAttribute");
  resolve(*api, api->cuLaunchKernel, "cuLaunchKernel");
  api->cuLaunchKernelEx =
      reinterpret_cast<decltype(api->cuLaunchKernelEx)>(dlsym(api->library, "cuLaunchKernelEx"));
  resolve(*api, api->cuEventCreate, "cuEventCreate");
  resolve(*api, api->cuEventRecord, "cuEventRecord");
  resolve(*api, api->cuEventSynchronize, "cuEventSynchronize");
  resolve(*api, api->cuEventElapsedTime, "cuEventElapsedTime");
  resolve(*api, api->cuEventDestroy, "cuEventDestroy_v2");
  resolve(*api, api->cuGetErrorName, "cuGetErrorName");
  resolve(*api, api->cuGetErrorString, "cuGetErrorString");
  return api;
}

int attribute(const DriverApi& api, int which, int device) {
  int value = 0;
  check(api, api.cuDeviceGetAttribute(&value, which, device), "cuDeviceGetAttribute");
  return value;
}

const DriverApi& api() {
  return Driver::get().api();
}

}  // namespace

void check(const DriverApi& api, int result, std::string_view call, std::string_view context) {
  if (result == kSuccess) return;
  const char* name = nullptr;
  const char* text = nullptr;
  if (api.cuGetErrorName == nullptr || api.cuGetErrorName(result, &name) != kSuccess)
    name = nullptr;
  if (api.cuGetErrorString == nullptr || api.cuGetErrorString(result, &text) != kSuccess)
    text = nullptr;
  throw CudaError(
      fmt::format("{} failed: {} ({}): {}{}{}", call, name != nullptr ? name : "CUDA_ERROR", result,
                  text != nullptr ? text : "unknown error", context.empty() ? "" : "; ", context),
      result);
}

Driver::Driver(int ordinal) : api_(load_driver()) {
  const DriverApi& a = *api_;
  check(a, a.cuInit(0), "cuInit");
  int count = 0;
  check(a, a.cuDeviceGetCount(&count), "cuDeviceGetCount");
  if (count == 0) throw CudaError("the CUDA driver sees no GPU", 100);
  if (ordinal < 0 || ordinal >= count) {
    throw CudaError(fmt::format("GPU {} requested, but there are {} GPUs", ordinal, count), 101);
  }
  check(a, a.cuDeviceGet(&device_handle_, ordinal), "cuDeviceGet");
  check(a, a.cuDevicePrimaryCtxRetain(&context_, device_handle_), "cuDevicePrimaryCtxRetain");
  make_current();

  char name[256] = {};
  check(a, a.cuDeviceGetName(name, sizeof(name) - 1, device_handle_), "cuDeviceGetName");
  size_t memory = 0;
  check(a, a.cuDeviceTotalMem(&memory, device_handle_), "cuDeviceTotalMem");
  device_.ordinal = ordinal;
  device_.name = name;
  device_.compute_capability = 10 * attribute(a, kAttributeComputeCapabilityMajor, device_handle_) +
                               attribute(a, kAttributeComputeCapabilityMinor, device_handle_);
  device_.multiprocessors = attribute(a, kAttributeMultiprocessorCount, device_handle_);
  device_.global_memory_bytes = static_cast<int64_t>(memory);
  device_.l2_cache_bytes = attribute(a, kAttributeL2CacheSize, device_handle_);
  device_.max_shared_memory_per_block_optin =
      attribute(a, kAttributeMaxSharedPerBlockOptin, device_handle_);
  device_.clock_rate_khz = attribute(a, kAttributeClockRate, device_handle_);
  device_.memory_clock_rate_khz = attribute(a, kAttributeMemoryClockRate, device_handle_);
  device_.memory_bus_width_bits = attribute(a, kAttributeMemoryBusWidth, device_handle_);
}

Driver::~Driver() {
  // The process is ending (drivers are never destroyed before exit); releasing the context
  // here could race with the driver's own teardown, so the library stays loaded.
}

Driver& Driver::get(int ordinal) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<Driver>> drivers;
  std::lock_guard lock(mutex);
  if (ordinal < 0) throw CudaError(fmt::format("GPU ordinal {} is negative", ordinal), 101);
  if (drivers.size() <= static_cast<size_t>(ordinal))
    drivers.resize(static_cast<size_t>(ordinal) + 1);
  auto& slot = drivers[static_cast<size_t>(ordinal)];
  if (!slot) slot.reset(new Driver(ordinal));
  slot->make_current();
  return *slot;
}

bool Driver::available() {
  try {
    get();
    return true;
  } catch (const CudaError&) {
    return false;
  }
}

void Driver::make_current() const {
  check(*api_, api_->cuCtxSetCurrent(context_), "cuCtxSetCurrent");
}

void Driver::synchronize() const {
  check(*api_, api_->cuCtxSynchronize(), "cuCtxSynchronize");
}

// ---- memory ----------------------------------------------------------------------------------

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) return;
  check(api(), api().cuMemAlloc(&pointer_, bytes), "cuMemAlloc", fmt::format("{} bytes", bytes));
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : pointer_(std::exchange(other.pointer_, 0)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    DeviceBuffer old(std::move(*this));
    pointer_ = std::exchange(other.pointer_, 0);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

DeviceBuffer::~DeviceBuffer() {
  if (pointer_ != 0) api().cuMemFree(pointer_);  // errors at teardown cannot be reported
}

void DeviceBuffer::upload(std::span<const std::byte> host, size_t offset) {
  if (offset + host.size() > bytes_) {
    throw CudaError(fmt::format("upload of {} bytes at offset {} overflows a {}-byte buffer",
                                host.size(), offset, bytes_),
                    1);
  }
  check(api(), api().cuMemcpyHtoD(pointer_ + offset, host.data(), host.size()), "cuMemcpyHtoD");
}

void DeviceBuffer::download(std::span<std::byte> host, size_t offset) const {
  if (offset + host.size() > bytes_) {
    throw CudaError(fmt::format("download of {} bytes at offset {} overflows a {}-byte buffer",
                                host.size(), offset, bytes_),
                    1);
  }
  check(api(), api().cuMemcpyDtoH(host.data(), pointer_ + offset, host.size()), "cuMemcpyDtoH");
}

void DeviceBuffer::fill_bytes(uint8_t value) {
  check(api(), api().cuMemsetD8(pointer_, value, bytes_), "cuMemsetD8");
}

void DeviceBuffer::copy_from(const DeviceBuffer& source) {
  if (source.bytes_ != bytes_) {
    throw std::invalid_argument(fmt::format("DeviceBuffer::copy_from: {} bytes into a buffer of {}",
                                            source.bytes_, bytes_));
  }
  check(api(), api().cuMemcpyDtoD(pointer_, source.pointer_, bytes_), "cuMemcpyDtoD");
}

// ---- modules and launches --------------------------------------------------------------------

std::string to_string(const LaunchConfig& config) {
  std::string text =
      fmt::format("grid ({}, {}, {}), block ({}, {}, {}), {} bytes of dynamic shared memory",
                  config.grid[0], config.grid[1], config.grid[2], config.block[0], config.block[1],
                  config.block[2], config.shared_memory_bytes);
  if (config.cluster[0] * config.cluster[1] * config.cluster[2] > 1) {
    text += fmt::format(", clusters ({}, {}, {})", config.cluster[0], config.cluster[1],
                        config.cluster[2]);
  }
  return text;
}

Module Module::load(std::span<const uint8_t> image, std::string_view description) {
  const DriverApi& a = api();
  Module module;
  module.description_ = description;
  char info_log[8192] = {};
  char error_log[8192] = {};
  int options[] = {kJitInfoLogBuffer, kJitInfoLogBufferSize, kJitErrorLogBuffer,
                   kJitErrorLogBufferSize};
  void* values[] = {info_log, reinterpret_cast<void*>(sizeof(info_log) - 1), error_log,
                    reinterpret_cast<void*>(sizeof(error_log) - 1)};
  // PTX must be NUL-terminated for the JIT; copy it when the caller's bytes are not.
  std::vector<uint8_t> terminated;
  const void* data = image.data();
  const bool is_elf = image.size() >= 4 && image[0] == 0x7f && image[1] == 'E';
  if (!is_elf && (image.empty() || image.back() != 0)) {
    terminated.assign(image.begin(), image.end());
    terminated.push_back(0);
    data = terminated.data();
  }
  const int result = a.cuModuleLoadDataEx(&module.module_, data, 4, options, values);
  if (result != kSuccess) {
    check(a, result, "cuModuleLoadDataEx",
          fmt::format("loading {}{}{}", description, error_log[0] ? ":\n" : "", error_log));
  }
  return module;
}

Module::Module(Module&& other) noexcept
    : module_(std::exchange(other.module_, nullptr)), description_(std::move(other.description_)) {}

Module& Module::operator=(Module&& other) noexcept {
  if (this != &other) {
    Module old(std::move(*this));
    module_ = std::exchange(other.module_, nullptr);
    description_ = std::move(other.description_);
  }
  return *this;
}

Module::~Module() {
  if (module_ != nullptr) api().cuModuleUnload(module_);
}

void* Module::function(std::string_view kernel_name) const {
  void* function = nullptr;
  const std::string name(kernel_name);
  check(api(), api().cuModuleGetFunction(&function, module_, name.c_str()), "cuModuleGetFunction",
        fmt::format("kernel '{}' in {}", kernel_name, description_));
  return function;
}

void launch(void* function, std::string_view kernel_name, const LaunchConfig& config,
            std::span<void*> arguments) {
  const DriverApi& a = api();
  if (config.shared_memory_bytes > kDefaultSharedLimit) {
    check(a,
          a.cuFuncSetAttribute(function, kFunctionAttributeMaxDynamicShared,
                               static_cast<int>(config.shared_memory_bytes)),
          "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)",
          fmt::format("kernel '{}' with {}", kernel_name, to_string(config)));
  }
  const bool clustered = config.cluster[0] * config.cluster[1] * config.cluster[2] > 1;
  if (clustered && a.cuLaunchKernelEx == nullptr) {
    throw CudaError(fmt::format("kernel '{}' with {}: clusters need cuLaunchKernelEx (CUDA 12)",
                                kernel_name, to_string(config)),
                    0);
  }
  if (clustered && config.cluster[0] * config.cluster[1] * config.cluster[2] > 8) {
    check(a, a.cuFuncSetAttribute(function, kFunctionAttributeNonPortableClusterSizeAllowed, 1),
          "cuFuncSetAttribute(NON_PORTABLE_CLUSTER_SIZE_ALLOWED)",
          fmt::format("kernel '{}' with {}", kernel_name, to_string(config)));
  }
  if ((config.dependent || clustered) && a.cuLaunchKernelEx != nullptr) {
    // CUlaunchConfig with CUlaunchAttributes: PROGRAMMATIC_STREAM_SERIALIZATION (6) = 1,
    // CLUSTER_DIMENSION (4) = the cluster's extents.
    struct Attribute {
      int id = 6;
      char pad[4] = {};
      union {
        char bytes[64];
        int allowed;
        unsigned extents[3];
      } value{};
    };
    struct ExtendedConfig {
      unsigned grid[3];
      unsigned block[3];
      unsigned shared_memory_bytes;
      void* stream;
      Attribute* attributes;
      unsigned attribute_count;
    };
    static_assert(sizeof(Attribute) == 72, "CUlaunchAttribute is 72 bytes");
    std::array<Attribute, 2> attributes;
    unsigned count = 0;
    if (config.dependent) attributes[count++].value.allowed = 1;
    if (clustered) {
      Attribute& cluster = attributes[count++];
      cluster.id = 4;
      for (size_t d = 0; d < 3; ++d)
        cluster.value.extents[d] = config.cluster[d];
    }
    const ExtendedConfig extended{{config.grid[0], config.grid[1], config.grid[2]},
                                  {config.block[0], config.block[1], config.block[2]},
                                  config.shared_memory_bytes,
                                  config.stream,
                                  attributes.data(),
                                  count};
    check(a, a.cuLaunchKernelEx(&extended, function, arguments.data(), nullptr), "cuLaunchKernelEx",
          fmt::format("kernel '{}' with {}{}", kernel_name, to_string(config),
                      config.dependent ? " (dependent launch)" : ""));
    return;
  }
  check(a,
        a.cuLaunchKernel(function, config.grid[0], config.grid[1], config.grid[2], config.block[0],
                         config.block[1], config.block[2], config.shared_memory_bytes,
                         config.stream, arguments.data(), nullptr),
        "cuLaunchKernel", fmt::format("kernel '{}' with {}", kernel_name, to_string(config)));
}

// ---- timing ----------------------------------------------------------------------------------

EventTimer::EventTimer() {
  check(api(), api().cuEventCreate(&start_, 0), "cuEventCreate");
  check(api(), api().cuEventCreate(&stop_, 0), "cuEventCreate");
}

EventTimer::~EventTimer() {
  if (start_ != nullptr) api().cuEventDestroy(start_);
  if (stop_ != nullptr) api().cuEventDestroy(stop_);
}

void EventTimer::start(void* stream) {
  check(api(), api().cuEventRecord(start_, stream), "cuEventRecord");
}

float EventTimer::stop(void* stream) {
  check(api(), api().cuEventRecord(stop_, stream), "cuEventRecord");
  check(api(), api().cuEventSynchronize(stop_), "cuEventSynchronize");
  float milliseconds = 0;
  check(api(), api().cuEventElapsedTime(&milliseconds, start_, stop_), "cuEventElapsedTime");
  return milliseconds;
}

}  // namespace nibble::runtime
