// The C++ DSL builder: the statement trees its scopes make, the names it hands out, the source
// locations it records, and the errors it gives for misuse (its own, and the verifier's at the
// user's line).
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>

#include "frontend/cpp/kernel_builder.h"
#include "vm/interpreter.h"
#include "vm/printer.h"
#include "vm/verifier.h"

namespace nibble::dsl {
namespace {

using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

template <typename T>
const T& as(const vm::Statement& statement) {
  return std::get<T>(statement.node);
}

template <typename T>
const T& instruction(const vm::Statement& statement) {
  return std::get<T>(std::get<vm::Instruction>(statement.node));
}

bool is_instruction(const vm::Statement& statement, std::string_view mnemonic) {
  const auto* inst = std::get_if<vm::Instruction>(&statement.node);
  return inst != nullptr && vm::mnemonic(*inst) == mnemonic;
}

// "file:LINE:" for a line of this file, as messages write it.
std::string here(int line) {
  return fmt::format("test_kernel_builder.cpp:{}:", line);
}

TEST_CASE("scalar operators build the VM's expressions", "[frontend][builder]") {
  KernelBuilder b("scalars");
  Expr n = b.scalar("n");
  Expr x = b.scalar("x", f32);
  CHECK(vm::to_string(n / 4) == "floordiv(n, 4)");
  CHECK(vm::to_string(n % 4) == "mod(n, 4)");
  CHECK(vm::to_string(1 + n) == "(1 + n)");
  CHECK(vm::to_string(8 - n) == "(8 - n)");
  CHECK(vm::to_string(x / x) == "(x / x)");
  CHECK(vm::to_string(cdiv(n, 64)) == "floordiv((n + 63), 64)");
  CHECK((n < 8).type() == u1);
  CHECK(vm::to_string(n >= 2) == "(n >= 2)");
  CHECK(vm::to_string(eq(n, 3)) == "(n == 3)");
  CHECK(vm::to_string((n < 8) && !(n > 2)) == "((n < 8) && !(n > 2))");
  CHECK_THROWS_AS(n + b.scalar("wide", i64), vm::ExprError);
}

TEST_CASE("RAII scopes build the statement tree", "[frontend][builder]") {
  KernelBuilder b("tree");
  Pointer p = b.pointer("p", f32);
  Expr n = b.scalar("n");
  b.launch({cdiv(n, 32)});
  Tensor P = b.view(p, {n});
  Tensor acc = b.zeros({32}, f32, "acc");
  Expr count = b.let("count", 0);
  {
    auto loop = b.for_range(0, n, 32, "i");
    loop.unroll(2);
    Tensor x = b.load(P, {loop.var()}, {32});
    {
      auto branch = b.if_(loop.var() < 64);
      b.assign(acc, acc + x);
      branch.else_();
      b.assign(count, count + 1);
    }
    {
      auto inner = b.while_(count < 4);
      b.assign(count, count + 1);
      b.break_();
    }
  }
  b.store(P, {0}, acc);
  const vm::Program program = b.finish();

  const vm::Body& body = program.body;
  REQUIRE(body.size() == 5);
  CHECK(is_instruction(body[0], "global_view"));
  CHECK(is_instruction(body[1], "alloc_register"));
  CHECK(as<vm::LetStmt>(body[2]).var.name() == "count");
  const auto& loop = as<vm::ForStmt>(body[3]);
  CHECK(loop.var.name() == "i");
  CHECK(loop.unroll == 2);
  CHECK(vm::to_string(loop.step) == "32");
  REQUIRE(loop.body.size() == 3);
  CHECK(is_instruction(loop.body[0], "load_global"));
  const auto& branch = as<vm::IfStmt>(loop.body[1]);
  REQUIRE(branch.then_body.size() == 1);
  REQUIRE(branch.else_body.size() == 1);
  // acc + x updates acc in place: the add's result is acc itself.
  const auto& add = instruction<vm::Elementwise>(branch.then_body[0]);
  CHECK(program.tensor(add.result).name == "acc");
  CHECK(std::holds_alternative<vm::AssignStmt>(branch.else_body[0].node));
  const auto& inner = as<vm::WhileStmt>(loop.body[2]);
  REQUIRE(inner.body.size() == 2);
  CHECK(std::holds_alternative<vm::BreakStmt>(inner.body[1].node));
  CHECK(is_instruction(body[4], "store_global"));
  // The temporary of acc + x is not left in the tensor table.
  CHECK(program.tensors.size() == 3);
}

TEST_CASE("lambda scopes build the same tree", "[frontend][builder]") {
  KernelBuilder b("lambdas");
  Expr n = b.scalar("n");
  Tensor acc = b.zeros({4}, f32, "acc");
  b.for_range(0, n, 1, [&](Expr i) {
    b.if_(
        i < 2, [&] { acc += 1.0; }, [&] { acc -= 1.0; });
  });
  const vm::Program program = b.finish();
  REQUIRE(program.body.size() == 2);
  const auto& loop = as<vm::ForStmt>(program.body[1]);
  REQUIRE(loop.body.size() == 1);
  const auto& branch = as<vm::IfStmt>(loop.body[0]);
  CHECK(branch.then_body.size() == 1);
  CHECK(branch.else_body.size() == 1);
  CHECK(instruction<vm::Elementwise>(branch.else_body[0]).op == vm::ElementwiseOp::Sub);
}

TEST_CASE("tensor operators: broadcast, scalar operands, comparisons", "[frontend][builder]") {
  KernelBuilder b("operators");
  Tensor x = b.zeros({4, 8}, f16, "x");
  Tensor row = b.zeros({4, 1}, f16, "row");
  Tensor d = x - row;  // row is repeated to [4, 8] first
  const vm::Program& program = b.program();
  REQUIRE(program.body.size() == 4);
  const auto& repeat = instruction<vm::Repeat>(program.body[2]);
  CHECK(repeat.axis == 1);
  CHECK(repeat.count == 8);
  CHECK(d.shape() == Shape{4, 8});

  Tensor scaled = x * 0.5;
  const auto& mul = instruction<vm::Elementwise>(program.body.back());
  CHECK(std::get<Expr>(mul.operands[1]).type() == f16);  // the literal took x's type
  CHECK(scaled.dtype() == f16);

  Tensor mask = x < 1;
  CHECK(mask.dtype() == u1);
  Tensor chosen = where(mask, x, 0);
  CHECK(chosen.dtype() == f16);
  Tensor m = max(x, -x).named("magnitude");
  CHECK(m.name() == "magnitude");
  CHECK(exp2(b.cast(x, f32)).dtype() == f32);
  CHECK_NOTHROW(b.finish());
}

TEST_CASE("names are unique and derived from the instruction", "[frontend][builder]") {
  KernelBuilder b("names");
  Pointer p = b.pointer("p", f32);
  Tensor P = b.view(p, {64});
  CHECK(P.name() == "p");
  CHECK(b.zeros({4}, f32, "acc").name() == "acc");
  CHECK(b.zeros({4}, f32, "acc").name() == "acc_1");
  CHECK(b.zeros({4}, f32, "acc_1").name() == "acc_1_1");
  CHECK(b.load(P, {0}, {4}).name() == "load");
  CHECK(b.load(P, {0}, {4}).name() == "load_1");
  Tensor a = b.zeros({4}, f32);
  CHECK(a.name() == "zeros");
  CHECK(max(a, a).name() == "maximum");               // `max` is a reserved word of the text format
  CHECK(b.zeros({4}, f32, "for").name() == "for_1");  // and so is `for`
  Expr i = b.let("i", 0);
  Expr i1 = b.let("i", 1);
  CHECK(i.name() == "i");
  CHECK(i1.name() == "i_1");
  CHECK(b.let("p", 2).name() == "p_1");  // parameters and variables share one namespace
  CHECK_THROWS_WITH(b.zeros({4}, f32, "two words"), Contains("is not a valid tensor name"));
  CHECK_THROWS_WITH(b.pointer("p", f16), Contains("already taken"));
}

TEST_CASE("every call records the caller's source location", "[frontend][builder]") {
  KernelBuilder b("locations");
  Pointer p = b.pointer("p", f32);
  const int view_line = __LINE__ + 1;
  Tensor P = b.view(p, {128});
  const int zeros_line = __LINE__ + 1;
  Tensor acc = b.zeros({128}, f32, "acc");
  const int loop_line = __LINE__ + 1;
  auto loop = b.for_range(0, 4, 1);
  const int load_line = __LINE__ + 1;
  Tensor x = b.load(P, {0}, {128});
  const int add_line = __LINE__ + 1;
  Tensor sum = acc + x;
  const int update_line = __LINE__ + 1;
  acc += x;
  loop.end();
  const int store_line = __LINE__ + 1;
  b.store(P, {0}, exp2(acc));

  const vm::Program program = b.finish();
  const vm::Body& body = program.body;
  CHECK(body[0].location.line == view_line);
  CHECK_THAT(body[0].location.file, EndsWith("test_kernel_builder.cpp"));
  CHECK(body[0].location.column > 0);
  // The qualified name of the function, without return and parameter types.
  CHECK_THAT(body[0].location.function, StartsWith("nibble::dsl::") && !Contains("("));
  CHECK(program.tensor(P.id()).location.line == view_line);
  CHECK(body[1].location.line == zeros_line);
  CHECK(program.tensor(acc.id()).location.line == zeros_line);
  const auto& for_stmt = as<vm::ForStmt>(body[2]);
  CHECK(body[2].location.line == loop_line);
  CHECK(for_stmt.body[0].location.line == load_line);
  CHECK(for_stmt.body[1].location.line == add_line);  // an operator: the expression's line
  CHECK(program.tensor(sum.id()).location.line == add_line);
  CHECK(for_stmt.body[2].location.line == update_line);
  CHECK(body[3].location.line == store_line);  // exp2(sum)
  CHECK(body[4].location.line == store_line);  // the store
}

TEST_CASE("verifier errors name the user's line", "[frontend][builder]") {
  KernelBuilder b("mistake");
  Tensor acc = b.zeros({16, 16}, f32, "acc");
  Tensor a = b.zeros({16, 48}, f16, "a");
  Tensor w = b.zeros({64, 16}, f16, "w");
  const int dot_line = __LINE__ + 1;
  b.dot(acc, a, w);
  try {
    b.finish();
    FAIL("finish() accepted a dot with mismatched k extents");
  } catch (const vm::VerifyError& error) {
    REQUIRE(error.diagnostics().size() == 1);
    CHECK(error.diagnostics()[0].location.line == dot_line);
    CHECK_THAT(error.what(), Contains(here(dot_line)));
    CHECK_THAT(error.what(), Contains("dot: k extent 48 of %a does not match 64 of %w"));
    CHECK_THAT(error.what(), Contains("in kernel 'mistake'"));
  }
}

TEST_CASE("builder misuse is reported at the call", "[frontend][builder]") {
  SECTION("scopes closed out of order") {
    KernelBuilder b("order");
    auto outer = b.for_range(0, 4, 1, "outer");
    const int inner_line = __LINE__ + 1;
    auto inner = b.for_range(0, 4, 1, "inner");
    const int end_line = __LINE__ + 1;
    CHECK_THROWS_WITH(outer.end(), Contains(here(end_line)) && Contains(here(inner_line)) &&
                                       Contains("close scopes innermost first"));
    inner.end();
    outer.end();
    CHECK_THROWS_WITH(outer.end(), Contains("already closed"));
    CHECK_NOTHROW(b.finish());
  }
  SECTION("a scope object outliving the scope inside it breaks the builder") {
    KernelBuilder b("outlived");
    auto outer = std::make_unique<ForScope>(b.for_range(0, 4, 1));
    auto inner = std::make_unique<IfScope>(b.if_(b.block_id(0) < 2));
    outer.reset();  // the loop ends while the if inside it is open
    CHECK_THROWS_WITH(b.barrier(),
                      Contains("ended while the if") && Contains("close scopes innermost first"));
    inner.reset();
  }
  SECTION("an exception leaving a scope") {
    KernelBuilder b("unwound");
    try {
      auto loop = b.for_range(0, 4, 1);
      b.reduce_sum(b.zeros({4}, f32), 1);  // throws: no axis 1
    } catch (const BuilderError&) {
    }
    CHECK_THROWS_WITH(b.finish(), Contains("an exception left the for loop opened at"));
  }
  SECTION("finish with an open scope") {
    KernelBuilder b("open");
    const int loop_line = __LINE__ + 1;
    auto loop = b.for_range(0, 4, 1);
    CHECK_THROWS_WITH(b.finish(), Contains("still open") && Contains(here(loop_line)));
    loop.end();
  }
  SECTION("a tensor of another builder") {
    KernelBuilder b("one");
    KernelBuilder other("two");
    Tensor foreign = other.zeros({4}, f32);
    const int line = __LINE__ + 1;
    CHECK_THROWS_WITH(b.cast(foreign, f16),
                      Contains("another KernelBuilder") && Contains(here(line)));
    Tensor mine = b.zeros({4}, f32);
    CHECK_THROWS_WITH(mine + foreign, Contains("another KernelBuilder"));
  }
  SECTION("a tensor used outside the loop that defines it") {
    KernelBuilder b("escape");
    Tensor inside;
    {
      auto loop = b.for_range(0, 4, 1);
      inside = b.zeros({4}, f32, "inside");
    }
    const int line = __LINE__ + 1;
    CHECK_THROWS_WITH(b.cast(inside, f16),
                      Contains(here(line)) && Contains("%inside is used outside the loop"));
  }
  SECTION("a then-branch tensor in the else branch") {
    KernelBuilder b("branches");
    auto branch = b.if_(b.block_id(0) < 1);
    Tensor then_value = b.zeros({4}, f32);
    branch.else_();
    CHECK_THROWS_WITH(-then_value, Contains("outside the loop or branch"));
    CHECK_THROWS_WITH(branch.else_(), Contains("already has its else"));
  }
  SECTION("a variable used outside its scope") {
    KernelBuilder b("variables");
    Expr i;
    {
      auto loop = b.for_range(0, 4, 1);
      i = loop.var();
    }
    CHECK_THROWS_WITH(b.let("j", i + 1), Contains("used outside the scope"));
    CHECK_THROWS_WITH(b.assign(i, 3), Contains("used outside the scope"));
    KernelBuilder other("other");
    CHECK_THROWS_WITH(b.let("k", other.scalar("n")), Contains("is not a parameter of kernel"));
  }
  SECTION("assign needs the value computed just before") {
    KernelBuilder b("assigns");
    Tensor acc = b.zeros({4}, f32, "acc");
    Tensor x = b.zeros({4}, f32, "x");
    Tensor sum = acc + x;
    b.barrier();
    CHECK_THROWS_WITH(b.assign(acc, sum), Contains("must be computed by the instruction just"));
    Tensor wide = b.zeros({8}, f32);
    CHECK_THROWS_WITH(b.assign(acc, -wide), Contains("is f32[8] but %acc is f32[4]"));
    Tensor temp = acc * 2;
    b.assign(acc, temp);
    CHECK_THROWS_WITH(b.cast(temp, f16), Contains("no longer exists: %mul was assigned into %acc"));
    auto loop = b.for_range(0, 4, 1);
    CHECK_THROWS_WITH(b.assign(loop.var(), 2), Contains("is a loop variable"));
  }
  SECTION("other mistakes") {
    CHECK_THROWS_WITH(KernelBuilder("bad name"), Contains("is not an identifier"));
    KernelBuilder b("misc");
    CHECK_THROWS_WITH(b.cast(Tensor(), f16), Contains("empty Tensor handle"));
    CHECK_THROWS_WITH(b.zeros({4}, f32, "", "S[(4):(1@lane"), Contains("bad layout"));
    CHECK_THROWS_WITH(b.break_(), Contains("break_ outside a loop"));
    CHECK_THROWS_WITH(b.block_id(3), Contains("axis 3"));
    Tensor x = b.zeros({4, 8}, f32);
    CHECK_THROWS_WITH(b.reduce_sum(x, 2), Contains("axis 2 is not a dimension"));
    CHECK_THROWS_WITH(x + b.zeros({4, 4}, f32), Contains("do not broadcast"));
    CHECK_THROWS_WITH(b.permute(x, {0, 0}), Contains("permutation"));
    b.launch({1});
    CHECK_THROWS_WITH(b.launch({1}), Contains("already set"));
    b.finish();
    CHECK_THROWS_WITH(b.barrier(), Contains("the kernel is finished"));
  }
}

TEST_CASE("layouts, swizzles and the remaining instructions", "[frontend][builder]") {
  KernelBuilder b("misc_instructions");
  Pointer p = b.pointer("p", f16);
  Pointer q = b.pointer("q", f32);
  Expr n = b.scalar("n");
  b.launch({1}, 4);
  Tensor P = b.strided_view(p, {n, 64}, {64, 1}, "P");
  Tensor Q = b.view(q, {n, 64});
  Tensor tile = b.alloc_shared({32, 64}, f16, "tile", Swizzle::bytes128());
  CHECK(tile.type().swizzle == Swizzle::bytes128());
  CHECK(tile.type().layout == Layout::row_major({32, 64}, layout::Axis::smem()));
  Tensor custom = b.alloc_shared({8, 8}, f16, "custom", {}, "S[(8,8):(1@smem,8@smem)]");
  CHECK(custom.type().layout->to_string() == "S[(8,8):(1@smem,8@smem)]");
  b.copy_async(tile, {0, 0}, P, {0, 0}, {32, 64});
  b.commit();
  b.wait(0);
  b.barrier();
  Tensor r = b.load_shared(tile, {0, 0}, {32, 64}, "r");
  b.set_layout(r, Layout::parse("S[(32,4,16):(1@lane,1@warp,1@reg)]"));
  b.store_shared(tile, {0, 0}, r);
  Tensor wide = b.cast(r, f32);
  Tensor half = b.slice(wide, {0, 0}, {16, 64});
  Tensor flipped = b.permute(half, {1, 0});
  Tensor flat = b.reshape(flipped, {1024});
  Tensor bits = b.bitcast(b.cast(r, u8), u4, {32, 128});
  Tensor lanes = b.shuffle(half, vm::ShuffleMode::Xor, 1);
  b.atomic_add(Q, {0, 0}, lanes);
  b.print("flat", flat);
  b.print("n", n);
  CHECK(bits.shape() == Shape{32, 128});
  const vm::Program program = b.finish();
  CHECK(program.tensor(r.id()).type.layout->to_string() == "S[(32,4,16):(1@lane,1@warp,1@reg)]");
  CHECK_THAT(vm::print(program), Contains("swizzle Sw<3,4,3>"));
}

TEST_CASE("interpreter errors name the user's line", "[frontend][builder]") {
  KernelBuilder b("overflow");
  Pointer p = b.pointer("p", f32);
  Expr n = b.scalar("n");
  Tensor P = b.view(p, {n});
  Tensor ones = b.full({64}, f32, 1.0, "ones");
  const int store_line = __LINE__ + 1;
  b.store(P, {0}, ones);
  const vm::Program program = b.finish();

  std::vector<float> data(32);  // the view claims 64 elements
  const std::vector<vm::Argument> args = {vm::HostBuffer{data.data(), data.size() * sizeof(float)},
                                          int64_t{64}};
  try {
    vm::interpret(program, args);
    FAIL("a store past the end of the buffer was not reported");
  } catch (const vm::InterpreterError& error) {
    CHECK(error.instruction() == "store_global");
    CHECK(error.location().line == store_line);
    CHECK_THAT(error.what(), Contains(here(store_line)));
  }
}

}  // namespace
}  // namespace nibble::dsl
