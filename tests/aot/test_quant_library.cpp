// The quantized GEMM library of examples/aot (quant_kernels.json), without a GPU: the families'
// configuration errors, the manifest's configurations against choose_quant_gemm_config, the
// generated header's functions, and the dispatcher's choice among the variants and its errors
// with the compute capability overridden. This test links nibble (for the families, the
// chooser and the re-packer) beside the generated library; the library's own dependencies are
// checked by aot_quant_library_dependencies.
#include <fmt/format.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "examples/aot/quant_families.h"
#include "examples/quant/quantize.h"
#include "examples/quant/repack.h"
#include "examples/quant_gemm.h"
#include "frontend/aot/generate.h"
#include "frontend/aot/registry.h"
#include "quant_kernels.h"
#include "tests/source_dir.h"

namespace {

namespace fs = std::filesystem;
namespace examples = nibble::examples;
using nibble::aot::Config;
using nibble::dtypes::DataType;
using nlohmann::json;

// The header declares exactly these signatures (a mismatch does not compile).
static_assert(
    std::is_same_v<decltype(&quant_gemm_decode),
                   nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr, nbl_devptr, nbl_devptr,
                                  int32_t, int32_t, int32_t, nbl_dtype, nbl_dtype, nbl_dtype)>);
static_assert(
    std::is_same_v<decltype(&quant_gemm_decode_plan),
                   nbl_status (*)(nbl_devptr, nbl_devptr, nbl_devptr, nbl_devptr, int32_t, int32_t,
                                  int32_t, nbl_dtype, nbl_dtype, nbl_dtype, nbl_plan*)>);
static_assert(std::is_same_v<decltype(&quant_gemm_prefill),
                             nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr, nbl_devptr,
                                            nbl_devptr, int32_t, int32_t, int32_t, nbl_dtype,
                                            nbl_dtype, nbl_dtype, nbl_dtype)>);
static_assert(
    std::is_same_v<decltype(&quant_gemm_finish),
                   nbl_status (*)(nbl_stream, nbl_devptr, nbl_devptr, int32_t, nbl_dtype)>);
static_assert(std::is_same_v<decltype(&quant_kernels_explain), const char* (*)(nbl_status)>);
static_assert(std::is_same_v<decltype(&quant_kernels_last_error), const char* (*)()>);
// Symmetric u4 / u8 weights are stored (and passed) as i4 / i8 codes.
static_assert(NBL_DTYPE_I4 == 0x10400 && NBL_DTYPE_I8 == 0x10800 && NBL_DTYPE_F16 == 0x21005 &&
              NBL_DTYPE_BF16 == 0x21008);

constexpr nbl_devptr kA = 0x7f0000100000;  // 256-byte aligned device addresses
constexpr nbl_devptr kW = 0x7f0010000000;
constexpr nbl_devptr kS = 0x7f0020000000;
constexpr nbl_devptr kOut = 0x7f0030000000;

// Dispatches as if on a device of compute capability `cc` while it lives.
struct Device {
  explicit Device(int cc) { quant_kernels_override_compute_capability(cc); }
  ~Device() { quant_kernels_override_compute_capability(0); }
};

struct Call {
  int32_t m = 1, n = 4096, k = 4096;
  nbl_dtype a = NBL_DTYPE_F16, w = NBL_DTYPE_I4, s = NBL_DTYPE_F16;
  nbl_devptr a_ptr = kA, w_ptr = kW, s_ptr = kS, out_ptr = kOut;
};

nbl_status plan_decode(const Call& call, nbl_plan& plan) {
  return quant_gemm_decode_plan(call.a_ptr, call.w_ptr, call.s_ptr, call.out_ptr, call.m, call.n,
                                call.k, call.a, call.w, call.s, &plan);
}

nbl_status plan_prefill(const Call& call, nbl_plan& plan) {
  return quant_gemm_prefill_plan(call.a_ptr, call.w_ptr, call.s_ptr, call.out_ptr, call.m, call.n,
                                 call.k, call.a, call.w, call.s, call.a, &plan);
}

std::string last_error() {
  return quant_kernels_last_error();
}

json manifest() {
  std::ifstream in(nibble::testing::source_dir() / "examples/aot/quant_kernels.json");
  REQUIRE(in.good());
  return json::parse(in);
}

const json& kernel(const json& manifest, const std::string& function) {
  for (const json& entry : manifest.at("kernels")) {
    if (entry.at("function") == function) return entry;
  }
  FAIL("no kernel " << function << " in quant_kernels.json");
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("the quant_gemm families build their configurations", "[aot][quant]") {
  const nibble::aot::KernelFamily* gemm = nibble::aot::find_family("quant_gemm");
  const nibble::aot::KernelFamily* finish = nibble::aot::find_family("quant_gemm_finish");
  REQUIRE(gemm != nullptr);
  REQUIRE(finish != nullptr);

  const json object = {{"weight", "u8"}, {"activation", "bf16"}, {"schedule", "prefill"},
                       {"block_m", 64},  {"block_n", 128},       {"block_k", 32},
                       {"warps", 8},     {"stages", 3},          {"group_size", 64},
                       {"split_k", 1},   {"unroll", 1},          {"zero_points", true}};
  const Config config(object);
  const nibble::vm::Program program = gemm->build(config);
  config.reject_unread_keys();  // every key is read
  examples::QuantGemmConfig expected;
  expected.weight = DataType::uint(8);
  expected.activation = DataType::bf16();
  expected.schedule = examples::QuantSchedule::Prefill;
  expected.block_m = 64;
  expected.block_n = 128;
  expected.block_k = 32;
  expected.warps = 8;
  expected.stages = 3;
  expected.group_size = 64;
  expected.zero_points = true;
  CHECK(program.name == expected.name());
  CHECK(nibble::aot_examples::quant_gemm_config(Config(object)).name() == expected.name());
  // a, w, s, z, c, m, n, k; zero-point weights are stored as they are.
  REQUIRE(program.params.size() == 8);
  CHECK(program.params[1].dtype == DataType::uint(8));

  const json defaults = json::object();
  CHECK(gemm->build(Config(defaults)).name == examples::QuantGemmConfig{}.name());
  const json bf16 = {{"activation", "bf16"}};
  const nibble::vm::Program finishing = finish->build(Config(bf16));
  REQUIRE(finishing.params.size() == 3);
  CHECK(finishing.params[1].dtype == DataType::bf16());
}

TEST_CASE("bad quant_gemm configurations are errors naming the key or the field", "[aot][quant]") {
  const nibble::aot::KernelFamily* gemm = nibble::aot::find_family("quant_gemm");
  const nibble::aot::KernelFamily* finish = nibble::aot::find_family("quant_gemm_finish");
  REQUIRE(gemm != nullptr);
  REQUIRE(finish != nullptr);
  const auto build_error = [](const nibble::aot::KernelFamily* family, const json& object) {
    const Config config(object);
    try {
      family->build(config);
      config.reject_unread_keys();
    } catch (const std::invalid_argument& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(build_error(gemm, {{"blok_n", 64}}),
             Catch::Contains("unknown key 'blok_n'") && Catch::Contains("block_n"));
  CHECK_THAT(build_error(gemm, {{"warps", 0}}), Catch::Contains("key 'warps': 0 is not in 1..32"));
  CHECK_THAT(build_error(gemm, {{"split_k", 0}}), Catch::Contains("key 'split_k'"));
  CHECK_THAT(build_error(gemm, {{"schedule", "decod"}}),
             Catch::Contains("key 'schedule'") && Catch::Contains("decode, prefill"));
  CHECK_THAT(build_error(gemm, {{"weight", "u17"}}), Catch::Contains("key 'weight'"));
  CHECK_THAT(build_error(gemm, {{"block_m", "16"}}), Catch::Contains("expected an integer"));
  // What QuantGemmConfig rejects passes through (examples::QuantGemmError).
  CHECK_THAT(build_error(gemm, {{"block_n", 48}}), Catch::Contains("block_n 48 is not a power"));
  CHECK_THAT(build_error(gemm, {{"weight", "f32"}}), Catch::Contains("weight type f32"));
  CHECK_THAT(build_error(gemm, {{"weight", "f8e4m3"}, {"zero_points", true}}),
             Catch::Contains("zero points need an unsigned integer weight"));
  CHECK_THAT(build_error(gemm, {{"group_size", 8}}), Catch::Contains("group_size 8"));
  CHECK_THAT(build_error(finish, {{"activation", "f32"}}),
             Catch::Contains("key 'activation': f32 is not f16 or bf16"));
  CHECK_THAT(build_error(finish, {{"activation", "f16"}, {"block", 256}}),
             Catch::Contains("unknown key 'block'"));
}

TEST_CASE("nibble aot names the manifest entry of a bad quant_gemm configuration", "[aot][quant]") {
  const fs::path root =
      fs::temp_directory_path() / fmt::format("nibble-aot-quant-test-{}", getpid());
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path manifest_path = root / "quant.json";
  std::ofstream(manifest_path) << R"({"library": "bad_quant", "targets": ["sm_80"], "kernels": [
    {"function": "gemm", "family": "quant_gemm", "configs": [{}, {"weight": "u4", "block_k": 24}]}
  ]})";
  nibble::aot::GenerateOptions options;
  options.manifest = manifest_path.string();
  options.output_dir = (root / "out").string();
  CHECK_THROWS_WITH(
      nibble::aot::generate(options),
      Catch::Contains("kernels[0] ('gemm'), configs[1]") && Catch::Contains("block_k"));
  CHECK(!fs::exists(root / "out"));
  fs::remove_all(root);
}

TEST_CASE("the library's GEMMs are the configurations choose_quant_gemm_config picks",
          "[aot][quant]") {
  // Decode for M = 1, prefill for M = 4096, on K = N = 4096 (132 SMs: an H100 / H200).
  const json object = manifest();
  int checked = 0;
  const std::initializer_list<std::pair<const char*, int64_t>> schedules = {
      {"quant_gemm_decode", 1}, {"quant_gemm_prefill", 4096}};
  for (const auto& [function, m] : schedules) {
    for (const json& entry : kernel(object, function).at("configs")) {
      const Config config(entry);
      const examples::QuantGemmConfig listed = nibble::aot_examples::quant_gemm_config(config);
      config.reject_unread_keys();
      examples::QuantGemmConfig chosen = examples::choose_quant_gemm_config(
          m, 4096, 4096, listed.weight, listed.activation, 128, false);
      // quant_gemm_decode's variants share one signature (a workspace that quant_gemm_finish
      // rounds and clears), so they leave the tiles' last blocks out of the finishing;
      // quant_gemm_decode_fused has the u4 ones with it.
      chosen.finish_in_gemm = false;
      CHECK(listed.name() == chosen.name());
      ++checked;
    }
  }
  CHECK(checked == 12);  // u4, u8, f6e3m2 x f16, bf16 x decode, prefill
  // The split-K finish in the GEMM (M = 1, K = N = 4096) and the splits of a tile as a cluster
  // (K = 8192, N = 57344 on sm_90): u4 only.
  const std::initializer_list<std::tuple<const char*, int64_t, int64_t, int>> fused_and_clustered =
      {{"quant_gemm_decode_fused", 4096, 4096, 80},
       {"quant_gemm_decode_clustered", 57344, 8192, 90}};
  for (const auto& [function, n, k, sm] : fused_and_clustered) {
    for (const json& entry : kernel(object, function).at("configs")) {
      const examples::QuantGemmConfig listed =
          nibble::aot_examples::quant_gemm_config(Config(entry));
      const examples::QuantGemmConfig chosen = examples::choose_quant_gemm_config(
          1, n, k, listed.weight, listed.activation, 128, false, 132, sm);
      CHECK(listed.name() == chosen.name());
      ++checked;
    }
  }
  CHECK(checked == 16);
}

TEST_CASE("the quant dispatcher picks the variant of the device and the types", "[aot][quant]") {
  SECTION("decode u4 x f16 on sm_90 runs the sm_90a cubin, split K in 8") {
    Device device(90);
    nbl_plan plan{};
    REQUIRE(plan_decode(Call{}, plan) == NBL_SUCCESS);
    CHECK_THAT(plan.variant,
               Catch::Contains("quant_gemm_decode configs[0]") && Catch::EndsWith("sm_90a"));
    CHECK(plan.sm == 90);
    CHECK(plan.is_ptx == 0);
    CHECK(plan.grid[0] == 4096 / 128);
    CHECK(plan.grid[1] == 1);
    CHECK(plan.grid[2] == 8);
    CHECK(plan.block[0] == 128);
  }
  SECTION("sm_80 … sm_89 run the sm_80 cubin; newer GPUs the PTX; older none") {
    for (int cc : {80, 86, 89}) {
      Device device(cc);
      nbl_plan plan{};
      REQUIRE(plan_decode(Call{}, plan) == NBL_SUCCESS);
      CHECK_THAT(plan.variant, Catch::EndsWith("sm_80"));
      CHECK(plan.sm == 80);
    }
    {
      Device device(100);
      nbl_plan plan{};
      REQUIRE(plan_decode(Call{}, plan) == NBL_SUCCESS);
      CHECK(plan.is_ptx == 1);
      CHECK(plan.sm == 80);
    }
    Device device(75);
    nbl_plan plan{};
    CHECK(plan_decode(Call{}, plan) == NBL_ERROR_UNSUPPORTED_DEVICE);
  }
  SECTION("each weight and activation type has its variant") {
    Device device(90);
    const std::vector<std::tuple<nbl_dtype, nbl_dtype, std::string>> cases = {
        {NBL_DTYPE_I4, NBL_DTYPE_F16, "\"weight\":\"u4\""},
        {NBL_DTYPE_I4, NBL_DTYPE_BF16, "\"weight\":\"u4\""},
        {NBL_DTYPE_I8, NBL_DTYPE_F16, "\"weight\":\"u8\""},
        {NBL_DTYPE_I8, NBL_DTYPE_BF16, "\"weight\":\"u8\""}};
    for (const auto& [w, a, weight] : cases) {
      Call call;
      call.w = w;
      call.a = call.s = a;
      const std::string activation =
          a == NBL_DTYPE_F16 ? "\"activation\":\"f16\"" : "\"activation\":\"bf16\"";
      nbl_plan plan{};
      REQUIRE(plan_decode(call, plan) == NBL_SUCCESS);
      CHECK_THAT(plan.variant, Catch::Contains(weight) && Catch::Contains(activation));
      call.m = 4096;
      REQUIRE(plan_prefill(call, plan) == NBL_SUCCESS);
      CHECK_THAT(plan.variant, Catch::Contains("quant_gemm_prefill") && Catch::Contains(weight) &&
                                   Catch::Contains(activation));
      // u4 and u8: 64-row tiles over 4 warps; f6e3m2: 128-row tiles over 8 warps.
      const bool narrow = w == NBL_DTYPE_I4 || w == NBL_DTYPE_I8;
      CHECK(plan.grid[0] == 4096 / 128);
      CHECK(plan.grid[1] == 4096 / (narrow ? 64 : 128));
      CHECK(plan.grid[2] == 1);
      CHECK(plan.block[0] == (narrow ? 128 : 256));
    }
    nbl_plan plan{};
    CHECK(quant_gemm_finish_plan(kOut, kA, 4096, NBL_DTYPE_BF16, &plan) == NBL_SUCCESS);
    CHECK_THAT(plan.variant, Catch::Contains("quant_gemm_finish configs[1]"));
  }
}

TEST_CASE("the quant dispatcher explains what no variant takes", "[aot][quant]") {
  Device device(90);
  nbl_plan plan{};
  SECTION("element types") {
    Call call;
    call.w = 0x00400;  // u4 (kind 0, 4 bits): symmetric u4 is stored, and passed, as i4
    CHECK(plan_decode(call, plan) == NBL_ERROR_UNSUPPORTED_DTYPE);
    CHECK_THAT(last_error(), Catch::Contains("w is an element type this library"));
    call = Call{};
    call.s = NBL_DTYPE_BF16;  // scales of another type than the activations
    CHECK(plan_decode(call, plan) == NBL_ERROR_UNSUPPORTED_DTYPE);
    CHECK_THAT(last_error(), Catch::Contains("s is bf16, this variant takes f16"));
    CHECK(quant_gemm_finish_plan(kOut, kA, 64, NBL_DTYPE_F32, &plan) ==
          NBL_ERROR_UNSUPPORTED_DTYPE);
    CHECK_THAT(quant_kernels_explain(NBL_ERROR_UNSUPPORTED_DTYPE),
               Catch::Contains("no variant takes these element types"));
  }
  SECTION("K not a multiple of the group size, or of block_k * split_k") {
    Call call;
    call.k = 4096 + 64;
    CHECK(plan_decode(call, plan) == NBL_ERROR_INDIVISIBLE_SIZE);
    CHECK_THAT(last_error(), Catch::Contains("k = 4160 is not a multiple of 1024"));
    call.k = 4096 + 128;  // a whole group, but not a whole split of 16 x 64
    CHECK(plan_decode(call, plan) == NBL_ERROR_INDIVISIBLE_SIZE);
    call.m = 4096;
    call.k = 1000;
    CHECK(plan_prefill(call, plan) == NBL_ERROR_INDIVISIBLE_SIZE);
    CHECK_THAT(last_error(), Catch::Contains("k = 1000 is not a multiple of 128"));
    call.k = 4096;
    call.n = 4096 + 64;  // prefill tiles N by 128
    CHECK(plan_prefill(call, plan) == NBL_ERROR_INDIVISIBLE_SIZE);
    CHECK_THAT(last_error(), Catch::Contains("n = 4160 is not a multiple of 128"));
    CHECK_THAT(quant_kernels_explain(NBL_ERROR_INDIVISIBLE_SIZE),
               Catch::Contains("not a multiple"));
  }
  SECTION("misaligned pointers") {
    Call call;
    call.a_ptr = kA + 8;  // A is read in 16-byte runs
    CHECK(plan_decode(call, plan) == NBL_ERROR_MISALIGNED_POINTER);
    CHECK_THAT(last_error(), Catch::Contains("is not 16-byte aligned"));
    call = Call{};
    call.s_ptr = kS + 1;
    CHECK(plan_decode(call, plan) == NBL_ERROR_MISALIGNED_POINTER);
    CHECK_THAT(last_error(), Catch::Contains("s = 0x7f0020000001 is not 16-byte aligned"));
    CHECK_THAT(quant_kernels_explain(NBL_ERROR_MISALIGNED_POINTER), Catch::Contains("aligned"));
  }
}

TEST_CASE("a quant plan's variant names the re-packing its W must have", "[aot][quant]") {
  Device device(90);
  // A small u4 weight, re-packed for the decode and the prefill variant that a call chooses.
  const int64_t k = 1024, n = 128;
  std::vector<double> values(static_cast<size_t>(k * n));
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = 0.01 * static_cast<double>(static_cast<int64_t>(i * 7919 % 201) - 100);
  examples::QuantizeOptions options;
  options.weight_type = DataType::uint(4);
  const examples::QuantizedWeight weight = examples::quantize(values, k, n, options);

  Call call;
  call.n = static_cast<int32_t>(n);
  call.k = static_cast<int32_t>(k);
  nbl_plan decode{}, prefill{};
  REQUIRE(plan_decode(call, decode) == NBL_SUCCESS);
  call.m = 300;
  REQUIRE(plan_prefill(call, prefill) == NBL_SUCCESS);
  const examples::QuantGemmConfig decode_config =
      nibble::aot_examples::quant_gemm_config_of_variant(decode.variant);
  const examples::QuantGemmConfig prefill_config =
      nibble::aot_examples::quant_gemm_config_of_variant(prefill.variant);
  CHECK(decode_config.name() == "quant_gemm_u4_f16_g128_decode_8x128x64_w4_s8_u2_sa_wa_cw");
  CHECK(prefill_config.name() == "quant_gemm_u4_f16_g128_prefill4_64x128x64_w4_s1_u1");
  // The two schedules tile W differently, so each needs its own re-packed copy (README.md);
  // each copy holds the same codes.
  const std::vector<uint8_t> for_decode = examples::repack_weight(weight, decode_config);
  const std::vector<uint8_t> for_prefill = examples::repack_weight(weight, prefill_config);
  CHECK(for_decode.size() == for_prefill.size());
  CHECK(for_decode != for_prefill);
  CHECK(examples::unpack_repacked(for_decode, k, n, decode_config) ==
        examples::unpack_repacked(for_prefill, k, n, prefill_config));
  CHECK(examples::unpack_repacked(for_decode, k, n, decode_config) ==
        examples::unpack_repacked(for_prefill, k, n, prefill_config));
  CHECK_THROWS_WITH(nibble::aot_examples::quant_gemm_config_of_variant("quant_gemm_decode sm_80"),
                    Catch::Contains("holds no configuration"));
}
