// Shared by the interpreter and GPU tests of the quantized GEMM: random problems and the check
// against the double-precision reference.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "examples/quant/quantize.h"
#include "examples/quant_gemm.h"

namespace quant_gemm_test {

using nibble::dtypes::DataType;
using nibble::examples::QuantGemmConfig;
namespace examples = nibble::examples;
namespace dtypes = nibble::dtypes;

struct Problem {
  int64_t m, n, k;
  std::vector<double> a;  // as rounded to the activation type
  std::vector<uint16_t> a_codes;
  examples::QuantizedWeight weight;
};

inline Problem make_problem(const QuantGemmConfig& config, int64_t m, int64_t n, int64_t k,
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
  if (config.weight.is_integer() && config.weight.bits() == 1 && !config.zero_points) {
    // The quantizer has no symmetric 1-bit integers (i1: {-1, 0}; u1 centred: {-1, 0}); such
    // weights are still valid kernel inputs: random codes with random scales.
    examples::QuantizedWeight& q = p.weight;
    q.weight_type = config.weight;
    q.scale_type = config.activation;
    q.k = k;
    q.n = n;
    q.group_size = config.group_size == 0 ? k : config.group_size;
    q.implicit_zero = config.weight.is_signed() ? 0.0 : 1.0;
    std::vector<uint64_t> codes(static_cast<size_t>(k * n));
    for (auto& code : codes)
      code = random() & 1;
    q.packed = dtypes::pack(config.weight, codes);
    for (int64_t i = 0; i < q.groups() * n; ++i)
      q.scales.push_back(static_cast<uint16_t>(
          dtypes::encode(config.activation, 0.01 * (1.0 + std::abs(normal(random))))));
    return p;
  }
  examples::QuantizeOptions options;
  options.weight_type = config.weight;
  options.group_size = config.group_size;
  options.scale_type = config.activation;
  options.zero_points = config.zero_points;
  p.weight = examples::quantize(w, k, n, options);
  return p;
}

// |C - reference| within examples::matmul_tolerance for every element.
inline void check_against_reference(const QuantGemmConfig& config, const Problem& p,
                                    const std::vector<uint16_t>& c) {
  const std::vector<double> reference = examples::reference_matmul(p.a, p.m, p.weight);
  const std::vector<double> w = examples::dequantize(p.weight);
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
      const double tolerance = examples::matmul_tolerance(config.activation, magnitude, expected);
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

// The decode on wgmma: 16-row tiles, 128 columns over one warpgroup (two m64 atoms per warp),
// 64-deep k tiles in pairs whose partial product the group scale multiplies after the dots.
inline QuantGemmConfig wgmma_decode_config() {
  QuantGemmConfig config;
  config.weights_as_a = true;
  config.wgmma = true;
  config.scale_after_mma = true;
  config.block_m = 16;
  config.block_n = 128;
  config.block_k = 64;
  config.warps = 4;
  config.stages = 4;
  return config;
}

}  // namespace quant_gemm_test
