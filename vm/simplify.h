// Simplification of scalar expressions, and the facts it reasons with.
//
// Integer expressions are put in an affine normal form — a sum of coefficient * atom terms plus a
// constant, atoms being the non-affine leaves and sub-expressions — so that like terms cancel
// and floordiv/mod by a positive constant split off the multiples of the divisor:
//   floordiv(128*i + 4*j + r, 4) = 32*i + j        when 0 <= r < 4 is known
//   mod(128*i + r, 64) = r                         when 0 <= r < 64 is known
// Facts are what the program knows about its leaves: the range of a loop variable, the
// divisibility of a specialized size (K % 128 == 0), block indices being non-negative.
//
// The simplifier assumes integer index arithmetic does not wrap (as C assumes for signed
// types): programs whose index arithmetic overflows its type are ill-formed.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>

#include "vm/expr.h"

namespace nibble::vm {

struct Range {
  int64_t lo;  // inclusive
  int64_t hi;  // inclusive
  bool contains(int64_t value) const { return lo <= value && value <= hi; }
};

class Facts {
 public:
  // `leaf` is a Param, Var or Special expression.
  void set_range(const Expr& leaf, Range range);
  void set_divisor(const Expr& leaf, int64_t divisor);

  std::optional<Range> range_of(const Expr& leaf) const;
  int64_t divisor_of(const Expr& leaf) const;  // 1 when nothing is known

 private:
  std::unordered_map<Expr, Range> ranges_;
  std::unordered_map<Expr, int64_t> divisors_;
};

// Returns an expression equal to `expr` for every assignment allowed by `facts`, folded and in
// affine normal form. Idempotent: simplify(simplify(e)) == simplify(e).
Expr simplify(const Expr& expr, const Facts& facts = {});

// The range of values an integer expression can take, when it can be bounded.
std::optional<Range> bound(const Expr& expr, const Facts& facts = {});
// The largest d such that expr % d == 0 is known (>= 1; for the constant 0, a large power of 2).
int64_t known_divisor(const Expr& expr, const Facts& facts = {});
// Whether a u1 expression is provably true (false means "not proven", not "false").
bool prove(const Expr& condition, const Facts& facts = {});

}  // namespace nibble::vm
