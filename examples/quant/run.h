// Running the quantized GEMM on host data: on the interpreter (tests, the main job without a
// GPU) with the same kernels, arguments and re-packed weights the GPU runs.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "examples/quant/quantize.h"
#include "examples/quant_gemm.h"

namespace nibble::examples {

// A weight prepared for one configuration: re-packed codes plus scales and zero points.
struct PreparedWeight {
  QuantGemmConfig config;
  int64_t k = 0;
  int64_t n = 0;
  std::vector<uint8_t> codes;    // repack_weight()
  std::vector<uint16_t> scales;  // [groups, N] codes of the activation type
  std::vector<uint16_t> zeros;   // same, when config.zero_points
};

// Checks that the quantized weight fits the configuration (types, group size, zero points,
// tile multiples) and re-packs it. Throws QuantGemmError naming the mismatch.
PreparedWeight prepare_weight(const QuantizedWeight& weight, const QuantGemmConfig& config);

// C = A · dequant(W) on the interpreter. `a` holds M x K codes of the activation type; the
// result M x N codes of the activation type. Runs quant_gemm_finish after a split-K kernel.
std::vector<uint16_t> run_quant_gemm_interpreted(const PreparedWeight& weight, int64_t m,
                                                 std::span<const uint16_t> a);

}  // namespace nibble::examples
