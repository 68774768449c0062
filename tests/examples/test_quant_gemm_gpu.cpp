// The quantized GEMM on the GPU (label gpu): every weight type with its decode and prefill
// configurations, and the variants (group sizes, zero points, bf16, split K), against the
// double-precision reference on fresh random inputs, C poisoned with NaN first; and the
// errors a bad call gets before anything is launched.
#include <catch2/catch.hpp>

#include <cstdio>
#include <random>

#include "examples/quant/device.h"
#include "examples/quant/run.h"
#include "tests/examples/quant_gemm_support.h"
#include "tests/gpu_support.h"

using namespace nibble;
using dtypes::DataType;
using examples::QuantGemmConfig;
using runtime::DeviceBuffer;
using namespace quant_gemm_test;

namespace {

template <typename T>
DeviceBuffer upload(const std::vector<T>& values) {
  DeviceBuffer buffer(std::max<size_t>(values.size() * sizeof(T), 16));
  if (!values.empty()) buffer.upload(std::as_bytes(std::span<const T>(values)));
  return buffer;
}

// Fresh inputs on every run: the seed comes from the system and is printed for replay.
uint64_t fresh_seed() {
  static const uint64_t seed = [] {
    std::random_device source;
    const uint64_t value = (static_cast<uint64_t>(source()) << 32) | source();
    std::printf("seed: %llu\n", static_cast<unsigned long long>(value));
    return value;
  }();
  return seed;
}

void run_case(const QuantGemmConfig& config, int64_t m, int64_t n, int64_t k, uint64_t salt) {
  const uint64_t seed = fresh_seed() + salt;
  INFO(config.name() << " M=" << m << " N=" << n << " K=" << k << " seed " << seed);
  const Problem p = make_problem(config, m, n, k, seed);
  const examples::PreparedWeight prepared = examples::prepare_weight(p.weight, config);
  DeviceBuffer a = upload(p.a_codes);
  DeviceBuffer w = upload(prepared.codes);
  DeviceBuffer s = upload(prepared.scales);
  DeviceBuffer z = upload(prepared.zeros);
  DeviceBuffer c(static_cast<size_t>(m * n) * 2);
  examples::QuantGemmDevice gemm(config);
  for (int call = 0; call < 2; ++call) {  // twice: the split-K workspace must be clean again
    c.fill_bytes(0xff);                   // NaN: an element never written fails the check
    gemm.run(a.pointer(), w.pointer(), s.pointer(), config.zero_points ? z.pointer() : 0,
             c.pointer(), m, n, k);
    runtime::Driver::get().synchronize();
    std::vector<uint16_t> result(static_cast<size_t>(m * n));
    c.download(std::as_writable_bytes(std::span<uint16_t>(result)));
    check_against_reference(config, p, result);
  }
}

const char* const kWeightTypes[] = {
    "u1", "u2", "u3", "u4", "u5", "u6",     "u7",     "u8",     "i1",     "i2",     "i3",
    "i4", "i5", "i6", "i7", "i8", "f4e2m1", "f6e3m2", "f6e2m3", "f8e4m3", "f8e5m2", "f5e2m2"};

// The device's architecture, as the chooser takes it (90: the wgmma prefill).
int device_sm() {
  return runtime::Driver::get().device().compute_capability;
}

}  // namespace

TEST_CASE("every weight type, decode and prefill, on the GPU", "[gpu][quant_gemm]") {
  nibble::testing::require_gpu();
  for (const char* type : kWeightTypes) {
    const DataType weight = DataType::parse(type);
    for (int64_t m : {1, 13, 29, 200}) {
      const int64_t n = 256;
      const int64_t k = 1024;
      // The kernels for every target (mma.sync), and those chosen for this device where they
      // differ (on sm_90a the wgmma prefill, and the wgmma decode of 13 and 29 rows).
      const QuantGemmConfig portable =
          examples::choose_quant_gemm_config(m, n, k, weight, DataType::f16(), 128, false);
      run_case(portable, m, n, k, 100 + static_cast<uint64_t>(m));
      const QuantGemmConfig native = examples::choose_quant_gemm_config(
          m, n, k, weight, DataType::f16(), 128, false, 132, device_sm());
      if (native.name() != portable.name())
        run_case(native, m, n, k, 110 + static_cast<uint64_t>(m));
    }
  }
}

TEST_CASE("group sizes, zero points, bf16 and split K on the GPU", "[gpu][quant_gemm]") {
  nibble::testing::require_gpu();
  // 16-row 4-bit tiles split 16 ways: 256 columns.
  for (const char* type : {"u4", "i4"}) {
    const QuantGemmConfig wide = examples::choose_quant_gemm_config(
        13, 256, 8192, DataType::parse(type), DataType::f16(), 128, false, 132, device_sm());
    CHECK(wide.block_n == 256);
    run_case(wide, 13, 256, 8192, 203);
  }
  for (int64_t group : {32, 64, 0}) {
    for (int64_t m : {1, 300}) {
      run_case(examples::choose_quant_gemm_config(m, 256, 1024, DataType::uint(4), DataType::f16(),
                                                  group, false, 132, device_sm()),
               m, 256, 1024, 200);
    }
  }
  for (const char* type : {"u4", "u8"}) {
    run_case(examples::choose_quant_gemm_config(5, 256, 1024, DataType::parse(type),
                                                DataType::f16(), 128, true),
             5, 256, 1024, 201);
  }
  for (const char* type : {"u4", "i8", "f8e4m3", "u3", "f6e3m2"}) {
    for (int64_t m : {2, 130}) {
      run_case(examples::choose_quant_gemm_config(m, 256, 1024, DataType::parse(type),
                                                  DataType::bf16(), 128, false, 132, device_sm()),
               m, 256, 1024, 202);
    }
  }
  QuantGemmConfig split;
  split.block_n = 64;
  split.block_k = 64;
  split.split_k = 4;
  split.unroll = 2;
  split.stages = 3;
  run_case(split, 9, 128, 2048, 203);
  // The group scale after the mma on the chosen decode tiles: integer, odd and float widths,
  // zero points, per channel, bf16.
  for (const char* type : {"u4", "u8", "i8", "f6e3m2", "f4e2m1"}) {
    for (int64_t m : {1, 16}) {
      QuantGemmConfig config = examples::choose_quant_gemm_config(
          m, 256, 2048, DataType::parse(type), DataType::f16(), 128, false);
      config.scale_after_mma = true;
      config.min_blocks_per_sm = 7;
      run_case(config, m, 256, 2048, 205);
    }
  }
  for (int64_t group : {128, 0}) {
    QuantGemmConfig config = examples::choose_quant_gemm_config(3, 256, 1024, DataType::uint(4),
                                                                DataType::bf16(), group, true);
    config.scale_after_mma = true;
    run_case(config, 3, 256, 1024, 206);
  }
  // The weights as the mma's A operand on 8-row activation tiles (chosen for M ≤ 8): a full
  // tile, two row tiles with a partial second, C written without a split, bf16 and 8 bits.
  for (int64_t m : {8, 13}) {
    const QuantGemmConfig config = examples::choose_quant_gemm_config(
        1, 256, 2048, DataType::uint(4), DataType::f16(), 128, false);
    REQUIRE(config.weights_as_a);
    run_case(config, m, 256, 2048, 207);
  }
  QuantGemmConfig unsplit = examples::choose_quant_gemm_config(4, 256, 1024, DataType::uint(8),
                                                               DataType::bf16(), 128, false);
  REQUIRE(unsplit.weights_as_a);
  unsplit.split_k = 1;
  run_case(unsplit, 4, 256, 1024, 208);
  // Each tile finished by the last of its splits (finish_in_gemm): the 16-row tile over 8 splits,
  // two row tiles of 8 rows in bf16.
  QuantGemmConfig finished = examples::choose_quant_gemm_config(16, 256, 2048, DataType::uint(4),
                                                                DataType::f16(), 128, false);
  finished.split_k = 8;
  finished.finish_in_gemm = true;
  run_case(finished, 16, 256, 2048, 209);
  finished = examples::choose_quant_gemm_config(1, 256, 2048, DataType::uint(4), DataType::bf16(),
                                                128, false);
  REQUIRE(finished.finish_in_gemm);
  run_case(finished, 11, 256, 2048, 210);
  // Persistent blocks whose shares cross column tiles (4 tiles x 16 iterations over 7 blocks).
  QuantGemmConfig persistent;
  persistent.block_n = 64;
  persistent.block_k = 64;
  persistent.stages = 4;
  persistent.persistent_blocks = 7;
  run_case(persistent, 3, 256, 1024, 204);
}

TEST_CASE("the transposed dot on wgmma (sm_90a)", "[gpu][quant_gemm]") {
  nibble::testing::require_gpu();
  if (runtime::Driver::get().device().compute_capability != 90) {
    std::printf("SKIPPED: wgmma needs sm_90a\n");
    return;
  }
  // Two warpgroups on 128x128 tiles (rows past M zero-filled, several row tiles), one warpgroup
  // with zero points and two groups per k tile, bf16 and odd widths, per channel.
  QuantGemmConfig config;
  config.schedule = examples::QuantSchedule::Prefill;
  config.weights_as_a = true;
  config.wgmma = true;
  config.block_m = 128;
  config.block_n = 128;
  config.block_k = 64;
  config.warps = 8;
  config.stages = 4;
  for (int64_t m : {1, 77, 300})
    run_case(config, m, 256, 1024, 300);
  QuantGemmConfig tall = config;  // 256-row tiles: m64n256 instructions
  tall.block_m = 256;
  run_case(tall, 520, 128, 1024, 303);
  QuantGemmConfig small = config;
  small.warps = 4;
  small.block_n = 64;
  small.block_m = 64;
  small.zero_points = true;
  small.group_size = 32;
  small.activation = DataType::bf16();
  run_case(small, 100, 192, 512, 301);
  for (const char* type : {"u3", "f6e3m2", "u8", "f4e2m1"}) {
    QuantGemmConfig typed = config;
    typed.weight = DataType::parse(type);
    typed.group_size = 0;
    run_case(typed, 130, 256, 512, 302);
  }
  // One warpgroup on 128 columns (two m64 atoms of columns per warp): the prefill, and the decode
  // that scales each pair of k tiles' partial product after its dots (16 and 32 rows, split K,
  // per channel, bf16, groups of two pairs).
  QuantGemmConfig one_warpgroup = config;
  one_warpgroup.warps = 4;
  run_case(one_warpgroup, 77, 256, 1024, 304);
  const QuantGemmConfig decode = wgmma_decode_config();
  for (int64_t m : {1, 16})
    run_case(decode, m, 256, 1024, 305);
  QuantGemmConfig rows32 = decode;
  rows32.block_m = 32;
  rows32.split_k = 2;
  run_case(rows32, 29, 384, 1024, 306);
  rows32.finish_in_gemm = true;
  run_case(rows32, 23, 384, 1024, 309);
  // The splits of a tile as one cluster adding through shared memory: two splits (what the
  // chooser takes for u4 at K=8192 N=57344), sixteen (a non-portable cluster size), bf16.
  QuantGemmConfig clustered = examples::choose_quant_gemm_config(
      16, 57344, 8192, DataType::uint(4), DataType::f16(), 128, false, 132, 90);
  REQUIRE(clustered.cluster_split);
  REQUIRE(clustered.split_k == 2);
  run_case(clustered, 16, 256, 2048, 310);
  clustered.split_k = 16;
  clustered.activation = DataType::bf16();
  run_case(clustered, 9, 256, 2048, 311);
  QuantGemmConfig channel = decode;
  channel.group_size = 0;
  channel.activation = DataType::bf16();
  channel.weight = DataType::uint(8);
  run_case(channel, 7, 128, 512, 307);
  QuantGemmConfig groups = decode;
  groups.group_size = 256;
  groups.weight = DataType::parse("f6e3m2");
  run_case(groups, 11, 128, 1024, 308);
}

TEST_CASE("a bad call is refused before launch", "[gpu][quant_gemm]") {
  nibble::testing::require_gpu();
  QuantGemmConfig config;
  config.block_n = 64;
  config.block_k = 64;
  examples::QuantGemmDevice gemm(config);
  DeviceBuffer buffer(1 << 20);
  const auto p = buffer.pointer();
  CHECK_THROWS_WITH(gemm.run(p, p, p, 0, p, 1, 64, 200),
                    Catch::Contains("K=200 is not a multiple of the group size 128"));
  CHECK_THROWS_WITH(gemm.run(p + 2, p, p, 0, p, 1, 64, 256), Catch::Contains("'a'"));
  QuantGemmConfig with_zeros = config;
  with_zeros.zero_points = true;
  examples::QuantGemmDevice zeros(with_zeros);
  CHECK_THROWS_WITH(zeros.run(p, p, p, 0, p, 1, 64, 256),
                    Catch::Contains("reads zero points; none given"));
}
