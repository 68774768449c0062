// The C form of VM expressions against the VM's own evaluator: random integer expressions over
// two parameters, at edge values, compiled with the C compiler and run.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "frontend/aot/c_expr.h"
#include "vm/expr_eval.h"

namespace {

namespace fs = std::filesystem;
using nibble::dtypes::DataType;
using nibble::vm::BinaryOp;
using nibble::vm::Expr;
using nibble::vm::UnaryOp;

class RandomExprs {
 public:
  explicit RandomExprs(uint32_t seed) : random_(seed) {}

  Expr integer(DataType type, int depth) {
    if (depth == 0 || pick(4) == 0) return leaf(type);
    switch (pick(5)) {
      case 0:
      case 1: {
        static constexpr BinaryOp ops[] = {BinaryOp::Add,      BinaryOp::Sub,    BinaryOp::Mul,
                                           BinaryOp::FloorDiv, BinaryOp::Mod,    BinaryOp::Min,
                                           BinaryOp::Max,      BinaryOp::BitAnd, BinaryOp::BitOr,
                                           BinaryOp::BitXor,   BinaryOp::Shl,    BinaryOp::Shr};
        return Expr::binary(ops[pick(std::size(ops))], integer(type, depth - 1),
                            integer(type, depth - 1));
      }
      case 2:
        return Expr::unary(pick(2) ? UnaryOp::Neg : UnaryOp::BitNot, integer(type, depth - 1));
      case 3:
        return Expr::select(truth(depth - 1), integer(type, depth - 1), integer(type, depth - 1));
      default:
        return Expr::cast(integer(other(type), depth - 1), type);
    }
  }

  Expr truth(int depth) {
    if (depth > 0 && pick(3) == 0) {
      if (pick(3) == 0) return Expr::unary(UnaryOp::Not, truth(depth - 1));
      return Expr::binary(pick(2) ? BinaryOp::And : BinaryOp::Or, truth(depth - 1),
                          truth(depth - 1));
    }
    static constexpr BinaryOp comparisons[] = {BinaryOp::Eq, BinaryOp::Ne, BinaryOp::Lt,
                                               BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge};
    const DataType type = types()[pick(types().size())];
    return Expr::binary(comparisons[pick(std::size(comparisons))], integer(type, depth),
                        integer(type, depth));
  }

  // A parameter value: edges of the type and small numbers.
  int64_t value(DataType type) {
    const int64_t edges[] = {0,   1,    -1,  2,       3,         7,         -8,        64,
                             127, -128, 255, 1 << 20, INT32_MAX, INT32_MIN, INT64_MAX, INT64_MIN};
    return nibble::vm::wrap_to_type(edges[pick(std::size(edges))], type);
  }

  static const std::vector<DataType>& types() {
    static const std::vector<DataType> all = {DataType::sint(32), DataType::sint(64),
                                              DataType::uint(32), DataType::sint(8),
                                              DataType::uint(16)};
    return all;
  }

 private:
  size_t pick(size_t count) { return std::uniform_int_distribution<size_t>(0, count - 1)(random_); }
  DataType other(DataType type) {
    DataType chosen = type;
    while (chosen == type)
      chosen = types()[pick(types().size())];
    return chosen;
  }
  Expr leaf(DataType type) {
    if (pick(2) == 0) return Expr::param(pick(2) ? "p" : "q", pick(2) ? 0 : 1, type);
    return Expr::int_constant(value(type), type);
  }

  std::mt19937 random_;
};

struct Case {
  Expr expr;
  std::array<int64_t, 2> values;  // of parameters 0 and 1, before wrapping to each use's type
};

}  // namespace

TEST_CASE("C expressions compute what the VM's evaluator computes", "[aot][c_expr]") {
  RandomExprs random(7);
  std::vector<Case> cases;
  for (int i = 0; i < 400; ++i) {
    const DataType type = RandomExprs::types()[static_cast<size_t>(i) % 5];
    cases.push_back({random.integer(type, 1 + i % 4),
                     {random.value(DataType::sint(64)), random.value(DataType::sint(64))}});
  }

  // Parameters reach the C code canonical for the type they are read as, like the generated
  // dispatcher's arguments.
  std::string program = "#include <stdint.h>\n#include <stdio.h>\n";
  program += nibble::aot::kCExprHelpers;
  program += "int main(void) {\n  int bad_flag;\n  int* bad = &bad_flag;\n  int64_t v;\n";
  for (const Case& c : cases) {
    const auto parameter = [&](const Expr& param) {
      const int64_t value = c.values[static_cast<size_t>(param.index())];
      const std::string literal =
          value == INT64_MIN ? "INT64_MIN" : fmt::format("INT64_C({})", value);
      return fmt::format("nbl_wrap({}, {}, {})", literal, param.type().bits(),
                         param.type().is_signed() ? 1 : 0);
    };
    program += fmt::format(
        "  bad_flag = 0;\n  v = {};\n  printf(\"%d %lld\\n\", bad_flag, "
        "(long long)v);\n",
        nibble::aot::c_expression(c.expr, parameter));
  }
  program += "  return 0;\n}\n";

  const fs::path directory = fs::temp_directory_path() / fmt::format("nibble-c-expr-{}", getpid());
  fs::create_directories(directory);
  std::ofstream(directory / "exprs.c") << program;
  const std::string compile =
      fmt::format("'{}' -std=c11 -O1 -Wall -Wextra -Werror -o '{}' '{}' 2>&1", NIBBLE_C_COMPILER,
                  (directory / "exprs").string(), (directory / "exprs.c").string());
  REQUIRE(std::system(compile.c_str()) == 0);
  FILE* pipe = popen((directory / "exprs").string().c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[4096];
  for (size_t got; (got = fread(buffer, 1, sizeof buffer, pipe)) > 0;)
    output.append(buffer, got);
  REQUIRE(pclose(pipe) == 0);
  fs::remove_all(directory);

  std::istringstream lines(output);
  int divisions_by_zero = 0;
  for (const Case& c : cases) {
    int bad = 0;
    long long value = 0;
    REQUIRE(lines >> bad >> value);
    const auto leaf = [&](const Expr& e) {
      return nibble::vm::ScalarValue::of_int(c.values[static_cast<size_t>(e.index())], e.type());
    };
    INFO(nibble::vm::to_string(c.expr) << " with p = " << c.values[0] << ", q = " << c.values[1]);
    try {
      const nibble::vm::ScalarValue expected = nibble::vm::evaluate(c.expr, leaf);
      CHECK(bad == 0);
      CHECK(value == expected.integer);
    } catch (const nibble::vm::ExprError&) {  // division by zero
      CHECK(bad == 1);
      ++divisions_by_zero;
    }
  }
  CHECK(divisions_by_zero > 0);  // the flag path was exercised too
}

TEST_CASE("expressions the dispatcher cannot compute are named", "[aot][c_expr]") {
  const auto parameter = [](const Expr&) { return std::string("p"); };
  const Expr block = Expr::special(nibble::vm::Special::BlockIdX);
  CHECK_THROWS_WITH(nibble::aot::c_expression(block + 1, parameter),
                    Catch::Contains("block index"));
  const Expr real = Expr::float_constant(2.0);
  CHECK_THROWS_WITH(nibble::aot::c_expression(Expr::cast(real, DataType::sint(32)), parameter),
                    Catch::Contains("f32"));
  const Expr var = Expr::var("i", 0, DataType::sint(32));
  CHECK_THROWS_WITH(nibble::aot::c_expression(var * 2, parameter), Catch::Contains("variable 'i'"));
}
