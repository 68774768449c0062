// `nibble demo` (the main job): the quantized GEMM, quantized, run and checked. See cmd_demo.cpp.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "dtypes/codec.h"
#include "examples/quant/cublas.h"
#include "examples/quant/device.h"
#include "examples/quant/quantize.h"
#include "examples/quant/run.h"
#include "runtime/driver.h"

namespace nibble::cli {
namespace {

using dtypes::DataType;
using runtime::DeviceBuffer;

struct DemoOptions {
  int64_t m = 16;
  int64_t n = 0;  // 0: 8192 on the GPU, 128 on the interpreter
  int64_t k = 0;  // 0: 8192 on the GPU, 512 on the interpreter
  DataType weight = DataType::uint(4);
  int64_t group = 128;
  bool interpret = false;
};

DemoOptions parse_options(Arguments args) {
  DemoOptions options;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    auto number = [&](const std::string& text) { return option_number(arg, text); };
    if (arg == "--m") {
      options.m = number(value());
    } else if (arg == "--n") {
      options.n = number(value());
    } else if (arg == "--k") {
      options.k = number(value());
    } else if (arg == "--group") {
      options.group = number(value());
    } else if (arg == "--type") {
      options.weight = DataType::parse(value());
    } else if (arg == "--interpret") {
      options.interpret = true;
    } else {
      throw UsageError{fmt::format("unexpected argument '{}'", arg)};
    }
  }
  return options;
}

struct Inputs {
  std::vector<double> a;          // as rounded to f16
  std::vector<uint16_t> a_codes;  // f16 codes
  examples::QuantizedWeight weight;
};

Inputs make_inputs(const DemoOptions& options, int64_t n, int64_t k) {
  std::mt19937_64 random(2026);
  std::normal_distribution<double> normal(0.0, 1.0);
  Inputs in;
  for (int64_t i = 0; i < options.m * k; ++i) {
    const uint64_t code = dtypes::encode(DataType::f16(), normal(random));
    in.a_codes.push_back(static_cast<uint16_t>(code));
    in.a.push_back(dtypes::decode(DataType::f16(), code));
  }
  // A linear layer's weight: normal, scaled like 1 / sqrt(K), rounded to f16 first.
  std::vector<double> w(static_cast<size_t>(k * n));
  const double sigma = 1.0 / std::sqrt(static_cast<double>(k));
  for (double& v : w)
    v = dtypes::decode(DataType::f16(), dtypes::encode(DataType::f16(), sigma * normal(random)));
  examples::QuantizeOptions quantize_options;
  quantize_options.weight_type = options.weight;
  quantize_options.group_size = options.group;
  in.weight = examples::quantize(w, k, n, quantize_options);
  return in;
}

// The largest |C - reference| over examples::matmul_tolerance; ≤ 1 passes. Rows and columns are
// sampled for large problems.
double worst_error_ratio(const Inputs& in, int64_t m, int64_t n, int64_t k,
                         const std::vector<uint16_t>& c, int64_t stride) {
  const std::vector<double> w = examples::dequantize(in.weight);
  double worst = 0;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; j += stride) {
      double sum = 0;
      double magnitude = 0;
      for (int64_t r = 0; r < k; ++r) {
        const double product =
            in.a[static_cast<size_t>(i * k + r)] * w[static_cast<size_t>(r * n + j)];
        sum += product;
        magnitude += std::abs(product);
      }
      const double got = dtypes::decode(DataType::f16(), c[static_cast<size_t>(i * n + j)]);
      const double ratio =
          std::abs(got - sum) / examples::matmul_tolerance(DataType::f16(), magnitude, sum);
      worst = std::max(worst, std::isnan(ratio) ? 1e30 : ratio);
    }
  }
  return worst;
}

template <typename T>
DeviceBuffer upload(const std::vector<T>& values) {
  DeviceBuffer buffer(std::max<size_t>(values.size() * sizeof(T), 16));
  if (!values.empty()) buffer.upload(std::as_bytes(std::span<const T>(values)));
  return buffer;
}

int run_on_interpreter(const DemoOptions& options, std::ostream& out) {
  const int64_t n = options.n > 0 ? options.n : 128;
  const int64_t k = options.k > 0 ? options.k : 512;
  const Inputs in = make_inputs(options, n, k);
  const examples::QuantGemmConfig config = examples::choose_quant_gemm_config(
      options.m, n, k, options.weight, DataType::f16(), options.group, false);
  out << fmt::format(
      "quantized GEMM on the interpreter (no GPU here): C[{}, {}] = A[{}, {}] · "
      "dequant(W[{}, {}] {} g{})\n  kernel {}\n",
      options.m, n, options.m, k, k, n, options.weight.name(), options.group, config.name());
  const examples::PreparedWeight prepared = examples::prepare_weight(in.weight, config);
  const std::vector<uint16_t> c =
      examples::run_quant_gemm_interpreted(prepared, options.m, in.a_codes);
  const double worst = worst_error_ratio(in, options.m, n, k, c, 1);
  out << fmt::format("  C[0, 0..3] = {:.5f} {:.5f} {:.5f} {:.5f}\n",
                     dtypes::decode(DataType::f16(), c[0]), dtypes::decode(DataType::f16(), c[1]),
                     dtypes::decode(DataType::f16(), c[2]), dtypes::decode(DataType::f16(), c[3]));
  out << fmt::format(
      "  check against the double-precision reference ({} elements): {} (worst "
      "error {:.2f} of the tolerance)\n",
      options.m * n, worst <= 1 ? "ok" : "FAILED", worst);
  return worst <= 1 ? 0 : 1;
}

int run_on_gpu(const DemoOptions& options, std::ostream& out) {
  const int64_t n = options.n > 0 ? options.n : 8192;
  const int64_t k = options.k > 0 ? options.k : 8192;
  const int64_t m = options.m;
  runtime::Driver& driver = runtime::Driver::get();
  const runtime::DeviceInfo& device = driver.device();
  out << fmt::format("device: {} (sm_{}, {} SMs)\n", device.name, device.compute_capability,
                     device.multiprocessors);
  const Inputs in = make_inputs(options, n, k);
  const examples::QuantGemmConfig config =
      examples::choose_quant_gemm_config(m, n, k, options.weight, DataType::f16(), options.group,
                                         false, device.multiprocessors, device.compute_capability);
  out << fmt::format(
      "quantized GEMM: C[{}, {}] = A[{}, {}] · dequant(W[{}, {}] {} g{})\n  kernel {}\n", m, n, m,
      k, k, n, options.weight.name(), options.group, config.name());
  const examples::PreparedWeight prepared = examples::prepare_weight(in.weight, config);
  DeviceBuffer a = upload(in.a_codes);
  DeviceBuffer w = upload(prepared.codes);
  DeviceBuffer s = upload(prepared.scales);
  DeviceBuffer c(static_cast<size_t>(m * n) * 2);
  c.fill_bytes(0xff);  // NaN: an element never written fails the check
  examples::QuantGemmDevice gemm(config);
  auto call = [&] { gemm.run(a.pointer(), w.pointer(), s.pointer(), 0, c.pointer(), m, n, k); };
  call();
  driver.synchronize();
  std::vector<uint16_t> result(static_cast<size_t>(m * n));
  c.download(std::as_writable_bytes(std::span<uint16_t>(result)));
  const double worst = worst_error_ratio(in, m, n, k, result, 61);
  out << fmt::format(
      "  check against the double-precision reference (every 61st column): {} "
      "(worst error {:.2f} of the tolerance)\n",
      worst <= 1 ? "ok" : "FAILED", worst);

  // Copy bandwidth of this device, for the speed of light.
  const size_t copy_bytes = size_t{1} << 30;
  DeviceBuffer from(copy_bytes), to(copy_bytes);
  from.fill_bytes(1);
  const examples::CacheFlush flush(device.l2_cache_bytes);
  const double copy_us = examples::median_call_us([&] { to.copy_from(from); }, flush, 5);
  const double copy_gbps = 2.0 * static_cast<double>(copy_bytes) / copy_us / 1e3;
  const double us = examples::median_call_us(call, flush, 21);
  const double bytes = static_cast<double>(prepared.codes.size() + prepared.scales.size() * 2 +
                                           static_cast<size_t>(m * k + m * n) * 2);
  out << fmt::format(
      "  time {:.1f} us (median of 21, L2 flushed): {:.0f} GB/s, {:.1f} TFLOP/s; "
      "{:.0f}% of the copy-bandwidth speed of light ({:.0f} GB/s measured)\n",
      us, bytes / us / 1e3, 2.0 * static_cast<double>(m * n * k) / us / 1e6,
      100 * bytes / (copy_gbps * 1e3) / us, copy_gbps);

  std::string why;
  std::unique_ptr<examples::CublasGemm> cublas = examples::CublasGemm::load(&why);
  if (!cublas) {
    out << "  cuBLAS: not compared (" << why << ")\n";
  } else {
    std::vector<uint16_t> w_f16(static_cast<size_t>(k * n));
    const std::vector<double> dequantized = examples::dequantize(in.weight);
    for (size_t i = 0; i < w_f16.size(); ++i)
      w_f16[i] = static_cast<uint16_t>(dtypes::encode(DataType::f16(), dequantized[i]));
    DeviceBuffer w_dense = upload(w_f16);
    DeviceBuffer c_dense(static_cast<size_t>(m * n) * 2);
    auto dense = [&] {
      cublas->f16_gemm(a.pointer(), w_dense.pointer(), c_dense.pointer(), static_cast<int>(m),
                       static_cast<int>(n), static_cast<int>(k));
    };
    dense();
    driver.synchronize();
    const double dense_us = examples::median_call_us(dense, flush, 21);
    out << fmt::format(
        "  cuBLAS f16 with the dequantized weight: {:.1f} us; nibble is {:.2f}x "
        "faster\n",
        dense_us, dense_us / us);
  }
  return worst <= 1 ? 0 : 1;
}

}  // namespace

int run_gemm_demo(Arguments args, std::ostream& out) {
  const DemoOptions options = parse_options(args);
  if (options.m < 1) throw UsageError{"--m must be at least 1"};
  if (!options.interpret && runtime::Driver::available()) return run_on_gpu(options, out);
  return run_on_interpreter(options, out);
}

}  // namespace nibble::cli
