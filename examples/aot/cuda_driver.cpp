#include "cuda_driver.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace aot_example {

namespace {

using Result = int;
using Device = int;
using Context = void*;

}  // namespace

struct CudaDriver::Api {
  void* library = nullptr;
  Context context = nullptr;
  Device device = 0;
  Result (*cuInit)(unsigned) = nullptr;
  Result (*cuDeviceGet)(Device*, int) = nullptr;
  Result (*cuDeviceGetAttribute)(int*, int, Device) = nullptr;
  Result (*cuDevicePrimaryCtxRetain)(Context*, Device) = nullptr;
  Result (*cuDevicePrimaryCtxRelease)(Device) = nullptr;
  Result (*cuCtxSetCurrent)(Context) = nullptr;
  Result (*cuCtxSynchronize)() = nullptr;
  Result (*cuMemAlloc)(DevicePointer*, size_t) = nullptr;
  Result (*cuMemFree)(DevicePointer) = nullptr;
  Result (*cuMemcpyHtoD)(DevicePointer, const void*, size_t) = nullptr;
  Result (*cuMemcpyDtoH)(void*, DevicePointer, size_t) = nullptr;

  template <typename Function>
  bool resolve(Function& function, const char* symbol) {
    void* address = dlsym(library, symbol);
    if (address == nullptr) return false;
    std::memcpy(&function, &address, sizeof address);
    return true;
  }
};

namespace {

void check(Result result, const char* call) {
  if (result != 0) {
    throw std::runtime_error(std::string(call) + " failed with CUDA error " +
                             std::to_string(result));
  }
}

}  // namespace

bool CudaDriver::open_or_skip() {
  std::string why;
  if (!open(why)) {
    std::printf("SKIPPED: %s\n", why.c_str());
    return false;
  }
  std::printf("device: compute capability %d.%d\n", compute_capability_ / 10,
              compute_capability_ % 10);
  return true;
}

bool CudaDriver::open(std::string& why) {
  api_ = new Api;
  api_->library = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (api_->library == nullptr) {
    why = "no CUDA driver (libcuda.so.1)";
    return false;
  }
  Api& api = *api_;
  if (!api.resolve(api.cuInit, "cuInit") || !api.resolve(api.cuDeviceGet, "cuDeviceGet") ||
      !api.resolve(api.cuDeviceGetAttribute, "cuDeviceGetAttribute") ||
      !api.resolve(api.cuDevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain") ||
      !api.resolve(api.cuDevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2") ||
      !api.resolve(api.cuCtxSetCurrent, "cuCtxSetCurrent") ||
      !api.resolve(api.cuCtxSynchronize, "cuCtxSynchronize") ||
      !api.resolve(api.cuMemAlloc, "cuMemAlloc_v2") ||
      !api.resolve(api.cuMemFree, "cuMemFree_v2") ||
      !api.resolve(api.cuMemcpyHtoD, "cuMemcpyHtoD_v2") ||
      !api.resolve(api.cuMemcpyDtoH, "cuMemcpyDtoH_v2")) {
    why = "libcuda.so.1 lacks a driver API function";
    return false;
  }
  if (api.cuInit(0) != 0 || api.cuDeviceGet(&api.device, 0) != 0) {
    why = "no CUDA device";
    return false;
  }
  int major = 0;
  int minor = 0;
  check(api.cuDeviceGetAttribute(&major, 75, api.device), "cuDeviceGetAttribute");
  check(api.cuDeviceGetAttribute(&minor, 76, api.device), "cuDeviceGetAttribute");
  compute_capability_ = major * 10 + minor;
  check(api.cuDevicePrimaryCtxRetain(&api.context, api.device), "cuDevicePrimaryCtxRetain");
  check(api.cuCtxSetCurrent(api.context), "cuCtxSetCurrent");
  return true;
}

CudaDriver::~CudaDriver() {
  if (api_ != nullptr && api_->context != nullptr) api_->cuDevicePrimaryCtxRelease(api_->device);
  delete api_;
}

DevicePointer CudaDriver::allocate(size_t bytes) {
  DevicePointer pointer = 0;
  check(api_->cuMemAlloc(&pointer, bytes), "cuMemAlloc");
  return pointer;
}

void CudaDriver::free(DevicePointer pointer) {
  check(api_->cuMemFree(pointer), "cuMemFree");
}

void CudaDriver::upload(DevicePointer destination, const void* source, size_t bytes) {
  check(api_->cuMemcpyHtoD(destination, source, bytes), "cuMemcpyHtoD");
}

void CudaDriver::download(void* destination, DevicePointer source, size_t bytes) {
  check(api_->cuMemcpyDtoH(destination, source, bytes), "cuMemcpyDtoH");
}

void CudaDriver::synchronize() {
  check(api_->cuCtxSynchronize(), "cuCtxSynchronize");
}

}  // namespace aot_example
