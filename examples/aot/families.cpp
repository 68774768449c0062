// The example kernels as families of `nibble aot` (frontend/aot/registry.h): each reads its
// configuration keys, named as in the kernel's config struct, with the struct's defaults.
#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "frontend/aot/registry.h"
#include "layout/swizzle.h"

namespace {

int warps(const nibble::aot::Config& config, int fallback) {
  const int64_t value = config.integer("warps", fallback);
  if (value < 1 || value > 32) {
    throw nibble::aot::ConfigError("key 'warps': " + std::to_string(value) + " is not in 1..32");
  }
  return static_cast<int>(value);
}

}  // namespace

NIBBLE_AOT_FAMILY(vector_add, "out[i] = x[i] + y[i] (x, y, out: dtype pointers; n: i32)") {
  nibble::examples::VectorAddConfig c;
  c.dtype = config.dtype("dtype", c.dtype);
  c.block = config.integer("block", c.block);
  c.warps = warps(config, c.warps);
  return nibble::examples::vector_add(c);
}

NIBBLE_AOT_FAMILY(softmax, "row softmax of an f32 matrix (x, y; rows, cols: i32)") {
  nibble::examples::SoftmaxConfig c;
  c.block_rows = config.integer("block_rows", c.block_rows);
  c.block_cols = config.integer("block_cols", c.block_cols);
  c.warps = warps(config, c.warps);
  return nibble::examples::softmax(c);
}

NIBBLE_AOT_FAMILY(gemm, "C = A.B in f16, f32 accumulation (a, b, c; m, n, k: i32)") {
  nibble::examples::GemmConfig c;
  c.block_m = config.integer("block_m", c.block_m);
  c.block_n = config.integer("block_n", c.block_n);
  c.block_k = config.integer("block_k", c.block_k);
  const int64_t stages = config.integer("stages", c.stages);
  if (stages < 1 || stages > 8) {
    throw nibble::aot::ConfigError("key 'stages': " + std::to_string(stages) + " is not in 1..8");
  }
  c.stages = static_cast<int>(stages);
  c.warps = warps(config, c.warps);
  const std::string swizzle = config.string("swizzle", "none");
  try {
    c.swizzle = nibble::layout::Swizzle::parse(swizzle);
  } catch (const std::exception& error) {
    throw nibble::aot::ConfigError("key 'swizzle': " + std::string(error.what()));
  }
  return nibble::examples::gemm(c);
}

NIBBLE_AOT_FAMILY(gemv_u4, "y = x.dequant(W), u4 weights with f16 group scales (n, k: i32)") {
  nibble::examples::GemvConfig c;
  c.group = config.integer("group", c.group);
  c.block_n = config.integer("block_n", c.block_n);
  c.block_k = config.integer("block_k", c.block_k);
  c.warps = warps(config, c.warps);
  return nibble::examples::gemv_u4(c);
}

// The quantized GEMM family (examples/quant_gemm.{h,cpp}) registers itself in its own file with
// NIBBLE_AOT_FAMILY(quant_gemm, "...") { ... }; nothing is needed here.
