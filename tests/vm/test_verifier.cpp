// The verifier's error classes, each with its message and source line, and the default passes.
#include <catch2/catch.hpp>

#include <string>

#include "layout/layout.h"
#include "tests/vm/interpreter_kernel.h"
#include "vm/passes.h"
#include "vm/verifier.h"

using namespace nibble::vm;
using Catch::Contains;
using nibble::vm::interp_test::at;
using nibble::vm::interp_test::c;
using nibble::vm::interp_test::Kernel;

namespace {

// A hand-built program whose statements sit at test.cpp:<line>.
Kernel sketch(std::string name, int warps = 4) {
  Kernel kernel(std::move(name), warps);
  kernel.file = "test.cpp";
  return kernel;
}

const DataType f16 = DataType::f16();
const DataType f32 = DataType::f32();
const DataType i32 = DataType::sint(32);

// The one diagnostic of a program, formatted.
std::string only_error(const Program& program) {
  const std::vector<Diagnostic> diagnostics = verify(program);
  if (diagnostics.size() != 1) {
    std::string all;
    for (const Diagnostic& d : diagnostics)
      all += format_diagnostic(program, d) + "\n";
    FAIL("expected exactly one diagnostic, got " << diagnostics.size() << ":\n" << all);
  }
  return format_diagnostic(program, diagnostics.front());
}

// out[i] = x[i] + y[i] over a 1-D tile of 256 (the vector-add shape).
Kernel vector_add() {
  Kernel s = sketch("vector_add");
  const int x = s.pointer("x", f32);
  const int y = s.pointer("y", f32);
  const int out = s.pointer("out", f32);
  const Expr n = s.scalar("n");
  const TensorId X = s.global("X", x, {n});
  const TensorId Y = s.global("Y", y, {n});
  const TensorId O = s.global("O", out, {n});
  const Expr start = Expr::special(Special::BlockIdX) * 256;
  const TensorId a = s.registers("a", f32, {256});
  const TensorId b = s.registers("b", f32, {256});
  const TensorId sum = s.registers("sum", f32, {256});
  s.add(LoadGlobal{a, X, {start}, 0});
  s.add(LoadGlobal{b, Y, {start}, 0});
  s.add(Elementwise{sum, ElementwiseOp::Add, {a, b}});
  s.add(StoreGlobal{O, {start}, sum});
  return s;
}

}  // namespace

TEST_CASE("a well-formed program verifies", "[vm][verifier]") {
  Kernel s = vector_add();
  CHECK(verify(s.program).empty());
  CHECK_NOTHROW(verify_or_throw(s.program));
}

TEST_CASE("verifier: dot shapes and types", "[vm][verifier][errors]") {
  Kernel s = sketch("gemm");
  const TensorId a = s.registers("a", f16, {16, 48});
  const TensorId b = s.registers("b", f16, {64, 8});
  const TensorId c = s.registers("c", f32, {16, 8});
  s.add(AllocRegister{a, 0.0});
  s.add(AllocRegister{b, 0.0});
  s.add(AllocRegister{c, 0.0});
  const int line = s.add(Dot{c, a, b, {}, false, false});
  CHECK(only_error(s.program) == "test.cpp:" + std::to_string(line) +
                                     ":1: error: in kernel 'gemm': dot: k extent 48 of %a does not "
                                     "match 64 of %b");

  Kernel t = sketch("gemm");
  const TensorId a8 = t.registers("a", DataType::sint(8), {16, 32});
  const TensorId b16 = t.registers("b", f16, {32, 8});
  const TensorId c32 = t.registers("c", f32, {16, 8});
  t.add(AllocRegister{a8, 0.0});
  t.add(AllocRegister{b16, 0.0});
  t.add(AllocRegister{c32, 0.0});
  t.add(Dot{c32, a8, b16, {}, false, false});
  CHECK_THAT(only_error(t.program), Contains("dot: i8 x f16 -> f32 is not supported"));

  // 8-bit inputs mix signedness (into i32) and fp8 formats (into f32), as mma.sync m16n8k32 does.
  auto dot_of = [](DataType a_type, DataType b_type, DataType c_type) {
    Kernel k = sketch("dot8");
    const TensorId lhs = k.registers("a", a_type, {16, 32});
    const TensorId rhs = k.registers("b", b_type, {32, 8});
    const TensorId sum = k.registers("c", c_type, {16, 8});
    k.add(AllocRegister{lhs, 0.0});
    k.add(AllocRegister{rhs, 0.0});
    k.add(AllocRegister{sum, 0.0});
    k.add(Dot{sum, lhs, rhs, {}, false, false});
    return verify(k.program);
  };
  const DataType e4m3 = DataType::parse("f8e4m3");
  const DataType e5m2 = DataType::parse("f8e5m2");
  CHECK(dot_of(DataType::uint(8), DataType::sint(8), DataType::sint(32)).empty());
  CHECK(dot_of(DataType::uint(8), DataType::uint(8), DataType::sint(32)).empty());
  CHECK(dot_of(e5m2, e4m3, f32).empty());
  CHECK(dot_of(e4m3, e4m3, f32).empty());
  CHECK_FALSE(dot_of(e4m3, DataType::sint(8), f32).empty());
  CHECK_FALSE(dot_of(e4m3, e4m3, f16).empty());
}

TEST_CASE("verifier: definitions and scopes", "[vm][verifier][errors]") {
  {
    Kernel s = sketch("k");
    const TensorId a = s.registers("a", f32, {4});
    const TensorId b = s.registers("b", f32, {4});
    s.add(Cast{b, a});
    CHECK_THAT(only_error(s.program), Contains("source %a is used before it is defined"));
  }
  {
    Kernel s = sketch("k");
    const TensorId a = s.registers("a", f32, {4});
    s.add(AllocRegister{a, 0.0});
    s.add(AllocRegister{a, 0.0});
    CHECK_THAT(only_error(s.program), Contains("%a is defined twice"));
  }
  {
    Kernel s = sketch("k");
    const TensorId a = s.registers("a", f32, {4});
    const TensorId b = s.registers("b", f32, {4});
    const Expr i = s.var("i");
    Body body;
    s.add(AllocRegister{a, 0.0}, &body);
    s.add(ForStmt{i, Expr::int_constant(0), Expr::int_constant(4), Expr::int_constant(1), body, 0});
    s.add(Cast{b, a});
    CHECK_THAT(only_error(s.program), Contains("outside the loop or branch that defines it"));
  }
  {
    Kernel s = sketch("k");
    s.add(BreakStmt{});
    CHECK_THAT(only_error(s.program), Contains("break outside a loop"));
  }
  {
    Kernel s = sketch("k");
    const Expr v = s.var("v");
    s.add(AssignStmt{v, Expr::int_constant(1)});
    CHECK_THAT(only_error(s.program), Contains("assign: variable v is not defined here"));
  }
  {
    Kernel s = sketch("k");
    const Expr v = s.var("v");
    Body body;
    s.add(LetStmt{v, Expr::int_constant(1)}, &body);
    s.add(IfStmt{Expr::boolean(true), body, {}});
    s.add(LetStmt{s.var("w"), v + 1});
    CHECK_THAT(only_error(s.program),
               Contains("variable v is used outside the scope that defines it"));
  }
  {
    Kernel s = sketch("k");
    s.add(IfStmt{Expr::int_constant(1), {}, {}});
    CHECK_THAT(only_error(s.program), Contains("if: condition 1 is i32, expected u1"));
  }
}

TEST_CASE("verifier: memory instructions", "[vm][verifier][errors]") {
  {
    Kernel s = vector_add();
    auto& load = std::get<LoadGlobal>(std::get<Instruction>(s.program.body[3].node));
    load.offsets.push_back(Expr::int_constant(0));
    CHECK_THAT(only_error(s.program), Contains("load_global: 2 offsets given but %X has rank 1"));
  }
  {
    Kernel s = vector_add();
    s.program.tensors[3].type.dtype = f16;  // %a
    s.program.tensors[5].type.dtype = f16;  // %sum follows: keeps the add consistent
    s.program.tensors[4].type.dtype = f16;
    CHECK_THAT(verify(s.program).front().message, Contains("load_global: %X is f32 but %a is f16"));
  }
  {
    Kernel s = sketch("k");
    const int p = s.pointer("p", f32);
    const TensorId G = s.global("G", p, {Expr::int_constant(8)});
    const TensorId r = s.registers("r", f32, {8});
    s.add(AllocRegister{r, 0.0});
    s.add(LoadGlobal{G, r, {Expr::int_constant(0)}, 0});
    CHECK_THAT(only_error(s.program),
               Contains("load_global: source %r is a register tensor, expected global"));
  }
  {
    Kernel s = sketch("k");
    const Expr n = s.scalar("n");
    TensorType type;
    type.scope = Scope::Global;
    type.dtype = i32;
    type.global_shape = {n};
    type.global_strides = {Expr::int_constant(1)};
    const TensorId G = s.tensor("G", type);
    s.add(GlobalView{G, 0});
    CHECK_THAT(only_error(s.program),
               Contains("global_view: parameter 'n' is a scalar, not a pointer"));
  }
  {
    // A view reads its pointer as the pointer's type or as bytes; no other type.
    for (const DataType view_type : {DataType::uint(8), f16}) {
      Kernel s = sketch("k");
      const int w = s.pointer("w", DataType::sint(4));
      TensorType type;
      type.scope = Scope::Global;
      type.dtype = view_type;
      type.global_shape = {Expr::int_constant(64)};
      type.global_strides = {Expr::int_constant(1)};
      s.add(GlobalView{s.tensor("W", type), w});
      if (view_type == f16) {
        CHECK_THAT(only_error(s.program),
                   Contains("global_view: %W has dtype f16 but parameter 'w' points to i4 (a "
                            "view reads i4 or bytes, u8)"));
      } else {
        CHECK(verify(s.program).empty());
      }
    }
  }
  {
    Kernel s = sketch("k");
    const TensorId tile = s.shared("tile", f16, {16, 16});
    const TensorId r = s.registers("r", f16, {16, 8});
    s.add(LoadShared{r, tile, {Expr::int_constant(0), Expr::int_constant(12)}});
    CHECK_THAT(only_error(s.program),
               Contains("load_shared: dimension 1 covers [12, 20) of %tile, which has extent 16"));
  }
  {
    Kernel s = sketch("k");
    s.program.shared_memory_bytes = 1024;
    s.shared("tile", f16, {64, 64});
    CHECK_THAT(
        only_error(s.program),
        Contains("shared tiles need 8192 bytes (each aligned as placed) but the budget is 1024"));
  }
  {
    Kernel s = sketch("k");
    const int p = s.pointer("p", DataType::uint(8));
    const TensorId G = s.global("G", p, {Expr::int_constant(8)});
    const TensorId r = s.registers("r", DataType::uint(8), {8});
    s.add(AllocRegister{r, 0.0});
    s.add(AtomicAdd{G, {Expr::int_constant(0)}, r});
    CHECK_THAT(only_error(s.program), Contains("atomic_add: u8 has no atomic add"));
  }
  {
    Kernel s = sketch("k");
    s.add(WaitGroup{-1});
    CHECK_THAT(only_error(s.program), Contains("wait_group: -1 pending groups is negative"));
  }
}

TEST_CASE("verifier: copy_async in_bounds dimensions", "[vm][verifier][errors]") {
  const auto with_in_bounds = [](std::vector<int> dims) {
    Kernel k("copy");
    const int in = k.pointer("in", f16);
    const TensorId src = k.global("src", in, {c(16), c(32)});
    const TensorId tile = k.shared("tile", f16, {16, 32});
    k.add(CopyAsync{tile, at({0, 0}), src, at({0, 0}), {16, 32}, std::nullopt, std::move(dims)});
    return k.program;
  };
  CHECK(verify(with_in_bounds({1, 0})).empty());
  CHECK_THAT(only_error(with_in_bounds({2})),
             Contains("copy_async: in_bounds dimension 2 is not one of the box's 2 dimensions"));
  CHECK_THAT(only_error(with_in_bounds({1, 1})),
             Contains("copy_async: in_bounds lists dimension 1 twice"));
}

TEST_CASE("verifier: data and compute instructions", "[vm][verifier][errors]") {
  auto with_source = [](DataType dtype, nibble::layout::Shape shape) {
    Kernel s = sketch("k");
    const TensorId src = s.registers("src", dtype, std::move(shape));
    s.add(AllocRegister{src, 0.0});
    return std::pair{s, src};
  };
  {
    auto [s, src] = with_source(f32, {4, 8});
    const TensorId r = s.registers("r", f32, {4, 8});
    s.add(Reduce{r, src, ReduceOp::Sum, 1});
    CHECK_THAT(only_error(s.program), Contains("reduce: reducing axis 1 of %src gives [4, 1]"));
  }
  {
    auto [s, src] = with_source(f32, {4, 8});
    const TensorId r = s.registers("r", f32, {4, 8});
    s.add(Repeat{r, src, 0, 2});
    CHECK_THAT(only_error(s.program),
               Contains("repeat: repeating %src 2 times along axis 0 gives [8, 8]"));
  }
  {
    auto [s, src] = with_source(f32, {4, 8});
    const TensorId r = s.registers("r", f32, {8, 4});
    s.add(Permute{r, src, {1, 1}});
    CHECK_THAT(only_error(s.program), Contains("permute: dims must be a permutation of 0..1"));
  }
  {
    auto [s, src] = with_source(f32, {4, 8});
    const TensorId r = s.registers("r", f32, {2, 4});
    s.add(Slice{r, src, {3, 0}});
    CHECK_THAT(only_error(s.program),
               Contains("slice: dimension 0 takes [3, 5) of %src, which has extent 4"));
  }
  {
    auto [s, src] = with_source(DataType::uint(32), {4});
    const TensorId r = s.registers("r", DataType::uint(4), {16});
    s.add(View{r, src});
    CHECK_THAT(only_error(s.program),
               Contains("view: %src holds 128 bits ([4] x u32) but %r holds 64 bits"));
  }
  {
    auto [s, src] = with_source(f32, {4, 8});
    const TensorId r = s.registers("r", f32, {4, 4});
    s.add(Elementwise{r, ElementwiseOp::Add, {src, src}});
    CHECK_THAT(only_error(s.program),
               Contains("add: operand %src has shape [4, 8] but %r has shape [4, 4]"));
  }
  {
    auto [s, src] = with_source(DataType::uint(4), {8});
    const TensorId r = s.registers("r", DataType::uint(4), {8});
    s.add(Elementwise{r, ElementwiseOp::Add, {src, src}});
    CHECK_THAT(only_error(s.program), Contains("add: u4 is a storage type; cast u4 values"));
  }
  {
    auto [s, src] = with_source(i32, {8});
    const TensorId r = s.registers("r", i32, {8});
    s.add(Elementwise{r, ElementwiseOp::Exp2, {src}});
    CHECK_THAT(only_error(s.program), Contains("exp2: operands are i32, expected a float type"));
  }
  {
    auto [s, src] = with_source(f32, {8});
    const TensorId r = s.registers("r", f32, {8});
    s.add(Elementwise{r, ElementwiseOp::Mul, {src, Expr::int_constant(2)}});
    CHECK_THAT(only_error(s.program),
               Contains("mul: scalar operand 2 is i32 but the operation is on f32"));
  }
  {
    auto [s, src] = with_source(f32, {64});
    s.program.tensors[0].type.layout =
        nibble::layout::Layout::parse("S[(2,32):(1@warp,1@lane)] + R[4:2@warp]");
    CHECK_THAT(only_error(s.program), Contains("uses 256 threads but the block has 128 (4 warps)"));
  }
  {
    auto [s, src] = with_source(f32, {64});
    s.program.tensors[0].type.layout = nibble::layout::Layout::parse("S[64:1@smem]");
    CHECK_THAT(only_error(s.program),
               Contains("places elements on 'smem'; register tensors live on lane"));
  }
}

TEST_CASE("verifier: program-level rules", "[vm][verifier][errors]") {
  {
    Kernel s = sketch("k", 0);
    CHECK_THAT(only_error(s.program), Contains("a block has 1 to 32 warps, not 0"));
  }
  {
    Kernel s = sketch("k");
    const int p = s.pointer("p", f32);
    const TensorId view = s.global("P", p, {Expr::int_constant(4)});
    s.add(FetchAddStmt{s.var("t"), view, {Expr::int_constant(0)}, Expr::int_constant(1)});
    CHECK_THAT(only_error(s.program),
               Contains("fetch_add: the counter P holds f32, not i32 or u32"));
  }
  {
    Kernel s = sketch("k");
    s.add(ClusterBarrier{});
    CHECK_THAT(only_error(s.program),
               Contains("cluster_barrier: the kernel has no clusters (cluster (1, 1, 1))"));
    s.program.cluster = {4, 1, 8};
    CHECK_THAT(only_error(s.program),
               Contains("cluster (4, 1, 8): each extent at least 1, at most 16 blocks in all"));
  }
  {
    Kernel s = sketch("k", 8);
    s.program.min_blocks_per_sm = 9;
    CHECK_THAT(only_error(s.program),
               Contains("min_blocks_per_sm 9: an SM holds 0 to 32 blocks and at most 2048 threads "
                        "(256 per block)"));
  }
  {
    Kernel s = sketch("k");
    s.pointer("p", f32);
    s.pointer("p", f32);
    CHECK_THAT(only_error(s.program), Contains("parameter 'p' is declared twice"));
  }
  {
    Kernel s = sketch("k");
    s.pointer("p", f32, 12);
    CHECK_THAT(only_error(s.program), Contains("alignment 12 is not a power of two"));
  }
  {
    Kernel s = sketch("k");
    s.program.grid[1] = Expr::int_constant(0);
    CHECK_THAT(only_error(s.program), Contains("grid dimension y is 0"));
  }
  {
    Kernel s = sketch("bad name");
    CHECK_THAT(only_error(s.program), Contains("kernel name 'bad name' is not an identifier"));
  }
  {
    Kernel s = sketch("k");
    const Expr n = s.scalar("n", i32, 64);
    s.program.params.back().value = 100;
    CHECK_THAT(only_error(s.program), Contains("value 100 is not a multiple of its divisor 64"));
    (void)n;
  }
}

TEST_CASE("verify_or_throw lists every diagnostic", "[vm][verifier][errors]") {
  Kernel s = sketch("k", 0);
  s.add(BreakStmt{});
  try {
    verify_or_throw(s.program);
    FAIL("expected VerifyError");
  } catch (const VerifyError& error) {
    CHECK(error.diagnostics().size() == 2);
    CHECK_THAT(std::string(error.what()),
               Contains("1 to 32 warps") &&
                   Contains("test.cpp:1:1: error: in kernel 'k': break outside a loop"));
  }
}

TEST_CASE("passes: simplify, dead code, layouts", "[vm][passes]") {
  Kernel s = vector_add();
  // A compile-time tile size and an offset the simplifier can fold.
  s.program.params.push_back({"tile", Parameter::Kind::Scalar, i32, 0, 1, true, 256});
  const Expr tile = s.program.params.back().expr(4);
  auto& load = std::get<LoadGlobal>(std::get<Instruction>(s.program.body[3].node));
  load.offsets[0] = floordiv(Expr::special(Special::BlockIdX) * tile * 4 + 3, 4);
  // A dead load.
  const TensorId unused = s.registers("unused", f32, {256});
  s.add(LoadGlobal{unused, TensorId{0}, {Expr::int_constant(0)}, 0});
  const auto nibble_layout =
      nibble::layout::Layout::parse("S[(2,32,4):(1@warp,1@lane,1@reg)] + R[2:2@warp]");
  s.program.tensors[3].type.layout = nibble_layout;  // %a: the add's result should inherit it

  run_default_passes(s.program);
  const auto& folded = std::get<LoadGlobal>(std::get<Instruction>(s.program.body[3].node));
  CHECK(to_string(folded.offsets[0]) == "(%blockIdx.x * 256)");
  CHECK(s.program.body.size() == 7);  // the dead load is gone
  CHECK(s.program.tensors[5].type.layout == nibble_layout);
  for (const TensorInfo& tensor : s.program.tensors) {
    if (tensor.type.scope == Scope::Register) CHECK(tensor.type.layout.has_value());
  }
}
