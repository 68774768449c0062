#include "frontend/cpp/tensor.h"

#include <fmt/format.h>

#include "frontend/cpp/kernel_builder.h"

namespace nibble::dsl {
namespace {

using vm::ElementwiseOp;

// One elementwise instruction, built by the builder of the first tensor operand (which checks
// that every other tensor operand is its own).
Tensor apply(ElementwiseOp op, std::initializer_list<Operand> operands,
             const std::source_location& location) {
  for (const Operand& operand : operands) {
    if (const Tensor* tensor = operand.tensor(); tensor && tensor->valid()) {
      return tensor->builder()->elementwise(op, std::vector<Operand>(operands), "", location);
    }
  }
  const vm::SourceLocation where{location.file_name(), static_cast<int>(location.line()),
                                 static_cast<int>(location.column()), location.function_name()};
  throw BuilderError(fmt::format("{}: error: {}: needs a tensor operand, and none of its operands "
                                 "is one (or only empty handles are)",
                                 vm::to_string(where), vm::to_string(op)),
                     where);
}

}  // namespace

Tensor operator+(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Add, {a.tensor, b.tensor}, a.location);
}
Tensor operator+(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Add, {a.tensor, b}, a.location);
}
Tensor operator+(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Add, {a, b.tensor}, b.location);
}
Tensor operator-(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Sub, {a.tensor, b.tensor}, a.location);
}
Tensor operator-(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Sub, {a.tensor, b}, a.location);
}
Tensor operator-(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Sub, {a, b.tensor}, b.location);
}
Tensor operator*(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Mul, {a.tensor, b.tensor}, a.location);
}
Tensor operator*(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Mul, {a.tensor, b}, a.location);
}
Tensor operator*(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Mul, {a, b.tensor}, b.location);
}
Tensor operator/(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Div, {a.tensor, b.tensor}, a.location);
}
Tensor operator/(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Div, {a.tensor, b}, a.location);
}
Tensor operator/(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Div, {a, b.tensor}, b.location);
}
Tensor operator-(TensorArg a) {
  return apply(ElementwiseOp::Neg, {a.tensor}, a.location);
}

Tensor operator<(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Lt, {a.tensor, b.tensor}, a.location);
}
Tensor operator<(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Lt, {a.tensor, b}, a.location);
}
Tensor operator<(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Lt, {a, b.tensor}, b.location);
}
Tensor operator<=(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Le, {a.tensor, b.tensor}, a.location);
}
Tensor operator<=(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Le, {a.tensor, b}, a.location);
}
Tensor operator<=(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Le, {a, b.tensor}, b.location);
}
Tensor operator>(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Gt, {a.tensor, b.tensor}, a.location);
}
Tensor operator>(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Gt, {a.tensor, b}, a.location);
}
Tensor operator>(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Gt, {a, b.tensor}, b.location);
}
Tensor operator>=(TensorArg a, TensorArg b) {
  return apply(ElementwiseOp::Ge, {a.tensor, b.tensor}, a.location);
}
Tensor operator>=(TensorArg a, const Scalar& b) {
  return apply(ElementwiseOp::Ge, {a.tensor, b}, a.location);
}
Tensor operator>=(const Scalar& a, TensorArg b) {
  return apply(ElementwiseOp::Ge, {a, b.tensor}, b.location);
}

namespace {

Tensor update(ElementwiseOp op, const TensorArg& target, const Operand& value) {
  Tensor result = apply(op, {target.tensor, value}, target.location);
  target.tensor.builder()->assign(target.tensor, result, target.location);
  return target.tensor;
}

}  // namespace

Tensor operator+=(TensorArg a, const Operand& b) {
  return update(ElementwiseOp::Add, a, b);
}
Tensor operator-=(TensorArg a, const Operand& b) {
  return update(ElementwiseOp::Sub, a, b);
}
Tensor operator*=(TensorArg a, const Operand& b) {
  return update(ElementwiseOp::Mul, a, b);
}
Tensor operator/=(TensorArg a, const Operand& b) {
  return update(ElementwiseOp::Div, a, b);
}

Tensor eq(const Operand& a, const Operand& b, std::source_location location) {
  return apply(ElementwiseOp::Eq, {a, b}, location);
}
Tensor ne(const Operand& a, const Operand& b, std::source_location location) {
  return apply(ElementwiseOp::Ne, {a, b}, location);
}
Tensor max(const Operand& a, const Operand& b, std::source_location location) {
  return apply(ElementwiseOp::Max, {a, b}, location);
}
Tensor min(const Operand& a, const Operand& b, std::source_location location) {
  return apply(ElementwiseOp::Min, {a, b}, location);
}
Tensor abs(const Tensor& a, std::source_location location) {
  return apply(ElementwiseOp::Abs, {a}, location);
}
Tensor exp2(const Tensor& a, std::source_location location) {
  return apply(ElementwiseOp::Exp2, {a}, location);
}
Tensor log2(const Tensor& a, std::source_location location) {
  return apply(ElementwiseOp::Log2, {a}, location);
}
Tensor rsqrt(const Tensor& a, std::source_location location) {
  return apply(ElementwiseOp::Rsqrt, {a}, location);
}
Tensor fma(const Operand& a, const Operand& b, const Operand& c, std::source_location location) {
  return apply(ElementwiseOp::Fma, {a, b, c}, location);
}
Tensor where(const Operand& condition, const Operand& a, const Operand& b,
             std::source_location location) {
  return apply(ElementwiseOp::Where, {condition, a, b}, location);
}

}  // namespace nibble::dsl
