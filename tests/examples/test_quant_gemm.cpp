// The quantized GEMM on the interpreter: every weight type against the double-precision
// reference, the re-packer's order, and the errors a bad configuration or call gets.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "dtypes/codec.h"
#include "examples/quant/repack.h"
#include "examples/quant/run.h"

using namespace nibble;
using dtypes::DataType;
using examples::QuantGemmConfig;
using examples::QuantGemmError;
using examples::QuantSchedule;

namespace {

struct Problem {
  int64_t m, n, k;
  std::vector<double> a;  // as rounded to the activation type
  std::vector<uint16_t> a_codes;
  examples::QuantizedWeight weight;
};

Problem make_problem(const QuantGemmConfig& config, int64_t m, int64_t n, int64_t k,
                     uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0.0, 1.0);
  Problem p{m, n, k, {}, {}, {}};
  for (int64_t i = 0; i < m * k; ++i) {
    const uint64_t code = dtypes::encode(config.activation, normal(random));
    p.a_codes.push_back(static_cast<uint16_t>(code));
    p.a.push_back(dtypes::decode(config.activation, code));
  }
  std::vector<double> w(static_cast<size_t>(k * n));
  for (double& v : w)
    v = 0.05 * normal(random);
  examples::QuantizeOptions options;
  options.weight_type = config.weight;
  options.group_size = config.group_size;
  options.scale_type = config.activation;
  options.zero_points = config.zero_points;
  p.weight = examples::quantize(w, k, n, options);
  return p;
}

// |C - reference| within the rounding of the dequantized weights and of C to the activation
// type, and f32 accumulation.
void check_against_reference(const QuantGemmConfig& config, const Problem& p,
                             const std::vector<uint16_t>& c) {
  const std::vector<double> reference = examples::reference_matmul(p.a, p.m, p.weight);
  const std::vector<double> w = examples::dequantize(p.weight);
  const double eps =
      config.activation == DataType::bf16() ? std::ldexp(1.0, -8) : std::ldexp(1.0, -11);
  REQUIRE(c.size() == reference.size());
  int64_t bad = 0;
  for (int64_t i = 0; i < p.m; ++i) {
    for (int64_t j = 0; j < p.n; ++j) {
      double magnitude = 0;
      for (int64_t kk = 0; kk < p.k; ++kk)
        magnitude +=
            std::abs(p.a[static_cast<size_t>(i * p.k + kk)] * w[static_cast<size_t>(kk * p.n + j)]);
      const double expected = reference[static_cast<size_t>(i * p.n + j)];
      const double got = dtypes::decode(config.activation, c[static_cast<size_t>(i * p.n + j)]);
      const double tolerance = 2 * eps * magnitude + eps * std::abs(expected) + 1e-6;
      if (!(std::abs(got - expected) <= tolerance)) {
        if (bad < 5) {
          UNSCOPED_INFO(config.name() << ": C[" << i << ", " << j << "] = " << got << ", reference "
                                      << expected << " (tolerance " << tolerance << ")");
        }
        ++bad;
      }
    }
  }
  CHECK(bad == 0);
}

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

TEST_CASE("quant_gemm decode, u4 g32 on the interpreter", "[examples][quant_gemm]") {
  QuantGemmConfig config;
  config.weight = DataType::uint(4);
  config.group_size = 32;
  config.block_n = 32;
  config.block_k = 64;
  config.warps = 2;
  run_case(config, 3, 64, 128, 1);
}
