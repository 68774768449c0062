// VM scalar expressions as C: how a generated dispatcher computes a kernel's grid from the
// arguments of its launch function.
//
// The C code computes in int64_t and wraps every node to its type's width and sign, which is the
// VM's integer semantics (vm/expr.h): two's-complement wrap-around, floordiv and mod rounding
// toward negative infinity, out-of-range shifts giving 0 (or -1). Division by zero sets the
// `int* bad` flag in scope instead of trapping. The helpers it calls (nbl_wrap, nbl_floordiv, …)
// are defined by kCExprHelpers, which a generated source includes once.
//
// Only what a grid needs is supported: integer constants, scalar parameters and integer
// operations. Floats, loop variables and block indices are a GenerateError naming the expression.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

#include "vm/expr.h"

namespace nibble::aot {

// An expression (or program) that the C dispatcher cannot evaluate.
class GenerateError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The C text of parameter `index` (a value canonical for its type, as int64_t).
using CParameter = std::function<std::string(const vm::Expr& param)>;

// A C expression of type int64_t with the value the VM's evaluator gives `expr`.
std::string c_expression(const vm::Expr& expr, const CParameter& parameter);

// The static inline helper functions used by c_expression's output.
extern const char* const kCExprHelpers;

}  // namespace nibble::aot
