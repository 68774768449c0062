#include "examples/quant/cublas.h"

#include <dlfcn.h>
#include <fmt/format.h>

#include <cstdlib>
#include <stdexcept>
#include <vector>

namespace nibble::examples {
namespace {

// cublas_api.h / library_types.h values.
constexpr int kOpN = 0;
constexpr int kR16F = 2;
constexpr int kCompute32F = 68;
constexpr int kGemmDefault = -1;

}  // namespace

std::unique_ptr<CublasGemm> CublasGemm::load(std::string* why) {
  std::vector<std::string> candidates = {"libcublas.so", "libcublas.so.13", "libcublas.so.12"};
  for (const char* root : {static_cast<const char*>(std::getenv("CUDA_HOME")), "/usr/local/cuda"}) {
    if (root == nullptr) continue;
    for (const char* name : {"libcublas.so", "libcublas.so.13", "libcublas.so.12"})
      candidates.push_back(fmt::format("{}/lib64/{}", root, name));
  }
  void* library = nullptr;
  for (const std::string& name : candidates) {
    library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (library != nullptr) break;
  }
  if (library == nullptr) {
    if (why != nullptr) *why = "libcublas was not found (CUDA_HOME, /usr/local/cuda, the system)";
    return nullptr;
  }
  std::unique_ptr<CublasGemm> gemm(new CublasGemm());
  gemm->library_ = library;
  auto create = reinterpret_cast<int (*)(void**)>(dlsym(library, "cublasCreate_v2"));
  gemm->destroy_ = reinterpret_cast<int (*)(void*)>(dlsym(library, "cublasDestroy_v2"));
  gemm->gemm_ex_ = reinterpret_cast<decltype(gemm->gemm_ex_)>(dlsym(library, "cublasGemmEx"));
  if (create == nullptr || gemm->destroy_ == nullptr || gemm->gemm_ex_ == nullptr) {
    if (why != nullptr) *why = "libcublas lacks cublasCreate_v2 / cublasGemmEx";
    return nullptr;
  }
  runtime::Driver::get();  // the primary context, current on this thread
  if (const int status = create(&gemm->handle_); status != 0) {
    if (why != nullptr) *why = fmt::format("cublasCreate failed with status {}", status);
    gemm->handle_ = nullptr;
    return nullptr;
  }
  return gemm;
}

CublasGemm::~CublasGemm() {
  if (handle_ != nullptr) destroy_(handle_);
  if (library_ != nullptr) dlclose(library_);
}

void CublasGemm::f16_gemm(runtime::DevicePointer a, runtime::DevicePointer b,
                          runtime::DevicePointer c, int m, int n, int k) {
  // Row-major C = A · B is column-major Cᵀ = Bᵀ · Aᵀ: B (as n x k, leading dimension n) times
  // A (as k x m, leading dimension k).
  const float alpha = 1.0F;
  const float beta = 0.0F;
  const int status =
      gemm_ex_(handle_, kOpN, kOpN, n, m, k, &alpha, reinterpret_cast<const void*>(b), kR16F, n,
               reinterpret_cast<const void*>(a), kR16F, k, &beta, reinterpret_cast<void*>(c), kR16F,
               n, kCompute32F, kGemmDefault);
  if (status != 0)
    throw std::runtime_error(fmt::format("cublasGemmEx failed with status {}", status));
}

}  // namespace nibble::examples
