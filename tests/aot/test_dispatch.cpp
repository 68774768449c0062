// Generated kernel libraries on their own (this test links no part of nibble): the header's
// functions, and the dispatcher's choice and errors with the device's compute capability
// overridden, so that no GPU is needed.
#include <catch2/catch.hpp>

#include <set>
#include <string>
#include <type_traits>

#include "aot_test_kernels.h"  // tests/aot/data/manifest.json: VM files, a compile-time argument
#include "example_kernels.h"   // examples/aot/kernels.json

namespace {

// The header declares exactly these signatures (a mismatch does not compile).
static_assert(std::is_same_v<decltype(&vector_add),
                             nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr, nbl_devptr, int32_t,
                                            nbl_dtype, nbl_dtype, nbl_dtype)>);
static_assert(std::is_same_v<decltype(&vector_add_plan),
                             nbl_status (*)(nbl_devptr, nbl_devptr, nbl_devptr, int32_t, nbl_dtype,
                                            nbl_dtype, nbl_dtype, nbl_plan*)>);
static_assert(
    std::is_same_v<decltype(&gemm_f16), nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr,
                                                       nbl_devptr, int32_t, int32_t, int32_t)>);
static_assert(std::is_same_v<decltype(&gemv_u4),
                             nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr, nbl_devptr,
                                            nbl_devptr, int32_t, int32_t, int32_t)>);
static_assert(
    std::is_same_v<decltype(&add_blocks), nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr,
                                                         nbl_devptr, int32_t, int32_t)>);
static_assert(
    std::is_same_v<decltype(&add_pairs),
                   nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr, nbl_devptr, int32_t)>);
static_assert(std::is_same_v<decltype(&example_kernels_explain), const char* (*)(nbl_status)>);
static_assert(std::is_same_v<decltype(&example_kernels_last_error), const char* (*)()>);
static_assert(NBL_DTYPE_F32 == 0x22008 && NBL_DTYPE_F16 == 0x21005 && NBL_DTYPE_U4 == 0x00400);

constexpr nbl_devptr kX = 0x7f0000100000;  // 256-byte aligned device addresses
constexpr nbl_devptr kY = 0x7f0000200000;
constexpr nbl_devptr kOut = 0x7f0000300000;

// Dispatches as if on a device of compute capability `cc` while it lives.
struct Device {
  explicit Device(int cc) {
    example_kernels_override_compute_capability(cc);
    aot_test_kernels_override_compute_capability(cc);
  }
  ~Device() {
    example_kernels_override_compute_capability(0);
    aot_test_kernels_override_compute_capability(0);
  }
};

nbl_plan plan_vector_add(int32_t n, nbl_dtype dtype, nbl_status expected = NBL_SUCCESS,
                         nbl_devptr x = kX) {
  nbl_plan plan{};
  const nbl_status status = vector_add_plan(x, kY, kOut, n, dtype, dtype, dtype, &plan);
  INFO(example_kernels_last_error());
  CHECK(status == expected);
  return plan;
}

std::string last_error() {
  return example_kernels_last_error();
}

}  // namespace

TEST_CASE("every status has its own explanation", "[aot][dispatch]") {
  std::set<std::string> texts;
  for (int code = NBL_SUCCESS; code <= NBL_ERROR_LAUNCH_FAILED; ++code) {
    texts.insert(example_kernels_explain(static_cast<nbl_status>(code)));
  }
  CHECK(texts.size() == NBL_ERROR_LAUNCH_FAILED + 1);
  CHECK(std::string(example_kernels_explain(static_cast<nbl_status>(15))) == "unknown status code");
  CHECK(std::string(aot_test_kernels_explain(NBL_ERROR_MISALIGNED_POINTER)) ==
        example_kernels_explain(NBL_ERROR_MISALIGNED_POINTER));
}

TEST_CASE("the variant follows the device's architecture", "[aot][dispatch]") {
  const int32_t n = (1 << 20) + 3;
  {
    Device device(90);  // H100, H200: the sm_90a cubin
    const nbl_plan plan = plan_vector_add(n, NBL_DTYPE_F32);
    CHECK(plan.sm == 90);
    CHECK(plan.is_ptx == 0);
    CHECK_THAT(plan.variant, Catch::Contains("configs[0]") && Catch::Contains("sm_90a"));
    CHECK(plan.grid[0] == (n + 1023) / 1024);
    CHECK((plan.grid[1] == 1 && plan.grid[2] == 1));
    CHECK((plan.block[0] == 128 && plan.block[1] == 1 && plan.block[2] == 1));
  }
  {
    Device device(89);  // L4, L40: sm_89
    CHECK(plan_vector_add(n, NBL_DTYPE_F32).sm == 89);
  }
  {
    Device device(86);  // A10: the sm_80 cubin runs on later minors of 8
    const nbl_plan plan = plan_vector_add(n, NBL_DTYPE_F32);
    CHECK((plan.sm == 80 && plan.is_ptx == 0));
  }
  {
    Device device(100);  // newer than every cubin: the PTX of sm_89, JIT-compiled
    const nbl_plan plan = plan_vector_add(n, NBL_DTYPE_F32);
    CHECK((plan.sm == 89 && plan.is_ptx == 1));
    CHECK_THAT(plan.variant, Catch::Contains("compute_89 PTX"));
  }
  {
    Device device(75);  // Turing: nothing
    plan_vector_add(n, NBL_DTYPE_F32, NBL_ERROR_UNSUPPORTED_DEVICE);
    CHECK_THAT(last_error(), Catch::Contains("vector_add: no variant runs on a device of "
                                             "compute capability 7.5") &&
                                 Catch::Contains("sm_80"));
  }
}

TEST_CASE("element types, alignment and sizes choose among the variants", "[aot][dispatch]") {
  Device device(90);
  SECTION("element types") {
    const nbl_plan f16 = plan_vector_add(5000, NBL_DTYPE_F16);
    CHECK_THAT(f16.variant, Catch::Contains("configs[1]"));
    CHECK(f16.grid[0] == 3);  // blocks of 2048
    nbl_plan plan{};
    CHECK(vector_add_plan(kX, kY, kOut, 10, NBL_DTYPE_F16, NBL_DTYPE_F32, NBL_DTYPE_F16, &plan) ==
          NBL_ERROR_UNSUPPORTED_DTYPE);
    CHECK_THAT(last_error(), Catch::Contains("x is f16, this variant takes f32") &&
                                 Catch::Contains("y is f32, this variant takes f16"));
    const nbl_dtype bf16 = (2 << 16) | (16 << 8) | 8;
    plan_vector_add(10, bf16, NBL_ERROR_UNSUPPORTED_DTYPE);
    CHECK_THAT(last_error(), Catch::Contains("an element type this library does not know"));
  }
  SECTION("pointer alignment") {
    plan_vector_add(10, NBL_DTYPE_F32, NBL_ERROR_MISALIGNED_POINTER, kX + 4);
    CHECK_THAT(last_error(), Catch::Contains("x = 0x7f0000100004 is not 16-byte aligned"));
    // The f32 variants reject the element type, the f16 ones the alignment: the status is the
    // reason of the variants that came closest.
    plan_vector_add(10, NBL_DTYPE_F16, NBL_ERROR_MISALIGNED_POINTER, kX + 4);
    CHECK_THAT(last_error(), Catch::Contains("takes f32") && Catch::Contains("aligned"));
  }
  SECTION("divisibility and specialized values") {
    nbl_plan plan{};
    CHECK(gemv_u4_plan(kX, kY, kOut, kOut, 200, 512, 128, &plan) == NBL_SUCCESS);
    CHECK_THAT(plan.variant, Catch::Contains("configs[0]"));
    CHECK(plan.grid[0] == 4);  // 200 columns in blocks of 64
    CHECK(gemv_u4_plan(kX, kY, kOut, kOut, 200, 192, 64, &plan) == NBL_SUCCESS);
    CHECK_THAT(plan.variant, Catch::Contains("configs[1]"));
    CHECK(gemv_u4_plan(kX, kY, kOut, kOut, 200, 192, 128, &plan) == NBL_ERROR_INDIVISIBLE_SIZE);
    CHECK_THAT(last_error(), Catch::Contains("k = 192 is not a multiple of 128"));
    CHECK(gemv_u4_plan(kX, kY, kOut, kOut, 200, 512, 32, &plan) == NBL_ERROR_UNSUPPORTED_VALUE);
    CHECK_THAT(last_error(), Catch::Contains("group = 32, this variant is specialized for 64"));
  }
  SECTION("the grid's range") {
    CHECK(plan_vector_add(0, NBL_DTYPE_F32).grid[0] == 0);  // nothing to launch: fine
    plan_vector_add(-5000, NBL_DTYPE_F32, NBL_ERROR_INVALID_ARGUMENT);
    CHECK_THAT(last_error(), Catch::Contains("grid dimension 0 would be -4 blocks"));
    CHECK(vector_add_plan(kX, kY, kOut, 1, NBL_DTYPE_F32, NBL_DTYPE_F32, NBL_DTYPE_F32, nullptr) ==
          NBL_ERROR_INVALID_ARGUMENT);
  }
  SECTION("a success clears the last error") {
    plan_vector_add(10, NBL_DTYPE_F32, NBL_ERROR_MISALIGNED_POINTER, kX + 4);
    CHECK(!last_error().empty());
    plan_vector_add(10, NBL_DTYPE_F32);
    CHECK(last_error().empty());
  }
}

TEST_CASE("the gemm's grid and shared memory come from the program", "[aot][dispatch]") {
  nbl_plan plan{};
  {
    Device device(90);
    REQUIRE(gemm_f16_plan(kX, kY, kOut, 200, 136, 96, &plan) == NBL_SUCCESS);
    CHECK(plan.sm == 90);
    CHECK((plan.grid[0] == 3 && plan.grid[1] == 4 && plan.grid[2] == 1));  // n / 64, m / 64
    CHECK(plan.shared_bytes >= 3 * (64 * 32 + 32 * 64) * 2);               // 3 stages of tiles
  }
  {
    Device device(89);
    REQUIRE(gemm_f16_plan(kX, kY, kOut, 200, 136, 96, &plan) == NBL_SUCCESS);
    CHECK((plan.sm == 80 && plan.is_ptx == 0));
  }
  {
    Device device(120);
    REQUIRE(gemm_f16_plan(kX, kY, kOut, 200, 136, 96, &plan) == NBL_SUCCESS);
    CHECK((plan.sm == 80 && plan.is_ptx == 1));
  }
}

TEST_CASE("VM-file kernels dispatch on a compile-time argument", "[aot][dispatch]") {
  Device device(80);
  nbl_plan plan{};
  CHECK(add_blocks_plan(kX, kY, kOut, 192, 1, &plan) == NBL_SUCCESS);
  CHECK_THAT(plan.variant, Catch::Contains("add_block64.nbvm"));
  CHECK((plan.grid[0] == 3 && plan.block[0] == 64));
  CHECK(add_blocks_plan(kX, kY, kOut, 256, 2, &plan) == NBL_SUCCESS);
  CHECK_THAT(plan.variant, Catch::Contains("add_block128.nbvm"));
  CHECK(plan.grid[0] == 2);
  CHECK(add_blocks_plan(kX, kY, kOut, 100, 1, &plan) == NBL_ERROR_INDIVISIBLE_SIZE);
  CHECK_THAT(std::string(aot_test_kernels_last_error()),
             Catch::Contains("n = 100 is not a multiple of 64"));
  CHECK(add_blocks_plan(kX, kY, kOut, 192, 3, &plan) == NBL_ERROR_UNSUPPORTED_VALUE);
  // One variant has the wrong factor, the other needs n % 128 == 0.
  CHECK(add_blocks_plan(kX, kY, kOut, 192, 2, &plan) == NBL_ERROR_INDIVISIBLE_SIZE);
  CHECK_THAT(std::string(aot_test_kernels_last_error()),
             Catch::Contains("specialized for 1") && Catch::Contains("not a multiple of 128"));
}

TEST_CASE("a kernel in clusters is built for sm_90 on, and its grid is whole clusters",
          "[aot][dispatch]") {
  nbl_plan plan{};
  {
    Device device(80);  // the manifest lists sm_80 too: no cluster kernel was built for it
    CHECK(add_pairs_plan(kX, kY, kOut, 256, &plan) == NBL_ERROR_UNSUPPORTED_DEVICE);
    CHECK_THAT(std::string(aot_test_kernels_last_error()),
               Catch::Contains("compute capability 8.0") && Catch::Contains("sm_90a") &&
                   !Catch::Contains("sm_80"));
    // Kernels without clusters say so as clusters of one block.
    CHECK(add_blocks_plan(kX, kY, kOut, 192, 1, &plan) == NBL_SUCCESS);
    CHECK((plan.cluster[0] == 1 && plan.cluster[1] == 1 && plan.cluster[2] == 1));
  }
  Device device(90);
  CHECK(add_pairs_plan(kX, kY, kOut, 256, &plan) == NBL_SUCCESS);
  CHECK((plan.grid[0] == 4 && plan.sm == 90));
  CHECK((plan.cluster[0] == 2 && plan.cluster[1] == 1 && plan.cluster[2] == 1));
  CHECK(add_pairs_plan(kX, kY, kOut, 192, &plan) == NBL_ERROR_INDIVISIBLE_SIZE);
  CHECK_THAT(std::string(aot_test_kernels_last_error()),
             Catch::Contains("grid dimension 0 would be 3 blocks, not whole clusters of 2"));
}

TEST_CASE("launching needs a driver and a current context", "[aot][dispatch]") {
  // Without the override the device is asked: on a machine without a GPU there is no driver, on
  // a GPU machine this thread has no current context. Either way nothing is launched.
  const nbl_status status =
      vector_add(nullptr, kX, kY, kOut, 10, NBL_DTYPE_F32, NBL_DTYPE_F32, NBL_DTYPE_F32);
  CHECK((status == NBL_ERROR_DRIVER_UNAVAILABLE || status == NBL_ERROR_NO_CONTEXT));
  CHECK(!last_error().empty());
}
