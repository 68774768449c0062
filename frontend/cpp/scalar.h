// Scalars of the C++ DSL: the operators vm::Expr lacks, and Scalar, the argument type that
// takes an expression or a C++ number where the builder expects a scalar.
//
// vm/expr.h gives + - * on expressions (and with an integer on either side of *). This header
// completes the set that kernel code reads naturally with:
//
//   1 + e, 1 - e        an integer literal on the left adopts the expression's type
//   a / b               floordiv for integers (rounds toward negative infinity, as the VM
//                       defines it), true division for floats
//   a % b               mod (the divisor's sign)
//   a < b, <=, >, >=    comparisons, giving u1
//   eq(a, b), ne(a, b)  equality as u1: `==` on Expr is structural identity (vm/expr.h), so
//                       the DSL spells the comparison out
//   a && b, a || b, !a  on u1 (both sides are always evaluated: they are expressions, not
//                       C++ control flow)
//   cdiv(a, b)          ceil division: floordiv(a + b - 1, b), for grid sizes
//   select(c, a, b)     the VM's select
//   cast(e, type)       a scalar conversion
//
// They live in namespace nibble::vm, beside vm::Expr, so that argument-dependent lookup finds
// them wherever the kernel is written.
#pragma once

#include <concepts>
#include <cstdint>
#include <optional>
#include <variant>

#include "vm/expr.h"

namespace nibble::vm {

Expr operator+(int64_t a, Expr b);
Expr operator-(int64_t a, Expr b);

Expr operator/(Expr a, Expr b);
Expr operator/(Expr a, int64_t b);
Expr operator/(int64_t a, Expr b);
Expr operator%(Expr a, Expr b);
Expr operator%(Expr a, int64_t b);
Expr operator%(int64_t a, Expr b);

Expr operator<(Expr a, Expr b);
Expr operator<(Expr a, int64_t b);
Expr operator<(int64_t a, Expr b);
Expr operator<=(Expr a, Expr b);
Expr operator<=(Expr a, int64_t b);
Expr operator<=(int64_t a, Expr b);
Expr operator>(Expr a, Expr b);
Expr operator>(Expr a, int64_t b);
Expr operator>(int64_t a, Expr b);
Expr operator>=(Expr a, Expr b);
Expr operator>=(Expr a, int64_t b);
Expr operator>=(int64_t a, Expr b);
Expr eq(Expr a, Expr b);
Expr eq(Expr a, int64_t b);
Expr ne(Expr a, Expr b);
Expr ne(Expr a, int64_t b);

Expr operator&&(Expr a, Expr b);
Expr operator||(Expr a, Expr b);
Expr operator!(Expr a);

Expr cdiv(Expr a, Expr b);
Expr cdiv(Expr a, int64_t b);
Expr select(Expr condition, Expr if_true, Expr if_false);
Expr cast(Expr value, DataType type);

}  // namespace nibble::vm

namespace nibble::dsl {

// A scalar argument: an expression, or a C++ number that becomes a constant once the builder
// knows which type it meets. `b.for_range(0, k, 64)` gives 0 and 64 the type of k; `x * 0.5`
// gives 0.5 the element type of x.
class Scalar {
 public:
  Scalar(vm::Expr expr) : value_(std::move(expr)) {}  // NOLINT: implicit by design
  template <std::integral T>
  Scalar(T value)  // NOLINT: implicit by design
      : value_(static_cast<int64_t>(value)) {
    if constexpr (std::same_as<T, bool>) value_ = vm::Expr::boolean(value);
  }
  template <std::floating_point T>
  Scalar(T value)  // NOLINT: implicit by design
      : value_(static_cast<double>(value)) {}

  // The expression; literals take `like` when given (an integer literal meeting a float type
  // becomes a float constant of that type), else i32 for integers and f32 for floats.
  vm::Expr to_expr(std::optional<vm::DataType> like = std::nullopt) const;
  // The expression this scalar holds, or nullptr for a literal.
  const vm::Expr* expr() const { return std::get_if<vm::Expr>(&value_); }

 private:
  std::variant<int64_t, double, vm::Expr> value_;
};

// The type literals of a list of scalars take: that of the first expression among them.
std::optional<vm::DataType> common_type(std::initializer_list<const Scalar*> scalars);

}  // namespace nibble::dsl
