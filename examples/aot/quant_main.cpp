// A quantized linear layer through the generated library quant_kernels (quant_kernels.json):
// C[M, N] = A[M, K] · dequant(W[K, N]) for u4, u8 and f6e3m2 weights
// with f16 and bf16 activations, once with the decode schedule (M = 4: split K, then
// quant_gemm_finish), once with the prefill schedule (M = 200), and for u4 with the decode whose
// tiles' last blocks finish the split (quant_gemm_decode_fused) and, on sm_90, the decode whose
// splits add up in a cluster (quant_gemm_decode_clustered).
//
// Every GPU computation goes through the generated library. nibble itself (nibble_examples) is
// linked for the host side only, as a serving engine's offline weight converter would be:
//   - quantize() turns the random f32 weight into codes and group scales;
//   - the variant the dispatcher chose (quant_gemm_*_plan) carries its configuration, from which
//     quant_gemm_config_of_variant() rebuilds the QuantGemmConfig and prepare_weight() re-packs
//     the codes in the order that variant reads (it depends on block_k, block_n and warps);
//   - reference_matmul() is the double-precision reference.
// Exit codes: 0 all match, 1 a mismatch or an error, 77 no GPU.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_driver.h"
#include "dtypes/codec.h"
#include "examples/aot/quant_families.h"
#include "examples/quant/quantize.h"
#include "examples/quant/run.h"
#include "quant_kernels.h"

namespace {

using aot_example::CudaDriver;
using aot_example::DevicePointer;
using nibble::dtypes::DataType;
namespace examples = nibble::examples;
namespace dtypes = nibble::dtypes;

constexpr int64_t kGroupSize = 128;  // the group size of every GEMM in quant_kernels.json

// The library's element-type code (quant_kernels.h: kind << 16 | bits << 8 | exponent bits).
nbl_dtype dtype_code(DataType type) {
  return (static_cast<int32_t>(type.kind()) << 16) | (type.bits() << 8) | type.exponent_bits();
}

// One device allocation, freed with its owner.
class DeviceBuffer {
 public:
  DeviceBuffer(CudaDriver& driver, size_t bytes) : driver_(driver), bytes_(bytes) {
    pointer_ = driver_.allocate(std::max<size_t>(bytes, 1));
  }
  ~DeviceBuffer() { driver_.free(pointer_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  DevicePointer pointer() const { return pointer_; }
  template <typename T>
  void upload(const std::vector<T>& values) {
    if (values.size() * sizeof(T) != bytes_) {
      throw std::runtime_error("upload of " + std::to_string(values.size() * sizeof(T)) +
                               " bytes into a buffer of " + std::to_string(bytes_));
    }
    driver_.upload(pointer_, values.data(), bytes_);
  }
  template <typename T>
  std::vector<T> download(size_t count) {
    std::vector<T> values(count);
    driver_.download(values.data(), pointer_, count * sizeof(T));
    return values;
  }

 private:
  CudaDriver& driver_;
  size_t bytes_;
  DevicePointer pointer_ = 0;
};

bool report(const char* what, nbl_status status) {
  if (status == NBL_SUCCESS) return true;
  std::printf("%s: %s\n  %s\n", what, quant_kernels_explain(status), quant_kernels_last_error());
  return false;
}

// A random problem: activations rounded to their type, weights quantized on the host.
struct Layer {
  int64_t m, n, k;
  std::vector<double> a;
  std::vector<uint16_t> a_codes;
  examples::QuantizedWeight weight;
};

Layer make_layer(DataType weight, DataType activation, int64_t m, int64_t n, int64_t k,
                 std::mt19937_64& random) {
  std::normal_distribution<double> normal(0.0, 1.0);
  Layer layer{m, n, k, {}, {}, {}};
  for (int64_t i = 0; i < m * k; ++i) {
    const uint64_t code = dtypes::encode(activation, normal(random));
    layer.a_codes.push_back(static_cast<uint16_t>(code));
    layer.a.push_back(dtypes::decode(activation, code));
  }
  std::vector<double> w(static_cast<size_t>(k * n));
  for (double& value : w)
    value = 0.05 * normal(random);
  examples::QuantizeOptions options;
  options.weight_type = weight;
  options.group_size = kGroupSize;
  options.scale_type = activation;
  layer.weight = examples::quantize(w, k, n, options);
  return layer;
}

// C against the reference with the tolerance of the quantized GEMM's tests
// (examples::matmul_tolerance).
bool check(const std::string& what, DataType activation, const Layer& layer,
           const std::vector<uint16_t>& c) {
  const std::vector<double> reference = examples::reference_matmul(layer.a, layer.m, layer.weight);
  const std::vector<double> w = examples::dequantize(layer.weight);
  int64_t bad = 0;
  double worst = 0;
  for (int64_t i = 0; i < layer.m; ++i) {
    for (int64_t j = 0; j < layer.n; ++j) {
      double magnitude = 0;
      for (int64_t l = 0; l < layer.k; ++l) {
        magnitude += std::abs(layer.a[static_cast<size_t>(i * layer.k + l)] *
                              w[static_cast<size_t>(l * layer.n + j)]);
      }
      const double expected = reference[static_cast<size_t>(i * layer.n + j)];
      const double got = dtypes::decode(activation, c[static_cast<size_t>(i * layer.n + j)]);
      const double tolerance = examples::matmul_tolerance(activation, magnitude, expected);
      const double error = std::abs(got - expected);
      if (!(error <= tolerance)) {
        if (bad < 5) {
          std::printf("%s: C[%lld, %lld] = %g, reference %g (tolerance %g)\n", what.c_str(),
                      static_cast<long long>(i), static_cast<long long>(j), got, expected,
                      tolerance);
        }
        ++bad;
      }
      worst = std::max(worst, error);
    }
  }
  if (bad > 0) {
    std::printf("%s: %lld of %lld elements outside the tolerance\n", what.c_str(),
                static_cast<long long>(bad), static_cast<long long>(layer.m * layer.n));
    return false;
  }
  std::printf("%s: %lld x %lld x %lld matches (largest error %.2g)\n", what.c_str(),
              static_cast<long long>(layer.m), static_cast<long long>(layer.n),
              static_cast<long long>(layer.k), worst);
  return true;
}

enum class Outcome { Match, Mismatch, NotInLibrary };

// The library's GEMM functions: quant_gemm_decode (then quant_gemm_finish), the decode with the
// finish in the GEMM (quant_gemm_decode_fused: workspace and counters), the splits of a tile as
// one cluster (quant_gemm_decode_clustered, sm_90: no workspace), and quant_gemm_prefill.
enum class Schedule { Decode, Fused, Clustered, Prefill };

const char* schedule_name(Schedule schedule) {
  switch (schedule) {
    case Schedule::Decode:
      return "decode";
    case Schedule::Fused:
      return "decode_fused";
    case Schedule::Clustered:
      return "decode_clustered";
    case Schedule::Prefill:
      return "prefill";
  }
  return "?";
}

// One layer through one of the library's GEMM functions. The decode layers run twice on the same
// workspace and counters: the finishing must leave them cleared.
Outcome run_layer(CudaDriver& driver, Schedule schedule, DataType weight, DataType activation,
                  std::mt19937_64& random) {
  const bool prefill = schedule == Schedule::Prefill;
  const bool with_workspace = schedule == Schedule::Decode || schedule == Schedule::Fused;
  const int64_t m = prefill ? 200 : 4;
  const int64_t n = prefill ? 512 : 4096;
  const int64_t k = prefill ? 1024 : 4096;
  const std::string what =
      std::string(schedule_name(schedule)) + " " + weight.name() + " x " + activation.name();
  const Layer layer = make_layer(weight, activation, m, n, k, random);

  DeviceBuffer a(driver, layer.a_codes.size() * 2);
  DeviceBuffer w(driver, layer.weight.packed.size());
  DeviceBuffer s(driver, layer.weight.scales.size() * 2);
  DeviceBuffer c(driver, static_cast<size_t>(m * n) * 2);
  DeviceBuffer workspace(driver, with_workspace ? static_cast<size_t>(m * n) * 4 : 0);

  // The stored type of W: symmetric unsigned codes are stored as the signed codes q - 2^(B-1)
  // (examples/quant_gemm.h, stored_weight_type), so a u4 weight is passed as NBL_DTYPE_I4.
  examples::QuantGemmConfig probe;
  probe.weight = weight;
  const nbl_dtype a_dtype = dtype_code(activation);
  const nbl_dtype w_dtype = dtype_code(examples::stored_weight_type(probe));
  const auto m32 = static_cast<int32_t>(m), n32 = static_cast<int32_t>(n),
             k32 = static_cast<int32_t>(k);
  // The fused decode's counters: one per output tile of its (fixed) 8 x 128 tiles.
  examples::QuantGemmConfig tiles;
  tiles.block_m = 8;
  tiles.block_n = 128;
  const auto counter_count = static_cast<size_t>(
      schedule == Schedule::Fused ? examples::quant_gemm_counters(tiles, m, n) : 0);
  DeviceBuffer counters(driver, counter_count * 4);

  nbl_plan plan{};
  nbl_status planned = NBL_SUCCESS;
  switch (schedule) {
    case Schedule::Decode:
      planned = quant_gemm_decode_plan(a.pointer(), w.pointer(), s.pointer(), workspace.pointer(),
                                       m32, n32, k32, a_dtype, w_dtype, a_dtype, &plan);
      break;
    case Schedule::Fused:
      planned = quant_gemm_decode_fused_plan(a.pointer(), w.pointer(), s.pointer(),
                                             workspace.pointer(), counters.pointer(), c.pointer(),
                                             m32, n32, k32, a_dtype, a_dtype, a_dtype, &plan);
      break;
    case Schedule::Clustered:
      planned = quant_gemm_decode_clustered_plan(a.pointer(), w.pointer(), s.pointer(), c.pointer(),
                                                 m32, n32, k32, a_dtype, a_dtype, a_dtype, &plan);
      break;
    case Schedule::Prefill:
      planned = quant_gemm_prefill_plan(a.pointer(), w.pointer(), s.pointer(), c.pointer(), m32,
                                        n32, k32, a_dtype, w_dtype, a_dtype, a_dtype, &plan);
      break;
  }
  if (planned == NBL_ERROR_UNSUPPORTED_DTYPE || planned == NBL_ERROR_UNSUPPORTED_DEVICE) {
    std::printf("%s: not in this library for this device (%s)\n", what.c_str(),
                quant_kernels_explain(planned));
    return Outcome::NotInLibrary;
  }
  if (!report((what + " plan").c_str(), planned)) return Outcome::Mismatch;
  if (schedule == Schedule::Fused && plan.grid[0] * plan.grid[1] != counter_count) {
    std::printf("%s: %u x %u output tiles, %zu counters\n", what.c_str(), plan.grid[0],
                plan.grid[1], counter_count);
    return Outcome::Mismatch;
  }

  // The re-packing the chosen variant reads.
  const examples::QuantGemmConfig config =
      nibble::aot_examples::quant_gemm_config_of_variant(plan.variant);
  const examples::PreparedWeight prepared = examples::prepare_weight(layer.weight, config);
  std::printf(
      "%s: %s\n  grid %u x %u x %u in clusters of %u x %u x %u, %u threads, W re-packed "
      "for %s\n",
      what.c_str(), plan.variant, plan.grid[0], plan.grid[1], plan.grid[2], plan.cluster[0],
      plan.cluster[1], plan.cluster[2], plan.block[0], config.name().c_str());
  a.upload(layer.a_codes);
  w.upload(prepared.codes);
  s.upload(prepared.scales);
  if (with_workspace) workspace.upload(std::vector<float>(static_cast<size_t>(m * n), 0.0f));
  if (counter_count > 0) counters.upload(std::vector<int32_t>(counter_count, 0));

  const int runs = prefill ? 1 : 2;
  for (int run = 0; run < runs; ++run) {
    const uint16_t nan = activation == DataType::f16() ? 0x7e00 : 0x7fc0;
    c.upload(std::vector<uint16_t>(static_cast<size_t>(m * n), nan));
    nbl_status status = NBL_SUCCESS;
    switch (schedule) {
      case Schedule::Decode:
        status = quant_gemm_decode(nullptr, a.pointer(), w.pointer(), s.pointer(),
                                   workspace.pointer(), m32, n32, k32, a_dtype, w_dtype, a_dtype);
        if (status == NBL_SUCCESS) {
          status = quant_gemm_finish(nullptr, workspace.pointer(), c.pointer(), m32 * n32, a_dtype);
        }
        break;
      case Schedule::Fused:
        status = quant_gemm_decode_fused(nullptr, a.pointer(), w.pointer(), s.pointer(),
                                         workspace.pointer(), counters.pointer(), c.pointer(), m32,
                                         n32, k32, a_dtype, a_dtype, a_dtype);
        break;
      case Schedule::Clustered:
        status = quant_gemm_decode_clustered(nullptr, a.pointer(), w.pointer(), s.pointer(),
                                             c.pointer(), m32, n32, k32, a_dtype, a_dtype, a_dtype);
        break;
      case Schedule::Prefill:
        status = quant_gemm_prefill(nullptr, a.pointer(), w.pointer(), s.pointer(), c.pointer(),
                                    m32, n32, k32, a_dtype, w_dtype, a_dtype, a_dtype);
        break;
    }
    if (!report(what.c_str(), status)) return Outcome::Mismatch;
    driver.synchronize();
    const std::string label =
        run == 0 ? what : what + (with_workspace ? " (again, same workspace)" : " (again)");
    if (!check(label, activation, layer, c.download<uint16_t>(static_cast<size_t>(m * n)))) {
      return Outcome::Mismatch;
    }
  }
  // What the finishing leaves behind: zeros for the next call.
  if (with_workspace) {
    const std::vector<float> left = workspace.download<float>(static_cast<size_t>(m * n));
    const std::vector<int32_t> counts = counters.download<int32_t>(counter_count);
    if (std::any_of(left.begin(), left.end(), [](float v) { return v != 0.0f; }) ||
        std::any_of(counts.begin(), counts.end(), [](int32_t v) { return v != 0; })) {
      std::printf("%s: the workspace or the counters are not left zero\n", what.c_str());
      return Outcome::Mismatch;
    }
  }
  return Outcome::Match;
}

}  // namespace

int main() {
  CudaDriver driver;
  if (!driver.open_or_skip()) return 77;
  std::mt19937_64 random(2024);
  bool ok = true;
  try {
    for (const Schedule schedule :
         {Schedule::Decode, Schedule::Fused, Schedule::Clustered, Schedule::Prefill}) {
      // The fused and clustered functions hold u4 only (their signatures take no w_dtype).
      const bool u4_only = schedule == Schedule::Fused || schedule == Schedule::Clustered;
      for (const char* weight : {"u4", "u8", "f6e3m2"}) {
        if (u4_only && std::string(weight) != "u4") continue;
        for (const DataType activation : {DataType::f16(), DataType::bf16()}) {
          const Outcome outcome =
              run_layer(driver, schedule, DataType::parse(weight), activation, random);
          // Clusters need an sm_90 GPU: elsewhere the clustered function has no variant.
          ok &= outcome == Outcome::Match ||
                (schedule == Schedule::Clustered && outcome == Outcome::NotInLibrary);
        }
      }
    }
  } catch (const std::exception& error) {
    std::printf("error: %s\n", error.what());
    return 1;
  }
  std::printf(ok ? "all results match\n" : "MISMATCH\n");
  return ok ? 0 : 1;
}
