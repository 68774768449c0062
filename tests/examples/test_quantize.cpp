// Weight quantization: error bounds per type, exactness of the stored form, bad input.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "dtypes/codec.h"
#include "dtypes/dtype.h"
#include "examples/quant/quantize.h"

using namespace nibble;
using dtypes::DataType;
using examples::QuantizeOptions;

namespace {

std::vector<double> random_weights(int64_t k, int64_t n, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<double> normal(0.0, 0.02);
  std::vector<double> w(static_cast<size_t>(k * n));
  for (double& v : w)
    v = normal(random);
  return w;
}

}  // namespace

TEST_CASE("integer quantization is within half a step", "[examples][quantize]") {
  const int64_t k = 256, n = 24;
  const std::vector<double> w = random_weights(k, n, 1);
  for (const char* type : {"u2", "u3", "u4", "u5", "u8", "i2", "i4", "i7", "i8"}) {
    for (bool zeros : {false, true}) {
      if (zeros && type[0] == 'i') continue;
      for (int64_t group : {32, 64, 128, 0}) {
        QuantizeOptions options{DataType::parse(type), group, DataType::f16(), zeros};
        const examples::QuantizedWeight q = examples::quantize(w, k, n, options);
        INFO(type << " group " << group << " zeros " << zeros);
        REQUIRE(q.groups() == k / q.group_size);
        const std::vector<double> back = examples::dequantize(q);
        for (int64_t i = 0; i < k * n; ++i) {
          const double scale = q.scale(i / n / q.group_size, i % n);
          // Half a step of rounding; with zero points the clamped zero may cost up to one step at
          // the edges.
          REQUIRE(std::fabs(back[static_cast<size_t>(i)] - w[static_cast<size_t>(i)]) <=
                  scale * (zeros ? 1.0 : 0.5) + 1e-12);
        }
      }
    }
  }
}

TEST_CASE("float quantization follows the type's grid", "[examples][quantize]") {
  const int64_t k = 128, n = 16;
  const std::vector<double> w = random_weights(k, n, 2);
  for (const char* type : {"f4e2m1", "f6e3m2", "f6e2m3", "f8e4m3", "f8e5m2", "f5e2m2"}) {
    for (const char* scale_type : {"f16", "bf16"}) {
      const DataType weight_type = DataType::parse(type);
      const examples::QuantizedWeight q =
          examples::quantize(w, k, n, {weight_type, 32, DataType::parse(scale_type), false});
      const std::vector<double> back = examples::dequantize(q);
      // Relative to the group maximum, the error is at most half the spacing at the top binade.
      const double top_spacing = std::ldexp(1.0, -weight_type.mantissa_bits() - 1);
      for (int64_t i = 0; i < k * n; ++i) {
        const double group_max = q.scale(i / n / 32, i % n) * dtypes::largest_finite(weight_type);
        INFO(type << " " << scale_type << " element " << i);
        REQUIRE(std::fabs(back[static_cast<size_t>(i)] - w[static_cast<size_t>(i)]) <=
                group_max * top_spacing * 1.01 + 1e-12);
      }
    }
  }
}

TEST_CASE("the stored form is exactly what dequantize reads", "[examples][quantize]") {
  const int64_t k = 64, n = 8;
  const examples::QuantizedWeight q = examples::quantize(
      random_weights(k, n, 3), k, n, {DataType::uint(4), 32, DataType::bf16(), true});
  // Re-quantizing the dequantized weights reproduces the same codes, scales and zeros.
  const examples::QuantizedWeight again = examples::quantize(
      examples::dequantize(q), k, n, {DataType::uint(4), 32, DataType::bf16(), true});
  CHECK(again.packed == q.packed);
  CHECK(again.scales == q.scales);
  CHECK(again.zeros == q.zeros);
  CHECK(q.packed.size() == static_cast<size_t>(k * n / 2));
  // Symmetric u4: the implicit zero point is 8 and no zeros are stored.
  const examples::QuantizedWeight symmetric = examples::quantize(
      random_weights(k, n, 3), k, n, {DataType::uint(4), 32, DataType::f16(), false});
  CHECK(symmetric.zeros.empty());
  CHECK(symmetric.zero(0, 0) == 8.0);
}

TEST_CASE("reference matmul in double", "[examples][quantize]") {
  const int64_t k = 32, n = 4, m = 3;
  const examples::QuantizedWeight q = examples::quantize(
      random_weights(k, n, 4), k, n, {DataType::sint(8), 0, DataType::f16(), false});
  std::vector<double> a(static_cast<size_t>(m * k));
  for (size_t i = 0; i < a.size(); ++i)
    a[i] = static_cast<double>(i % 7) - 3;
  const std::vector<double> c = examples::reference_matmul(a, m, q);
  const std::vector<double> w = examples::dequantize(q);
  double expected = 0;
  for (int64_t inner = 0; inner < k; ++inner)
    expected += a[static_cast<size_t>(2 * k + inner)] * w[static_cast<size_t>(inner * n + 1)];
  CHECK(c[static_cast<size_t>(2 * n + 1)] == Approx(expected).epsilon(1e-15));
}

TEST_CASE("quantize rejects bad input with a clear message", "[examples][quantize][errors]") {
  using Catch::Contains;
  std::vector<double> w = random_weights(100, 4, 5);
  CHECK_THROWS_WITH(examples::quantize(w, 100, 4, {DataType::uint(4), 32, DataType::f16(), false}),
                    Contains("K = 100 is not a multiple of the group size 32"));
  CHECK_THROWS_WITH(examples::quantize(w, 100, 4, {DataType::f16(), 0, DataType::f16(), false}),
                    Contains("weight type f16 has 16 bits"));
  CHECK_THROWS_WITH(examples::quantize(w, 100, 4, {DataType::uint(4), 0, DataType::f32(), false}),
                    Contains("scales must be f16 or bf16, not f32"));
  CHECK_THROWS_WITH(examples::quantize(w, 100, 4, {DataType::sint(4), 0, DataType::f16(), true}),
                    Contains("zero points are for unsigned integer weights, not i4"));
  CHECK_THROWS_WITH(examples::quantize(w, 99, 4, {DataType::uint(4), 0, DataType::f16(), false}),
                    Contains("400 weights given for a [99, 4] matrix"));
  w[13] = std::nan("");
  CHECK_THROWS_WITH(examples::quantize(w, 100, 4, {DataType::uint(4), 0, DataType::f16(), false}),
                    Contains("weight [3, 1] is nan"));
}
