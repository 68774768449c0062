#include "examples/quant_gemm.h"

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <numeric>
#include <optional>

#include "dtypes/conversion_plan.h"
#include "frontend/cpp/kernel_builder.h"
#include "layout/algebra.h"
#include "vm/verifier.h"

namespace nibble::examples {
namespace {

using dtypes::DataType;
using layout::Axis;
using layout::Iter;
using layout::Layout;
using layout::MmaTiling;

[[noreturn]] void fail(const QuantGemmConfig& config, const std::string& message) {
  throw QuantGemmError(fmt::format("quant_gemm {}: {}", config.name(), message));
}

// The k tiles one iteration of the kernel's loop covers: `unroll`, or a pair with wgmma (the A
// fragments of the dot in flight and of the next one must be different registers: PTX leaves
// undefined a write to a register an async wgmma still reads).
int64_t k_tiles_per_iteration(const QuantGemmConfig& config) {
  return config.wgmma ? 2 : config.unroll;
}

bool power_of_two(int64_t value) {
  return value > 0 && std::has_single_bit(static_cast<uint64_t>(value));
}

int log2_of(int64_t value) {
  return std::countr_zero(static_cast<uint64_t>(value));
}

// The order in which a plan leaves a group of G elements in its f16x2 words, when it is the
// interleave "0, G/2, 1, G/2 + 1, …" (integer plans of widths dividing 32): word w holds group
// elements w and w + G/2. Plans of other orders (odd widths) keep the plain order and pay a
// byte permute per word when the mma operands are assembled.
std::optional<int64_t> interleaved_group(DataType weight, DataType activation) {
  std::optional<int64_t> group;
  for (int sm : {80, 90}) {
    const auto plan = dtypes::find_conversion_plan(weight, activation, sm);
    if (!plan) return std::nullopt;
    const int64_t g = plan->element_count();
    if (g <= 2 || (group && *group != g)) return std::nullopt;
    for (int64_t i = 0; i < g; ++i) {
      const int64_t expected = (i % 2 == 0) ? i / 2 : g / 2 + i / 2;
      if (plan->output_element[static_cast<size_t>(i)] != expected) return std::nullopt;
    }
    group = g;
  }
  return group;
}

void validate(const QuantGemmConfig& config) {
  const DataType w = config.weight;
  const DataType act = config.activation;
  if (act != DataType::f16() && act != DataType::bf16()) {
    fail(config, fmt::format("activation type {} (f16 or bf16)", act.name()));
  }
  if (w.bits() > 8 || (!w.is_integer() && !w.is_float())) {
    fail(config, fmt::format("weight type {}: integers or floats of at most 8 bits", w.name()));
  }
  if (!dtypes::find_conversion_plan(w, act, 80)) {
    fail(config, fmt::format("no conversion of {} to {}", w.name(), act.name()));
  }
  if (config.zero_points && !(w.is_integer() && !w.is_signed())) {
    fail(config, fmt::format("zero points need an unsigned integer weight, not {}", w.name()));
  }
  if (config.group_size < 0 || (config.group_size > 0 && config.group_size % 16 != 0)) {
    fail(config,
         fmt::format("group_size {} (a multiple of 16, or 0 for per-channel)", config.group_size));
  }
  if (config.group_size > 0 && config.block_k % config.group_size != 0 &&
      config.group_size % config.block_k != 0) {
    fail(config, fmt::format("block_k {} and group_size {} must divide one another", config.block_k,
                             config.group_size));
  }
  for (const auto& [name, value] : {std::pair<const char*, int64_t>{"block_m", config.block_m},
                                    {"block_n", config.block_n},
                                    {"block_k", config.block_k},
                                    {"warps", config.warps}}) {
    if (!power_of_two(value)) fail(config, fmt::format("{} {} is not a power of two", name, value));
  }
  if (config.split_k < 1 || config.unroll < 1 || config.stages < 1) {
    fail(config, "split_k, unroll and stages must be at least 1");
  }
  if (config.persistent_blocks < 0) fail(config, "persistent_blocks must not be negative");
  if (config.min_blocks_per_sm < 0 ||
      config.min_blocks_per_sm * 32 * config.warps > vm::kMaxThreadsPerSm) {
    fail(config, fmt::format("min_blocks_per_sm {}: at most {} threads fit on an SM",
                             config.min_blocks_per_sm, vm::kMaxThreadsPerSm));
  }
  if (config.persistent_blocks > 0 &&
      (config.schedule != QuantSchedule::Decode || config.split_k != 1)) {
    fail(config, "persistent_blocks needs the decode schedule and split_k 1");
  }
  if (config.scale_after_mma) {
    const int64_t chunk = config.block_k * k_tiles_per_iteration(config);
    if (config.schedule != QuantSchedule::Decode ||
        (config.group_size > 0 && config.group_size % chunk != 0)) {
      fail(config, fmt::format("scale_after_mma needs the decode schedule and a group size that "
                               "is a multiple of the k extent of an iteration, {}",
                               chunk));
    }
  }
  if (config.finish_in_gemm &&
      (config.split_k < 2 || config.persistent_blocks > 0 || config.cluster_split)) {
    fail(config,
         "finish_in_gemm needs split_k above 1 (and no persistent_blocks or cluster_split)");
  }
  if (config.cluster_split &&
      (config.split_k < 2 || config.split_k > vm::kMaxClusterBlocks ||
       config.persistent_blocks > 0 || config.block_n % config.split_k != 0)) {
    fail(config, fmt::format("cluster_split needs split_k from 2 to {} dividing block_n {} (and no "
                             "persistent_blocks)",
                             vm::kMaxClusterBlocks, config.block_n));
  }
  if (config.copy_after_wait && (config.wgmma || config.stages < 2)) {
    fail(config, "copy_after_wait needs the mma.sync loop (no wgmma) and at least 2 stages");
  }
  if (config.weights_as_a && !config.wgmma && (!config.scale_after_mma || config.zero_points)) {
    fail(config, "weights_as_a needs scale_after_mma and no zero points (or wgmma)");
  }
  if (config.wgmma) {
    if (!config.weights_as_a || config.persistent_blocks > 0) {
      fail(config, "wgmma needs weights_as_a (and no persistent_blocks)");
    }
    if (config.schedule == QuantSchedule::Decode &&
        (!config.scale_after_mma || config.zero_points)) {
      fail(config, "wgmma decode needs scale_after_mma (and no zero points)");
    }
    if (config.warps % 4 != 0 || config.block_n % (16 * config.warps) != 0) {
      fail(config, fmt::format("wgmma: block_n {} must be a multiple of 16 * warps with whole "
                               "warpgroups ({} warps)",
                               config.block_n, config.warps));
    }
    if (config.block_k * config.unroll * config.activation.bits() != 8 * 128) {
      fail(config, fmt::format("wgmma: block_k * unroll = {} must hold 128 bytes of activations "
                               "(one swizzled row)",
                               config.block_k * config.unroll));
    }
    if (config.block_m % 8 != 0 || config.block_m > 256) {
      fail(config,
           fmt::format("wgmma: block_m {} must be a multiple of 8 up to 256", config.block_m));
    }
    if (config.stages < 3) {
      fail(config, fmt::format("wgmma: stages {} must be at least 3 (the copies run stages - 2 "
                               "iterations ahead)",
                               config.stages));
    }
  }
}

// Bit b of the loaded flat index lives on: a register slot bit, a lane bit or a warp bit.
Iter source_iter(const FragmentOrder& order, int bit, int length) {
  const int reg_bits = log2_of(order.per_thread);
  const int64_t extent = int64_t{1} << length;
  if (bit < reg_bits) return Iter{extent, int64_t{1} << bit, Axis::reg()};
  if (bit < reg_bits + 5) return Iter{extent, int64_t{1} << (bit - reg_bits), Axis::lane()};
  return Iter{extent, int64_t{1} << (bit - reg_bits - 5), Axis::warp()};
}

// The loaded runs as digits: maximal runs of source bits that stay consecutive in the
// destination and on one hardware axis. Ordered most significant first.
struct Digit {
  int source_low = 0;
  int destination_low = 0;
  int length = 0;
};

// A digit never crosses destination bit `boundary` (the weights_as_a kernel reorders the bits
// below and above it).
std::vector<Digit> digits_of(const FragmentOrder& order, int boundary) {
  const int reg_bits = log2_of(order.per_thread);
  auto axis_of = [&](int bit) { return bit < reg_bits ? 0 : (bit < reg_bits + 5 ? 1 : 2); };
  std::vector<Digit> digits;
  const int bits = static_cast<int>(order.destination_bit.size());
  for (int b = 0; b < bits; ++b) {
    const int dest = order.destination_bit[static_cast<size_t>(b)];
    if (!digits.empty()) {
      Digit& last = digits.back();
      if (last.source_low + last.length == b && last.destination_low + last.length == dest &&
          axis_of(last.source_low) == axis_of(b) && dest != boundary) {
        ++last.length;
        continue;
      }
    }
    digits.push_back({b, dest, 1});
  }
  std::reverse(digits.begin(), digits.end());
  return digits;
}

Layout replicated_over_warp_rows(std::vector<Iter> shard, const MmaTiling& tiling) {
  std::vector<Iter> replica;
  if (tiling.warps_m > 1) replica.push_back(Iter{tiling.warps_m, tiling.warps_n, Axis::warp()});
  return Layout(std::move(shard), std::move(replica));
}

// The layout of a [rows, block_n] tile of per-column values (scales, zero points) that lets
// repeat() spread it over B fragments without moving data: each thread holds the rows for the
// columns its fragments cover, replicated over the four lanes of a fragment column.
Layout column_values_layout(const MmaTiling& tiling, int64_t rows) {
  std::vector<Iter> shard;
  if (rows > 1) shard.push_back(Iter{rows, tiling.tiles_n(), Axis::reg()});
  if (tiling.warps_n > 1) shard.push_back(Iter{tiling.warps_n, 1, Axis::warp()});
  if (tiling.tiles_n() > 1) shard.push_back(Iter{tiling.tiles_n(), 1, Axis::reg()});
  shard.push_back(Iter{8, 4, Axis::lane()});
  std::vector<Iter> replica{Iter{4, 1, Axis::lane()}};
  if (tiling.warps_m > 1) replica.push_back(Iter{tiling.warps_m, tiling.warps_n, Axis::warp()});
  return Layout(std::move(shard), std::move(replica));
}

// The layout of a [1, block_n] row of per-column values that repeat() spreads over the C
// fragments without moving data: each thread holds the two columns of each of its atoms,
// replicated over the eight lanes of an atom column and over the warp rows.
Layout accumulator_columns_layout(const MmaTiling& tiling) {
  std::vector<Iter> shard;
  if (tiling.warps_n > 1) shard.push_back(Iter{tiling.warps_n, 1, Axis::warp()});
  if (tiling.tiles_n() > 1) shard.push_back(Iter{tiling.tiles_n(), 2, Axis::reg()});
  shard.push_back(Iter{4, 1, Axis::lane()});
  shard.push_back(Iter{2, 1, Axis::reg()});
  std::vector<Iter> replica{Iter{8, 4, Axis::lane()}};
  if (tiling.warps_m > 1) replica.push_back(Iter{tiling.warps_m, tiling.warps_n, Axis::warp()});
  return Layout(std::move(shard), std::move(replica));
}

// `layout` of a [rows, columns] tensor as the layout of its transpose (the same places).
Layout transpose_layout(const Layout& layout, int64_t rows, int64_t columns) {
  return layout::permute(layout, {rows, columns}, {1, 0});
}

// The layout of a [1, rows] row of per-row values of the transposed dot's C fragments (the
// weights_as_a scales: one per column of W) that repeat() spreads over its columns without moving
// data: each thread holds the rows of its atoms, replicated over the four lanes of an atom row.
Layout accumulator_rows_layout(const MmaTiling& tiling) {
  std::vector<Iter> shard;
  if (tiling.warps_m > 1) shard.push_back(Iter{tiling.warps_m, tiling.warps_n, Axis::warp()});
  if (tiling.tiles_m() > 1) shard.push_back(Iter{tiling.tiles_m(), 2, Axis::reg()});
  shard.push_back(Iter{2, 1, Axis::reg()});
  shard.push_back(Iter{8, 4, Axis::lane()});
  std::vector<Iter> replica{Iter{4, 1, Axis::lane()}};
  if (tiling.warps_n > 1) replica.push_back(Iter{tiling.warps_n, 1, Axis::warp()});
  return Layout(std::move(shard), std::move(replica));
}

// The layout of a [block_n, rows] tile of per-column values of W (scales, zero points) that
// repeat() spreads over the A fragments of the transposed dot's weights without moving data:
// each thread holds the values of the fragment rows it owns, replicated over the four lanes of
// a fragment row.
Layout fragment_rows_layout(const MmaTiling& tiling, int64_t rows) {
  std::vector<Iter> shard;
  if (tiling.warps_m > 1) shard.push_back(Iter{tiling.warps_m, tiling.warps_n, Axis::warp()});
  if (tiling.tiles_m() > 1) shard.push_back(Iter{tiling.tiles_m(), 2 * rows, Axis::reg()});
  shard.push_back(Iter{2, rows, Axis::reg()});
  shard.push_back(Iter{8, 4, Axis::lane()});
  if (rows > 1) shard.push_back(Iter{rows, 1, Axis::reg()});
  std::vector<Iter> replica{Iter{4, 1, Axis::lane()}};
  if (tiling.warps_n > 1) replica.push_back(Iter{tiling.warps_n, 1, Axis::warp()});
  return Layout(std::move(shard), std::move(replica));
}

}  // namespace

std::string QuantGemmConfig::name() const {
  return fmt::format(
      "quant_gemm_{}_{}_{}{}_{}_{}x{}x{}_w{}_s{}_u{}{}{}{}{}{}{}{}{}", weight.name(),
      activation.name(), group_size > 0 ? fmt::format("g{}", group_size) : "pc",
      zero_points ? "z" : "",
      schedule == QuantSchedule::Decode ? "decode" : fmt::format("prefill{}", stages), block_m,
      block_n, block_k, warps, split_k, unroll,
      persistent_blocks > 0 ? fmt::format("_p{}", persistent_blocks) : "",
      scale_after_mma ? "_sa" : "",
      min_blocks_per_sm > 0 ? fmt::format("_b{}", min_blocks_per_sm) : "",
      weights_as_a ? "_wa" : "", wgmma ? "_wg" : "", copy_after_wait ? "_cw" : "",
      finish_in_gemm ? "_fg" : "", cluster_split ? "_cs" : "");
}

DataType stored_weight_type(const QuantGemmConfig& config) {
  const DataType w = config.weight;
  if (w.is_integer() && !w.is_signed() && !config.zero_points) return DataType::sint(w.bits());
  return w;
}

uint64_t stored_code(const QuantGemmConfig& config, uint64_t code) {
  const DataType w = config.weight;
  if (stored_weight_type(config) == w) return code;
  return code ^ (uint64_t{1} << (w.bits() - 1));
}

int64_t FragmentOrder::tile_index(int64_t thread, int64_t position) const {
  const uint64_t x = static_cast<uint64_t>(thread * per_thread + position);
  int64_t d = 0;
  for (size_t b = 0; b < destination_bit.size(); ++b)
    if ((x >> b) & 1) d |= int64_t{1} << destination_bit[b];
  return d;
}

FragmentOrder fragment_order(const QuantGemmConfig& config) {
  validate(config);
  const bool transposed = config.weights_as_a;
  const int64_t dot_m = transposed ? config.block_n : config.block_m;
  const int64_t dot_n = transposed ? config.block_m : config.block_n;
  // wgmma: m16 rows of fragments over the warps (atom i of a warpgroup's four warps is one m64),
  // every warp across all of N.
  const auto tiling = config.wgmma
                          ? std::optional<MmaTiling>(MmaTiling{dot_m, dot_n, config.block_k,
                                                               config.warps, 1, config.activation})
                          : layout::choose_mma_tiling(dot_m, dot_n, config.block_k, config.warps,
                                                      config.activation);
  if (!tiling) {
    fail(config, fmt::format("a {}x{}x{} tile over {} warps does not divide into mma atoms", dot_m,
                             dot_n, config.block_k, config.warps));
  }
  // The weights' operand is replicated over the other warp dimension, which the kernel's layouts
  // of the loaded runs leave out with weights_as_a.
  if (transposed && tiling->warps_n != 1) {
    fail(config, fmt::format("weights_as_a: a {}-row activation tile over {} warps splits the "
                             "tile's rows over warps",
                             config.block_m, config.warps));
  }
  FragmentOrder order;
  order.tiling = *tiling;
  order.threads = 32 * (transposed ? tiling->warps_m : tiling->warps_n);
  order.per_thread = config.block_k * config.block_n / order.threads;
  const int weight_bits = stored_weight_type(config).bits();
  if (order.per_thread * weight_bits % 8 != 0) {
    fail(config, fmt::format("each thread's run of {} {}-bit weights is not a whole number of "
                             "bytes; a larger block_k or block_n makes it one",
                             order.per_thread, weight_bits));
  }
  const std::optional<int64_t> group =
      interleaved_group(stored_weight_type(config), config.activation);
  const bool interleave = group && order.per_thread % *group == 0;

  // Tile element of (thread, position), from the B fragment layout, or the A fragment layout of
  // the transposed tile (layout/mma_tiling.h; 16-bit activations: two elements per register).
  auto destination = [&](int64_t t, int64_t r) {
    int64_t f = r;  // the fragment slot
    if (interleave) {
      const int64_t g = *group;
      const int64_t within = r % g;
      f = r - within + 2 * (within % (g / 2)) + within / (g / 2);
    }
    const int64_t warp = t / 32;
    const int64_t g = (t % 32) / 4;
    const int64_t tt = t % 4;
    const int64_t e = f % 2;
    int64_t k = 0;
    int64_t n = 0;
    if (transposed) {  // slots: e, row half h, k half kh, k step s, row tile i
      const int64_t h = (f / 2) % 2;
      const int64_t kh = (f / 4) % 2;
      const int64_t s = (f / 8) % tiling->steps_k();
      const int64_t i = f / (8 * tiling->steps_k());
      k = s * 16 + kh * 8 + tt * 2 + e;
      n = ((warp * tiling->tiles_m() + i) * 2 + h) * 8 + g;
    } else {  // slots: e, k half kh, column tile j, k step s
      const int64_t kh = (f / 2) % 2;
      const int64_t j = (f / 4) % tiling->tiles_n();
      const int64_t s = f / (4 * tiling->tiles_n());
      k = s * 16 + kh * 8 + tt * 2 + e;
      n = (warp * tiling->tiles_n() + j) * 8 + g;
    }
    return k * config.block_n + n;
  };
  const int64_t total = order.threads * order.per_thread;
  const int bits = log2_of(total);
  for (int b = 0; b < bits; ++b) {
    const int64_t x = int64_t{1} << b;
    const int64_t d = destination(x / order.per_thread, x % order.per_thread);
    if (!power_of_two(d)) fail(config, "internal: the fragment order is not a bit permutation");
    order.destination_bit.push_back(log2_of(d));
  }
  for (int64_t x = 0; x < total; ++x) {
    if (order.tile_index(x / order.per_thread, x % order.per_thread) !=
        destination(x / order.per_thread, x % order.per_thread)) {
      fail(config, "internal: the fragment order is not a bit permutation");
    }
  }
  return order;
}

vm::Program quant_gemm(const QuantGemmConfig& config) {
  using namespace dsl;
  const FragmentOrder order = fragment_order(config);
  const MmaTiling& tiling = order.tiling;
  // weights_as_a: the dot is C^T[bn, bm] += dequant(W)^T[bn, bk] · A^T[bk, bm].
  const bool transposed = config.weights_as_a;
  const int64_t weight_warps = order.threads / 32;  // warps holding distinct weights
  const DataType act = config.activation;
  const int64_t bm = config.block_m;
  const int64_t bn = config.block_n;
  const int64_t bk = config.block_k;
  const bool per_channel = config.group_size == 0;
  const bool split = config.uses_workspace();
  const bool persistent = config.persistent_blocks > 0;
  // Scale rows a k tile spans, and the rows of W each covers.
  const int64_t scale_rows = (!per_channel && config.group_size < bk) ? bk / config.group_size : 1;
  const int64_t rows_per_scale = bk / scale_rows;

  KernelBuilder b(config.name());
  Pointer a = b.pointer("a", act);
  Pointer w = b.pointer("w", stored_weight_type(config));
  // Scale and zero-point rows move in 16-byte pieces: their pointers must be 16-byte aligned.
  Pointer s = b.pointer("s", act, 16);
  std::optional<Pointer> z;
  if (config.zero_points) z = b.pointer("z", act, 16);
  Pointer c = split ? b.pointer("workspace", f32, 4) : b.pointer("c", act, 4);
  std::optional<Pointer> counters, c_out;
  if (config.finish_in_gemm) {
    counters = b.pointer("counters", i32, 4);
    c_out = b.pointer("c", act, 4);
  }
  Expr m = b.scalar("m");
  Expr n = b.scalar("n", i32, bn);
  // K is a whole number of split iterations and of groups (launch-time checked).
  const int64_t k_divisor = std::lcm(bk * config.split_k * k_tiles_per_iteration(config),
                                     per_channel ? int64_t{1} : config.group_size);
  Expr k = b.scalar("k", i32, k_divisor);
  if (persistent) {
    b.launch({config.persistent_blocks, cdiv(m, bm), 1}, config.warps);
  } else {
    b.launch({n / bn, cdiv(m, bm), config.split_k}, config.warps);
  }
  if (config.cluster_split) b.cluster({1, 1, config.split_k});
  if (config.min_blocks_per_sm > 0) b.min_blocks_per_sm(config.min_blocks_per_sm);

  Tensor A = b.view(a, {m, k}, "A");
  // W moves as bytes (whole 16-byte pieces of packed codes of any width) and is read back as its
  // type in registers.
  const DataType stored = stored_weight_type(config);
  const int64_t run_bytes = order.per_thread * stored.bits() / 8;
  const int64_t tile_bytes = order.threads * run_bytes;
  Tensor W = b.byte_view(w, {k / bk, n / bn, tile_bytes}, "W");
  const Scalar groups = per_channel ? Scalar(1) : Scalar(k / config.group_size);
  Tensor S = b.view(s, {groups, n}, "S");
  std::optional<Tensor> Z;
  if (z) Z = b.view(*z, {groups, n}, "Z");
  Tensor C = b.view(c, {m, n}, split ? "workspace" : "C");
  Expr m0 = b.let("m0", b.block_id(1) * bm);
  // Persistent blocks move from column tile to column tile: n0 is updated per share.
  Expr n0 = b.let("n0", persistent ? Scalar(0) : Scalar(b.block_id(0) * bn));

  // The loaded runs → B fragments (A fragments of W^T): reshape into digits, permute them,
  // reshape to the tile. A weight operand is replicated over the warps of the other operand.
  auto weights_layout = [&](std::vector<Iter> shard) {
    return transposed ? Layout(std::move(shard))
                      : replicated_over_warp_rows(std::move(shard), tiling);
  };
  const int n_bits = log2_of(bn);
  const int k_bits = log2_of(bk);
  const std::vector<Digit> digits = digits_of(order, transposed ? n_bits : -1);
  // The digit's place in the fragment tile's flat index: k * bn + n, or n * bk + k.
  auto fragment_bit = [&](const Digit& digit) {
    const int d = digit.destination_low;
    if (!transposed) return d;
    return d < n_bits ? d + k_bits : d - n_bits;
  };
  Shape digit_shape;
  std::vector<Iter> digit_iters;
  for (const Digit& digit : digits) {
    digit_shape.push_back(int64_t{1} << digit.length);
    digit_iters.push_back(source_iter(order, digit.source_low, digit.length));
  }
  std::vector<int> by_destination(digits.size());
  for (size_t i = 0; i < digits.size(); ++i)
    by_destination[i] = static_cast<int>(i);
  std::sort(by_destination.begin(), by_destination.end(), [&](int x, int y) {
    return fragment_bit(digits[static_cast<size_t>(x)]) >
           fragment_bit(digits[static_cast<size_t>(y)]);
  });
  Shape permuted_shape;
  std::vector<Iter> permuted_iters;
  for (int i : by_destination) {
    permuted_shape.push_back(digit_shape[static_cast<size_t>(i)]);
    permuted_iters.push_back(digit_iters[static_cast<size_t>(i)]);
  }
  const Layout run_layout =
      weights_layout({Iter{weight_warps, 1, Axis::warp()}, Iter{32, 1, Axis::lane()},
                      Iter{order.per_thread, 1, Axis::reg()}});
  const Layout scale_layout = column_values_layout(tiling, scale_rows);
  // The W tiles are copied in pieces of 16 bytes (fewer where the tile's bytes require), thread
  // after thread: a warp's copy instruction reads 512 contiguous bytes, whole 32-byte sectors,
  // where copying each thread's own run would read every sector in two halves, in two
  // instructions (twice the L2 traffic).
  const int64_t piece = std::min<int64_t>(16, tile_bytes & -tile_bytes);
  const int64_t pieces = tile_bytes / piece;
  const int64_t copy_threads = std::min<int64_t>(32 * config.warps, pieces & -pieces);
  std::vector<Iter> copy_iters;
  if (config.unroll > 1)
    copy_iters.push_back(Iter{config.unroll, pieces / copy_threads * piece, Axis::reg()});
  if (pieces > copy_threads) copy_iters.push_back(Iter{pieces / copy_threads, piece, Axis::reg()});
  if (copy_threads > 32) copy_iters.push_back(Iter{copy_threads / 32, 1, Axis::warp()});
  copy_iters.push_back(Iter{std::min<int64_t>(copy_threads, 32), 1, Axis::lane()});
  copy_iters.push_back(Iter{piece, 1, Axis::reg()});
  const Layout w_copy_threads(std::move(copy_iters), {});

  // Everything a k tile reads goes through one ring of `stages` slots in shared memory, filled
  // by cp.async stages - 1 iterations ahead of the math: A ([block_m, block_k] per tile, zeros
  // past M, read as fragments with ldmatrix), the W runs (each thread reads its own run back
  // with 16-byte shared loads) and the tile's scale rows (and zero points). An iteration
  // covers `unroll` k tiles.
  const int64_t stages = config.stages;
  const int64_t unroll = config.unroll;
  const int64_t chunk = bk * unroll;  // the k extent of one iteration
  // ldmatrix reads a 16-byte unit of 8 consecutive rows: the swizzle XORs the rows' low three
  // bits into the unit index of a 128-byte window, so that the 8 units fall in distinct banks.
  // Rows of 256 bytes (two 64-deep k tiles per iteration) take the row bits from bit 8, not
  // bit 7 as the 128-byte pattern does (which left a 2-way conflict on every ldmatrix).
  const int64_t a_row_bytes = chunk * act.bits() / 8;
  const Swizzle swizzle = a_row_bytes >= 128  ? Swizzle(3, 4, log2_of(a_row_bytes) - 4)
                          : a_row_bytes >= 64 ? Swizzle::bytes64()
                                              : Swizzle::bytes32();
  // With wgmma, each row of A is one swizzled 128-byte row of k: wgmma's B operand K-major,
  // read in place (transposed: the tile holds B^T).
  Tensor a_ring = b.alloc_shared({stages * bm, chunk}, act, "a_ring", swizzle);
  // Each thread reads its run back 16 bytes at a time, and a quarter warp's 8 units must fall in
  // distinct banks. Runs of 2^p units put 8 / 2^p threads in a 128-byte window: the swizzle XORs
  // the bits of the thread index above that window into the unit index (runs of an odd number of
  // units need none; the tests check every weight type's pattern).
  const int run_unit_bits =
      run_bytes % 16 == 0 ? std::countr_zero(static_cast<uint64_t>(run_bytes / 16)) : 0;
  const Swizzle w_swizzle = run_unit_bits > 0
                                ? Swizzle(std::min(run_unit_bits, 3), 4, std::max(run_unit_bits, 3))
                                : Swizzle::none();
  Tensor w_ring = b.alloc_shared({stages * unroll, 1, tile_bytes}, u8, "w_ring", w_swizzle);
  // Per k tile, the scale rows it spans (one row when a group covers several tiles); the tiles
  // of an iteration that lies in one group share theirs (copied and read once).
  const int64_t scale_tiles = (per_channel || config.group_size % chunk == 0) ? 1 : unroll;
  Tensor s_ring = b.alloc_shared({stages * scale_tiles * scale_rows, bn}, act, "s_ring");
  std::optional<Tensor> z_ring;
  if (Z) z_ring = b.alloc_shared({stages * scale_tiles * scale_rows, bn}, act, "z_ring");
  auto scale_row_of = [&](const Expr& k0) {
    return per_channel ? Scalar(0) : Scalar(k0 / config.group_size);
  };
  // The copies of the iteration starting at k `start` into ring slot `slot`.
  auto copy_iteration = [&](const Scalar& start, const Scalar& slot) {
    const Expr k_start = start.to_expr();
    const Expr slot_index = slot.to_expr();
    // Only A's rows can leave the view (rows past M are zero-filled): every iteration's k range
    // lies inside [0, K) and every block's columns inside [0, N), which lets the GPU code drop
    // the bounds arithmetic of the other copies (the interpreter checks the promise).
    b.copy_async(a_ring, {slot_index * bm, 0}, A, {m0, k_start}, {bm, chunk}, {}, {1});
    b.copy_async(w_ring, {slot_index * unroll, 0, 0}, W, {k_start / bk, n0 / bn, 0},
                 {unroll, 1, tile_bytes}, w_copy_threads, {0, 1, 2});
    for (int64_t u = 0; u < scale_tiles; ++u) {
      const Expr row = (slot_index * scale_tiles + u) * scale_rows;
      const Scalar scale_row = scale_row_of(k_start + u * bk);
      b.copy_async(s_ring, {row, 0}, S, {scale_row, n0}, {scale_rows, bn}, {}, {0, 1});
      if (z_ring)
        b.copy_async(*z_ring, {row, 0}, *Z, {scale_row, n0}, {scale_rows, bn}, {}, {0, 1});
    }
  };

  // Tile u of ring slot `slot`: its B operand, dequantized, in fragment layout (unscaled with
  // scale_after_mma).
  auto weights_at = [&](const Expr& slot, int64_t u) {
    const Expr tile = slot * unroll + u;
    const Expr scale_row = (slot * scale_tiles + std::min(u, scale_tiles - 1)) * scale_rows;
    Tensor bytes = b.load_shared(w_ring, {tile, 0, 0}, {1, 1, tile_bytes}, "run_bytes");
    b.set_layout(bytes,
                 weights_layout({Iter{weight_warps, 1, Axis::warp()}, Iter{32, 1, Axis::lane()},
                                 Iter{run_bytes, 1, Axis::reg()}}));
    Tensor runs = b.bitcast(bytes, stored, {1, 1, order.threads, order.per_thread}, "runs");
    b.set_layout(runs, run_layout);
    Tensor values = b.cast(runs, act, "values");
    Tensor as_digits = b.reshape(values, digit_shape, "value_digits");
    b.set_layout(as_digits, weights_layout(digit_iters));
    Tensor permuted = b.permute(as_digits, by_destination, "fragment_digits");
    b.set_layout(permuted, weights_layout(permuted_iters));
    if (transposed) {
      Tensor fragments = b.reshape(permuted, {bn, bk}, "fragments");
      b.set_layout(fragments, tiling.a_layout());
      if (config.scale_after_mma) return fragments;  // no zero points (validate)
      // The rows of W^T's fragments take their columns' values: loaded as [rows, bn], read as
      // [bn, rows] and repeated along k.
      auto row_values = [&](const Tensor& ring, std::string_view name) {
        const Layout rows_layout = fragment_rows_layout(tiling, scale_rows);
        Tensor rows = b.load_shared(ring, {scale_row, 0}, {scale_rows, bn}, name);
        b.set_layout(rows, transpose_layout(rows_layout, bn, scale_rows));
        Tensor columns = b.permute(rows, {1, 0}, fmt::format("{}_by_row", name));
        b.set_layout(columns, rows_layout);
        Tensor spread = b.repeat(columns, rows_per_scale, 1, fmt::format("{}_tile", name));
        b.set_layout(spread, tiling.a_layout());
        return spread;
      };
      if (z_ring) fragments = fragments - row_values(*z_ring, "zeros");
      return fragments * row_values(s_ring, "scales");
    }
    Tensor fragments = b.reshape(permuted, {bk, bn}, "fragments");
    b.set_layout(fragments, tiling.b_layout());
    auto column_values = [&](const Tensor& ring, std::string_view name) {
      Tensor rows = b.load_shared(ring, {scale_row, 0}, {scale_rows, bn}, name);
      b.set_layout(rows, scale_layout);
      Tensor spread = b.repeat(rows, rows_per_scale, 0, fmt::format("{}_tile", name));
      b.set_layout(spread, tiling.b_layout());
      return spread;
    };
    if (z_ring) fragments = fragments - column_values(*z_ring, "zeros");
    if (config.scale_after_mma) return fragments;
    return fragments * column_values(s_ring, "scales");
  };

  // Before the loop: the copies of the first `count` iterations of [t_begin, t_end) into slots
  // 0, 1, …, one commit group each.
  auto copy_ahead = [&](const Expr& t_begin, const Expr& t_end, int64_t count) {
    for (int64_t step = 0; step < count; ++step) {
      auto guard = b.if_(t_begin + step < t_end);
      copy_iteration((t_begin + step) * chunk, step);
      guard.end();
      b.commit();
    }
  };

  // finish_in_gemm: the tile's last block to arrive reads the sums every split added (fetch_add
  // orders their additions before its loads), rounds them into C and leaves zeros behind.
  auto finish_tile = [&] {
    Tensor Counters = b.view(*counters, {cdiv(m, bm) * (n / bn)}, "Counters");
    const Expr tile = b.let("tile", b.block_id(1) * (n / bn) + b.block_id(0));
    const Expr arrived = b.fetch_add("arrived", Counters, {tile}, 1);
    auto last = b.if_(eq(arrived, config.split_k - 1));
    Tensor sums = b.load(C, {m0, n0}, {bm, bn}, "tile_sums");
    b.store(b.view(*c_out, {m, n}, "C"), {m0, n0}, b.cast(sums, act, "c_tile"));
    b.store(C, {m0, n0}, b.zeros({bm, bn}, f32, "cleared"));
    b.store(Counters, {tile}, b.zeros({1}, i32, "reset"));
  };
  // cluster_split: each split leaves its partial tile in its shared memory; after the cluster
  // barrier, split r adds column share r of every split's tile (split 0 first) and rounds it into
  // C; the second barrier keeps each block's tile alive until its peers have read it.
  auto add_cluster_partials = [&](const Tensor& result) {
    Tensor partial = b.alloc_shared({bm, bn}, f32, "partial");
    b.store_shared(partial, {0, 0}, result);
    b.cluster_barrier();
    const int64_t share = bn / config.split_k;
    const Expr c0 = b.let("share_column", b.block_id(2) * share);
    Tensor sum = b.load_peer_shared(partial, 0, {0, c0}, {bm, share}, "split_sum");
    for (int64_t peer = 1; peer < config.split_k; ++peer)
      b.assign(sum, sum + b.load_peer_shared(partial, peer, {0, c0}, {bm, share}));
    b.store(C, {m0, n0 + c0}, b.cast(sum, act, "c_share"));
    b.cluster_barrier();
  };
  // The accumulated tile of C (C^T with weights_as_a) into C, or added into the workspace.
  auto store_tile = [&](const Tensor& acc) {
    Tensor result = acc;
    if (transposed) {
      result = b.permute(acc, {1, 0}, "acc_rows");
      b.set_layout(result, transpose_layout(tiling.c_layout(), bn, bm));
    }
    if (split) {
      b.atomic_add(C, {m0, n0}, result);
      if (config.finish_in_gemm) finish_tile();
    } else if (config.cluster_split) {
      add_cluster_partials(result);
    } else {
      b.store(C, {m0, n0}, b.cast(result, act, "c_tile"));
    }
  };

  // acc += part · the group scales of ring slot `slot`, with weights_as_a: the scales of the rows
  // of C^T, each repeated along its row.
  auto scale_into = [&](const Tensor& acc, const Tensor& part, const Expr& slot) {
    Tensor scales = b.load_shared(s_ring, {slot, 0}, {1, bn}, "group_scales");
    b.set_layout(scales, accumulator_rows_layout(tiling));
    Tensor column = b.reshape(b.cast(scales, f32, "group_scales_f32"), {bn, 1}, "scale_column");
    b.set_layout(column, accumulator_rows_layout(tiling));
    Tensor spread = b.repeat(column, bm, 1, "group_scale_tile");
    b.set_layout(spread, tiling.c_layout());
    b.assign(acc, fma(part, spread, acc));
  };

  // The k iterations [t_begin, t_end) of column tile n0, accumulated and written. The loop runs
  // over iteration indices, not k: the addresses of its copies are then affine in the loop
  // variable, which LLVM turns into pointer increments.
  auto k_iterations = [&](const Expr& t_begin, const Expr& t_end) {
    const Shape acc_shape = transposed ? Shape{bn, bm} : Shape{bm, bn};
    Tensor acc = b.zeros(acc_shape, f32, "acc", tiling.c_layout());
    copy_ahead(t_begin, t_end, stages - 1);
    auto loop = b.for_range(t_begin, t_end, 1, "t");
    const Expr t = loop.var();
    const Expr step = b.let("step", t - t_begin);
    if (config.copy_after_wait) {
      b.wait(static_cast<int>(stages - 2));
      b.barrier();
      {
        const Expr ahead = b.let("t_ahead", t + (stages - 1));
        auto prefetch = b.if_(ahead < t_end);
        copy_iteration(ahead * chunk, b.let("slot_ahead", (step + (stages - 1)) % stages));
      }
      b.commit();
    } else {
      if (stages > 1) {
        const Expr ahead = b.let("t_ahead", t + (stages - 1));
        auto prefetch = b.if_(ahead < t_end);
        copy_iteration(ahead * chunk, b.let("slot_ahead", (step + (stages - 1)) % stages));
      } else {
        copy_iteration(t * chunk, 0);
      }
      b.commit();
      b.wait(static_cast<int>(stages - 1));
      b.barrier();
    }
    const Expr slot = b.let("slot", step % stages);
    // With scale_after_mma the iteration's products meet in `part`, which its group's scales
    // (a row in the C fragments' column order, repeated over the rows) multiply into acc.
    Tensor sums = config.scale_after_mma ? b.zeros(acc_shape, f32, "part", tiling.c_layout()) : acc;
    for (int64_t u = 0; u < unroll; ++u) {
      Tensor a_tile = b.load_shared(a_ring, {slot * bm, u * bk}, {bm, bk}, "a_tile");
      Tensor weights = weights_at(slot, u);
      if (transposed) {
        b.set_layout(a_tile, transpose_layout(tiling.b_layout(), bk, bm));
        Tensor a_columns = b.permute(a_tile, {1, 0}, "a_columns");
        b.set_layout(a_columns, tiling.b_layout());
        b.dot(sums, weights, a_columns);
      } else {
        b.dot(sums, a_tile, weights);
      }
    }
    if (transposed && config.scale_after_mma) {
      scale_into(acc, sums, slot);
    } else if (config.scale_after_mma) {
      Tensor scales = b.load_shared(s_ring, {slot, 0}, {1, bn}, "group_scales");
      b.set_layout(scales, accumulator_columns_layout(tiling));
      Tensor spread = b.repeat(b.cast(scales, f32, "group_scales_f32"), bm, 0, "group_scale_tile");
      b.set_layout(spread, tiling.c_layout());
      b.assign(acc, fma(sums, spread, acc));
    }
    // The slot is overwritten by a later iteration's copy: with copy_after_wait, by the next
    // iteration's, after its barrier; else here. (Persistent blocks start their next share's
    // copies right after the loop.)
    if (!config.copy_after_wait) b.barrier();
    loop.end();
    if (config.copy_after_wait) b.barrier();
    store_tile(acc);
  };

  // wgmma: the dot of k tile t runs while the threads dequantize the weights of t + 1, so a
  // slot is free again only two tiles later: the copies run stages - 2 tiles ahead, into the
  // slot of tile t - 2, whose dot the previous tile's wait_dots 1 has seen complete (and the
  // barrier, every warpgroup's). One barrier per tile; two tiles per iteration, whose weights
  // are different tensors (k_tiles_per_iteration): a dot's A registers stay untouched until a
  // wait has seen it complete.
  // With scale_after_mma (decode) the pair's dots sum into `part`, in one group; the next pair's
  // first tile is dequantized while they run, then waited for, and `part` scaled into acc (with
  // the scales of the pair's second tile, whose slot the next copy has not yet reached) and
  // cleared before that tile's dot.
  auto k_iterations_wgmma = [&](const Expr& t_begin, const Expr& t_end) {
    const bool scale_after = config.scale_after_mma;
    Tensor acc = b.zeros({bn, bm}, f32, "acc", tiling.c_layout());
    std::optional<Tensor> part;
    if (scale_after) part = b.zeros({bn, bm}, f32, "part", tiling.c_layout());
    copy_ahead(t_begin, t_end, stages - 2);
    auto loop = b.for_range(t_begin, t_end, 2, "t");
    for (int64_t u = 0; u < 2; ++u) {
      const Expr step = b.let(fmt::format("step{}", u), loop.var() + u - t_begin);
      b.wait(static_cast<int>(stages - 3));
      b.barrier();
      {
        const Expr ahead = b.let(fmt::format("t_ahead{}", u), loop.var() + (u + stages - 2));
        auto prefetch = b.if_(ahead < t_end);
        copy_iteration(ahead * chunk,
                       b.let(fmt::format("slot_ahead{}", u), (step + (stages - 2)) % stages));
      }
      b.commit();
      const Expr slot = b.let(fmt::format("slot{}", u), step % stages);
      Tensor weights = weights_at(slot, 0);
      if (scale_after && u == 0) {
        b.wait_dots(0);
        auto after_first = b.if_(step > 0);
        scale_into(acc, *part, (step - 1) % stages);
        after_first.end();
        // Cleared in place (an allocation is not assigned): 0 whatever it held, NaN included.
        const Expr zero = Expr::float_constant(0.0);
        b.assign(*part, where(eq(*part, *part), zero, zero));
      }
      b.dot_async(scale_after ? *part : acc, weights, a_ring, {slot * bm, 0},
                  /*transposed=*/true);
      if (!scale_after || u == 1) b.wait_dots(1);
    }
    loop.end();
    b.wait_dots(0);
    if (scale_after) scale_into(acc, *part, (t_end - 1 - t_begin) % stages);
    store_tile(acc);
  };

  const Expr iterations = b.let("iterations", k / chunk);  // per column tile
  if (persistent) {
    // Stream-K: the (column tile, iteration) pairs in order, an equal share per block, so that
    // every block does the same work whatever the number of column tiles (no partial last
    // wave). A share is cut where it crosses into the next column tile.
    const Expr pairs = b.let("pairs", (n / bn) * iterations);
    const Expr share = b.let("share", cdiv(pairs, config.persistent_blocks));
    Expr pair = b.let("pair", b.block_id(0) * share);
    const Expr pairs_end = b.let("pairs_end", min(pair + share, pairs));
    Expr t_begin = b.let("t_begin", 0);
    Expr t_end = b.let("t_end", 0);
    auto shares = b.while_(pair < pairs_end);
    b.assign(n0, (pair / iterations) * bn);
    b.assign(t_begin, pair % iterations);
    b.assign(t_end, min(iterations, t_begin + (pairs_end - pair)));
    k_iterations(t_begin, t_end);
    b.assign(pair, pair + (t_end - t_begin));
    shares.end();
  } else {
    const Expr k_chunk = b.let("k_chunk", k / config.split_k);
    const Expr t_begin = b.let("t_begin", b.block_id(2) * (k_chunk / chunk));
    if (config.wgmma) {
      // At least one iteration (K ≥ 2 * block_k: check_quant_gemm_shape), which the loop's
      // bound tells LLVM: a path that skips the loop would zero the accumulator registers outside
      // the wgmma pipeline, and ptxas then serializes every wgmma (its warning C7515).
      k_iterations_wgmma(t_begin, t_begin + max(k_chunk / chunk, Expr::int_constant(2)));
    } else {
      k_iterations(t_begin, t_begin + k_chunk / chunk);
    }
  }
  return b.finish();
}

int64_t quant_gemm_counters(const QuantGemmConfig& config, int64_t m, int64_t n) {
  return (m + config.block_m - 1) / config.block_m * (n / config.block_n);
}

vm::Program quant_gemm_finish(DataType activation) {
  using namespace dsl;
  constexpr int64_t block = 1024;
  KernelBuilder b(fmt::format("quant_gemm_finish_{}", activation.name()));
  Pointer workspace = b.pointer("workspace", f32);
  Pointer c = b.pointer("c", activation);
  Expr count = b.scalar("count");
  b.launch({cdiv(count, block)}, 4);
  // Launched as a dependent of the GEMM, waiting for it at its start: on an H200 (M=1, u4) the
  // call takes 35.4 us against 36.6 at K=8192 N=28672 and 9.7 against 10.2-10.7 at K=4096
  // N=6144. Letting the GEMM trigger it early (early_trigger) measured the same.
  b.dependent_launch();
  Tensor Wk = b.view(workspace, {count}, "Wk");
  Tensor C = b.view(c, {count}, "C");
  Expr i0 = b.let("i0", b.block_id(0) * block);
  Tensor sums = b.load(Wk, {i0}, {block}, "sums");
  b.store(C, {i0}, b.cast(sums, activation, "rounded"));
  b.store(Wk, {i0}, b.zeros({block}, f32, "cleared"));
  return b.finish();
}

void check_quant_gemm_shape(const QuantGemmConfig& config, int64_t m, int64_t n, int64_t k) {
  if (m < 1 || n < 1 || k < 1) {
    fail(config, fmt::format("shape M={} N={} K={}: every extent must be at least 1", m, n, k));
  }
  if (n % config.block_n != 0) {
    fail(config, fmt::format("N={} is not a multiple of block_n {}", n, config.block_n));
  }
  if (config.group_size > 0 && k % config.group_size != 0) {
    fail(config, fmt::format("K={} is not a multiple of the group size {}", k, config.group_size));
  }
  const int64_t k_step = config.block_k * config.split_k * k_tiles_per_iteration(config);
  if (k % k_step != 0) {
    fail(config, fmt::format("K={} is not a multiple of block_k * split_k * {} = {}", k,
                             config.wgmma ? "2 (wgmma)" : "unroll", k_step));
  }
  if (m > (int64_t{1} << 31) / std::max<int64_t>(k, n)) {
    fail(config, fmt::format("M={} is too large: M * max(N, K) must fit in 32 bits", m));
  }
}

QuantGemmConfig choose_quant_gemm_config(int64_t m, int64_t n, int64_t k, DataType weight,
                                         DataType activation, int64_t group_size, bool zero_points,
                                         int sm_count, int sm) {
  // What the call fixes; the schedules below start from it.
  const QuantGemmConfig call{.weight = weight,
                             .activation = activation,
                             .group_size = group_size,
                             .zero_points = zero_points};
  QuantGemmConfig config = call;
  // Runs of 16 bytes per thread (or multiples of it for odd widths): 128 / gcd(bits, 128)
  // elements, at least 32.
  const int64_t bits = weight.bits();
  int64_t per_thread = 128 / std::gcd<int64_t>(bits, 128);
  per_thread = std::max<int64_t>(per_thread, 32);
  if (m <= 64) {
    config.schedule = QuantSchedule::Decode;
    // Measured on an H200 (u4, same run): M=64 K=8192 N=28672 124.6 us with two 32-row tiles
    // (32x128x64, two k tiles per iteration) against 161.1 with one 64-row tile (64x64x32);
    // K=4096 78.5 against 90.0.
    config.block_m = m <= 16 ? 16 : 32;
    config.block_n = 64;  // 128 for weights of at most 4 bits, below
    config.warps = 4;
    config.stages = 3;
  } else {
    config.schedule = QuantSchedule::Prefill;
    // Measured on an H200 at M = 4096 (K=8192 N=28672): u4 7.6 ms with 64x128 tiles over 8
    // warps, 5.4 ms with 128x128 over 4 warps (each warp 64x64: every dequantized B fragment
    // feeds four mma rows); u8 is best with 128x128 over 8 warps and 3 stages (8.2 ms). Below
    // M = 512 the 64-row tile keeps more blocks in flight. In between (K=8192 N=28672, same
    // runs): M=128 u4 206.7 us with one 128-row tile over 4 warps against 276.2 with 64x128 over
    // 8, u8 265.5 over 8 warps against 361.7; M=256 u4 358.1 with 64x128 over 4 warps against
    // 480.2 over 8, u8 507.9 against 625.2.
    const bool large = m >= 512;
    const bool four_bit = weight.bits() == 4;
    const bool eight_bit = weight.bits() == 8;
    // 4- and 8-bit weights past M = 128: 64x128 tiles over 4 warps, each warp on 64 rows and its
    // own 32 columns, so every B fragment is dequantized once (taller tiles dequantize it once
    // per warp row). Measured on an H200 (same run, 64-deep k tiles against the 128x128 tiles
    // chosen before): u4 M=4096 K=4096 N=28672 2.59 against 2.72 ms, K=8192 N=10240 1.85
    // against 1.96; u8 3.07 against 3.55 and 2.19 against 2.56; M=1024 u4 0.67/0.49/0.16 against
    // 0.71/0.54/0.18 ms (K=4096 N=28672, K=8192 N=10240, K=4096 N=6144), u8 0.80/0.59/0.18
    // against 0.91/0.69/0.22; M=512 u4 348/254 against 380/348 us.
    const bool narrow_rows = (four_bit || eight_bit) ? m > 128 : !large;
    config.block_m = narrow_rows ? 64 : 128;
    config.block_n = 128;
    // Four warps for 4- and 8-bit weights: the longer runs of narrower and odd widths spill
    // there. (8-bit weights on 128x128 tiles over 8 warps took 164 registers after W moved as
    // bytes: one block per SM.)
    config.warps = four_bit || eight_bit ? 4 : 8;
    config.stages = large && weight.bits() > 4 && !eight_bit ? 3 : 4;
  }
  // The prefill kernel keeps more accumulators live: runs of at most 64 elements (1-bit runs
  // of 128 spilled on sm_90a).
  if (config.schedule == QuantSchedule::Prefill) per_thread = std::min<int64_t>(per_thread, 64);
  // block_k from the run length: runs of per_thread elements over 32 * warps_n threads.
  const auto tiling =
      layout::choose_mma_tiling(config.block_m, config.block_n, 16, config.warps, activation);
  if (!tiling) throw QuantGemmError("choose_quant_gemm_config: no mma tiling");
  config.block_k = std::clamp<int64_t>(per_thread * 32 * tiling->warps_n / config.block_n, 16, 256);
  // Prefill k tiles of 64 rows, 32 for 4-bit weights on 128-row tiles (u4 M=4096 K=8192
  // N=28672 on an H200: 5.01 ms against 5.57 with 64, on 128x128 tiles over 4 warps).
  if (config.schedule == QuantSchedule::Prefill) {
    config.block_k =
        std::max<int64_t>(config.block_k, weight.bits() == 4 && config.block_m == 128 ? 32 : 64);
  }
  // Measured on an H200 at M = 1 (K=8192 N=28672): u4 60.2 us with 64 columns and 3 stages,
  // 52.1 with 128 columns and 4 (each warp's A fragments serve twice the columns; a power-of-two
  // ring indexes without divisions); u8 is best at 64 columns and 3 stages (80.9 us against
  // 91.4), its runs being twice as long. The wider tile keeps block_k: runs twice as long.
  if (config.schedule == QuantSchedule::Decode && weight.bits() <= 4 && n % 128 == 0) {
    config.block_n = 128;
    config.stages = 4;
  }
  // Measured on an H200 at M = 1 and 16: two k tiles per iteration in a 2-slot ring, u4 49.3 us
  // against 51.9 at K=8192 N=28672 and 87.6 against 93.3 at N=57344; u8 76.9 against 81.6 (fewer
  // loop, barrier and copy-issue instructions per weight: ncu finds the kernel bound by
  // instruction issue and dependent chains, not by memory latency). Odd widths (u3, f6e3m2) ran
  // 25% slower so (their longer runs); small floats were not measured.
  // With 32-row tiles (M=32, 64) u8 keeps one tile: 99.8 against 115.4 us at M=32, 183.0 against
  // 217.4 at M=64 (K=8192 N=28672); u4 takes two: 67.4 against 77.2 us at M=32.
  if (config.schedule == QuantSchedule::Decode && weight.is_integer() &&
      (weight.bits() == 4 || (weight.bits() == 8 && config.block_m == 16)) &&
      k % (config.block_k * 2) == 0) {
    config.unroll = 2;
    config.stages = 2;
  }
  // Widths whose 16-byte runs make 256-deep decode tiles (1, 3, 5, 7 bits) take k tiles of one
  // group where each thread's run stays at least 16 bytes, so that the group scale can follow the
  // mma (below). Measured on an H200, u3 M=1 K=8192 N=28672: 47.2 us against 76.3 with 256-deep
  // tiles (same run).
  if (config.schedule == QuantSchedule::Decode && group_size > 0 && config.unroll == 1 &&
      config.block_k > group_size && config.block_k % group_size == 0) {
    const int64_t threads = 32 * config.warps;
    if (group_size * config.block_n / threads * bits >= 128) config.block_k = group_size;
  }
  if (config.schedule == QuantSchedule::Decode) {
    // Split K while the grid has fewer than eight blocks per SM (more resident warps hide more
    // of the kernel's latencies; measured on an H200: K=8192 N=28672 M=1 u4 went from 111 us to
    // 80 us with 4 splits, on an earlier kernel) and each split keeps at least 4 iterations.
    // 8-bit weights (64-column tiles) want sixteen: u8 M=1 K=8192 N=28672 75.2 us with 8 splits
    // against 81.3 with 4, N=57344 137.7 with 8 against 146.5 with 2. 16-row tiles (90
    // registers: 5 blocks per SM) want four. Measured on an H200 (u4 M=16, same run, best split
    // against the eight-per-SM rule's): K=28672 N=8192 38.8 us with 16 against 40.5 with 32,
    // K=8192 N=10240 18.9 with 8 against 21.0 with 16, K=4096 N=28672 24.6 with 4 against 27.0
    // with 8, K=8192 N=28672 39.3 with 4 against 40.4 with 8 (i4; u3 49.1 against 49.9, u2 38.3
    // against 39.1); the other shapes keep their split (K=8192 N=57344: 74.8 with 2, 74.5
    // with 4); f4e2m1 loses 2% (53.4 with 4 against 52.3 with 8). So do 4-bit integer weights
    // on 8-row tiles (64 registers: 8 blocks per SM), measured the same way (u4 M=1): K=8192
    // N=57344 59.6 us with 2 against 64.3 with 4, K=8192 N=28672 33.2 with 4 against 34.8 with
    // 8, K=8192 N=10240 16.1 with 8 against 17.1 with 16, K=4096 N=28672 19.9 with 4 against
    // 20.5 with 8, K=28672 N=8192 33.2 with 16 against 33.8 with 32; K=4096 N=6144 (8) and
    // K=14336 N=4096 (16) keep theirs.
    const int64_t chunk = config.block_k * config.unroll;
    const bool four_per_sm = m <= 16 && (m > 8 || (weight.is_integer() && bits == 4));
    const int64_t blocks_per_sm = weight.bits() == 8 ? 16 : (four_per_sm ? 4 : 8);
    while (n / config.block_n * config.split_k < blocks_per_sm * sm_count &&
           k % (chunk * config.split_k * 2) == 0 && k / (chunk * config.split_k * 2) >= 4) {
      config.split_k *= 2;
    }
    // 16-row 4-bit integer tiles split 16 ways or more take 256 columns at the same split (64
    // per warp: 128 registers, 4 blocks per SM; half the blocks, half the activation reads).
    // Measured on an H200 (u4 and i4 at M=12 and 16, three rounds): K=28672 N=8192 36.9-37.3 us
    // against 37.8-38.5; K=14336 N=4096 the same within noise. Fewer splits keep 128 columns
    // (K=8192 N=57344, 2 splits: 81.1 against 72.5; K=8192 N=10240, 8: 20.0 against 18.5).
    if (m > 8 && m <= 16 && weight.is_integer() && bits == 4 && config.split_k >= 16 &&
        n % 256 == 0) {
      config.block_n = 256;
    }
  }
  // The group scale after the mma where every iteration lies in one group. Measured on an H200
  // at M=1 (same run): u4 79.8 against 83.9 us at K=8192 N=57344 and within 1 us elsewhere;
  // f4e2m1 54.0 against 55.8; u8 with a request for 7 blocks per SM (ptxas then budgets 72
  // registers and uses 66, against 61 without it: 7 resident blocks instead of 8) 76.9 against
  // 81.3 us at K=8192 N=28672 and 140.8 against 146.5 at N=57344 (80.5 and 144.5 without it).
  if (config.schedule == QuantSchedule::Decode &&
      (group_size == 0 || group_size % (config.block_k * config.unroll) == 0)) {
    config.scale_after_mma = true;
    if (weight.bits() == 8) config.min_blocks_per_sm = 7;
    // The transposed dot, where its tiling keeps each warp on whole activation columns. Measured
    // on an H200 (same run, u4 unless said): M=1 K=8192 N=28672 44.9 against 47.8 us, N=57344
    // 76.7 against 79.8, K=4096 26.2 against 29.8; u8 N=57344 128.4 against 136.7; M=16 (16-row
    // tiles) 45.3 against 49.9 and u8 77.9 against 80.6; M=32 71.7 against 76.6, M=64 134.8
    // against 136.8 (K=4096: 79.1 against 91.5).
    const int64_t rows = m <= 8 ? 8 : config.block_m;
    const auto transposed =
        layout::choose_mma_tiling(config.block_n, rows, config.block_k, config.warps, activation);
    if (!zero_points && transposed && transposed->warps_n == 1) {
      config.weights_as_a = true;
      config.block_m = rows;
    }
    // 4-bit integer weights on 8-row tiles issue each copy after the iteration's wait (one
    // barrier per iteration). Measured on an H200 (u4 M=1, same call, two rounds): K=28672
    // N=8192 34.1/34.1 us against 35.2/34.9, K=8192 N=57344 60.6/60.4 against 61.5/61.7, K=8192
    // N=10240 17.1/17.2 against 17.5/17.4, K=4096 N=28672 equal (20.8); but u4 M=16 74.1-76.0
    // against 74.0-74.5 at N=57344 and 38.9-39.2 against 38.2-38.5 at K=28672 N=8192, and u8 M=1
    // 116.4 against 112.2 at N=57344: those keep the copy first.
    if (config.weights_as_a && config.block_m == 8 && weight.is_integer() && bits == 4 &&
        config.unroll == 2 && config.stages == 2) {
      config.copy_after_wait = true;
      // And split four ways or more, the last block of each tile finishes it (no second
      // launch). Measured on an H200 (u4 M=1, same call, two rounds): K=28672 N=8192 32.6/32.7
      // us against 33.2/33.1, K=4096 N=28672 19.6/19.6 against 19.8/19.9, K=14336 N=4096
      // 13.1/13.0 against 13.3/13.3, K=8192 N=10240 15.8/15.7 against 16.1/16.0; but K=8192
      // N=57344 (2 splits) 60.0/59.8 against 59.6/59.9, and every 16-row tile and u8 lose 1-3
      // us: each block waits at its end until its atomic additions are done, which at 16 rows
      // (2048 per block) costs more than the finishing kernel.
      config.finish_in_gemm = config.split_k >= 4;
    }
    // sm_90a, two splits of 4-bit integer weights: the pair of blocks as one cluster, adding
    // through shared memory. Measured on an H200 (u4, same call, two rounds): K=8192 N=57344 M=1
    // 58.3/58.0 us against 59.3/59.0, M=16 71.2/71.4 against 72.4/72.5. Clusters of 4 to 16
    // splits lose (M=16 K=28672 N=8192: 47.4 with 16, 45.4 with 8, 53.8 with 4, against 38.1;
    // K=4096 N=28672 25.1 against 24.0 with 4), and so does the wgmma decode (u8 M=16 N=57344
    // 134.1 against 117.1).
    if (sm == 90 && !config.wgmma && weight.is_integer() && bits == 4 && config.block_m <= 16 &&
        config.split_k == 2 && config.persistent_blocks == 0) {
      config.cluster_split = true;
    }
  }
  if (group_size > 0 && group_size < 16) {
    throw QuantGemmError(fmt::format("group size {} is below 16", group_size));
  }
  if (group_size > 0 && config.block_k % group_size != 0 && group_size % config.block_k != 0) {
    config.block_k = std::min(config.block_k, group_size);
  }
  // sm_90a, past M = 32: the transposed dot on wgmma, 128 columns, 64-deep k tiles (one 128-byte
  // swizzled row of activations), four stages. Measured on an H200 (same run, u4 K=8192
  // N=28672): M=4096 2.80 ms with 256-row tiles, 3.37 with 128, 5.34 on mma.sync; M=1024
  // 0.70 / 0.85 / 1.37; M=256 198 / 248 / 367 us; M=128 128-row tiles 127 us against 224. K=4096
  // N=6144: M=4096 315 / 376 / 605 us, M=1024 107 / 99 / 162, M=256 52 / 34 / 59. u8 alike.
  // Stages: 3 ran 20-40% slower (the copies one tile ahead), 5 and 6 within 5% of 4. M=64 on
  // 64-row tiles against the decode kernel (same run): u4 83.1 against 134.8 us at K=8192
  // N=28672, u8 95.6 against 173.1.
  // A 256-row tile does a 128-row tile's work twice in 0.83 of the time, but halves the blocks:
  // it is taken where it needs fewer than 1 / (2 * 0.83) of the waves (one block per SM either
  // way: 139 registers or more per thread).
  const int64_t wgmma_k = 1024 / activation.bits();
  const bool wgmma_fits = sm == 90 && n % 128 == 0 && k % (2 * wgmma_k) == 0;
  QuantGemmConfig wgmma = call;
  wgmma.weights_as_a = true;
  wgmma.wgmma = true;
  wgmma.block_n = 128;
  wgmma.block_k = wgmma_k;
  wgmma.stages = 4;
  if (wgmma_fits && m > 32 &&
      (group_size == 0 || group_size % wgmma_k == 0 || wgmma_k % group_size == 0)) {
    wgmma.schedule = QuantSchedule::Prefill;
    const auto blocks = [&](int64_t rows) { return n / 128 * ((m + rows - 1) / rows); };
    const auto waves = [&](int64_t rows) { return (blocks(rows) + sm_count - 1) / sm_count; };
    wgmma.block_m = m <= 64    ? 64
                    : m <= 128 ? 128
                               : (waves(256) * 166 < waves(128) * 100 ? 256 : 128);
    // K split while the blocks fill at most half the SMs: u4 M=64 K=14336 N=4096 27.5 us with 4
    // splits against 81.1 with none, K=4096 N=6144 18.1 with 2 against 26.8; M=256 K=14336
    // N=4096 60.7 with 2 against 102.0; but 80 blocks (M=256 K=8192 N=10240) ran 114.4 us with 2
    // against 96.3 with none (each split's sums go through the workspace).
    while (blocks(wgmma.block_m) * wgmma.split_k * 2 <= sm_count &&
           k % (2 * wgmma_k * wgmma.split_k * 2) == 0) {
      wgmma.split_k *= 2;
    }
    // Up to M = 128, one warpgroup (two m64 atoms of columns per warp) where the blocks fill the
    // SMs, else two. Measured on an H200 (same run, K=8192 N=28672, 224 blocks): M=64 u4 75.7 us
    // with 4 warps against 81.0 with 8, u8 85.6 against 88.8, u3 89.2 against 90.6; M=128 u4
    // 116.9 against 126.3, u8 128.1 against 133.6, u3 126.4 against 137.4. K=4096 N=6144 (96
    // blocks of split 2): M=128 u4 25.8 against 23.8, M=64 within 2%. Past M = 128 one warpgroup
    // lost everywhere (next run): u4 M=1024 K=4096 N=6144 117.6 against 99.0 on 128-row tiles,
    // and 256-row tiles spill (6x slower).
    wgmma.warps = m <= 128 && blocks(wgmma.block_m) >= sm_count ? 4 : 8;
    config = wgmma;
  } else if (wgmma_fits && (m > 16 || (m > 8 && weight.bits() >= 5)) && !zero_points &&
             group_size % (2 * wgmma_k) == 0) {
    // Decode on wgmma, 16- and 32-row tiles: each pair of k tiles sums into a partial product
    // that the group's scales multiply into the accumulator (scale_after_mma), 128 columns over
    // one warpgroup. K split while the blocks stay within 8 per SM and each keeps 8 k tiles.
    // Measured on an H200 (same run, K=8192 N=28672, against the mma.sync decode): M=32 u4
    // 55.7 us against 62.1, u8 82.7 against 88.7, u3 67.5 against 78.3, f6e3m2 68.2 against
    // 81.8, f4e2m1 63.4 against 75.8, u1 51.1 against 56.6; M=16 u8 63.1 against 65.9, f6e3m2
    // 55.4 against 59.7, f8e4m3 62.5 against 68.2, u5 56.7 against 62.3, but u4 43.5 against
    // 42.6, u3 53.6 against 50.9, u2 39.8 against 39.2 (mma.sync kept for at most 4 bits).
    // K=4096 N=6144 M=16, 8 splits: u4 10.4 against 10.8, u8 11.8 against 12.9.
    wgmma.schedule = QuantSchedule::Decode;
    wgmma.scale_after_mma = true;
    wgmma.warps = 4;
    wgmma.block_m = m <= 16 ? 16 : 32;
    while (n / 128 * wgmma.split_k * 2 <= 8 * sm_count &&
           k % (2 * wgmma_k * wgmma.split_k * 2) == 0 && k / (wgmma_k * wgmma.split_k * 2) >= 8) {
      wgmma.split_k *= 2;
    }
    config = wgmma;
  }
  check_quant_gemm_shape(config, m, n, k);
  fragment_order(config);
  return config;
}

}  // namespace nibble::examples
