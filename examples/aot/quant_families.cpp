// The quantized GEMM families of `nibble aot` (quant_families.h).
#include "examples/aot/quant_families.h"

#include <nlohmann/json.hpp>

#include <string>

#include "vm/passes.h"

namespace nibble::aot_examples {

namespace {

using aot::ConfigError;

int64_t at_least(const aot::Config& config, std::string_view key, int64_t fallback, int64_t minimum,
                 int64_t maximum) {
  const int64_t value = config.integer(key, fallback);
  if (value < minimum || value > maximum) {
    throw ConfigError("key '" + std::string(key) + "': " + std::to_string(value) + " is not in " +
                      std::to_string(minimum) + ".." + std::to_string(maximum));
  }
  return value;
}

}  // namespace

vm::Program with_default_passes(vm::Program program) {
  vm::run_default_passes(program);
  return program;
}

examples::QuantGemmConfig quant_gemm_config(const aot::Config& config) {
  examples::QuantGemmConfig c;
  c.weight = config.dtype("weight", c.weight);
  c.activation = config.dtype("activation", c.activation);
  c.group_size = at_least(config, "group_size", c.group_size, 0, int64_t{1} << 30);
  c.zero_points = config.boolean("zero_points", c.zero_points);
  const std::string schedule = config.choice("schedule", "decode", {"decode", "prefill"});
  c.schedule =
      schedule == "decode" ? examples::QuantSchedule::Decode : examples::QuantSchedule::Prefill;
  c.block_m = at_least(config, "block_m", c.block_m, 1, 1024);
  c.block_n = at_least(config, "block_n", c.block_n, 1, 1024);
  c.block_k = at_least(config, "block_k", c.block_k, 1, 1024);
  c.warps = static_cast<int>(at_least(config, "warps", c.warps, 1, 32));
  c.split_k = at_least(config, "split_k", c.split_k, 1, 1024);
  c.unroll = at_least(config, "unroll", c.unroll, 1, 64);
  c.stages = at_least(config, "stages", c.stages, 1, 8);
  c.scale_after_mma = config.boolean("scale_after_mma", c.scale_after_mma);
  c.min_blocks_per_sm =
      static_cast<int>(at_least(config, "min_blocks_per_sm", c.min_blocks_per_sm, 0, 32));
  c.weights_as_a = config.boolean("weights_as_a", c.weights_as_a);
  c.wgmma = config.boolean("wgmma", c.wgmma);
  c.copy_after_wait = config.boolean("copy_after_wait", c.copy_after_wait);
  c.finish_in_gemm = config.boolean("finish_in_gemm", c.finish_in_gemm);
  c.cluster_split = config.boolean("cluster_split", c.cluster_split);
  return c;
}

examples::QuantGemmConfig quant_gemm_config_of_variant(std::string_view variant) {
  const size_t open = variant.find('{');
  const size_t close = variant.rfind('}');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    throw ConfigError("variant '" + std::string(variant) + "' holds no configuration object");
  }
  const nlohmann::json object =
      nlohmann::json::parse(variant.substr(open, close - open + 1), nullptr, false);
  if (!object.is_object()) {
    throw ConfigError("variant '" + std::string(variant) + "': the configuration is not JSON");
  }
  const aot::Config config(object);
  examples::QuantGemmConfig result = quant_gemm_config(config);
  config.reject_unread_keys();
  return result;
}

}  // namespace nibble::aot_examples

NIBBLE_AOT_FAMILY(quant_gemm,
                  "C = A . dequant(W): integer or small-float weights (re-packed, "
                  "examples/quant/repack.h), f16/bf16 activations and group scales; "
                  "a, w, s, [z], then c, or workspace (split_k > 1), or workspace, counters and c "
                  "(finish_in_gemm); m, n, k") {
  const nibble::examples::QuantGemmConfig c = nibble::aot_examples::quant_gemm_config(config);
  // QuantGemmError (a std::invalid_argument) names the field; the generator adds the entry.
  return nibble::aot_examples::with_default_passes(nibble::examples::quant_gemm(c));
}

NIBBLE_AOT_FAMILY(quant_gemm_finish,
                  "the end of a split-K quant_gemm: c[i] = round(workspace[i]), workspace[i] = 0 "
                  "(workspace: f32, c: activation, count: i32)") {
  const nibble::dtypes::DataType activation =
      config.dtype("activation", nibble::dtypes::DataType::f16());
  if (activation != nibble::dtypes::DataType::f16() &&
      activation != nibble::dtypes::DataType::bf16()) {
    throw nibble::aot::ConfigError("key 'activation': " + activation.name() +
                                   " is not f16 or bf16");
  }
  return nibble::aot_examples::with_default_passes(nibble::examples::quant_gemm_finish(activation));
}
