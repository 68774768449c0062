#include "vm/simplify.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "vm/expr_eval.h"

namespace nibble::vm {
namespace {

const DataType kBool = DataType::uint(1);
// 128-bit intermediates for overflow-free interval arithmetic (a GCC/Clang extension).
__extension__ typedef __int128 Wide;
constexpr int64_t kHugeDivisor = int64_t{1} << 62;

bool is_int(const Expr& e) {
  return e.type().is_integer() && e.type() != kBool;
}

// ---- interval arithmetic that gives up instead of overflowing --------------------------------

std::optional<int64_t> checked(Wide value) {
  if (value > std::numeric_limits<int64_t>::max() || value < std::numeric_limits<int64_t>::min()) {
    return std::nullopt;
  }
  return static_cast<int64_t>(value);
}

std::optional<Range> make_range(Wide lo, Wide hi) {
  auto l = checked(lo);
  auto h = checked(hi);
  if (!l || !h) return std::nullopt;
  return Range{*l, *h};
}

std::optional<Range> add_ranges(Range a, Range b) {
  return make_range(static_cast<Wide>(a.lo) + b.lo, static_cast<Wide>(a.hi) + b.hi);
}

std::optional<Range> multiply_ranges(Range a, Range b) {
  const Wide products[] = {static_cast<Wide>(a.lo) * b.lo, static_cast<Wide>(a.lo) * b.hi,
                           static_cast<Wide>(a.hi) * b.lo, static_cast<Wide>(a.hi) * b.hi};
  return make_range(*std::min_element(std::begin(products), std::end(products)),
                    *std::max_element(std::begin(products), std::end(products)));
}

Range negate_range(Range a) {
  // -INT64_MIN does not exist; clamp (such ranges only come from the widest types).
  const int64_t lo =
      a.hi == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -a.hi;
  const int64_t hi =
      a.lo == std::numeric_limits<int64_t>::min() ? std::numeric_limits<int64_t>::max() : -a.lo;
  return {lo, hi};
}

int64_t saturating_multiply(int64_t a, int64_t b) {
  const Wide product = static_cast<Wide>(a) * b;
  return product > kHugeDivisor ? kHugeDivisor : static_cast<int64_t>(product);
}

// ---- affine normal form ----------------------------------------------------------------------

struct Affine {
  DataType type;
  std::vector<std::pair<Expr, int64_t>> terms;  // distinct atoms, non-zero coefficients
  int64_t constant = 0;

  void add_term(const Expr& atom, int64_t coefficient) {
    for (auto& [existing, c] : terms) {
      if (existing == atom) {
        c += coefficient;
        return;
      }
    }
    terms.emplace_back(atom, coefficient);
  }
  void add(const Affine& other, int64_t scale) {
    for (const auto& [atom, c] : other.terms)
      add_term(atom, c * scale);
    constant += other.constant * scale;
  }
  void drop_zero_terms() {
    std::erase_if(terms, [](const auto& term) { return term.second == 0; });
  }
};

// Reads an expression already in normal form as an affine sum.
Affine affine_of(const Expr& e) {
  Affine result{e.type(), {}, 0};
  if (auto value = e.as_int()) {
    result.constant = *value;
    return result;
  }
  if (e.kind() == Expr::Kind::Binary) {
    const Expr& a = e.operand(0);
    const Expr& b = e.operand(1);
    switch (e.binary_op()) {
      case BinaryOp::Add:
        result.add(affine_of(a), 1);
        result.add(affine_of(b), 1);
        result.drop_zero_terms();
        return result;
      case BinaryOp::Sub:
        result.add(affine_of(a), 1);
        result.add(affine_of(b), -1);
        result.drop_zero_terms();
        return result;
      case BinaryOp::Mul:
        if (auto scale = b.as_int()) {
          result.add(affine_of(a), *scale);
          result.drop_zero_terms();
          return result;
        }
        if (auto scale = a.as_int()) {
          result.add(affine_of(b), *scale);
          result.drop_zero_terms();
          return result;
        }
        break;
      default:
        break;
    }
  }
  if (e.kind() == Expr::Kind::Unary && e.unary_op() == UnaryOp::Neg) {
    result.add(affine_of(e.operand(0)), -1);
    return result;
  }
  result.add_term(e, 1);
  return result;
}

// Atoms in a stable order: by printed form, so equal programs print equally.
void sort_terms(Affine& affine) {
  std::stable_sort(affine.terms.begin(), affine.terms.end(), [](const auto& x, const auto& y) {
    return to_string(x.first) < to_string(y.first);
  });
}

Expr constant_of(DataType type, int64_t value) {
  return Expr::int_constant(value, type);
}

// Builds the canonical expression of an affine sum: terms in order, then the constant.
Expr rebuild(Affine affine) {
  affine.drop_zero_terms();
  sort_terms(affine);
  const DataType type = affine.type;
  Expr sum;
  for (const auto& [atom, coefficient] : affine.terms) {
    const int64_t magnitude = coefficient < 0 ? -coefficient : coefficient;
    Expr term =
        magnitude == 1 ? atom : Expr::binary(BinaryOp::Mul, atom, constant_of(type, magnitude));
    if (sum.empty()) {
      sum = coefficient < 0 ? Expr::unary(UnaryOp::Neg, term) : term;
    } else {
      sum = Expr::binary(coefficient < 0 ? BinaryOp::Sub : BinaryOp::Add, sum, term);
    }
  }
  if (sum.empty()) return constant_of(type, affine.constant);
  if (affine.constant > 0)
    return Expr::binary(BinaryOp::Add, sum, constant_of(type, affine.constant));
  if (affine.constant < 0) {
    return Expr::binary(BinaryOp::Sub, sum, constant_of(type, -affine.constant));
  }
  return sum;
}

// ---- constant folding ------------------------------------------------------------------------

// The value of an expression whose operands are all constants, by the VM's own evaluator (one
// definition of the arithmetic); nothing when evaluation fails (division by zero is left for
// the interpreter to report where it happens).
std::optional<Expr> fold(const Expr& e) {
  for (int i = 0; i < e.operand_count(); ++i) {
    if (e.operand(i).kind() != Expr::Kind::Constant) return std::nullopt;
  }
  try {
    const ScalarValue value =
        evaluate(e, [](const Expr&) -> ScalarValue { throw ExprError("not a constant"); });
    return value.type.is_float() ? Expr::float_constant(value.real, value.type)
                                 : Expr::int_constant(value.integer, value.type);
  } catch (const ExprError&) {
    return std::nullopt;
  }
}

// ---- the simplifier --------------------------------------------------------------------------

class Simplifier {
 public:
  explicit Simplifier(const Facts& facts) : facts_(facts) {}

  Expr run(const Expr& e) {
    switch (e.kind()) {
      case Expr::Kind::Constant:
      case Expr::Kind::Param:
      case Expr::Kind::Var:
      case Expr::Kind::Special:
        return e;
      case Expr::Kind::Unary:
        return unary(e.unary_op(), run(e.operand(0)), e.type());
      case Expr::Kind::Binary:
        return binary(e.binary_op(), run(e.operand(0)), run(e.operand(1)));
      case Expr::Kind::Select:
        return select(run(e.operand(0)), run(e.operand(1)), run(e.operand(2)));
    }
    return e;
  }

 private:
  Expr unary(UnaryOp op, const Expr& a, DataType type) {
    switch (op) {
      case UnaryOp::Cast:
        if (a.type() == type) return a;
        if (auto folded = fold(Expr::cast(a, type))) return *folded;
        return Expr::cast(a, type);
      case UnaryOp::Neg:
        if (is_int(a)) {
          Affine affine = affine_of(a);
          Affine negated{affine.type, {}, 0};
          negated.add(affine, -1);
          return rebuild(negated);
        }
        if (auto value = a.as_float()) return Expr::float_constant(-*value, a.type());
        return Expr::unary(op, a);
      case UnaryOp::Not:
        if (auto value = a.as_int()) return Expr::boolean(*value == 0);
        if (a.kind() == Expr::Kind::Unary && a.unary_op() == UnaryOp::Not) return a.operand(0);
        return Expr::unary(op, a);
      case UnaryOp::BitNot:
        if (auto value = a.as_int()) return constant_of(a.type(), ~*value);
        return Expr::unary(op, a);
    }
    return Expr::unary(op, a);
  }

  Expr binary(BinaryOp op, const Expr& a, const Expr& b) {
    const Expr built = Expr::binary(op, a, b);
    if (auto folded = fold(built)) return *folded;
    if (a.type().is_float()) return built;
    if (!is_int(a)) return logical(op, a, b);
    switch (op) {
      case BinaryOp::Add:
      case BinaryOp::Sub:
      case BinaryOp::Mul:
        return rebuild(affine_of(built));
      case BinaryOp::FloorDiv:
        if (auto divisor = b.as_int(); divisor && *divisor > 0) return divide(a, *divisor);
        return Expr::binary(op, a, b);
      case BinaryOp::Mod:
        if (auto divisor = b.as_int(); divisor && *divisor > 0) return modulo(a, *divisor);
        return Expr::binary(op, a, b);
      case BinaryOp::Min:
      case BinaryOp::Max:
        return min_max(op, a, b);
      case BinaryOp::Eq:
      case BinaryOp::Ne:
      case BinaryOp::Lt:
      case BinaryOp::Le:
      case BinaryOp::Gt:
      case BinaryOp::Ge:
        return compare(op, a, b);
      default:
        return Expr::binary(op, a, b);
    }
  }

  // floordiv(a, c), c > 0: multiples of c leave the division; a remainder known to lie in
  // [0, c) vanishes.
  Expr divide(const Expr& a, int64_t c) {
    if (c == 1) return a;
    // floordiv(floordiv(x, d), c) = floordiv(x, d * c) for positive d, c.
    if (a.kind() == Expr::Kind::Binary && a.binary_op() == BinaryOp::FloorDiv) {
      if (auto d = a.operand(1).as_int(); d && *d > 0) {
        if (auto dc = checked(static_cast<Wide>(*d) * c)) return divide(a.operand(0), *dc);
      }
    }
    Affine whole = affine_of(a);
    Affine quotient{whole.type, {}, floor_div(whole.constant, c)};
    Affine remainder{whole.type, {}, floor_mod(whole.constant, c)};
    for (const auto& [atom, coefficient] : whole.terms) {
      if (coefficient % c == 0) {
        quotient.add_term(atom, coefficient / c);
      } else {
        remainder.add_term(atom, coefficient);
      }
    }
    if (remainder.terms.empty()) return rebuild(quotient);
    Expr rest = rebuild(remainder);
    if (auto range = bound(rest, facts_); range && range->lo >= 0 && range->hi < c) {
      return rebuild(quotient);
    }
    // Divide through by a factor common to the remainder and the divisor.
    int64_t common = c;
    for (const auto& [atom, coefficient] : remainder.terms)
      common = std::gcd(common, coefficient);
    common = std::gcd(common, remainder.constant);
    if (common > 1) {
      Affine reduced{remainder.type, {}, remainder.constant / common};
      for (const auto& [atom, coefficient] : remainder.terms)
        reduced.add_term(atom, coefficient / common);
      rest = rebuild(reduced);
      c /= common;
    }
    const bool rest_is_division = rest.kind() == Expr::Kind::Binary &&
                                  rest.binary_op() == BinaryOp::FloorDiv &&
                                  rest.operand(1).as_int().value_or(0) > 0;
    quotient.add_term(rest_is_division
                          ? divide(rest, c)
                          : Expr::binary(BinaryOp::FloorDiv, rest, constant_of(whole.type, c)),
                      1);
    return rebuild(quotient);
  }

  // mod(a, c), c > 0: only the part of `a` that is not a multiple of c matters.
  Expr modulo(const Expr& a, int64_t c) {
    if (c == 1) return constant_of(a.type(), 0);
    // mod(mod(x, d), c) = mod(x, c) when c divides d.
    if (a.kind() == Expr::Kind::Binary && a.binary_op() == BinaryOp::Mod) {
      if (auto d = a.operand(1).as_int(); d && *d > 0 && *d % c == 0)
        return modulo(a.operand(0), c);
    }
    Affine whole = affine_of(a);
    Affine remainder{whole.type, {}, floor_mod(whole.constant, c)};
    for (const auto& [atom, coefficient] : whole.terms) {
      const int64_t reduced = floor_mod(coefficient, c);
      if (reduced != 0) remainder.add_term(atom, reduced);
    }
    if (remainder.terms.empty()) return constant_of(whole.type, remainder.constant);
    Expr rest = rebuild(remainder);
    if (known_divisor(rest, facts_) % c == 0) return constant_of(whole.type, 0);
    if (rest.kind() == Expr::Kind::Binary && rest.binary_op() == BinaryOp::Mod) {
      if (auto d = rest.operand(1).as_int(); d && *d > 0 && *d % c == 0) {
        return modulo(rest.operand(0), c);
      }
    }
    if (auto range = bound(rest, facts_); range && range->lo >= 0 && range->hi < c) return rest;
    return Expr::binary(BinaryOp::Mod, rest, constant_of(whole.type, c));
  }

  Expr min_max(BinaryOp op, const Expr& a, const Expr& b) {
    if (a == b) return a;
    auto ra = bound(a, facts_);
    auto rb = bound(b, facts_);
    if (ra && rb) {
      const bool a_le_b = ra->hi <= rb->lo;
      const bool b_le_a = rb->hi <= ra->lo;
      if (a_le_b) return op == BinaryOp::Min ? a : b;
      if (b_le_a) return op == BinaryOp::Min ? b : a;
    }
    return Expr::binary(op, a, b);
  }

  Expr compare(BinaryOp op, const Expr& a, const Expr& b) {
    if (a.type().is_signed() || (bound(a, facts_) && bound(b, facts_))) {
      const Expr difference = rebuild(affine_of(Expr::binary(BinaryOp::Sub, a, b)));
      if (auto range = bound(difference, facts_)) {
        std::optional<bool> decided;
        switch (op) {
          case BinaryOp::Eq:
            if (range->lo == 0 && range->hi == 0) decided = true;
            if (!range->contains(0)) decided = false;
            break;
          case BinaryOp::Ne:
            if (range->lo == 0 && range->hi == 0) decided = false;
            if (!range->contains(0)) decided = true;
            break;
          case BinaryOp::Lt:
            if (range->hi < 0) decided = true;
            if (range->lo >= 0) decided = false;
            break;
          case BinaryOp::Le:
            if (range->hi <= 0) decided = true;
            if (range->lo > 0) decided = false;
            break;
          case BinaryOp::Gt:
            if (range->lo > 0) decided = true;
            if (range->hi <= 0) decided = false;
            break;
          case BinaryOp::Ge:
            if (range->lo >= 0) decided = true;
            if (range->hi < 0) decided = false;
            break;
          default:
            break;
        }
        if (decided) return Expr::boolean(*decided);
      }
    }
    return Expr::binary(op, a, b);
  }

  Expr logical(BinaryOp op, const Expr& a, const Expr& b) {
    auto x = a.as_int();
    auto y = b.as_int();
    if (op == BinaryOp::And) {
      if ((x && *x == 0) || (y && *y == 0)) return Expr::boolean(false);
      if (x) return b;
      if (y) return a;
      if (a == b) return a;
    }
    if (op == BinaryOp::Or) {
      if ((x && *x != 0) || (y && *y != 0)) return Expr::boolean(true);
      if (x) return b;
      if (y) return a;
      if (a == b) return a;
    }
    return Expr::binary(op, a, b);
  }

  Expr select(const Expr& condition, const Expr& if_true, const Expr& if_false) {
    if (auto value = condition.as_int()) return *value != 0 ? if_true : if_false;
    if (if_true == if_false) return if_true;
    return Expr::select(condition, if_true, if_false);
  }

  const Facts& facts_;
};

std::optional<Range> type_range(DataType type) {
  if (!type.is_integer()) return std::nullopt;
  if (type.bits() >= 64)
    return Range{std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max()};
  const int64_t span = int64_t{1} << type.bits();
  if (type.is_signed()) return Range{-span / 2, span / 2 - 1};
  return Range{0, span - 1};
}

}  // namespace

void Facts::set_range(const Expr& leaf, Range range) {
  ranges_[leaf] = range;
}
void Facts::set_divisor(const Expr& leaf, int64_t divisor) {
  divisors_[leaf] = divisor;
}

std::optional<Range> Facts::range_of(const Expr& leaf) const {
  auto found = ranges_.find(leaf);
  if (found != ranges_.end()) return found->second;
  return std::nullopt;
}

int64_t Facts::divisor_of(const Expr& leaf) const {
  auto found = divisors_.find(leaf);
  return found != divisors_.end() ? found->second : 1;
}

Expr simplify(const Expr& expr, const Facts& facts) {
  if (expr.empty()) return expr;
  return Simplifier(facts).run(expr);
}

std::optional<Range> bound(const Expr& e, const Facts& facts) {
  if (e.empty() || !e.type().is_integer()) return std::nullopt;
  if (auto value = e.as_int()) return Range{*value, *value};
  if (e.type() == kBool) return Range{0, 1};
  switch (e.kind()) {
    case Expr::Kind::Param:
    case Expr::Kind::Var:
      if (auto known = facts.range_of(e)) return known;
      return type_range(e.type());
    case Expr::Kind::Special: {
      if (auto known = facts.range_of(e)) return known;
      const bool is_grid_dim = e.special_register() >= Special::GridDimX;
      return Range{is_grid_dim ? 1 : 0, std::numeric_limits<int32_t>::max()};
    }
    case Expr::Kind::Unary: {
      auto a = bound(e.operand(0), facts);
      if (e.unary_op() == UnaryOp::Neg) return a ? std::optional(negate_range(*a)) : std::nullopt;
      if (e.unary_op() == UnaryOp::Cast) {
        auto target = type_range(e.type());
        if (a && target && a->lo >= target->lo && a->hi <= target->hi) return a;
        return target;
      }
      return type_range(e.type());
    }
    case Expr::Kind::Select: {
      auto a = bound(e.operand(1), facts);
      auto b = bound(e.operand(2), facts);
      if (!a || !b) return std::nullopt;
      return Range{std::min(a->lo, b->lo), std::max(a->hi, b->hi)};
    }
    case Expr::Kind::Binary:
      break;
    default:
      return std::nullopt;
  }
  auto a = bound(e.operand(0), facts);
  auto b = bound(e.operand(1), facts);
  const auto divisor = e.operand(1).as_int();
  switch (e.binary_op()) {
    case BinaryOp::Add:
      return a && b ? add_ranges(*a, *b) : std::nullopt;
    case BinaryOp::Sub:
      return a && b ? add_ranges(*a, negate_range(*b)) : std::nullopt;
    case BinaryOp::Mul:
      return a && b ? multiply_ranges(*a, *b) : std::nullopt;
    case BinaryOp::FloorDiv:
      if (a && divisor && *divisor > 0)
        return Range{floor_div(a->lo, *divisor), floor_div(a->hi, *divisor)};
      return std::nullopt;
    case BinaryOp::Mod:
      if (divisor && *divisor > 0) {
        if (a && a->lo >= 0 && a->hi < *divisor) return a;
        return Range{0, *divisor - 1};
      }
      return std::nullopt;
    case BinaryOp::Min:
      return a && b ? std::optional(Range{std::min(a->lo, b->lo), std::min(a->hi, b->hi)})
                    : std::nullopt;
    case BinaryOp::Max:
      return a && b ? std::optional(Range{std::max(a->lo, b->lo), std::max(a->hi, b->hi)})
                    : std::nullopt;
    case BinaryOp::BitAnd:
      if (a && b && (a->lo >= 0 || b->lo >= 0)) {
        const int64_t cap =
            a->lo >= 0 && b->lo >= 0 ? std::min(a->hi, b->hi) : (a->lo >= 0 ? a->hi : b->hi);
        return Range{0, cap};
      }
      return type_range(e.type());
    case BinaryOp::Shr:
      if (a && a->lo >= 0 && divisor && *divisor >= 0 && *divisor < 63) {
        return Range{a->lo >> *divisor, a->hi >> *divisor};
      }
      return type_range(e.type());
    case BinaryOp::Shl:
      if (a && divisor && *divisor >= 0 && *divisor < 62) {
        return multiply_ranges(*a, Range{int64_t{1} << *divisor, int64_t{1} << *divisor});
      }
      return type_range(e.type());
    default:
      return type_range(e.type());
  }
}

int64_t known_divisor(const Expr& e, const Facts& facts) {
  if (e.empty() || !is_int(e)) return 1;
  if (auto value = e.as_int()) return *value == 0 ? kHugeDivisor : (*value < 0 ? -*value : *value);
  switch (e.kind()) {
    case Expr::Kind::Param:
    case Expr::Kind::Var:
    case Expr::Kind::Special:
      return facts.divisor_of(e);
    case Expr::Kind::Unary:
      if (e.unary_op() == UnaryOp::Neg) return known_divisor(e.operand(0), facts);
      if (e.unary_op() == UnaryOp::Cast && e.operand(0).type().is_integer()) {
        return known_divisor(e.operand(0), facts);
      }
      return 1;
    case Expr::Kind::Select:
      return std::gcd(known_divisor(e.operand(1), facts), known_divisor(e.operand(2), facts));
    case Expr::Kind::Binary:
      break;
    default:
      return 1;
  }
  const int64_t a = known_divisor(e.operand(0), facts);
  const int64_t b = known_divisor(e.operand(1), facts);
  const auto constant = e.operand(1).as_int();
  switch (e.binary_op()) {
    case BinaryOp::Add:
    case BinaryOp::Sub:
    case BinaryOp::Min:
    case BinaryOp::Max:
      return std::gcd(a, b);
    case BinaryOp::Mul:
      return saturating_multiply(a, b);
    case BinaryOp::Shl:
      return constant && *constant >= 0 && *constant < 62
                 ? saturating_multiply(a, int64_t{1} << *constant)
                 : 1;
    case BinaryOp::FloorDiv:
      return constant && *constant > 0 && a % *constant == 0 ? a / *constant : 1;
    case BinaryOp::Mod:
      return constant && *constant > 0 ? std::gcd(a, *constant) : 1;
    default:
      return 1;
  }
}

bool prove(const Expr& condition, const Facts& facts) {
  const Expr simplified = simplify(condition, facts);
  if (auto value = simplified.as_int()) return *value != 0;
  if (simplified.kind() == Expr::Kind::Binary && simplified.binary_op() == BinaryOp::And) {
    return prove(simplified.operand(0), facts) && prove(simplified.operand(1), facts);
  }
  return false;
}

}  // namespace nibble::vm
