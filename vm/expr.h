// Scalar expressions of the VM: the index arithmetic, loop bounds, grid sizes and scalar values
// of a thread-block program.
//
// An Expr is an immutable tree, shared by value (copying an Expr copies a pointer). Leaves are
// constants, kernel parameters, variables (loop variables and `let` names) and the block's
// special registers (block index, grid size); inner nodes are unary, binary and select
// operations. Every node has a type: an integer DataType of 8 bits or more (i32 and i64 for
// indices), f16, bf16, f32 or f64, or u1 for truth values; narrower types are tensor elements.
//
// Integer semantics are those of the GPU program, not of C++:
//   - arithmetic wraps at the type's width (two's complement);
//   - `floordiv` and `mod` round toward negative infinity (mod has the divisor's sign), so
//     index arithmetic over negative offsets stays affine; division by zero is a program error;
//   - comparisons produce u1; `and`/`or`/`not` take u1.
// Operands of a binary operation have the same type (the builder inserts no implicit casts:
// mixing i32 and i64 is an error that names both sides).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "dtypes/dtype.h"

namespace nibble::vm {

using dtypes::DataType;

// Thrown for an ill-formed expression (mismatched operand types, a float where an integer is
// needed). Carries a message in the user's terms.
class ExprError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

enum class UnaryOp : uint8_t { Neg, Not, BitNot, Cast };
enum class BinaryOp : uint8_t {
  Add,
  Sub,
  Mul,
  FloorDiv,
  Mod,
  Div,  // Div: float division only
  Min,
  Max,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  And,
  Or,  // logical, on u1
  BitAnd,
  BitOr,
  BitXor,
  Shl,
  Shr,  // Shr is arithmetic for signed types, logical otherwise
};

// The block's special registers: a thread-block program sees the block, never the thread.
enum class Special : uint8_t { BlockIdX, BlockIdY, BlockIdZ, GridDimX, GridDimY, GridDimZ };

std::string_view to_string(UnaryOp op);
std::string_view to_string(BinaryOp op);
std::string_view to_string(Special special);
bool is_comparison(BinaryOp op);

struct ExprNode;

class Expr {
 public:
  enum class Kind : uint8_t { Constant, Param, Var, Special, Unary, Binary, Select };

  // Leaves.
  static Expr int_constant(int64_t value, DataType type = DataType::sint(32));
  static Expr float_constant(double value, DataType type = DataType::f32());
  static Expr boolean(bool value);
  // A kernel parameter, by name and position in the parameter list.
  static Expr param(std::string name, int index, DataType type);
  // A loop variable or `let` name; `id` makes it unique within its program.
  static Expr var(std::string name, int id, DataType type);
  static Expr special(Special which);

  // Inner nodes; each checks operand types and throws ExprError naming the mismatch.
  static Expr unary(UnaryOp op, Expr operand);
  static Expr cast(Expr operand, DataType type);
  static Expr binary(BinaryOp op, Expr lhs, Expr rhs);
  static Expr select(Expr condition, Expr if_true, Expr if_false);

  Expr() = default;  // empty; only for containers
  bool empty() const { return node_ == nullptr; }

  Kind kind() const;
  DataType type() const;
  const ExprNode& node() const { return *node_; }

  // Leaf accessors (valid only for the matching kind).
  std::optional<int64_t> as_int() const;  // integer constants
  std::optional<double> as_float() const;
  const std::string& name() const;  // Param, Var
  int index() const;                // Param position or Var id
  Special special_register() const;

  // Inner-node accessors.
  UnaryOp unary_op() const;
  BinaryOp binary_op() const;
  const Expr& operand(int i) const;  // 0..2
  int operand_count() const;

  // Structural identity (same tree, same types, same leaves).
  friend bool operator==(const Expr& a, const Expr& b);
  size_t hash() const;

 private:
  explicit Expr(std::shared_ptr<const ExprNode> node) : node_(std::move(node)) {}
  std::shared_ptr<const ExprNode> node_;
};

struct ExprNode {
  ExprNode(Expr::Kind node_kind, DataType node_type) : kind(node_kind), type(node_type) {}

  Expr::Kind kind;
  DataType type;
  int64_t int_value = 0;
  double float_value = 0;
  std::string name;
  int index = 0;
  Special special = Special::BlockIdX;
  UnaryOp unary_op = UnaryOp::Neg;
  BinaryOp binary_op = BinaryOp::Add;
  Expr operands[3];
};

// Operators for the front ends; integer constants adopt the other operand's type.
Expr operator+(Expr a, Expr b);
Expr operator-(Expr a, Expr b);
Expr operator*(Expr a, Expr b);
Expr operator-(Expr a);
Expr operator+(Expr a, int64_t b);
Expr operator-(Expr a, int64_t b);
Expr operator*(Expr a, int64_t b);
Expr operator*(int64_t a, Expr b);
Expr floordiv(Expr a, Expr b);
Expr floordiv(Expr a, int64_t b);
Expr mod(Expr a, Expr b);
Expr mod(Expr a, int64_t b);
Expr min(Expr a, Expr b);
Expr max(Expr a, Expr b);

// Wrap a value to an integer type's width and sign (two's complement).
int64_t wrap_to_type(int64_t value, DataType type);
// Floor division and modulo as the VM defines them (b != 0).
int64_t floor_div(int64_t a, int64_t b);
int64_t floor_mod(int64_t a, int64_t b);

// The text form, as the VM's printer writes it: `(k0 + 128)`, `floordiv(n, 64)`,
// `%blockIdx.x`, `select(p, a, b)`, `cast<i64>(x)`. Integer constants of a type other than i32
// carry a suffix (`4:i64`).
std::string to_string(const Expr& expr);

}  // namespace nibble::vm

template <>
struct std::hash<nibble::vm::Expr> {
  size_t operator()(const nibble::vm::Expr& expr) const { return expr.hash(); }
};
