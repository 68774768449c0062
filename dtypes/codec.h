// Exact value semantics of every DataType on the CPU: bits <-> double.
//
// decode(t, bits) is exact for every type up to 32 bits and for f64; i64 values beyond 2^53
// round to the nearest double. Bits above t.bits() must be zero.
//
// encode(t, value) rounds to nearest, ties to even, and then:
//   - floats with inf (f16, bf16, f32, f64, f8e5m2): overflow rounds to ±inf as IEEE does;
//   - floats without inf (f8e4m3 and the generic fNeXmY): overflow, and ±inf, saturate to the
//     largest finite value of the same sign;
//   - integers: the result is clamped to [min, max];
//   - NaN encodes to the type's canonical NaN (sign kept) where the type has NaN, and throws
//     DTypeError for types without NaN (all integers, f6e3m2, f6e2m3, f4e2m1, fNeXmY): a NaN
//     in data bound for such a type is a bug upstream, not something to hide.
//   - -0.0 encodes to the negative zero of floats and to 0 for integers.
#pragma once

#include <cstdint>

#include "dtypes/dtype.h"

namespace nibble::dtypes {

double decode(DataType type, uint64_t bits);
uint64_t encode(DataType type, double value);

// Value facts of a type (floats: positive values; integers: integral bounds).
double largest_finite(DataType type);
double lowest_finite(DataType type);  // most negative finite value
// Smallest positive value: the smallest subnormal of a float, 1 for integers.
double smallest_positive(DataType type);
// Smallest positive normal value of a float type.
double smallest_normal(DataType type);
// The canonical (quiet, positive) NaN bits of a type that has NaN.
uint64_t canonical_nan_bits(DataType type);

}  // namespace nibble::dtypes
