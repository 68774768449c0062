#include "examples/quant/repack.h"

#include <fmt/format.h>

#include "dtypes/packing.h"

namespace nibble::examples {
namespace {

void check_tiles(int64_t k, int64_t n, const QuantGemmConfig& config) {
  if (k % config.block_k != 0 || n % config.block_n != 0) {
    throw QuantGemmError(
        fmt::format("repack for {}: K={} and N={} must be multiples of block_k {} and block_n {}",
                    config.name(), k, n, config.block_k, config.block_n));
  }
}

// Calls visit(stream_index, row, column) for every element of the re-packed stream.
template <typename Visit>
void for_each_repacked(int64_t k, int64_t n, const QuantGemmConfig& config, const Visit& visit) {
  const FragmentOrder order = fragment_order(config);
  const int64_t tile_elements = config.block_k * config.block_n;
  std::vector<int64_t> tile_index(static_cast<size_t>(tile_elements));
  for (int64_t x = 0; x < tile_elements; ++x) {
    tile_index[static_cast<size_t>(x)] =
        order.tile_index(x / order.per_thread, x % order.per_thread);
  }
  const int64_t tiles_n = n / config.block_n;
  int64_t stream = 0;
  for (int64_t kt = 0; kt < k / config.block_k; ++kt) {
    for (int64_t nt = 0; nt < tiles_n; ++nt) {
      for (int64_t x = 0; x < tile_elements; ++x, ++stream) {
        const int64_t d = tile_index[static_cast<size_t>(x)];
        visit(stream, kt * config.block_k + d / config.block_n,
              nt * config.block_n + d % config.block_n);
      }
    }
  }
}

}  // namespace

std::vector<uint8_t> repack_weight(const QuantizedWeight& weight, const QuantGemmConfig& config) {
  if (weight.weight_type != config.weight) {
    throw QuantGemmError(fmt::format("repack for {}: the weight holds {} codes", config.name(),
                                     weight.weight_type.name()));
  }
  check_tiles(weight.k, weight.n, config);
  const size_t count = static_cast<size_t>(weight.k * weight.n);
  std::vector<uint8_t> out(dtypes::packed_size_bytes(config.weight, count), 0);
  for_each_repacked(weight.k, weight.n, config, [&](int64_t stream, int64_t row, int64_t column) {
    dtypes::write_packed(config.weight, out.data(), static_cast<size_t>(stream),
                         stored_code(config, weight.code(row, column)));
  });
  return out;
}

std::vector<uint64_t> unpack_repacked(const std::vector<uint8_t>& repacked, int64_t k, int64_t n,
                                      const QuantGemmConfig& config) {
  check_tiles(k, n, config);
  const size_t count = static_cast<size_t>(k * n);
  if (repacked.size() < dtypes::packed_size_bytes(config.weight, count)) {
    throw QuantGemmError(fmt::format("unpack_repacked: {} bytes for {} elements of {}",
                                     repacked.size(), count, config.weight.name()));
  }
  std::vector<uint64_t> codes(count);
  for_each_repacked(k, n, config, [&](int64_t stream, int64_t row, int64_t column) {
    // stored_code() is its own inverse (a flipped bit, or nothing).
    codes[static_cast<size_t>(row * n + column)] = stored_code(
        config, dtypes::read_packed(config.weight, repacked.data(), static_cast<size_t>(stream)));
  });
  return codes;
}

}  // namespace nibble::examples
