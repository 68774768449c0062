#include "frontend/aot/c_expr.h"

#include <fmt/format.h>

namespace nibble::aot {

const char* const kCExprHelpers =
    R"C(/* The VM's integer arithmetic (nibble vm/expr.h): values are int64_t, canonical for their type
 * (sign-extended when signed, zero-extended when unsigned); each operation wraps to its type. */
static inline int64_t nbl_wrap(int64_t value, int bits, int is_signed) {
  if (bits >= 64) return value;
  const uint64_t mask = (UINT64_C(1) << bits) - 1;
  uint64_t raw = (uint64_t)value & mask;
  if (is_signed && (raw >> (bits - 1)) != 0) raw |= ~mask;
  return (int64_t)raw;
}
static inline int64_t nbl_add(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static inline int64_t nbl_sub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static inline int64_t nbl_mul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }
static inline int64_t nbl_min(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t nbl_max(int64_t a, int64_t b) { return a > b ? a : b; }
static inline int64_t nbl_floordiv(int64_t a, int64_t b, int* bad) {
  if (b == 0) { *bad = 1; return 0; }
  if (b == -1) return nbl_sub(0, a);
  const int64_t quotient = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? quotient - 1 : quotient;
}
static inline int64_t nbl_floormod(int64_t a, int64_t b, int* bad) {
  if (b == 0) { *bad = 1; return 0; }
  if (b == -1) return 0;
  return a - nbl_floordiv(a, b, bad) * b;
}
static inline int64_t nbl_shl(int64_t a, int64_t b, int bits) {
  return (b < 0 || b >= bits) ? 0 : (int64_t)((uint64_t)a << b);
}
static inline int64_t nbl_shr(int64_t a, int64_t b, int bits, int is_signed) {
  if (b < 0 || b >= bits) return (is_signed && a < 0) ? -1 : 0;
  return a >> b; /* arithmetic for negative values (GCC, Clang, MSVC) */
}
)C";

namespace {

using vm::BinaryOp;
using vm::Expr;
using vm::UnaryOp;

class Emitter {
 public:
  explicit Emitter(const CParameter& parameter) : parameter_(parameter) {}

  std::string emit(const Expr& e) const {
    const vm::DataType type = e.type();
    if (!type.is_integer()) unsupported(e, fmt::format("it computes in {}", type.name()));
    switch (e.kind()) {
      case Expr::Kind::Constant:
        return constant(*e.as_int());
      case Expr::Kind::Param:
        return parameter_(e);
      case Expr::Kind::Var:
        unsupported(e, fmt::format("it reads the variable '{}'", e.name()));
      case Expr::Kind::Special:
        unsupported(e, "it reads a block index or the grid size");
      case Expr::Kind::Select:
        return fmt::format("(({}) != 0 ? ({}) : ({}))", emit(e.operand(0)), emit(e.operand(1)),
                           emit(e.operand(2)));
      case Expr::Kind::Unary:
        return unary(e);
      case Expr::Kind::Binary:
        return binary(e);
    }
    unsupported(e, "of its kind");
  }

 private:
  [[noreturn]] static void unsupported(const Expr& e, const std::string& why) {
    throw GenerateError(
        fmt::format("the dispatcher cannot compute '{}' in C: {}", vm::to_string(e), why));
  }

  static std::string constant(int64_t value) {
    // INT64_MIN has no literal of its own.
    if (value == INT64_MIN) return "INT64_MIN";
    return fmt::format("INT64_C({})", value);
  }

  static std::string wrap(const std::string& value, vm::DataType type) {
    if (type.bits() >= 64) return value;
    return fmt::format("nbl_wrap({}, {}, {})", value, type.bits(), type.is_signed() ? 1 : 0);
  }

  std::string unary(const Expr& e) const {
    const Expr& operand = e.operand(0);
    if (!operand.type().is_integer()) {
      unsupported(e, fmt::format("its operand is {}", operand.type().name()));
    }
    const std::string a = emit(operand);
    switch (e.unary_op()) {
      case UnaryOp::Neg:
        return wrap(fmt::format("nbl_sub(0, {})", a), e.type());
      case UnaryOp::Not:
        return fmt::format("(int64_t)(({}) == 0)", a);
      case UnaryOp::BitNot:
        return wrap(fmt::format("(~({}))", a), e.type());
      case UnaryOp::Cast:
        return wrap(a, e.type());
    }
    unsupported(e, "of its operation");
  }

  std::string binary(const Expr& e) const {
    const vm::DataType type = e.operand(0).type();
    if (!type.is_integer()) unsupported(e, fmt::format("its operands are {}", type.name()));
    const std::string a = emit(e.operand(0));
    const std::string b = emit(e.operand(1));
    const auto wrapped = [&](const std::string& value) { return wrap(value, e.type()); };
    switch (e.binary_op()) {
      case BinaryOp::Add:
        return wrapped(fmt::format("nbl_add({}, {})", a, b));
      case BinaryOp::Sub:
        return wrapped(fmt::format("nbl_sub({}, {})", a, b));
      case BinaryOp::Mul:
        return wrapped(fmt::format("nbl_mul({}, {})", a, b));
      case BinaryOp::FloorDiv:
        return wrapped(fmt::format("nbl_floordiv({}, {}, bad)", a, b));
      case BinaryOp::Mod:
        return wrapped(fmt::format("nbl_floormod({}, {}, bad)", a, b));
      case BinaryOp::Min:
        return fmt::format("nbl_min({}, {})", a, b);
      case BinaryOp::Max:
        return fmt::format("nbl_max({}, {})", a, b);
      case BinaryOp::Eq:
        return fmt::format("(int64_t)(({}) == ({}))", a, b);
      case BinaryOp::Ne:
        return fmt::format("(int64_t)(({}) != ({}))", a, b);
      case BinaryOp::Lt:
        return fmt::format("(int64_t)(({}) < ({}))", a, b);
      case BinaryOp::Le:
        return fmt::format("(int64_t)(({}) <= ({}))", a, b);
      case BinaryOp::Gt:
        return fmt::format("(int64_t)(({}) > ({}))", a, b);
      case BinaryOp::Ge:
        return fmt::format("(int64_t)(({}) >= ({}))", a, b);
      // Both sides are evaluated, as the VM does (a division by zero on the right still counts).
      case BinaryOp::And:
        return fmt::format("(int64_t)((({}) != 0) & (({}) != 0))", a, b);
      case BinaryOp::Or:
        return fmt::format("(int64_t)((({}) != 0) | (({}) != 0))", a, b);
      case BinaryOp::BitAnd:
        return wrapped(fmt::format("(({}) & ({}))", a, b));
      case BinaryOp::BitOr:
        return wrapped(fmt::format("(({}) | ({}))", a, b));
      case BinaryOp::BitXor:
        return wrapped(fmt::format("(({}) ^ ({}))", a, b));
      case BinaryOp::Shl:
        return wrapped(fmt::format("nbl_shl({}, {}, {})", a, b, type.bits()));
      case BinaryOp::Shr:
        return wrapped(
            fmt::format("nbl_shr({}, {}, {}, {})", a, b, type.bits(), type.is_signed() ? 1 : 0));
      case BinaryOp::Div:
        break;
    }
    unsupported(e, "it divides floats");
  }

  const CParameter& parameter_;
};

}  // namespace

std::string c_expression(const vm::Expr& expr, const CParameter& parameter) {
  return Emitter(parameter).emit(expr);
}

}  // namespace nibble::aot
