// The quantized GEMM (examples/quant_gemm.h) as `nibble aot` families: `quant_gemm` (one
// QuantGemmConfig per manifest configuration) and `quant_gemm_finish` (the split-K finishing
// kernel of one activation type).
//
// quant_gemm_config() is the family's reading of a configuration, exposed so that a program
// using a generated library can rebuild the QuantGemmConfig of the variant a call chose (the
// JSON object in nbl_plan::variant) and re-pack its weight the way that variant reads it
// (examples/quant/repack.h: the order depends on block_k, block_n and warps).
#pragma once

#include <string_view>

#include "examples/quant_gemm.h"
#include "frontend/aot/registry.h"

namespace nibble::aot_examples {

// Keys (all optional; the defaults of QuantGemmConfig): weight, activation (dtype names),
// group_size (0: per-channel), zero_points, schedule ("decode" or "prefill"), block_m,
// block_n, block_k, warps, split_k, unroll, stages. Throws aot::ConfigError naming the key
// for a value out of range; what QuantGemmConfig itself rejects is found when the kernel is
// built (examples::QuantGemmError).
examples::QuantGemmConfig quant_gemm_config(const aot::Config& config);

// The configuration inside a plan's variant string ("F configs[i] {...} sm_90a"), read as
// above. Throws aot::ConfigError when the string holds no JSON object.
examples::QuantGemmConfig quant_gemm_config_of_variant(std::string_view variant);

// The program after vm::run_default_passes, as the kernel cache compiles it
// (examples/quant/device.h): `nibble aot` compiles a family's program as it is returned, and
// the quantized GEMM's wide loads of W (f6e3m2 runs among them) need the simplified offsets.
vm::Program with_default_passes(vm::Program program);

}  // namespace nibble::aot_examples
