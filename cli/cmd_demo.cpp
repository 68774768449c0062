// `nibble demo`: the main job. It quantizes a random f16 weight to u4 (groups of 128), runs the
// quantized GEMM C = A · dequant(W) (on the GPU when there is one, else on the interpreter at a
// small size), checks C against a double-precision reference and prints the result; on the GPU
// also the time, the ratio to the copy-bandwidth speed of light and the speedup over cuBLAS f16
// with the dequantized weight (measured in the same process). Exit status 1 if a check fails.
//
// `nibble demo plans`: random values quantized to u4, f4e2m1 and f8e4m3, packed, converted back
// to f16 and bf16 with the conversion plans on the exact emulator of the GPU's bit instructions,
// and checked against the exact decoder.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "cli/commands.h"
#include "dtypes/codec.h"
#include "dtypes/conversion_plan.h"
#include "dtypes/dtype.h"
#include "dtypes/packing.h"

namespace nibble::cli {
namespace {

using dtypes::DataType;

constexpr int kElements = 256;
constexpr int kGroup = 64;

struct Quantized {
  std::vector<uint64_t> codes;
  std::vector<double> scales;  // per group
  double zero_point = 0;       // subtracted from the decoded code
};

// Symmetric group quantization: scale = max|x| / largest, code = encode(x / scale (+ zero)).
Quantized quantize(DataType type, const std::vector<double>& values) {
  Quantized q;
  const bool unsigned_int = type.is_integer() && !type.is_signed();
  q.zero_point = unsigned_int ? std::ldexp(1.0, type.bits() - 1) : 0.0;
  const double largest = unsigned_int ? q.zero_point - 1 : dtypes::largest_finite(type);
  for (size_t start = 0; start < values.size(); start += kGroup) {
    double max_abs = 0;
    for (size_t i = start; i < start + kGroup; ++i)
      max_abs = std::max(max_abs, std::fabs(values[i]));
    const double scale = max_abs > 0 ? max_abs / largest : 1.0;
    q.scales.push_back(scale);
    for (size_t i = start; i < start + kGroup; ++i) {
      q.codes.push_back(dtypes::encode(type, values[i] / scale + q.zero_point));
    }
  }
  return q;
}

// Runs the plan over the packed words; returns the target codes in element order and counts
// the values that differ from the exact decode.
std::vector<uint64_t> convert_packed(const dtypes::ConversionPlan& plan,
                                     const std::vector<uint8_t>& packed, int& mismatches) {
  std::vector<uint64_t> converted(kElements);
  const int per_call = plan.element_count();
  const size_t bytes_per_call = static_cast<size_t>(plan.input_words) * 4;
  for (int first = 0; first < kElements; first += per_call) {
    std::vector<uint32_t> words(static_cast<size_t>(plan.input_words));
    std::memcpy(words.data(),
                packed.data() + static_cast<size_t>(first / per_call) * bytes_per_call,
                bytes_per_call);
    const std::vector<uint32_t> out = dtypes::run_plan(plan, words);
    for (int slot = 0; slot < per_call; ++slot) {
      const uint32_t word = out[static_cast<size_t>(slot / 2)];
      const uint64_t half = slot % 2 == 0 ? (word & 0xffff) : (word >> 16);
      converted[static_cast<size_t>(first + plan.output_element[static_cast<size_t>(slot)])] = half;
    }
  }
  std::vector<uint64_t> codes = dtypes::unpack(plan.source, packed, kElements);
  for (int i = 0; i < kElements; ++i) {
    const double exact = dtypes::decode(plan.source, codes[static_cast<size_t>(i)]);
    if (converted[static_cast<size_t>(i)] != dtypes::encode(plan.target, exact)) ++mismatches;
  }
  return converted;
}

int run_plan_demo(std::ostream& out) {
  std::mt19937_64 random(2026);
  std::normal_distribution<double> normal(0.0, 0.02);  // weights of a linear layer
  std::vector<double> weights(kElements);
  for (double& w : weights)
    w = normal(random);

  out << fmt::format(
      "demo: {} random weights, groups of {}, packed and converted back on the GPU bit-op "
      "emulator\n\n",
      kElements, kGroup);
  out << fmt::format("{:<8} {:>6} {:>14}  {:<6} {:>5}  {:>12}  {}\n", "type", "bytes", "first word",
                     "to", "ops", "max |error|", "check");
  int total_mismatches = 0;
  for (const char* name : {"u4", "f4e2m1", "f8e4m3"}) {
    const DataType type = DataType::parse(name);
    const Quantized q = quantize(type, weights);
    const std::vector<uint8_t> packed = dtypes::pack(type, q.codes);
    uint32_t first_word = 0;
    std::memcpy(&first_word, packed.data(), sizeof(first_word));
    for (const DataType target : {DataType::f16(), DataType::bf16()}) {
      const std::optional<dtypes::ConversionPlan> plan =
          dtypes::find_conversion_plan(type, target, 80);
      if (!plan)
        throw std::runtime_error(fmt::format("no conversion plan {} -> {}", name, target.name()));
      int mismatches = 0;
      const std::vector<uint64_t> converted = convert_packed(*plan, packed, mismatches);
      double max_error = 0;
      for (int i = 0; i < kElements; ++i) {
        const double value = dtypes::decode(target, converted[static_cast<size_t>(i)]);
        const double dequantized =
            (value - q.zero_point) * q.scales[static_cast<size_t>(i / kGroup)];
        max_error = std::max(max_error, std::fabs(dequantized - weights[static_cast<size_t>(i)]));
      }
      total_mismatches += mismatches;
      out << fmt::format("{:<8} {:>6} {:>#14x}  {:<6} {:>5}  {:>12.3e}  {}\n", name, packed.size(),
                         first_word, target.name(), plan->ops.size(), max_error,
                         mismatches == 0 ? "exact" : fmt::format("{} values differ", mismatches));
    }
  }
  out << fmt::format("\n{} converted values checked against the exact decoder: {}\n",
                     3 * 2 * kElements, total_mismatches == 0 ? "all exact" : "MISMATCH");
  return total_mismatches == 0 ? 0 : 1;
}

}  // namespace

int run_demo(Arguments args, std::ostream& out) {
  if (!args.empty() && args[0] == "plans") {
    if (args.size() > 1) throw UsageError{fmt::format("unexpected argument '{}'", args[1])};
    return run_plan_demo(out);
  }
  return run_gemm_demo(args, out);
}

}  // namespace nibble::cli
