// The few CUDA driver calls the example program needs to own a context and device memory,
// opened with dlopen like the generated library does: the example builds without the CUDA
// toolkit and runs wherever there is a driver.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace aot_example {

using DevicePointer = unsigned long long;  // CUdeviceptr

class CudaDriver {
 public:
  // Opens libcuda.so.1, initializes it and makes device 0's primary context current. Returns
  // false with `why` set when there is no driver or no GPU.
  bool open(std::string& why);
  // open(), printing the device, or "SKIPPED: why" (the caller then exits with 77, which CTest
  // reports as skipped).
  bool open_or_skip();
  ~CudaDriver();

  int compute_capability() const { return compute_capability_; }
  DevicePointer allocate(size_t bytes);
  void free(DevicePointer pointer);
  void upload(DevicePointer destination, const void* source, size_t bytes);
  void download(void* destination, DevicePointer source, size_t bytes);
  void synchronize();

 private:
  struct Api;
  Api* api_ = nullptr;
  int compute_capability_ = 0;
};

}  // namespace aot_example
