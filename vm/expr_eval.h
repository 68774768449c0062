// Evaluation of scalar expressions with the VM's exact semantics (the interpreter's scalar
// core): integers wrap at their width, floordiv/mod round toward negative infinity, float
// results round to their type (f16/bf16 through dtypes' exact encoder).
#pragma once

#include <cstdint>
#include <functional>

#include "vm/expr.h"

namespace nibble::vm {

struct ScalarValue {
  DataType type = DataType::sint(32);
  int64_t integer = 0;  // integer and u1 types: the value, sign-correct for its type
  double real = 0;      // float types

  static ScalarValue of_int(int64_t value, DataType type);
  static ScalarValue of_float(double value, DataType type);
  double as_double() const { return type.is_float() ? real : static_cast<double>(integer); }
};

// Values of the leaves (Param, Var, Special) an expression reads.
using LeafValues = std::function<ScalarValue(const Expr& leaf)>;

// Throws ExprError for integer division or modulo by zero, naming the expression.
ScalarValue evaluate(const Expr& expr, const LeafValues& leaf_values);

}  // namespace nibble::vm
