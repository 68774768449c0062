// Every example kernel on the interpreter, at small and odd sizes (so the masks at the borders
// matter), against a plain C++ reference on seeded random inputs.
//
// Tolerances, per output type:
//   vector_add (f32, f16)   exact: one operation, rounded once in both.
//   gemm, gemv_u4 (f16 out) exact: products of f16 values are exact in f32, the reference
//                           accumulates in f32 in k order with one rounding per step (the order
//                           the interpreter documents for dot), then rounds to f16 once.
//   softmax (f32)           |got - want| <= 1e-5 * |want| + 1e-7: the reductions add in the
//                           order of the register layout (within threads, then across them),
//                           the reference in row order.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "examples/gemm.h"
#include "examples/gemv_u4.h"
#include "examples/softmax.h"
#include "examples/vector_add.h"
#include "vm/equality.h"
#include "vm/interpreter.h"
#include "vm/parser.h"
#include "vm/printer.h"

namespace nibble {
namespace {

using dtypes::DataType;
using vm::Argument;
using vm::HostBuffer;

const DataType kF16 = DataType::f16();

uint16_t to_f16(double value) {
  return static_cast<uint16_t>(dtypes::encode(kF16, value));
}
double from_f16(uint16_t bits) {
  return dtypes::decode(kF16, bits);
}

template <typename T>
HostBuffer buffer(std::vector<T>& data) {
  return HostBuffer{data.data(), data.size() * sizeof(T)};
}

// Uniform random f16 values in [lo, hi), as bits.
std::vector<uint16_t> random_f16(size_t count, double lo, double hi, std::mt19937& rng) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<uint16_t> values(count);
  for (uint16_t& value : values)
    value = to_f16(dist(rng));
  return values;
}

// The printed form parses back to the same program.
void check_round_trip(const vm::Program& program) {
  const std::string text = vm::print(program);
  INFO(text);
  CHECK(vm::parse_program(text) == program);
}

TEST_CASE("vector_add f32 matches the reference, tail masked", "[frontend][examples]") {
  const vm::Program program = examples::vector_add({.dtype = DataType::f32(), .block = 128});
  check_round_trip(program);
  for (int64_t n : {1, 127, 128, 1001}) {
    std::mt19937 rng(static_cast<uint32_t>(n));
    std::uniform_real_distribution<float> dist(-10, 10);
    std::vector<float> x(static_cast<size_t>(n)), y(x.size()), out(x.size(), -1.0f);
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = dist(rng);
      y[i] = dist(rng);
    }
    const std::vector<Argument> args = {buffer(x), buffer(y), buffer(out), n};
    vm::interpret(program, args);
    for (size_t i = 0; i < x.size(); ++i) {
      INFO("n = " << n << ", i = " << i);
      REQUIRE(out[i] == x[i] + y[i]);
    }
  }
}

TEST_CASE("vector_add f16 matches the reference, tail masked", "[frontend][examples]") {
  const vm::Program program = examples::vector_add({.dtype = kF16, .block = 256, .warps = 2});
  check_round_trip(program);
  const int64_t n = 333;
  std::mt19937 rng(7);
  std::vector<uint16_t> x = random_f16(static_cast<size_t>(n), -100, 100, rng);
  std::vector<uint16_t> y = random_f16(static_cast<size_t>(n), -100, 100, rng);
  std::vector<uint16_t> out(static_cast<size_t>(n), 0xffff);
  const std::vector<Argument> args = {buffer(x), buffer(y), buffer(out), n};
  vm::interpret(program, args);
  for (size_t i = 0; i < x.size(); ++i) {
    INFO("i = " << i);
    REQUIRE(out[i] == to_f16(from_f16(x[i]) + from_f16(y[i])));
  }
}

TEST_CASE("softmax matches the reference over several column tiles", "[frontend][examples]") {
  struct Case {
    examples::SoftmaxConfig config;
    int64_t rows;
    int64_t cols;
  };
  const Case cases[] = {
      {{.block_rows = 4, .block_cols = 128, .warps = 4}, 7, 300},  // 3 column tiles, 2 row blocks
      {{.block_rows = 2, .block_cols = 64, .warps = 2}, 5, 50},    // one partial tile
      {{.block_rows = 1, .block_cols = 32, .warps = 1}, 3, 96},    // exact tiles
  };
  for (const Case& c : cases) {
    const vm::Program program = examples::softmax(c.config);
    check_round_trip(program);
    std::mt19937 rng(static_cast<uint32_t>(c.rows * 1000 + c.cols));
    std::uniform_real_distribution<float> dist(-8, 8);
    std::vector<float> x(static_cast<size_t>(c.rows * c.cols));
    for (float& value : x)
      value = dist(rng);
    std::vector<float> y(x.size(), -1.0f);
    const std::vector<Argument> args = {buffer(x), buffer(y), c.rows, c.cols};
    vm::interpret(program, args);
    for (int64_t r = 0; r < c.rows; ++r) {
      const float* row = &x[static_cast<size_t>(r * c.cols)];
      double row_max = -INFINITY;
      for (int64_t j = 0; j < c.cols; ++j)
        row_max = std::max<double>(row_max, row[j]);
      double sum = 0;
      for (int64_t j = 0; j < c.cols; ++j)
        sum += std::exp(row[j] - row_max);
      for (int64_t j = 0; j < c.cols; ++j) {
        const double want = std::exp(row[j] - row_max) / sum;
        const double got = y[static_cast<size_t>(r * c.cols + j)];
        INFO("rows " << c.rows << ", cols " << c.cols << ": element [" << r << ", " << j << "]");
        REQUIRE(std::abs(got - want) <= 1e-5 * std::abs(want) + 1e-7);
      }
    }
  }
}

// C = A·B with f32 accumulation in k order and one f16 rounding at the end.
std::vector<uint16_t> gemm_reference(const std::vector<uint16_t>& a, const std::vector<uint16_t>& b,
                                     int64_t m, int64_t n, int64_t k) {
  std::vector<uint16_t> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        acc += static_cast<float>(from_f16(a[static_cast<size_t>(i * k + p)])) *
               static_cast<float>(from_f16(b[static_cast<size_t>(p * n + j)]));
      }
      c[static_cast<size_t>(i * n + j)] = to_f16(acc);
    }
  }
  return c;
}

TEST_CASE("gemm matches the reference at odd sizes (K a multiple of block_k)",
          "[frontend][examples]") {
  struct Case {
    examples::GemmConfig config;
    int64_t m, n, k;
  };
  const Case cases[] = {
      {{.block_m = 32, .block_n = 32, .block_k = 16, .stages = 2, .warps = 4}, 37, 40, 48},
      {{.block_m = 16, .block_n = 32, .block_k = 16, .stages = 1, .warps = 2}, 20, 8, 32},
      {{.block_m = 32, .block_n = 16, .block_k = 16, .stages = 3, .warps = 4}, 33, 24, 80},
      // K shorter than the prologue: its second step is skipped.
      {{.block_m = 32, .block_n = 16, .block_k = 16, .stages = 3, .warps = 4}, 33, 24, 16},
      {{.block_m = 32,
        .block_n = 64,
        .block_k = 32,
        .stages = 2,
        .warps = 4,
        .swizzle = layout::Swizzle::bytes64()},
       40,
       72,
       64},
  };
  for (const Case& c : cases) {
    const vm::Program program = examples::gemm(c.config);
    check_round_trip(program);
    std::mt19937 rng(static_cast<uint32_t>(c.m * 10000 + c.n * 100 + c.k));
    std::vector<uint16_t> a = random_f16(static_cast<size_t>(c.m * c.k), -2, 2, rng);
    std::vector<uint16_t> b = random_f16(static_cast<size_t>(c.k * c.n), -2, 2, rng);
    std::vector<uint16_t> out(static_cast<size_t>(c.m * c.n), 0xffff);
    const std::vector<Argument> args = {buffer(a), buffer(b), buffer(out), c.m, c.n, c.k};
    vm::interpret(program, args);
    const std::vector<uint16_t> want = gemm_reference(a, b, c.m, c.n, c.k);
    for (size_t i = 0; i < want.size(); ++i) {
      INFO("m " << c.m << ", n " << c.n << ", k " << c.k << ", stages " << c.config.stages
                << ": element [" << i / static_cast<size_t>(c.n) << ", "
                << i % static_cast<size_t>(c.n) << "] = " << from_f16(out[i]) << ", want "
                << from_f16(want[i]));
      REQUIRE(from_f16(out[i]) == from_f16(want[i]));
    }
  }
}

TEST_CASE("gemm rejects a K that is not a multiple of block_k and an N not a multiple of 8",
          "[frontend][examples]") {
  const vm::Program program = examples::gemm({.block_m = 16, .block_n = 32, .block_k = 16});
  std::vector<uint16_t> a(16 * 20), b(20 * 32), out(16 * 32);
  const std::vector<Argument> args = {buffer(a),   buffer(b),   buffer(out),
                                      int64_t{16}, int64_t{32}, int64_t{20}};
  REQUIRE_THROWS_WITH(vm::interpret(program, args), Catch::Contains("20 is not a multiple of 16"));
  const std::vector<Argument> ragged_n = {buffer(a),   buffer(b),   buffer(out),
                                          int64_t{16}, int64_t{30}, int64_t{16}};
  REQUIRE_THROWS_WITH(vm::interpret(program, ragged_n),
                      Catch::Contains("30 is not a multiple of 8"));
}

TEST_CASE("gemv_u4 matches the reference at odd sizes", "[frontend][examples]") {
  struct Case {
    examples::GemvConfig config;
    int64_t n, k;
  };
  const Case cases[] = {
      {{.group = 64, .block_n = 32, .block_k = 128, .warps = 4}, 77, 320},  // 2 groups a tile
      {{.group = 128, .block_n = 64, .block_k = 64, .warps = 4}, 50, 256},  // 2 tiles a group
      {{.group = 32, .block_n = 16, .block_k = 32, .warps = 1}, 19, 96},
  };
  for (const Case& c : cases) {
    const vm::Program program = examples::gemv_u4(c.config);
    check_round_trip(program);
    const int64_t group = c.config.group;
    std::mt19937 rng(static_cast<uint32_t>(c.n * 1000 + c.k));
    std::uniform_int_distribution<int> code(0, 15);
    std::vector<uint16_t> x = random_f16(static_cast<size_t>(c.k), -1, 1, rng);
    std::vector<uint64_t> codes(static_cast<size_t>(c.k * c.n));
    for (uint64_t& value : codes)
      value = static_cast<uint64_t>(code(rng));
    std::vector<uint8_t> w = dtypes::pack(DataType::uint(4), codes);
    std::vector<uint16_t> s = random_f16(static_cast<size_t>(c.k / group * c.n), 0.001, 0.05, rng);
    std::vector<uint16_t> y(static_cast<size_t>(c.n), 0xffff);
    const std::vector<Argument> args = {buffer(x), buffer(w), buffer(s), buffer(y),
                                        c.n,       c.k,       group};
    vm::interpret(program, args);
    for (int64_t j = 0; j < c.n; ++j) {
      float acc = 0;
      for (int64_t p = 0; p < c.k; ++p) {
        const double scale = from_f16(s[static_cast<size_t>(p / group * c.n + j)]);
        const double centered = static_cast<double>(codes[static_cast<size_t>(p * c.n + j)]) - 8;
        const double weight = from_f16(to_f16(centered * scale));
        acc += static_cast<float>(from_f16(x[static_cast<size_t>(p)])) * static_cast<float>(weight);
      }
      INFO("n " << c.n << ", k " << c.k << ", group " << group << ": y[" << j << "] = "
                << from_f16(y[static_cast<size_t>(j)]) << ", want " << from_f16(to_f16(acc)));
      REQUIRE(from_f16(y[static_cast<size_t>(j)]) == from_f16(to_f16(acc)));
    }
  }
}

}  // namespace
}  // namespace nibble
