// The quantized GEMM on the GPU: time per call for weight types × shapes × M, with the copy
// bandwidth of the same device measured in the same run (the speed-of-light reference).
//
// Method. Each measurement is one call (the GEMM, plus quant_gemm_finish when K is split)
// between two events, after the L2 cache was flushed by writing a buffer of four times its
// size; the median of `--repeats` measurements is reported. W is random bytes (every code of
// every type is a valid weight; for f8 types bit 6 of each byte is cleared, which rules out their
// NaN and infinity codes), scales are random in [2^-8, 2^-6], A is random in [-1, 1].
// Every measured configuration is also checked: for 8 columns, C is compared with a
// double-precision product computed on the host from the same bytes.
//
//   bench_quant_gemm [--out FILE.json|DIR] [--types u4,u8,…] [--m 1,16,…] [--shapes KxN,…]
//                    [--repeats N] [--group G] [--variants "unroll=4,warps=8;stages=3"]
//
// --variants measures each listed override of the chosen configuration (keys: block_m,
// block_n, block_k, warps, split_k, unroll, stages, persistent_blocks, scale_after_mma,
// min_blocks_per_sm, weights_as_a, wgmma, copy_after_wait, finish_in_gemm, cluster_split,
// prefill), for tuning the chooser.
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "examples/quant/device.h"
#include "examples/quant/quantize.h"
#include "examples/quant_gemm.h"
#include "runtime/driver.h"

using namespace nibble;
using dtypes::DataType;
using examples::QuantGemmConfig;
using runtime::DeviceBuffer;

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, separator);)
    if (!part.empty()) parts.push_back(part);
  return parts;
}

std::vector<std::pair<int64_t, std::string>> cross(const std::vector<int64_t>& ms,
                                                   const std::vector<std::string>& variants) {
  std::vector<std::pair<int64_t, std::string>> pairs;
  for (int64_t m : ms)
    for (const std::string& variant : variants)
      pairs.emplace_back(m, variant);
  return pairs;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

template <typename T>
std::span<const std::byte> bytes_of(const std::vector<T>& values) {
  return std::as_bytes(std::span<const T>(values));
}

// The flat stream index of every tile element (the inverse of FragmentOrder::tile_index).
std::vector<int64_t> stream_of_tile_element(const QuantGemmConfig& config) {
  const examples::FragmentOrder order = examples::fragment_order(config);
  std::vector<int64_t> inverse(static_cast<size_t>(config.block_k * config.block_n));
  for (int64_t t = 0; t < order.threads; ++t)
    for (int64_t r = 0; r < order.per_thread; ++r)
      inverse[static_cast<size_t>(order.tile_index(t, r))] = t * order.per_thread + r;
  return inverse;
}

struct Check {
  bool passed = true;
  double worst_ratio = 0;  // max |error| / tolerance
};

// C's columns `columns` against a double-precision product of the same bytes.
Check check_columns(const QuantGemmConfig& config, int64_t m, int64_t n, int64_t k,
                    const std::vector<uint8_t>& w_bytes, const std::vector<uint16_t>& scales,
                    const std::vector<uint16_t>& a, const std::vector<uint16_t>& c) {
  const std::vector<int64_t> inverse = stream_of_tile_element(config);
  const int64_t tile = config.block_k * config.block_n;
  const int64_t tiles_n = n / config.block_n;
  const int64_t group = config.group_size == 0 ? k : config.group_size;
  const DataType stored = examples::stored_weight_type(config);
  Check check;
  for (int64_t column : {int64_t{0}, n / 7, n / 3, n / 2, n - n / 5, n - 3, n - 2, n - 1}) {
    std::vector<double> w(static_cast<size_t>(k));
    for (int64_t row = 0; row < k; ++row) {
      const int64_t tile_index = (row / config.block_k) * tiles_n + column / config.block_n;
      const int64_t within = (row % config.block_k) * config.block_n + column % config.block_n;
      const int64_t stream = tile_index * tile + inverse[static_cast<size_t>(within)];
      const uint64_t code =
          dtypes::read_packed(stored, w_bytes.data(), static_cast<size_t>(stream));
      const double scale = dtypes::decode(config.activation,
                                          scales[static_cast<size_t>((row / group) * n + column)]);
      w[static_cast<size_t>(row)] = dtypes::decode(stored, code) * scale;
    }
    // Up to 17 rows, spread over M (the host product is slow for large M).
    std::vector<int64_t> rows;
    for (int64_t i = 0; i < m; i += std::max<int64_t>(1, m / 16))
      rows.push_back(i);
    if (rows.back() != m - 1) rows.push_back(m - 1);
    for (int64_t i : rows) {
      double sum = 0;
      double magnitude = 0;
      for (int64_t row = 0; row < k; ++row) {
        const double x = dtypes::decode(config.activation, a[static_cast<size_t>(i * k + row)]);
        sum += x * w[static_cast<size_t>(row)];
        magnitude += std::abs(x * w[static_cast<size_t>(row)]);
      }
      const double got = dtypes::decode(config.activation, c[static_cast<size_t>(i * n + column)]);
      const double ratio =
          std::abs(got - sum) / examples::matmul_tolerance(config.activation, magnitude, sum);
      check.worst_ratio = std::max(check.worst_ratio, std::isnan(ratio) ? 1e9 : ratio);
      if (!(ratio <= 1)) check.passed = false;
    }
  }
  return check;
}

struct Shape {
  int64_t k, n;
};

// Applies "key=value,key=value" to a configuration.
QuantGemmConfig with_overrides(QuantGemmConfig config, const std::string& overrides) {
  for (const std::string& assignment : split(overrides, ',')) {
    const auto parts = split(assignment, '=');
    if (parts.size() != 2) throw std::invalid_argument("bad override '" + assignment + "'");
    const int64_t value = std::stoll(parts[1]);
    const std::string& key = parts[0];
    if (key == "block_m") {
      config.block_m = value;
    } else if (key == "block_n") {
      config.block_n = value;
    } else if (key == "block_k") {
      config.block_k = value;
    } else if (key == "warps") {
      config.warps = static_cast<int>(value);
    } else if (key == "split_k") {
      config.split_k = value;
    } else if (key == "unroll") {
      config.unroll = value;
    } else if (key == "stages") {
      config.stages = value;
    } else if (key == "persistent_blocks") {
      config.persistent_blocks = value;
    } else if (key == "scale_after_mma") {
      config.scale_after_mma = value != 0;
    } else if (key == "min_blocks_per_sm") {
      config.min_blocks_per_sm = static_cast<int>(value);
    } else if (key == "weights_as_a") {
      config.weights_as_a = value != 0;
    } else if (key == "wgmma") {
      config.wgmma = value != 0;
    } else if (key == "copy_after_wait") {
      config.copy_after_wait = value != 0;
    } else if (key == "finish_in_gemm") {
      config.finish_in_gemm = value != 0;
    } else if (key == "cluster_split") {
      config.cluster_split = value != 0;
    } else if (key == "prefill") {
      config.schedule =
          value != 0 ? examples::QuantSchedule::Prefill : examples::QuantSchedule::Decode;
    } else {
      throw std::invalid_argument("unknown override key '" + key + "'");
    }
  }
  return config;
}

}  // namespace

int main(int argc, char** argv) {
  std::string out_path = "quant_gemm_nibble.json";
  // The default sweep: u4 and u8 (the types with a Triton peer) at every M on every shape of
  // real models, every other type at M = 1, 16 and 4096 on K=8192, N=28672.
  struct Sweep {
    std::vector<std::string> types;
    std::vector<int64_t> ms;
    std::vector<Shape> shapes;
  };
  std::vector<Sweep> sweeps = {
      {{"u4", "u8"},
       {1, 4, 16, 64, 256, 1024, 4096},
       {{4096, 6144}, {4096, 28672}, {14336, 4096}, {8192, 10240}, {8192, 57344}, {28672, 8192}}},
      {{"u1", "u2", "u3", "u5", "u6", "u7", "i2", "i3", "i4", "i5", "i6", "i7", "i8", "f4e2m1",
        "f6e3m2", "f6e2m3", "f8e4m3", "f8e5m2"},
       {1, 16, 4096},
       {{8192, 28672}}}};
  std::vector<std::string> only_types;
  std::vector<int64_t> only_ms;
  std::vector<Shape> only_shapes;
  int repeats = 15;
  int64_t group = 128;
  std::vector<std::string> variants = {""};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    const std::string value = argv[i + 1];
    if (arg == "--out") {
      out_path = std::filesystem::is_directory(value)
                     ? (std::filesystem::path(value) / "quant_gemm_nibble.json").string()
                     : value;
    } else if (arg == "--types") {
      only_types = split(value, ',');
    } else if (arg == "--m") {
      for (const std::string& part : split(value, ','))
        only_ms.push_back(std::stoll(part));
    } else if (arg == "--shapes") {
      for (const std::string& part : split(value, ',')) {
        const auto kn = split(part, 'x');
        only_shapes.push_back({std::stoll(kn.at(0)), std::stoll(kn.at(1))});
      }
    } else if (arg == "--repeats") {
      repeats = std::max(1, std::stoi(value));
    } else if (arg == "--variants") {
      variants = split(value, ';');
    } else if (arg == "--group") {
      group = std::stoll(value);
    } else {
      fmt::print(stderr, "bench_quant_gemm: unknown option '{}'\n", arg);
      return 2;
    }
  }
  if (!only_types.empty() || !only_ms.empty() || !only_shapes.empty()) {
    // An explicit sweep: the options given, the first default sweep for the others.
    sweeps = {{only_types.empty() ? sweeps[0].types : only_types,
               only_ms.empty() ? sweeps[0].ms : only_ms,
               only_shapes.empty() ? sweeps[0].shapes : only_shapes}};
  }
  runtime::Driver& driver = runtime::Driver::get();
  const runtime::DeviceInfo& device = driver.device();
  std::mt19937_64 random(2026);

  // Copy bandwidth: device-to-device copies of 1 GiB (read + write bytes over time).
  const size_t copy_bytes = size_t{1} << 30;
  double copy_gbps = 0;
  {
    DeviceBuffer from(copy_bytes), to(copy_bytes);
    from.fill_bytes(1);
    std::vector<double> times;
    for (int r = 0; r < 7; ++r) {
      runtime::EventTimer timer;
      timer.start();
      to.copy_from(from);
      times.push_back(timer.stop());
    }
    copy_gbps = 2.0 * static_cast<double>(copy_bytes) / (median(times) * 1e-3) / 1e9;
  }
  fmt::print("device {} (sm_{}, {} SMs): copy bandwidth {:.0f} GB/s\n", device.name,
             device.compute_capability, device.multiprocessors, copy_gbps);

  const examples::CacheFlush flush(device.l2_cache_bytes);
  std::string json = fmt::format(
      "{{\n  \"device\": \"{}\",\n  \"compute_capability\": {},\n  \"copy_gbps\": {:.1f},\n"
      "  \"method\": \"median of {} calls, each timed with events after an L2 flush (a read of 4x "
      "the L2)\",\n"
      "  \"runs\": [\n",
      device.name, device.compute_capability, copy_gbps, repeats);
  bool first_row = true;
  int failures = 0;
  for (const Sweep& sweep : sweeps) {
    const std::vector<std::string>& types = sweep.types;
    const std::vector<int64_t>& ms = sweep.ms;
    for (const Shape& shape : sweep.shapes) {
      const int64_t k = shape.k;
      const int64_t n = shape.n;
      const int64_t max_m = *std::max_element(ms.begin(), ms.end());
      // Random inputs, shared by every type: W as bytes (8 bits per weight covers every type).
      std::vector<uint8_t> w_bytes(static_cast<size_t>(k * n));
      for (auto& byte : w_bytes)
        byte = static_cast<uint8_t>(random());
      std::uniform_real_distribution<double> unit(-1.0, 1.0);
      std::uniform_real_distribution<double> log_scale(-8.0, -6.0);
      std::vector<uint16_t> a(static_cast<size_t>(max_m * k));
      std::vector<uint16_t> scales(static_cast<size_t>((k / group) * n));
      DeviceBuffer w_device(w_bytes.size());
      for (const std::string& type_name : types) {
        const DataType weight = DataType::parse(type_name);
        std::vector<uint8_t> w_type_bytes = w_bytes;
        if (weight.is_float() && weight.bits() == 8) {
          for (auto& byte : w_type_bytes)
            byte &= 0xbf;
        }
        w_device.upload(bytes_of(w_type_bytes));
        for (const DataType activation : {DataType::f16()}) {
          for (auto& x : a)
            x = static_cast<uint16_t>(dtypes::encode(activation, unit(random)));
          for (auto& s : scales)
            s = static_cast<uint16_t>(dtypes::encode(activation, std::exp2(log_scale(random))));
          DeviceBuffer a_device(a.size() * 2), s_device(scales.size() * 2);
          a_device.upload(bytes_of(a));
          s_device.upload(bytes_of(scales));
          DeviceBuffer c_device(static_cast<size_t>(max_m * n) * 2);
          for (const auto& [m, variant] : cross(ms, variants)) {
            QuantGemmConfig config;
            try {
              config = with_overrides(examples::choose_quant_gemm_config(
                                          m, n, k, weight, activation, group, false,
                                          device.multiprocessors, device.compute_capability),
                                      variant);
              examples::check_quant_gemm_shape(config, m, n, k);
            } catch (const std::exception& error) {
              fmt::print("skip {} M={} K={} N={}: {}\n", type_name, m, k, n, error.what());
              continue;
            }
            std::optional<examples::QuantGemmDevice> built;
            try {
              built.emplace(config);
            } catch (const std::exception& error) {
              fmt::print("FAILED to build {}: {}\n", config.name(), error.what());
              ++failures;
              continue;
            }
            examples::QuantGemmDevice& gemm = *built;
            auto call = [&] {
              gemm.run(a_device.pointer(), w_device.pointer(), s_device.pointer(), 0,
                       c_device.pointer(), m, n, k);
            };
            c_device.fill_bytes(0xff);  // NaN in f16 and bf16: an unwritten C fails the check
            call();
            driver.synchronize();
            std::vector<uint16_t> c(static_cast<size_t>(m * n));
            c_device.download(std::as_writable_bytes(std::span<uint16_t>(c)));
            const Check check = check_columns(config, m, n, k, w_type_bytes, scales, a, c);
            if (!check.passed) ++failures;
            const double us = examples::median_call_us(call, flush, repeats);
            const double bytes =
                static_cast<double>(dtypes::packed_size_bytes(weight, static_cast<size_t>(k * n))) +
                static_cast<double>(scales.size() * 2 + static_cast<size_t>(m * k + m * n) * 2);
            const double sol = bytes / (copy_gbps * 1e3) / us;  // bytes at copy speed / time
            fmt::print(
                "{:>7} M={:<5} K={:<6} N={:<6} {:>9.1f} us {:>7.0f} GB/s {:6.1f} TFLOP/s "
                "bw-SOL {:5.1f}%  {} check {} ({:.2f})\n",
                type_name, m, k, n, us, bytes / us / 1e3,
                2.0 * static_cast<double>(m * n * k) / us / 1e6, 100 * sol, config.name(),
                check.passed ? "ok" : "FAILED", check.worst_ratio);
            json += fmt::format(
                "{}    {{\"type\": \"{}\", \"activation\": \"{}\", \"group\": {}, \"m\": {}, "
                "\"k\": {}, \"n\": {}, \"config\": \"{}\", \"us\": {:.3f}, \"bytes\": {:.0f}, "
                "\"check\": {}, \"worst_error_over_tolerance\": {:.4f}}}",
                first_row ? "" : ",\n", type_name, activation.name(), group, m, k, n, config.name(),
                us, bytes, check.passed ? "true" : "false", check.worst_ratio);
            first_row = false;
          }
        }
      }
    }
  }
  json += "\n  ]\n}\n";
  std::ofstream(out_path) << json;
  fmt::print("wrote {} ({} failed checks)\n", out_path, failures);
  return failures == 0 ? 0 : 1;
}
