// Scalar expressions: construction and type errors, printing, exact evaluation, and the
// simplifier — checked by unit cases and by evaluating thousands of random expressions before
// and after simplification.
#include <catch2/catch.hpp>

#include <random>

#include "vm/expr.h"
#include "vm/expr_eval.h"
#include "vm/simplify.h"

using namespace nibble::vm;
using nibble::dtypes::DataType;

namespace {

const DataType i32 = DataType::sint(32);
const DataType i64 = DataType::sint(64);

Expr c(int64_t value) {
  return Expr::int_constant(value);
}

}  // namespace

TEST_CASE("expressions print in the VM's text form", "[vm][expr]") {
  const Expr k = Expr::param("k", 0, i32);
  const Expr i = Expr::var("i", 1, i32);
  CHECK(to_string(k + i * 4) == "(k + (i * 4))");
  CHECK(to_string(floordiv(k, 64)) == "floordiv(k, 64)");
  CHECK(to_string(Expr::special(Special::BlockIdX)) == "%blockIdx.x");
  CHECK(to_string(Expr::cast(k, i64)) == "cast<i64>(k)");
  CHECK(to_string(Expr::int_constant(4, i64)) == "4:i64");
  CHECK(to_string(Expr::select(Expr::binary(BinaryOp::Lt, i, k), i, k)) == "select((i < k), i, k)");
}

TEST_CASE("ill-typed expressions are rejected with both sides named", "[vm][expr][errors]") {
  const Expr k = Expr::param("k", 0, i32);
  const Expr n = Expr::param("n", 1, i64);
  CHECK_THROWS_WITH(k + n, Catch::Contains("operand types differ") && Catch::Contains("k is i32") &&
                               Catch::Contains("n is i64"));
  const Expr x = Expr::param("x", 2, DataType::f32());
  CHECK_THROWS_WITH(floordiv(x, x), Catch::Contains("use / for floats"));
  CHECK_THROWS_WITH(Expr::binary(BinaryOp::Div, k, k), Catch::Contains("use floordiv"));
  CHECK_THROWS_WITH(Expr::select(k, k, k), Catch::Contains("condition k is i32, expected u1"));
  CHECK_THROWS_WITH(Expr::param("w", 3, DataType::uint(4)), Catch::Contains("storage type"));
}

TEST_CASE("evaluation follows GPU integer semantics", "[vm][expr]") {
  auto no_leaves = [](const Expr&) -> ScalarValue { throw std::logic_error("no leaves"); };
  CHECK(evaluate(floordiv(c(-7), 2), no_leaves).integer == -4);
  CHECK(evaluate(mod(c(-7), 2), no_leaves).integer == 1);
  CHECK(evaluate(c(2147483647) + 1, no_leaves).integer == -2147483648LL);  // wraps
  CHECK(evaluate(Expr::binary(BinaryOp::Shr, c(-8), c(1)), no_leaves).integer == -4);
  CHECK(evaluate(Expr::binary(BinaryOp::Shl, c(1), c(40)), no_leaves).integer == 0);
  const Expr u = Expr::int_constant(0xffffffff, DataType::uint(32));
  CHECK(
      evaluate(Expr::binary(BinaryOp::Shr, u, Expr::int_constant(4, DataType::uint(32))), no_leaves)
          .integer == 0x0fffffff);
  const Expr half = Expr::float_constant(1.0 / 3.0, DataType::f16());
  CHECK(evaluate(half, no_leaves).real == 0.333251953125);  // rounded to f16
  CHECK(evaluate(Expr::cast(Expr::float_constant(-2.7), i32), no_leaves).integer == -2);
  CHECK_THROWS_WITH(evaluate(floordiv(c(1), c(0)), no_leaves),
                    Catch::Contains("division by zero in floordiv(1, 0)"));
}

TEST_CASE("simplifier: affine folding and division by constants", "[vm][simplify]") {
  const Expr i = Expr::var("i", 1, i32);
  const Expr j = Expr::var("j", 2, i32);
  const Expr r = Expr::var("r", 3, i32);
  const Expr k = Expr::param("k", 0, i32);
  Facts facts;
  facts.set_range(r, {0, 3});
  facts.set_range(j, {0, 63});
  facts.set_divisor(k, 128);
  facts.set_range(k, {0, 1 << 20});

  CHECK(simplify(i + c(0)) == i);
  CHECK(to_string(simplify((i + j) - i)) == "j");
  CHECK(to_string(simplify(i * 4 + i * 4 - c(3) + c(5))) == "((i * 8) + 2)");
  CHECK(to_string(simplify(floordiv(i * 128 + j * 4 + r, 4), facts)) == "((i * 32) + j)");
  CHECK(to_string(simplify(mod(i * 128 + r, 64), facts)) == "r");
  CHECK(to_string(simplify(mod(i * 128 + j, 64), facts)) == "j");
  CHECK(to_string(simplify(floordiv(floordiv(i, 4), 8))) == "floordiv(i, 32)");
  CHECK(to_string(simplify(floordiv(i * 4 + 2, 8))) == "floordiv(((i * 2) + 1), 4)");
  CHECK(simplify(mod(k, 64), facts) == c(0));
  CHECK(simplify(Expr::binary(BinaryOp::Lt, j, c(64)), facts) == Expr::boolean(true));
  CHECK(simplify(Expr::binary(BinaryOp::Ge, r, c(4)), facts) == Expr::boolean(false));
  CHECK(simplify(min(r, j + 4), facts) == r);
  CHECK(simplify(Expr::select(Expr::boolean(true), i, j)) == i);
}

TEST_CASE("bounds and divisibility facts", "[vm][simplify]") {
  const Expr j = Expr::var("j", 2, i32);
  const Expr k = Expr::param("k", 0, i32);
  Facts facts;
  facts.set_range(j, {0, 63});
  facts.set_divisor(k, 128);
  auto range = bound(j * 4 + 3, facts);
  REQUIRE(range);
  CHECK(range->lo == 3);
  CHECK(range->hi == 255);
  CHECK(bound(Expr::special(Special::BlockIdX))->lo == 0);
  CHECK(known_divisor(k * 2 + 64, facts) == 64);
  CHECK(known_divisor(floordiv(k, 4), facts) == 32);
  CHECK(known_divisor(Expr::binary(BinaryOp::Shl, j, c(4)), facts) == 16);
  CHECK(known_divisor(j, facts) == 1);
  CHECK(prove(Expr::binary(BinaryOp::Le, j * 2, c(126)), facts));
  CHECK_FALSE(prove(Expr::binary(BinaryOp::Le, j * 2, c(125)), facts));
}

TEST_CASE("simplification preserves values on random expressions", "[vm][simplify][property]") {
  std::mt19937_64 random(7);
  const Expr leaves[] = {Expr::var("i", 1, i32), Expr::var("j", 2, i32), Expr::param("n", 0, i32),
                         Expr::special(Special::BlockIdX)};
  Facts facts;
  facts.set_range(leaves[0], {0, 7});
  facts.set_range(leaves[1], {-5, 31});
  facts.set_range(leaves[2], {0, 4096});
  facts.set_divisor(leaves[2], 16);
  facts.set_range(leaves[3], {0, 100});

  std::function<Expr(int)> generate = [&](int depth) -> Expr {
    const auto pick = random() % (depth <= 0 ? 2 : 9);
    switch (pick) {
      case 0:
        return leaves[random() % 4];
      case 1:
        return c(static_cast<int64_t>(random() % 41) - 20);
      case 2:
        return generate(depth - 1) + generate(depth - 1);
      case 3:
        return generate(depth - 1) - generate(depth - 1);
      case 4:
        return generate(depth - 1) * static_cast<int64_t>(random() % 9 - 2);
      case 5:
        return floordiv(generate(depth - 1), static_cast<int64_t>(1 + random() % 16));
      case 6:
        return mod(generate(depth - 1), static_cast<int64_t>(1 + random() % 16));
      case 7:
        return min(generate(depth - 1), generate(depth - 1));
      default:
        return max(generate(depth - 1), generate(depth - 1));
    }
  };
  for (int trial = 0; trial < 3000; ++trial) {
    const Expr original = generate(4);
    const Expr simplified = simplify(original, facts);
    INFO(to_string(original) << "  ->  " << to_string(simplified));
    REQUIRE(simplify(simplified, facts) == simplified);
    for (int sample = 0; sample < 20; ++sample) {
      const int64_t values[] = {
          static_cast<int64_t>(random() % 8), static_cast<int64_t>(random() % 37) - 5,
          static_cast<int64_t>(random() % 257) * 16, static_cast<int64_t>(random() % 101)};
      auto lookup = [&](const Expr& leaf) {
        for (int l = 0; l < 4; ++l) {
          if (leaf == leaves[l]) return ScalarValue::of_int(values[l], i32);
        }
        throw std::logic_error("unknown leaf");
      };
      REQUIRE(evaluate(original, lookup).integer == evaluate(simplified, lookup).integer);
      const auto range = bound(simplified, facts);
      if (range) REQUIRE(range->contains(evaluate(simplified, lookup).integer));
      REQUIRE(evaluate(simplified, lookup).integer % known_divisor(simplified, facts) == 0);
    }
  }
}
