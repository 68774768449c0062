// The quantized GEMM on the interpreter: every weight type against the double-precision
// reference, the re-packer's order, and the errors a bad configuration or call gets.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <set>
#include <stdexcept>

#include "codegen/compile.h"
#include "codegen/ptxas.h"
#include "dtypes/codec.h"
#include "examples/quant/repack.h"
#include "examples/quant/run.h"
#include "tests/examples/quant_gemm_support.h"
#include "vm/passes.h"

using namespace nibble;
using dtypes::DataType;
using examples::QuantGemmConfig;
using examples::QuantGemmError;
using examples::QuantSchedule;

namespace {

using namespace quant_gemm_test;

void run_case(const QuantGemmConfig& config, int64_t m, int64_t n, int64_t k, uint64_t seed) {
  INFO(config.name() << " M=" << m << " N=" << n << " K=" << k);
  const Problem p = make_problem(config, m, n, k, seed);
  const examples::PreparedWeight prepared = examples::prepare_weight(p.weight, config);
  const std::vector<uint16_t> c = examples::run_quant_gemm_interpreted(prepared, m, p.a_codes);
  check_against_reference(config, p, c);
}

}  // namespace

TEST_CASE("the re-packed order is a permutation of the tile", "[examples][quant_gemm]") {
  for (const char* type : {"u4", "u8", "u3", "u2", "f6e3m2", "u1"}) {
    QuantGemmConfig config;
    config.weight = DataType::parse(type);
    config.block_n = 64;
    config.block_k = 64;
    const examples::FragmentOrder order = examples::fragment_order(config);
    std::vector<int> seen(static_cast<size_t>(config.block_k * config.block_n), 0);
    for (int64_t t = 0; t < order.threads; ++t)
      for (int64_t r = 0; r < order.per_thread; ++r)
        ++seen[static_cast<size_t>(order.tile_index(t, r))];
    CHECK(std::all_of(seen.begin(), seen.end(), [](int v) { return v == 1; }));
  }
}

const char* const kWeightTypes[] = {
    "u1", "u2", "u3", "u4", "u5", "u6",     "u7",     "u8",     "i1",     "i2",     "i3",
    "i4", "i5", "i6", "i7", "i8", "f4e2m1", "f6e3m2", "f6e2m3", "f8e4m3", "f8e5m2", "f5e2m2"};

TEST_CASE("every weight type, decode and prefill configurations, on the interpreter",
          "[examples][quant_gemm]") {
  for (const char* type : kWeightTypes) {
    const DataType weight = DataType::parse(type);
    for (int64_t m : {3, 77}) {
      const int64_t n = 128;
      const int64_t k = 512;
      const QuantGemmConfig config =
          examples::choose_quant_gemm_config(m, n, k, weight, DataType::f16(), 128, false);
      CHECK(config.schedule == (m <= 64 ? QuantSchedule::Decode : QuantSchedule::Prefill));
      run_case(config, m, n, k, 11);
    }
  }
  // The decode picks for 4- and 8-bit integers iterate over two k tiles, which then span
  // several groups of 32 or 64 rows.
  for (const char* type : {"u4", "i8"}) {
    for (int64_t group : {32, 64}) {
      const QuantGemmConfig config = examples::choose_quant_gemm_config(
          1, 128, 1024, DataType::parse(type), DataType::f16(), group, false);
      CHECK(config.unroll == 2);
      run_case(config, 1, 128, 1024, 12);
    }
  }
}

TEST_CASE("16-row 4-bit tiles split 16 ways take 256 columns; they run and assemble",
          "[examples][quant_gemm]") {
  const bool assembles = codegen::find_ptxas().has_value();
  for (const char* type : {"u4", "i4"}) {
    // K = 8192 lets the split reach 16 (four iterations each); M 9 to 16 takes 16-row tiles.
    const QuantGemmConfig config = examples::choose_quant_gemm_config(
        13, 256, 8192, DataType::parse(type), DataType::f16(), 128, false);
    INFO(config.name());
    CHECK((config.block_m == 16 && config.block_n == 256 && config.split_k == 16));
    CHECK(examples::choose_quant_gemm_config(16, 57344, 8192, DataType::parse(type),
                                             DataType::f16(), 128, false)
              .block_n == 128);
    run_case(config, 13, 256, 2048, 14);  // K: one iteration per split
    for (const char* target_name : {"sm_80", "sm_90a"}) {
      if (!assembles) break;
      vm::Program program = examples::quant_gemm(config);
      vm::run_default_passes(program);
      const codegen::CompiledKernel kernel =
          codegen::compile(program, codegen::Target::parse(target_name));
      CHECK(kernel.report.spill_store_bytes == 0);
      CHECK(kernel.report.spill_load_bytes == 0);
    }
  }
}

TEST_CASE("group sizes, zero points, bf16, split K, unroll and stages on the interpreter",
          "[examples][quant_gemm]") {
  QuantGemmConfig base;
  base.block_n = 32;
  base.block_k = 64;
  base.warps = 2;
  for (int64_t group : {32, 64, 128, 0}) {
    QuantGemmConfig config = base;
    config.group_size = group;
    run_case(config, 5, 64, 256, 2);
  }
  {
    QuantGemmConfig config = base;
    config.zero_points = true;
    config.group_size = 64;
    run_case(config, 5, 64, 256, 3);
  }
  for (const char* type : {"u4", "i8", "f8e4m3", "u3"}) {
    QuantGemmConfig config = base;
    config.weight = DataType::parse(type);
    config.activation = DataType::bf16();
    config.group_size = 64;
    run_case(config, 2, 64, 256, 4);
  }
  {
    QuantGemmConfig config = base;
    config.split_k = 2;
    config.unroll = 2;
    config.stages = 3;
    run_case(config, 17, 64, 512, 5);
  }
  {
    QuantGemmConfig config = base;
    config.stages = 1;
    config.block_m = 32;
    run_case(config, 40, 32, 128, 6);
  }
  // The group scale applied to f32 partial sums after the mma: groups of one and two
  // iterations, per channel, zero points, bf16 with an odd width, persistent blocks.
  for (int64_t group : {64, 128, 0}) {
    QuantGemmConfig config = base;
    config.scale_after_mma = true;
    config.group_size = group;
    run_case(config, 5, 64, 256, 8);
  }
  {
    QuantGemmConfig config = base;
    config.scale_after_mma = true;
    config.zero_points = true;
    config.unroll = 2;
    run_case(config, 16, 64, 256, 9);
  }
  {
    QuantGemmConfig config = base;
    config.scale_after_mma = true;
    config.weight = DataType::parse("u3");
    config.activation = DataType::bf16();
    config.persistent_blocks = 3;
    run_case(config, 1, 64, 256, 10);
  }
  // The transposed dot (weights as the mma's A operand, 8-row activation tiles): M below, at
  // and past the tile (two row tiles), odd widths, bf16, split K, unroll, per channel, wider
  // column tiles.
  {
    QuantGemmConfig config = base;
    config.scale_after_mma = true;
    config.weights_as_a = true;
    config.block_m = 8;
    config.group_size = 64;
    for (int64_t m : {1, 8, 13})
      run_case(config, m, 64, 256, 20);
    for (const char* type : {"u3", "f6e3m2", "u8", "f4e2m1"}) {
      QuantGemmConfig typed = config;
      typed.weight = DataType::parse(type);
      typed.activation = DataType::bf16();
      run_case(typed, 3, 64, 256, 21);
    }
    QuantGemmConfig wide = config;
    wide.block_n = 128;
    wide.warps = 4;
    wide.split_k = 2;
    wide.unroll = 2;
    wide.group_size = 0;
    run_case(wide, 5, 256, 512, 22);
    QuantGemmConfig streamed = config;
    streamed.persistent_blocks = 3;
    run_case(streamed, 2, 128, 512, 23);
    // Each copy issued after the iteration's wait, with 2 and 3 stages, and with persistent
    // blocks (whose next share's first copies follow the loop).
    for (int64_t stages : {2, 3}) {
      QuantGemmConfig late = wide;
      late.copy_after_wait = true;
      late.stages = stages;
      run_case(late, 5, 256, 512, 24);
    }
    QuantGemmConfig late_streamed = streamed;
    late_streamed.copy_after_wait = true;
    run_case(late_streamed, 2, 128, 512, 25);
    // The split finished by each tile's last block: 4 splits, two row tiles (M=13 past the
    // 8-row tile), bf16.
    QuantGemmConfig finished = wide;
    finished.split_k = 4;
    finished.unroll = 1;
    finished.finish_in_gemm = true;
    run_case(finished, 13, 256, 512, 26);
    finished.activation = DataType::bf16();
    run_case(finished, 3, 128, 256, 27);
    // The splits of a tile as one cluster, adding through each other's shared memory: 4 and 16
    // splits, 8-row and 16-row tiles.
    QuantGemmConfig clustered = wide;
    clustered.split_k = 4;
    clustered.unroll = 1;
    clustered.cluster_split = true;
    run_case(clustered, 13, 256, 512, 28);
    clustered.split_k = 16;
    clustered.block_m = 16;
    clustered.group_size = 32;
    clustered.block_k = 32;
    run_case(clustered, 16, 128, 512, 29);
  }
  // The transposed dot on wgmma (prefill, sm_90a): the activations read in place from the
  // ring. One and two warpgroups, rows below and past the tile, odd widths, zero points, two
  // groups per k tile, bf16, per channel.
  {
    QuantGemmConfig config;
    config.schedule = QuantSchedule::Prefill;
    config.weights_as_a = true;
    config.wgmma = true;
    config.block_m = 16;
    config.block_n = 64;
    config.block_k = 64;
    config.warps = 4;
    config.stages = 3;
    for (int64_t m : {1, 16, 37})
      run_case(config, m, 128, 256, 30);
    for (const char* type : {"u3", "f6e3m2", "u8", "i4"}) {
      QuantGemmConfig typed = config;
      typed.weight = DataType::parse(type);
      typed.activation = DataType::bf16();
      run_case(typed, 9, 64, 256, 31);
    }
    QuantGemmConfig zeros = config;
    zeros.zero_points = true;
    zeros.group_size = 32;
    run_case(zeros, 21, 64, 256, 32);
    QuantGemmConfig split = config;  // partial sums through the workspace
    split.split_k = 2;
    run_case(split, 19, 128, 512, 34);
    QuantGemmConfig wide = config;
    wide.warps = 8;
    wide.block_n = 128;
    wide.block_m = 32;
    wide.group_size = 0;
    wide.stages = 5;
    run_case(wide, 30, 128, 128, 33);
  }
  // The decode on wgmma: each pair of k tiles sums into a partial product that its group's
  // scales multiply into the accumulator while the next pair's dots run. One and two m16 atoms
  // per warp (64 and 128 columns over 4 warps), 8- and 16-row tiles, two to four pairs per
  // block, split K, per channel and groups of two pairs, other types, bf16.
  {
    QuantGemmConfig config = wgmma_decode_config();
    config.block_m = 8;
    for (int64_t m : {1, 5})
      run_case(config, m, 128, 512, 40);
    QuantGemmConfig rows16 = config;
    rows16.block_m = 16;
    rows16.block_n = 64;
    rows16.stages = 3;
    for (int64_t m : {16, 13})
      run_case(rows16, m, 128, 256, 41);
    QuantGemmConfig split = config;
    split.split_k = 2;
    run_case(split, 3, 256, 512, 42);
    split.finish_in_gemm = true;
    run_case(split, 11, 256, 512, 46);
    QuantGemmConfig channel = config;
    channel.group_size = 0;
    run_case(channel, 2, 128, 256, 43);
    QuantGemmConfig groups = config;
    groups.group_size = 256;
    run_case(groups, 7, 128, 512, 44);
    for (const char* type : {"i4", "u8", "f6e3m2", "u3"}) {
      QuantGemmConfig typed = config;
      typed.weight = DataType::parse(type);
      typed.activation = DataType::bf16();
      run_case(typed, 4, 128, 256, 45);
    }
  }
  // Persistent blocks: 2 column tiles x 4 iterations = 8 pairs. 3 blocks take shares of 3, 3
  // and 2 that cross column tiles; 5 blocks leave one without work; 8 give one pair each.
  for (int64_t blocks : {3, 5, 8}) {
    QuantGemmConfig config = base;
    config.persistent_blocks = blocks;
    config.stages = 3;
    run_case(config, 3, 64, 256, 7);
  }
}

TEST_CASE("quantized GEMM errors name what is wrong", "[examples][quant_gemm]") {
  auto message_of = [](auto&& action) {
    try {
      action();
    } catch (const QuantGemmError& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  QuantGemmConfig config;
  config.block_n = 64;
  config.block_k = 64;
  CHECK_THAT(message_of([&] { examples::check_quant_gemm_shape(config, 1, 64, 200); }),
             Catch::Contains("K=200 is not a multiple of the group size 128"));
  CHECK_THAT(message_of([&] { examples::check_quant_gemm_shape(config, 1, 100, 256); }),
             Catch::Contains("N=100 is not a multiple of block_n 64"));
  CHECK_THAT(message_of([&] { examples::check_quant_gemm_shape(config, 0, 64, 256); }),
             Catch::Contains("at least 1"));
  QuantGemmConfig bad = config;
  bad.weight = DataType::sint(4);
  bad.zero_points = true;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("zero points need an unsigned integer weight, not i4"));
  bad = config;
  bad.weight = DataType::f16();
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("weight type f16: integers or floats of at most 8 bits"));
  bad = config;
  bad.activation = DataType::f32();
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("activation type f32"));
  bad = config;
  bad.persistent_blocks = 4;
  bad.split_k = 2;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("persistent_blocks needs the decode schedule and split_k 1"));
  bad = config;
  bad.scale_after_mma = true;
  bad.group_size = 32;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("scale_after_mma needs the decode schedule and a group size that is "
                             "a multiple of the k extent of an iteration, 64"));
  bad = config;
  bad.block_n = 48;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("block_n 48 is not a power of two"));
  bad = config;
  bad.copy_after_wait = true;
  bad.stages = 1;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("copy_after_wait needs the mma.sync loop (no wgmma) and at least 2 "
                             "stages"));
  bad = config;
  bad.finish_in_gemm = true;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("finish_in_gemm needs split_k above 1 (and no persistent_blocks or "
                             "cluster_split)"));
  bad = config;
  bad.split_k = 3;
  bad.cluster_split = true;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("cluster_split needs split_k from 2 to 16 dividing block_n 64"));
  bad = config;
  bad.group_size = 96;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("must divide one another"));
  bad = config;
  bad.weight = DataType::uint(3);
  bad.block_n = 8;
  bad.block_k = 16;
  bad.warps = 1;
  CHECK_THAT(
      message_of([&] { examples::quant_gemm(bad); }),
      Catch::Contains("each thread's run of 4 3-bit weights is not a whole number of bytes"));
  bad = config;
  bad.weights_as_a = true;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("weights_as_a needs scale_after_mma and no zero points"));
  bad.wgmma = true;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("wgmma decode needs scale_after_mma (and no zero points)"));
  bad.schedule = QuantSchedule::Prefill;
  bad.block_n = 32;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("wgmma: block_n 32 must be a multiple of 16 * warps"));
  bad.block_n = 16 * bad.warps;
  bad.block_k = 128;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("must hold 128 bytes of activations"));
  bad.block_k = 64;
  bad.stages = 2;
  CHECK_THAT(message_of([&] { examples::quant_gemm(bad); }),
             Catch::Contains("wgmma: stages 2 must be at least 3"));
  CHECK_THAT(message_of([&] {
               examples::choose_quant_gemm_config(1, 100, 4096, DataType::uint(4), DataType::f16(),
                                                  128, false);
             }),
             Catch::Contains("N=100 is not a multiple of block_n"));

  // A quantized weight that does not fit the configuration.
  const Problem p = make_problem(config, 1, 64, 256, 7);
  QuantGemmConfig other = config;
  other.group_size = 64;
  CHECK_THAT(message_of([&] { examples::prepare_weight(p.weight, other); }),
             Catch::Contains("quantized with groups of 128, the kernel expects 64"));
  other = config;
  other.zero_points = true;
  CHECK_THAT(message_of([&] { examples::prepare_weight(p.weight, other); }),
             Catch::Contains("zero points the weight does not have"));
  other = config;
  other.weight = DataType::uint(8);
  CHECK_THAT(message_of([&] { examples::prepare_weight(p.weight, other); }),
             Catch::Contains("the weight holds u4 codes"));
  const examples::PreparedWeight prepared = examples::prepare_weight(p.weight, config);
  CHECK_THAT(message_of([&] { examples::run_quant_gemm_interpreted(prepared, 2, p.a_codes); }),
             Catch::Contains("A has 256 elements, M x K is 512"));
}

TEST_CASE("the re-packed weights round-trip", "[examples][quant_gemm]") {
  QuantGemmConfig config;
  config.weight = DataType::uint(3);
  config.block_n = 64;
  config.block_k = 256;
  const Problem p = make_problem(config, 1, 128, 512, 8);
  const std::vector<uint8_t> repacked = examples::repack_weight(p.weight, config);
  const std::vector<uint64_t> codes = examples::unpack_repacked(repacked, 512, 128, config);
  int64_t mismatches = 0;
  for (int64_t row = 0; row < 512; ++row)
    for (int64_t column = 0; column < 128; ++column)
      mismatches += codes[static_cast<size_t>(row * 128 + column)] != p.weight.code(row, column);
  CHECK(mismatches == 0);
}

// The shared tile of `program` named `name`.
const vm::TensorType& shared_tile(const vm::Program& program, const std::string& name) {
  for (const vm::TensorInfo& info : program.tensors)
    if (info.name == name && info.type.scope == vm::Scope::Shared) return info.type;
  FAIL("no shared tile " << name);
  throw std::logic_error("unreachable");
}

// Whether 8 accesses of 16 bytes at these byte offsets of a tile fall in 8 distinct bank groups
// (a quarter warp's 16-byte loads, or ldmatrix's 8 row addresses, in one shared-memory wavefront).
bool conflict_free(const layout::Swizzle& swizzle, const std::vector<int64_t>& offsets) {
  std::set<int64_t> groups;
  for (int64_t offset : offsets)
    groups.insert(swizzle(offset) / 16 % 8);
  return groups.size() == offsets.size();
}

TEST_CASE("the shared rings are read without bank conflicts", "[examples][quant_gemm]") {
  for (const char* type : kWeightTypes) {
    for (const int64_t m : {1, 16, 64, 4096}) {
      for (const int sm : {80, 90}) {
        const QuantGemmConfig config = examples::choose_quant_gemm_config(
            m, 8192, 8192, DataType::parse(type), DataType::f16(), 128, false, 132, sm);
        INFO(config.name() << " for sm_" << sm);
        const vm::Program program = examples::quant_gemm(config);
        // Each thread reads its run of W back 16 bytes at a time (the runs lie thread after
        // thread); the second tile of the ring checks the swizzle across tiles too. (Runs of a
        // length that is not a multiple of 16 bytes, odd widths on prefill tiles, are read in
        // narrower pieces: not checked here.)
        const vm::TensorType& w_ring = shared_tile(program, "w_ring");
        const examples::FragmentOrder order = examples::fragment_order(config);
        const int64_t run_bytes =
            order.per_thread * examples::stored_weight_type(config).bits() / 8;
        const int64_t tile_bytes = w_ring.shape.back();
        for (int64_t tile = 0; run_bytes % 16 == 0 && tile < std::min<int64_t>(2, w_ring.shape[0]);
             ++tile)
          for (int64_t first = 0; first < order.threads; first += 8)
            for (int64_t piece = 0; piece < run_bytes / 16; ++piece) {
              std::vector<int64_t> offsets;
              for (int64_t t = first; t < first + 8; ++t)
                offsets.push_back(tile * tile_bytes + t * run_bytes + piece * 16);
              INFO("W tile " << tile << ", threads " << first << "-" << first + 7 << ", piece "
                             << piece);
              REQUIRE(conflict_free(w_ring.swizzle, offsets));
            }
        // ldmatrix (and wgmma) read a 16-byte unit of 8 consecutive rows of A.
        const vm::TensorType& a_ring = shared_tile(program, "a_ring");
        const int64_t row_bytes = a_ring.shape[1] * config.activation.bits() / 8;
        for (int64_t first = 0; first < a_ring.shape[0]; first += 8)
          for (int64_t unit = 0; unit < row_bytes / 16; ++unit) {
            std::vector<int64_t> offsets;
            for (int64_t row = first; row < first + 8; ++row)
              offsets.push_back(row * row_bytes + unit * 16);
            INFO("A rows " << first << "-" << first + 7 << ", unit " << unit);
            REQUIRE(conflict_free(a_ring.swizzle, offsets));
          }
      }
    }
  }
}

TEST_CASE("the decode and prefill kernels of every weight type assemble without spills",
          "[examples][quant_gemm][codegen]") {
  const bool assembles = codegen::find_ptxas().has_value();
  if (!assembles) WARN("ptxas not found: PTX is generated but not assembled");
  for (const char* type : kWeightTypes) {
    for (const int64_t m : {1, 16, 32, 4096}) {
      for (const char* target_name : {"sm_80", "sm_90a"}) {
        // Every type for sm_90a; a representative set for sm_80 (the same code, older mma).
        const std::string name = type;
        if (std::string(target_name) == "sm_80" && name != "u4" && name != "u3" &&
            name != "f6e3m2" && name != "f8e4m3") {
          continue;
        }
        const codegen::Target target = codegen::Target::parse(target_name);
        const QuantGemmConfig config = examples::choose_quant_gemm_config(
            m, 8192, 8192, DataType::parse(type), DataType::f16(), 128, false, 132, target.sm);
        INFO(config.name() << " for " << target_name);
        vm::Program program = examples::quant_gemm(config);
        vm::run_default_passes(program);
        const codegen::CompiledKernel kernel = codegen::compile(program, target);
        // sm_90a's prefill runs on wgmma, with the activations read in place by it, and so does
        // the decode of 32 rows, and of 16 for weights of 5 bits or more.
        const bool wgmma =
            target.has_wgmma() && (m > 16 || (m > 8 && DataType::parse(type).bits() >= 5));
        CHECK(config.wgmma == wgmma);
        // One warpgroup only up to 128 rows (its accumulators hold a quarter of the tile).
        if (config.wgmma && m > 128) CHECK(config.warps == 8);
        CHECK(kernel.ptx.find(wgmma ? "wgmma.mma_async.sync.aligned.m64n"
                                    : "mma.sync.aligned.m16n8k16") != std::string::npos);
        CHECK(kernel.ptx.find("cp.async") != std::string::npos);
        if (!assembles) continue;
        INFO(kernel.report.ptxas_log);
        // ptxas serializes the wgmma pipeline when it finds other instructions writing the
        // accumulators while it is in flight (its "Potential Performance Loss" C7515).
        CHECK(kernel.report.ptxas_log.find("C7515") == std::string::npos);
        CHECK(kernel.report.spill_store_bytes == 0);
        CHECK(kernel.report.spill_load_bytes == 0);
      }
    }
  }
}
