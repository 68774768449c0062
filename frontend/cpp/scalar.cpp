#include "frontend/cpp/scalar.h"

namespace nibble::vm {
namespace {

// An integer constant adopts the type of the expression it meets (as in vm/expr.cpp).
Expr constant_like(const Expr& other, int64_t value) {
  if (other.type().is_float())
    return Expr::float_constant(static_cast<double>(value), other.type());
  return Expr::int_constant(value, other.type());
}

BinaryOp division_for(const Expr& a) {
  return a.type().is_float() ? BinaryOp::Div : BinaryOp::FloorDiv;
}

}  // namespace

Expr operator+(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return std::move(constant) + std::move(b);
}
Expr operator-(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return std::move(constant) - std::move(b);
}

Expr operator/(Expr a, Expr b) {
  const BinaryOp op = division_for(a);
  return Expr::binary(op, std::move(a), std::move(b));
}
Expr operator/(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return std::move(a) / std::move(constant);
}
Expr operator/(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return std::move(constant) / std::move(b);
}
Expr operator%(Expr a, Expr b) {
  return mod(std::move(a), std::move(b));
}
Expr operator%(Expr a, int64_t b) {
  return mod(std::move(a), b);
}
Expr operator%(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return mod(std::move(constant), std::move(b));
}

Expr operator<(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Lt, std::move(a), std::move(b));
}
Expr operator<(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return Expr::binary(BinaryOp::Lt, std::move(a), std::move(constant));
}
Expr operator<(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return Expr::binary(BinaryOp::Lt, std::move(constant), std::move(b));
}
Expr operator<=(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Le, std::move(a), std::move(b));
}
Expr operator<=(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return Expr::binary(BinaryOp::Le, std::move(a), std::move(constant));
}
Expr operator<=(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return Expr::binary(BinaryOp::Le, std::move(constant), std::move(b));
}
Expr operator>(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Gt, std::move(a), std::move(b));
}
Expr operator>(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return Expr::binary(BinaryOp::Gt, std::move(a), std::move(constant));
}
Expr operator>(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return Expr::binary(BinaryOp::Gt, std::move(constant), std::move(b));
}
Expr operator>=(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Ge, std::move(a), std::move(b));
}
Expr operator>=(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return Expr::binary(BinaryOp::Ge, std::move(a), std::move(constant));
}
Expr operator>=(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return Expr::binary(BinaryOp::Ge, std::move(constant), std::move(b));
}

Expr eq(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Eq, std::move(a), std::move(b));
}
Expr eq(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return eq(std::move(a), std::move(constant));
}
Expr ne(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Ne, std::move(a), std::move(b));
}
Expr ne(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return ne(std::move(a), std::move(constant));
}

Expr operator&&(Expr a, Expr b) {
  return Expr::binary(BinaryOp::And, std::move(a), std::move(b));
}
Expr operator||(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Or, std::move(a), std::move(b));
}
Expr operator!(Expr a) {
  return Expr::unary(UnaryOp::Not, std::move(a));
}

Expr cdiv(Expr a, Expr b) {
  Expr one = constant_like(b, 1);
  if (auto divisor = b.as_int()) {
    Expr bias = constant_like(b, *divisor - 1);
    return floordiv(std::move(a) + std::move(bias), std::move(b));
  }
  return floordiv(std::move(a) + (b - std::move(one)), b);
}
Expr cdiv(Expr a, int64_t b) {
  Expr divisor = constant_like(a, b);
  return cdiv(std::move(a), std::move(divisor));
}
Expr select(Expr condition, Expr if_true, Expr if_false) {
  return Expr::select(std::move(condition), std::move(if_true), std::move(if_false));
}
Expr cast(Expr value, DataType type) {
  return Expr::cast(std::move(value), type);
}

}  // namespace nibble::vm

namespace nibble::dsl {

vm::Expr Scalar::to_expr(std::optional<vm::DataType> like) const {
  if (const vm::Expr* expr = std::get_if<vm::Expr>(&value_)) return *expr;
  if (const int64_t* integer = std::get_if<int64_t>(&value_)) {
    if (like && like->is_float())
      return vm::Expr::float_constant(static_cast<double>(*integer), *like);
    if (like && like->is_integer() && like->bits() >= 8)
      return vm::Expr::int_constant(*integer, *like);
    return vm::Expr::int_constant(*integer);
  }
  const double real = std::get<double>(value_);
  if (like && like->is_float()) return vm::Expr::float_constant(real, *like);
  return vm::Expr::float_constant(real);
}

std::optional<vm::DataType> common_type(std::initializer_list<const Scalar*> scalars) {
  for (const Scalar* scalar : scalars) {
    if (const vm::Expr* expr = scalar->expr(); expr && !expr->empty()) return expr->type();
  }
  return std::nullopt;
}

}  // namespace nibble::dsl
