#include "vm/expr.h"

#include <fmt/format.h>

#include <bit>
#include <functional>

namespace nibble::vm {
namespace {

const DataType kBool = DataType::uint(1);

// Scalars are u1 truth values, integers of 8 bits or more, and floats of 16 bits or more;
// narrower types exist only as tensor elements.
bool is_scalar_type(DataType type) {
  return type == kBool || (type.is_integer() && type.bits() >= 8) || type.bits() >= 16;
}

void require_scalar_type(DataType type, std::string_view what) {
  if (!is_scalar_type(type)) {
    throw ExprError(
        fmt::format("{}: {} is a storage type; scalar values are integers or f16, "
                    "bf16, f32, f64",
                    what, type.name()));
  }
}

}  // namespace

std::string_view to_string(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg:
      return "neg";
    case UnaryOp::Not:
      return "not";
    case UnaryOp::BitNot:
      return "bitnot";
    case UnaryOp::Cast:
      return "cast";
  }
  return "?";
}

std::string_view to_string(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "+";
    case BinaryOp::Sub:
      return "-";
    case BinaryOp::Mul:
      return "*";
    case BinaryOp::FloorDiv:
      return "floordiv";
    case BinaryOp::Mod:
      return "mod";
    case BinaryOp::Div:
      return "/";
    case BinaryOp::Min:
      return "min";
    case BinaryOp::Max:
      return "max";
    case BinaryOp::Eq:
      return "==";
    case BinaryOp::Ne:
      return "!=";
    case BinaryOp::Lt:
      return "<";
    case BinaryOp::Le:
      return "<=";
    case BinaryOp::Gt:
      return ">";
    case BinaryOp::Ge:
      return ">=";
    case BinaryOp::And:
      return "&&";
    case BinaryOp::Or:
      return "||";
    case BinaryOp::BitAnd:
      return "&";
    case BinaryOp::BitOr:
      return "|";
    case BinaryOp::BitXor:
      return "^";
    case BinaryOp::Shl:
      return "<<";
    case BinaryOp::Shr:
      return ">>";
  }
  return "?";
}

std::string_view to_string(Special special) {
  switch (special) {
    case Special::BlockIdX:
      return "blockIdx.x";
    case Special::BlockIdY:
      return "blockIdx.y";
    case Special::BlockIdZ:
      return "blockIdx.z";
    case Special::GridDimX:
      return "gridDim.x";
    case Special::GridDimY:
      return "gridDim.y";
    case Special::GridDimZ:
      return "gridDim.z";
  }
  return "?";
}

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Ne || op == BinaryOp::Lt || op == BinaryOp::Le ||
         op == BinaryOp::Gt || op == BinaryOp::Ge;
}

int64_t wrap_to_type(int64_t value, DataType type) {
  const int bits = type.bits();
  if (bits >= 64) return value;
  const uint64_t mask = (uint64_t{1} << bits) - 1;
  uint64_t raw = static_cast<uint64_t>(value) & mask;
  if (type.is_signed() && (raw >> (bits - 1)) != 0) raw |= ~mask;  // sign-extend
  return static_cast<int64_t>(raw);
}

int64_t floor_div(int64_t a, int64_t b) {
  const int64_t quotient = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? quotient - 1 : quotient;
}

int64_t floor_mod(int64_t a, int64_t b) {
  return a - floor_div(a, b) * b;
}

Expr Expr::int_constant(int64_t value, DataType type) {
  if (!type.is_integer()) {
    throw ExprError(fmt::format("integer constant {} cannot have type {}", value, type.name()));
  }
  ExprNode node(Kind::Constant, type);
  node.int_value = wrap_to_type(value, type);
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::float_constant(double value, DataType type) {
  if (!type.is_float()) {
    throw ExprError(fmt::format("float constant {} cannot have type {}", value, type.name()));
  }
  require_scalar_type(type, "float constant");
  ExprNode node(Kind::Constant, type);
  node.float_value = value;
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::boolean(bool value) {
  return int_constant(value ? 1 : 0, kBool);
}

Expr Expr::param(std::string name, int index, DataType type) {
  require_scalar_type(type, fmt::format("parameter '{}'", name));
  ExprNode node(Kind::Param, type);
  node.name = std::move(name);
  node.index = index;
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::var(std::string name, int id, DataType type) {
  require_scalar_type(type, fmt::format("variable '{}'", name));
  ExprNode node(Kind::Var, type);
  node.name = std::move(name);
  node.index = id;
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::special(Special which) {
  ExprNode node(Kind::Special, DataType::sint(32));
  node.special = which;
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::unary(UnaryOp op, Expr operand) {
  if (operand.empty()) throw ExprError(fmt::format("{}: missing operand", to_string(op)));
  const DataType type = operand.type();
  switch (op) {
    case UnaryOp::Neg:
      if (type == kBool) throw ExprError("neg: cannot negate a u1 truth value (use not)");
      break;
    case UnaryOp::Not:
      if (type != kBool) {
        throw ExprError(
            fmt::format("not: operand {} is {}, expected u1", to_string(operand), type.name()));
      }
      break;
    case UnaryOp::BitNot:
      if (!type.is_integer()) {
        throw ExprError(fmt::format("bitnot: operand {} is {}, expected an integer",
                                    to_string(operand), type.name()));
      }
      break;
    case UnaryOp::Cast:
      throw ExprError("cast: use Expr::cast, which names the target type");
  }
  ExprNode node(Kind::Unary, type);
  node.unary_op = op;
  node.operands[0] = std::move(operand);
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::cast(Expr operand, DataType type) {
  if (operand.empty()) throw ExprError("cast: missing operand");
  require_scalar_type(type, "cast");
  ExprNode node(Kind::Unary, type);
  node.unary_op = UnaryOp::Cast;
  node.operands[0] = std::move(operand);
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::binary(BinaryOp op, Expr lhs, Expr rhs) {
  if (lhs.empty() || rhs.empty())
    throw ExprError(fmt::format("{}: missing operand", to_string(op)));
  const DataType type = lhs.type();
  if (type != rhs.type()) {
    throw ExprError(fmt::format("{}: operand types differ: {} is {} but {} is {} (cast one side)",
                                to_string(op), to_string(lhs), type.name(), to_string(rhs),
                                rhs.type().name()));
  }
  auto require = [&](bool ok, std::string_view expected) {
    if (!ok) {
      throw ExprError(
          fmt::format("{}: operands are {}, expected {}", to_string(op), type.name(), expected));
    }
  };
  DataType result = type;
  switch (op) {
    case BinaryOp::Add:
    case BinaryOp::Sub:
    case BinaryOp::Mul:
    case BinaryOp::Min:
    case BinaryOp::Max:
      require(type != kBool, "numbers (not u1)");
      break;
    case BinaryOp::FloorDiv:
    case BinaryOp::Mod:
      require(type.is_integer() && type != kBool, "integers (use / for floats)");
      break;
    case BinaryOp::Div:
      require(type.is_float(), "floats (use floordiv for integers)");
      break;
    case BinaryOp::Eq:
    case BinaryOp::Ne:
    case BinaryOp::Lt:
    case BinaryOp::Le:
    case BinaryOp::Gt:
    case BinaryOp::Ge:
      result = kBool;
      break;
    case BinaryOp::And:
    case BinaryOp::Or:
      require(type == kBool, "u1 truth values");
      break;
    case BinaryOp::BitAnd:
    case BinaryOp::BitOr:
    case BinaryOp::BitXor:
    case BinaryOp::Shl:
    case BinaryOp::Shr:
      require(type.is_integer(), "integers");
      break;
  }
  ExprNode node(Kind::Binary, result);
  node.binary_op = op;
  node.operands[0] = std::move(lhs);
  node.operands[1] = std::move(rhs);
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr Expr::select(Expr condition, Expr if_true, Expr if_false) {
  if (condition.empty() || if_true.empty() || if_false.empty()) {
    throw ExprError("select: missing operand");
  }
  if (condition.type() != kBool) {
    throw ExprError(fmt::format("select: condition {} is {}, expected u1", to_string(condition),
                                condition.type().name()));
  }
  if (if_true.type() != if_false.type()) {
    throw ExprError(fmt::format("select: branches differ: {} is {} but {} is {}",
                                to_string(if_true), if_true.type().name(), to_string(if_false),
                                if_false.type().name()));
  }
  ExprNode node(Kind::Select, if_true.type());
  node.operands[0] = std::move(condition);
  node.operands[1] = std::move(if_true);
  node.operands[2] = std::move(if_false);
  return Expr(std::make_shared<const ExprNode>(std::move(node)));
}

Expr::Kind Expr::kind() const {
  return node_->kind;
}
DataType Expr::type() const {
  return node_->type;
}

std::optional<int64_t> Expr::as_int() const {
  if (node_ && node_->kind == Kind::Constant && node_->type.is_integer()) return node_->int_value;
  return std::nullopt;
}

std::optional<double> Expr::as_float() const {
  if (node_ && node_->kind == Kind::Constant && node_->type.is_float()) return node_->float_value;
  return std::nullopt;
}

const std::string& Expr::name() const {
  return node_->name;
}
int Expr::index() const {
  return node_->index;
}
Special Expr::special_register() const {
  return node_->special;
}
UnaryOp Expr::unary_op() const {
  return node_->unary_op;
}
BinaryOp Expr::binary_op() const {
  return node_->binary_op;
}
const Expr& Expr::operand(int i) const {
  return node_->operands[i];
}

int Expr::operand_count() const {
  switch (node_->kind) {
    case Kind::Unary:
      return 1;
    case Kind::Binary:
      return 2;
    case Kind::Select:
      return 3;
    default:
      return 0;
  }
}

bool operator==(const Expr& a, const Expr& b) {
  if (a.node_ == b.node_) return true;
  if (a.empty() || b.empty()) return false;
  const ExprNode& x = *a.node_;
  const ExprNode& y = *b.node_;
  if (x.kind != y.kind || x.type != y.type) return false;
  switch (x.kind) {
    case Expr::Kind::Constant:
      return x.type.is_integer()
                 ? x.int_value == y.int_value
                 : std::bit_cast<uint64_t>(x.float_value) == std::bit_cast<uint64_t>(y.float_value);
    case Expr::Kind::Param:
    case Expr::Kind::Var:
      return x.index == y.index && x.name == y.name;
    case Expr::Kind::Special:
      return x.special == y.special;
    case Expr::Kind::Unary:
      return x.unary_op == y.unary_op && x.operands[0] == y.operands[0];
    case Expr::Kind::Binary:
      return x.binary_op == y.binary_op && x.operands[0] == y.operands[0] &&
             x.operands[1] == y.operands[1];
    case Expr::Kind::Select:
      return x.operands[0] == y.operands[0] && x.operands[1] == y.operands[1] &&
             x.operands[2] == y.operands[2];
  }
  return false;
}

size_t Expr::hash() const {
  if (empty()) return 0;
  const ExprNode& x = *node_;
  auto combine = [](size_t seed, size_t value) {
    return seed ^ (value + 0x9e3779b97f4a7c15ull + (seed << 6) + (seed >> 2));
  };
  size_t h = combine(static_cast<size_t>(x.kind), std::hash<std::string>{}(x.type.name()));
  switch (x.kind) {
    case Kind::Constant:
      return combine(h, x.type.is_integer() ? static_cast<size_t>(x.int_value)
                                            : std::bit_cast<size_t>(x.float_value));
    case Kind::Param:
    case Kind::Var:
      return combine(h, static_cast<size_t>(x.index));
    case Kind::Special:
      return combine(h, static_cast<size_t>(x.special));
    case Kind::Unary:
    case Kind::Binary:
    case Kind::Select:
      h = combine(h, static_cast<size_t>(x.kind == Kind::Unary ? static_cast<int>(x.unary_op)
                                                               : static_cast<int>(x.binary_op)));
      for (int i = 0; i < operand_count(); ++i)
        h = combine(h, x.operands[i].hash());
      return h;
  }
  return h;
}

namespace {

// An integer constant adopts the type of the expression it meets.
Expr constant_like(const Expr& other, int64_t value) {
  if (!other.empty() && other.type().is_float()) {
    return Expr::float_constant(static_cast<double>(value), other.type());
  }
  return Expr::int_constant(value, other.empty() ? DataType::sint(32) : other.type());
}

}  // namespace

Expr operator+(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Add, std::move(a), std::move(b));
}
Expr operator-(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Sub, std::move(a), std::move(b));
}
Expr operator*(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Mul, std::move(a), std::move(b));
}
Expr operator-(Expr a) {
  return Expr::unary(UnaryOp::Neg, std::move(a));
}
Expr operator+(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return std::move(a) + std::move(constant);
}
Expr operator-(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return std::move(a) - std::move(constant);
}
Expr operator*(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return std::move(a) * std::move(constant);
}
Expr operator*(int64_t a, Expr b) {
  Expr constant = constant_like(b, a);
  return std::move(constant) * std::move(b);
}
Expr floordiv(Expr a, Expr b) {
  return Expr::binary(BinaryOp::FloorDiv, std::move(a), std::move(b));
}
Expr floordiv(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return floordiv(std::move(a), std::move(constant));
}
Expr mod(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Mod, std::move(a), std::move(b));
}
Expr mod(Expr a, int64_t b) {
  Expr constant = constant_like(a, b);
  return mod(std::move(a), std::move(constant));
}
Expr min(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Min, std::move(a), std::move(b));
}
Expr max(Expr a, Expr b) {
  return Expr::binary(BinaryOp::Max, std::move(a), std::move(b));
}

std::string to_string(const Expr& expr) {
  if (expr.empty()) return "<empty>";
  const ExprNode& node = expr.node();
  switch (node.kind) {
    case Expr::Kind::Constant:
      if (node.type == kBool) return node.int_value != 0 ? "true" : "false";
      if (node.type.is_integer()) {
        return node.type == DataType::sint(32)
                   ? fmt::format("{}", node.int_value)
                   : fmt::format("{}:{}", node.int_value, node.type.name());
      }
      return fmt::format("{}:{}", node.float_value, node.type.name());
    case Expr::Kind::Param:
    case Expr::Kind::Var:
      return node.name;
    case Expr::Kind::Special:
      return fmt::format("%{}", to_string(node.special));
    case Expr::Kind::Unary:
      if (node.unary_op == UnaryOp::Cast) {
        return fmt::format("cast<{}>({})", node.type.name(), to_string(node.operands[0]));
      }
      if (node.unary_op == UnaryOp::Neg) {
        // `-3` reads back as the constant -3: negating a constant keeps its parentheses.
        const Expr& operand = node.operands[0];
        return operand.kind() == Expr::Kind::Constant ? fmt::format("-({})", to_string(operand))
                                                      : fmt::format("-{}", to_string(operand));
      }
      if (node.unary_op == UnaryOp::Not) return fmt::format("!{}", to_string(node.operands[0]));
      return fmt::format("~{}", to_string(node.operands[0]));
    case Expr::Kind::Binary: {
      const BinaryOp op = node.binary_op;
      if (op == BinaryOp::FloorDiv || op == BinaryOp::Mod || op == BinaryOp::Min ||
          op == BinaryOp::Max) {
        return fmt::format("{}({}, {})", to_string(op), to_string(node.operands[0]),
                           to_string(node.operands[1]));
      }
      return fmt::format("({} {} {})", to_string(node.operands[0]), to_string(op),
                         to_string(node.operands[1]));
    }
    case Expr::Kind::Select:
      return fmt::format("select({}, {}, {})", to_string(node.operands[0]),
                         to_string(node.operands[1]), to_string(node.operands[2]));
  }
  return "?";
}

}  // namespace nibble::vm
