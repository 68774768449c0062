#include "vm/expr_eval.h"

#include <fmt/format.h>

#include <cmath>
#include <functional>

#include "dtypes/codec.h"

namespace nibble::vm {
namespace {

double round_to(double value, DataType type) {
  if (type.bits() == 64) return value;
  if (type.bits() == 32) return static_cast<double>(static_cast<float>(value));
  return dtypes::decode(type, dtypes::encode(type, value));
}

int64_t wrapping(int64_t a, int64_t b, auto op) {
  return static_cast<int64_t>(op(static_cast<uint64_t>(a), static_cast<uint64_t>(b)));
}

ScalarValue cast_value(const ScalarValue& value, DataType type) {
  if (type.is_float()) return ScalarValue::of_float(value.as_double(), type);
  if (value.type.is_integer()) return ScalarValue::of_int(value.integer, type);
  // float -> integer: truncate toward zero and saturate, as cvt.rzi.sat does; NaN -> 0.
  if (std::isnan(value.real)) return ScalarValue::of_int(0, type);
  const double truncated = std::trunc(value.real);
  const double lowest = dtypes::lowest_finite(type);
  const double highest = dtypes::largest_finite(type);
  if (truncated <= lowest) return ScalarValue::of_int(static_cast<int64_t>(lowest), type);
  if (truncated >= highest) {
    return ScalarValue::of_int(type.bits() == 64 ? INT64_MAX : static_cast<int64_t>(highest), type);
  }
  return ScalarValue::of_int(static_cast<int64_t>(truncated), type);
}

}  // namespace

ScalarValue ScalarValue::of_int(int64_t value, DataType type) {
  return ScalarValue{type, wrap_to_type(value, type), 0};
}

ScalarValue ScalarValue::of_float(double value, DataType type) {
  return ScalarValue{type, 0, round_to(value, type)};
}

ScalarValue evaluate(const Expr& e, const LeafValues& leaf_values) {
  switch (e.kind()) {
    case Expr::Kind::Constant:
      return e.type().is_float() ? ScalarValue::of_float(*e.as_float(), e.type())
                                 : ScalarValue::of_int(*e.as_int(), e.type());
    case Expr::Kind::Param:
    case Expr::Kind::Var:
    case Expr::Kind::Special:
      return leaf_values(e);
    case Expr::Kind::Select: {
      const ScalarValue condition = evaluate(e.operand(0), leaf_values);
      return evaluate(e.operand(condition.integer != 0 ? 1 : 2), leaf_values);
    }
    case Expr::Kind::Unary: {
      const ScalarValue a = evaluate(e.operand(0), leaf_values);
      switch (e.unary_op()) {
        case UnaryOp::Neg:
          return a.type.is_float()
                     ? ScalarValue::of_float(-a.real, a.type)
                     : ScalarValue::of_int(wrapping(0, a.integer, std::minus<>()), a.type);
        case UnaryOp::Not:
          return ScalarValue::of_int(a.integer == 0 ? 1 : 0, a.type);
        case UnaryOp::BitNot:
          return ScalarValue::of_int(~a.integer, a.type);
        case UnaryOp::Cast:
          return cast_value(a, e.type());
      }
      break;
    }
    case Expr::Kind::Binary:
      break;
  }
  const ScalarValue a = evaluate(e.operand(0), leaf_values);
  const ScalarValue b = evaluate(e.operand(1), leaf_values);
  const DataType type = a.type;
  const BinaryOp op = e.binary_op();
  if (is_comparison(op)) {
    const bool result = [&] {
      const double x = a.as_double();
      const double y = b.as_double();
      const bool use_float = type.is_float();
      switch (op) {
        case BinaryOp::Eq:
          return use_float ? x == y : a.integer == b.integer;
        case BinaryOp::Ne:
          return use_float ? x != y : a.integer != b.integer;
        case BinaryOp::Lt:
          return use_float ? x < y : a.integer < b.integer;
        case BinaryOp::Le:
          return use_float ? x <= y : a.integer <= b.integer;
        case BinaryOp::Gt:
          return use_float ? x > y : a.integer > b.integer;
        default:
          return use_float ? x >= y : a.integer >= b.integer;
      }
    }();
    return ScalarValue::of_int(result ? 1 : 0, DataType::uint(1));
  }
  if (type.is_float()) {
    switch (op) {
      case BinaryOp::Add:
        return ScalarValue::of_float(a.real + b.real, type);
      case BinaryOp::Sub:
        return ScalarValue::of_float(a.real - b.real, type);
      case BinaryOp::Mul:
        return ScalarValue::of_float(a.real * b.real, type);
      case BinaryOp::Div:
        return ScalarValue::of_float(a.real / b.real, type);
      case BinaryOp::Min:
        return ScalarValue::of_float(std::fmin(a.real, b.real), type);
      case BinaryOp::Max:
        return ScalarValue::of_float(std::fmax(a.real, b.real), type);
      default:
        break;
    }
    throw ExprError(fmt::format("{}: not defined on {}", to_string(op), type.name()));
  }
  const int64_t x = a.integer;
  const int64_t y = b.integer;
  auto result = [&](int64_t value) { return ScalarValue::of_int(value, type); };
  switch (op) {
    case BinaryOp::Add:
      return result(wrapping(x, y, std::plus<>()));
    case BinaryOp::Sub:
      return result(wrapping(x, y, std::minus<>()));
    case BinaryOp::Mul:
      return result(wrapping(x, y, std::multiplies<>()));
    case BinaryOp::FloorDiv:
    case BinaryOp::Mod:
      if (y == 0) {
        throw ExprError(fmt::format("division by zero in {}", to_string(e)));
      }
      return result(op == BinaryOp::FloorDiv ? floor_div(x, y) : floor_mod(x, y));
    case BinaryOp::Min:
      return result(std::min(x, y));
    case BinaryOp::Max:
      return result(std::max(x, y));
    case BinaryOp::And:
      return result((x != 0 && y != 0) ? 1 : 0);
    case BinaryOp::Or:
      return result((x != 0 || y != 0) ? 1 : 0);
    case BinaryOp::BitAnd:
      return result(x & y);
    case BinaryOp::BitOr:
      return result(x | y);
    case BinaryOp::BitXor:
      return result(x ^ y);
    case BinaryOp::Shl:
      if (y < 0 || y >= type.bits()) return result(0);
      return result(static_cast<int64_t>(static_cast<uint64_t>(x) << y));
    case BinaryOp::Shr:
      if (y < 0 || y >= type.bits()) return result(type.is_signed() && x < 0 ? -1 : 0);
      return result(x >> y);
    default:
      break;
  }
  throw ExprError(fmt::format("{}: not defined on {}", to_string(op), type.name()));
}

}  // namespace nibble::vm
