// Re-packing quantized weights into the order the quantized GEMM's tensor-core fragments
// consume (examples/quant_gemm.h, FragmentOrder).
//
// The packed codes of a QuantizedWeight are row-major over [K, N]. The kernel instead reads W
// as [K / block_k, N / block_n] tiles, row-major over tiles; each tile is stored as the runs of
// its threads one after another, so one thread's B fragments for a whole k tile are one
// contiguous byte run (16-byte loads). Scales and zero points keep their [groups, N] layout.
#pragma once

#include <cstdint>
#include <vector>

#include "examples/quant/quantize.h"
#include "examples/quant_gemm.h"

namespace nibble::examples {

// The weight's codes in the kernel's order for `config`, as stored_code() gives them, packed as
// a bit stream. Throws QuantGemmError when the weight's type differs from the
// configuration's or its K / N are not multiples of block_k / block_n.
std::vector<uint8_t> repack_weight(const QuantizedWeight& weight, const QuantGemmConfig& config);

// The inverse, for tests: codes [K, N] row-major from the re-packed bytes.
std::vector<uint64_t> unpack_repacked(const std::vector<uint8_t>& repacked, int64_t k, int64_t n,
                                      const QuantGemmConfig& config);

}  // namespace nibble::examples
