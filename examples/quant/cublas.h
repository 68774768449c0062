// cuBLAS as the reference point of the quantized GEMM: C = A · B in f16 (f32 accumulation) with
// cublasGemmEx, loaded with dlopen so that nothing in nibble links it. Used by `nibble demo` and
// the benchmarks to report speedups measured in the same process.
#pragma once

#include <memory>
#include <string>

#include "runtime/driver.h"

namespace nibble::examples {

class CublasGemm {
 public:
  // Loads libcublas (the CUDA toolkit's, $CUDA_HOME's or the system's) and creates a handle.
  // Returns nullptr, with `why` set, when cuBLAS is not installed.
  static std::unique_ptr<CublasGemm> load(std::string* why);
  ~CublasGemm();
  CublasGemm(const CublasGemm&) = delete;
  CublasGemm& operator=(const CublasGemm&) = delete;

  // C[m, n] = A[m, k] · B[k, n], all f16 and row-major, on the default stream.
  void f16_gemm(runtime::DevicePointer a, runtime::DevicePointer b, runtime::DevicePointer c, int m,
                int n, int k);

 private:
  CublasGemm() = default;
  void* library_ = nullptr;
  void* handle_ = nullptr;
  // cublasGemmEx(handle, transa, transb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta,
  //              C, Ctype, ldc, computeType, algo)
  int (*gemm_ex_)(void*, int, int, int, int, int, const void*, const void*, int, int, const void*,
                  int, int, const void*, void*, int, int, int, int) = nullptr;
  int (*destroy_)(void*) = nullptr;
};

}  // namespace nibble::examples
