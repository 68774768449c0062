// `nibble quantize W.npy --type u4 [--group 128] [--zero-points] [--scale-type f16|bf16]
//                  [--for-m M] -o DIR`
//
// Weight preparation from the command line: quantizes a [K, N] weight (an .npy of f16, f32 or
// f64) with examples/quant/quantize.h and writes DIR/codes.npy (the packed [K, N] codes, a 1-D
// byte array in the bit-stream order of dtypes/packing.h), DIR/scales.npy (and zeros.npy) as
// [K / group, N] arrays (float16; bf16 as its 16-bit codes, uint16) and DIR/weight.json (type,
// shape, group, the implicit zero point). With --for-m M it also picks the GEMM configuration
// for M rows (choose_quant_gemm_config) and writes the codes re-packed for it,
// DIR/repacked.npy, with the configuration in weight.json: what the kernel reads.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/npy.h"
#include "dtypes/codec.h"
#include "examples/quant/quantize.h"
#include "examples/quant/repack.h"

namespace nibble::cli {
namespace {

using dtypes::DataType;

std::vector<double> weights_of(const NpyArray& array, const std::filesystem::path& path) {
  if (array.shape.size() != 2) {
    throw std::runtime_error(fmt::format("{}: the weight must be 2-D [K, N], not {}-D",
                                         path.string(), array.shape.size()));
  }
  const size_t count = static_cast<size_t>(array.shape[0] * array.shape[1]);
  std::vector<double> values(count);
  if (array.descr == "<f8") {
    std::memcpy(values.data(), array.bytes.data(), count * 8);
  } else if (array.descr == "<f4") {
    for (size_t i = 0; i < count; ++i) {
      float v = 0;
      std::memcpy(&v, array.bytes.data() + 4 * i, 4);
      values[i] = v;
    }
  } else if (array.descr == "<f2") {
    for (size_t i = 0; i < count; ++i) {
      uint16_t code = 0;
      std::memcpy(&code, array.bytes.data() + 2 * i, 2);
      values[i] = dtypes::decode(DataType::f16(), code);
    }
  } else {
    throw std::runtime_error(
        fmt::format("{}: weights of numpy type '{}'; use float16, float32 or float64",
                    path.string(), array.descr));
  }
  return values;
}

NpyArray bytes_array(const std::vector<uint8_t>& bytes) {
  return NpyArray{"|u1", {static_cast<int64_t>(bytes.size())}, bytes};
}

NpyArray sixteen_bit_array(const std::vector<uint16_t>& codes, DataType type, int64_t rows,
                           int64_t columns) {
  NpyArray array{type == DataType::f16() ? "<f2" : "<u2", {rows, columns}, {}};
  array.bytes.resize(codes.size() * 2);
  std::memcpy(array.bytes.data(), codes.data(), array.bytes.size());
  return array;
}

}  // namespace

const std::string& option_value(Arguments args, size_t& i) {
  if (i + 1 >= args.size()) throw UsageError{fmt::format("{} needs a value", args[i])};
  return args[++i];
}

int64_t option_number(const std::string& option, const std::string& text) {
  try {
    size_t used = 0;
    const int64_t parsed = std::stoll(text, &used);
    if (used == text.size()) return parsed;
  } catch (const std::exception&) {
  }
  throw UsageError{fmt::format("{} needs a whole number, not '{}'", option, text)};
}

int run_quantize(Arguments args, std::ostream& out) {
  std::optional<std::filesystem::path> input;
  std::optional<std::filesystem::path> output;
  examples::QuantizeOptions options;
  std::optional<int64_t> for_m;
  bool type_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    auto number = [&](const std::string& text) { return option_number(arg, text); };
    if (arg == "--type") {
      options.weight_type = DataType::parse(value());
      type_given = true;
    } else if (arg == "--group") {
      options.group_size = number(value());
    } else if (arg == "--zero-points") {
      options.zero_points = true;
    } else if (arg == "--scale-type") {
      options.scale_type = DataType::parse(value());
    } else if (arg == "--for-m") {
      for_m = number(value());
    } else if (arg == "-o" || arg == "--out") {
      output = value();
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError{fmt::format("unknown option '{}'", arg)};
    } else if (!input) {
      input = arg;
    } else {
      throw UsageError{fmt::format("unexpected argument '{}'", arg)};
    }
  }
  if (!input) throw UsageError{"the weight file (W.npy, [K, N]) is missing"};
  if (!output) throw UsageError{"the output directory (-o DIR) is missing"};
  if (!type_given) throw UsageError{"the weight type (--type u4, f6e3m2, …) is missing"};

  const NpyArray array = read_npy(*input);
  const std::vector<double> weights = weights_of(array, *input);
  const int64_t k = array.shape[0];
  const int64_t n = array.shape[1];
  const examples::QuantizedWeight weight = examples::quantize(weights, k, n, options);

  std::string config_json = "null";
  std::optional<std::vector<uint8_t>> repacked;
  if (for_m) {
    const examples::QuantGemmConfig config =
        examples::choose_quant_gemm_config(*for_m, n, k, weight.weight_type, weight.scale_type,
                                           options.group_size, options.zero_points);
    repacked = examples::repack_weight(weight, config);
    config_json = fmt::format(
        "{{\"name\": \"{}\", \"block_m\": {}, \"block_n\": {}, \"block_k\": {}, \"warps\": {}, "
        "\"split_k\": {}, \"unroll\": {}, \"stages\": {}, \"scale_after_mma\": {}, "
        "\"min_blocks_per_sm\": {}, \"weights_as_a\": {}, \"wgmma\": {}, "
        "\"copy_after_wait\": {}, \"finish_in_gemm\": {}, \"cluster_split\": {}, "
        "\"stored_type\": \"{}\"}}",
        config.name(), config.block_m, config.block_n, config.block_k, config.warps, config.split_k,
        config.unroll, config.stages, config.scale_after_mma, config.min_blocks_per_sm,
        config.weights_as_a, config.wgmma, config.copy_after_wait, config.finish_in_gemm,
        config.cluster_split, examples::stored_weight_type(config).name());
  }

  std::filesystem::create_directories(*output);
  write_npy(*output / "codes.npy", bytes_array(weight.packed));
  write_npy(*output / "scales.npy",
            sixteen_bit_array(weight.scales, weight.scale_type, weight.groups(), n));
  if (!weight.zeros.empty()) {
    write_npy(*output / "zeros.npy",
              sixteen_bit_array(weight.zeros, weight.scale_type, weight.groups(), n));
  }
  if (repacked) write_npy(*output / "repacked.npy", bytes_array(*repacked));
  std::ofstream(*output / "weight.json") << fmt::format(
      "{{\n  \"type\": \"{}\",\n  \"k\": {},\n  \"n\": {},\n  \"group_size\": {},\n"
      "  \"scale_type\": \"{}\",\n  \"zero_points\": {},\n  \"implicit_zero\": {},\n"
      "  \"config\": {}\n}}\n",
      weight.weight_type.name(), k, n, weight.group_size, weight.scale_type.name(),
      weight.zeros.empty() ? "false" : "true", weight.implicit_zero, config_json);

  const std::vector<double> dequantized = examples::dequantize(weight);
  double worst = 0;
  for (size_t i = 0; i < weights.size(); ++i)
    worst = std::max(worst, std::abs(dequantized[i] - weights[i]));
  out << fmt::format("quantized W[{}, {}] to {} (groups of {}, {} scales{}): max |error| {:.3e}\n",
                     k, n, weight.weight_type.name(), weight.group_size, weight.scale_type.name(),
                     weight.zeros.empty() ? "" : ", zero points", worst);
  out << fmt::format("wrote {}: codes.npy ({} bytes), scales.npy{}{}, weight.json\n",
                     output->string(), weight.packed.size(),
                     weight.zeros.empty() ? "" : ", zeros.npy",
                     repacked ? fmt::format(", repacked.npy (for M = {})", *for_m) : "");
  return 0;
}

}  // namespace nibble::cli
