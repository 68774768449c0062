// Weight-only quantization for the quantized GEMM: f16/bf16 (or any real) weights W[K, N] →
// packed codes of a narrow type + one scale per group of `group_size` consecutive k in each
// column n (+ optional zero points), and the exact dequantization the kernels must reproduce.
//
//   dequant(W)[k, n] = (decode(code[k, n]) - zero[g, n]) · scale[g, n],   g = k / group_size
//
// How the scale of a group is chosen, by weight type:
//   signed integers iB        symmetric: scale = max|w| / (2^(B-1) - 1), zero = 0
//   unsigned integers uB      symmetric around the implicit zero point 2^(B-1):
//                             scale = max|w| / (2^(B-1) - 1), zero = 2^(B-1);
//                             with zero_points: asymmetric, scale = (max - min) / (2^B - 1),
//                             zero = round(-min / scale) clamped to [0, 2^B - 1]
//   floats (f4e2m1, f8e4m3…)  scale = max|w| / largest finite value, zero = 0
// Scales (and zero points) are rounded to the scale type (f16 or bf16) first, and the codes are
// computed with the rounded scale, so dequant() is exactly what a kernel computes from the stored
// bytes. A group of zeros gets scale 1. Codes are packed row-major over [K, N] in the bit-stream
// order of dtypes/packing.h; the GEMM's re-packer reorders them for the tensor-core fragments.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

#include "dtypes/dtype.h"

namespace nibble::examples {

struct QuantizeOptions {
  dtypes::DataType weight_type = dtypes::DataType::uint(4);
  int64_t group_size = 128;  // 0: one group per column (per-channel)
  dtypes::DataType scale_type = dtypes::DataType::f16();
  bool zero_points = false;  // unsigned integer types only
};

struct QuantizedWeight {
  dtypes::DataType weight_type = dtypes::DataType::uint(4);
  dtypes::DataType scale_type = dtypes::DataType::f16();
  int64_t k = 0;
  int64_t n = 0;
  int64_t group_size = 0;        // never 0 here: per-channel is group_size == k
  std::vector<uint8_t> packed;   // [K, N] codes, row-major bit stream
  std::vector<uint16_t> scales;  // [K / group_size, N] codes of scale_type
  std::vector<uint16_t> zeros;  // same shape, codes of scale_type; empty when zero is 0 or implicit
  double implicit_zero = 0;     // 2^(B-1) for symmetric unsigned types

  int64_t groups() const { return k / group_size; }
  double scale(int64_t group, int64_t column) const;
  double zero(int64_t group, int64_t column) const;
  uint64_t code(int64_t row, int64_t column) const;
};

class QuantizeError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// Throws QuantizeError for: K not a multiple of the group size, a weight type wider than 8 bits
// or not an integer/float, a scale type other than f16/bf16, zero points for a type that is not
// unsigned, a NaN or infinite weight (naming its [k, n]), or a size mismatch.
QuantizedWeight quantize(std::span<const double> weights, int64_t k, int64_t n,
                         const QuantizeOptions& options);

// The exact dequantized weights [K, N], row-major.
std::vector<double> dequantize(const QuantizedWeight& weight);

// C[M, N] = A[M, K] · dequant(W) in double precision: the reference the kernels are checked
// against.
std::vector<double> reference_matmul(std::span<const double> a, int64_t m,
                                     const QuantizedWeight& weight);

// How far a kernel's C[i, j] may be from reference_matmul: the dequantized weights and C are
// rounded to the activation type (f16 or bf16) and the products are summed in f32, so the
// error is bounded by 2·eps·Σ|a·w| + eps·|C| (+ 1e-6 for sums near zero), eps the unit round-off
// of the activation type. `magnitude` is Σ_k |a[i, k]·w[k, j]|.
double matmul_tolerance(dtypes::DataType activation, double magnitude, double reference);

}  // namespace nibble::examples
