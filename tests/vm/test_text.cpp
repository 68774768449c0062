// The text format: printer and parser round trips over hand-built programs that use every
// instruction and statement kind, a golden printout, parser errors with line and column, and a
// seeded mutation fuzzer over the printed programs.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "layout/layout.h"
#include "tests/source_dir.h"
#include "vm/equality.h"
#include "vm/parser.h"
#include "vm/printer.h"

using namespace nibble::vm;
using Catch::Contains;
using nibble::layout::Axis;

namespace {

const DataType f16 = DataType::f16();
const DataType f32 = DataType::f32();
const DataType i32 = DataType::sint(32);
const DataType i64 = DataType::sint(64);
const DataType u1 = DataType::uint(1);

Expr c(int64_t value, DataType type = i32) {
  return Expr::int_constant(value, type);
}
Expr cf(double value, DataType type = f32) {
  return Expr::float_constant(value, type);
}
Expr bin(BinaryOp op, Expr a, Expr b) {
  return Expr::binary(op, std::move(a), std::move(b));
}
SourceLocation at(std::string file, int line, int column = 0, std::string function = "") {
  return SourceLocation{std::move(file), line, column, std::move(function)};
}

// Builds programs the way a front end does: tensors in the order of their first definition
// (with that statement's location), variables numbered in order of definition.
struct Sketch {
  Program program;

  explicit Sketch(std::string name) { program.name = std::move(name); }

  int pointer(std::string name, DataType dtype, int64_t alignment = 16) {
    Parameter param;
    param.name = std::move(name);
    param.kind = Parameter::Kind::Pointer;
    param.dtype = dtype;
    param.alignment_bytes = alignment;
    program.params.push_back(std::move(param));
    return static_cast<int>(program.params.size()) - 1;
  }
  Expr scalar(std::string name, DataType dtype = i32, int64_t divisor = 1,
              bool compile_time = false, std::optional<int64_t> value = std::nullopt) {
    Parameter param;
    param.name = std::move(name);
    param.dtype = dtype;
    param.divisor = divisor;
    param.compile_time = compile_time;
    param.value = value;
    program.params.push_back(std::move(param));
    const int index = static_cast<int>(program.params.size()) - 1;
    return program.params.back().expr(index);
  }
  Expr var(std::string name, DataType dtype = i32) {
    return Expr::var(std::move(name), program.next_var_id++, dtype);
  }
  TensorId tensor(std::string name, TensorType type, SourceLocation location = {}) {
    program.tensors.push_back({std::move(name), std::move(type), std::move(location)});
    return TensorId{static_cast<int>(program.tensors.size()) - 1};
  }
};

TensorType global_type(DataType dtype, std::vector<Expr> shape, std::vector<Expr> strides) {
  TensorType type;
  type.scope = Scope::Global;
  type.dtype = dtype;
  type.global_shape = std::move(shape);
  type.global_strides = std::move(strides);
  return type;
}
TensorType register_type(DataType dtype, nibble::layout::Shape shape,
                         std::optional<Layout> layout = std::nullopt) {
  TensorType type;
  type.scope = Scope::Register;
  type.dtype = dtype;
  type.shape = std::move(shape);
  type.layout = std::move(layout);
  return type;
}
TensorType shared_type(DataType dtype, nibble::layout::Shape shape, Swizzle swizzle = {}) {
  TensorType type;
  type.scope = Scope::Shared;
  type.dtype = dtype;
  type.layout = Layout::row_major(shape, Axis::smem());
  type.shape = std::move(shape);
  type.swizzle = swizzle;
  return type;
}

template <class Node>
Statement statement(Node node, SourceLocation location = {}) {
  return Statement{std::move(node), std::move(location)};
}

// ---- the programs ----------------------------------------------------------------------------

// out[i] = x[i] + y[i] + 1, 512 elements per block.
Program vector_add() {
  Sketch s("vector_add");
  const int x = s.pointer("x", f32);
  const int y = s.pointer("y", f32);
  const int out = s.pointer("out", f32);
  const Expr n = s.scalar("n", i32, 4);
  Program& p = s.program;
  p.grid = {floordiv(n + 511, 512), c(1), c(1)};
  const SourceLocation line10 = at("add.cpp", 10, 3, "vector_add");
  const TensorId X = s.tensor("X", global_type(f32, {n}, {c(1)}), line10);
  const TensorId Y = s.tensor("Y", global_type(f32, {n}, {c(1)}));
  const TensorId O = s.tensor("O", global_type(f32, {n}, {c(1)}));
  const Expr start = s.var("start");
  const TensorId a = s.tensor("a", register_type(f32, {512}));
  const TensorId b =
      s.tensor("b", register_type(f32, {512}, Layout::parse("S[(4,32,4):(1@warp,1@lane,1@reg)]")));
  const TensorId sum = s.tensor("sum", register_type(f32, {512}));
  p.body.push_back(statement(GlobalView{X, x}, line10));
  p.body.push_back(statement(GlobalView{Y, y}));
  p.body.push_back(statement(GlobalView{O, out}));
  p.body.push_back(
      statement(LetStmt{start, Expr::special(Special::BlockIdX) * 512}, at("add.cpp", 13)));
  p.body.push_back(statement(LoadGlobal{a, X, {start}, 0}));
  p.body.push_back(statement(LoadGlobal{b, Y, {start}, -1.5}));
  p.body.push_back(statement(Elementwise{sum, ElementwiseOp::Add, {a, b}}));
  p.body.push_back(statement(Elementwise{sum, ElementwiseOp::Add, {sum, cf(1)}}));
  p.body.push_back(statement(StoreGlobal{O, {start}, sum}, at("add.cpp", 17, 5)));
  return p;
}

// A tiled f16 GEMM main loop: global -> shared with cp.async, shared -> registers, dot.
Program tiled_gemm() {
  Sketch s("gemm<64, 64>");
  const int a = s.pointer("a", f16);
  const int b = s.pointer("b", f16);
  const int out = s.pointer("c", f32, 8);
  const Expr m = s.scalar("m");
  const Expr n = s.scalar("n", i32, 64);
  const Expr k = s.scalar("k", i32, 32);
  const Expr bm = s.scalar("bm", i32, 1, true, 64);
  Program& p = s.program;
  p.grid = {floordiv(m + 63, 64), floordiv(n + 63, 64), c(1)};
  p.warps = 4;
  p.shared_memory_bytes = 8192;
  p.min_blocks_per_sm = 3;
  p.early_trigger = true;
  p.dependent_launch = true;

  const TensorId A = s.tensor("A", global_type(f16, {m, k}, {k, c(1)}));
  const TensorId B = s.tensor("B", global_type(f16, {k, n}, {n, c(1)}));
  const TensorId C = s.tensor("C", global_type(f32, {m, n}, {n, c(1)}));
  const TensorId As = s.tensor("As", shared_type(f16, {64, 32}, Swizzle::bytes64()));
  const TensorId Bs = s.tensor("Bs", shared_type(f16, {32, 64}));
  const Layout accumulator =
      Layout::parse("S[(2,2,8,4,2,4):(1@warp,2@reg,4@lane,8@reg,1@reg,1@lane)]");
  const TensorId acc = s.tensor("acc", register_type(f32, {64, 64}, accumulator));
  const Expr m0 = s.var("m0");
  const Expr n0 = s.var("n0");
  const Expr k0 = s.var("k0");
  const TensorId ra = s.tensor("ra", register_type(f16, {64, 32}));
  const TensorId rb = s.tensor("rb", register_type(f16, {32, 64}));
  const TensorId out16 = s.tensor("out16", register_type(f16, {64, 64}));

  p.body.push_back(statement(GlobalView{A, a}));
  p.body.push_back(statement(GlobalView{B, b}));
  p.body.push_back(statement(GlobalView{C, out}));
  p.body.push_back(statement(AllocShared{As}));
  p.body.push_back(statement(AllocShared{Bs}));
  p.body.push_back(statement(AllocRegister{acc, 0.0}));
  p.body.push_back(statement(LetStmt{m0, Expr::special(Special::BlockIdX) * bm}));
  p.body.push_back(statement(LetStmt{n0, Expr::special(Special::BlockIdY) * 64}));

  Body loop;
  const Layout threads = Layout::parse("S[(64,4):(4@thread,1@reg)]");
  loop.push_back(statement(CopyAsync{As, {c(0), c(0)}, A, {m0, k0}, {64, 32}, threads, {}}));
  loop.push_back(statement(CopyAsync{Bs, {c(0), c(0)}, B, {k0, n0}, {32, 64}, std::nullopt, {0}}));
  loop.push_back(statement(CommitGroup{}));
  loop.push_back(statement(WaitGroup{0}));
  loop.push_back(statement(Barrier{}));
  loop.push_back(statement(LoadShared{ra, As, {c(0), c(0)}}));
  loop.push_back(statement(LoadShared{rb, Bs, {c(0), c(0)}}));
  loop.push_back(statement(Dot{acc, ra, rb, {}, false, false}, at("gemm.cpp", 31, 9)));
  loop.push_back(statement(Barrier{}));
  p.body.push_back(
      statement(ForStmt{k0, c(0), k, c(32), std::move(loop), 2}, at("gemm.cpp", 24, 5, "gemm")));

  p.body.push_back(statement(Cast{out16, acc}));
  p.body.push_back(statement(StoreShared{As, {c(0), c(0)}, out16}));
  p.body.push_back(statement(StoreGlobal{C, {m0, n0}, acc}));
  return p;
}

// Row softmax: reduce, repeat, elementwise, with a scalar operand.
Program softmax() {
  Sketch s("softmax");
  const int x = s.pointer("x", f16);
  const int y = s.pointer("y", f16);
  const Expr rows = s.scalar("rows");
  const Expr cols = s.scalar("cols", i32, 128, true, 1024);
  Program& p = s.program;
  p.grid = {floordiv(rows + 3, 4), c(1), c(1)};
  p.warps = 4;
  const TensorId X = s.tensor("X", global_type(f16, {rows, cols}, {cols, c(1)}));
  const TensorId Y = s.tensor("Y", global_type(f16, {rows, cols}, {cols, c(1)}));
  const Expr row = s.var("row");
  const TensorId xh = s.tensor("xh", register_type(f16, {4, 1024}));
  const TensorId xf = s.tensor("xf", register_type(f32, {4, 1024}));
  const TensorId mx = s.tensor("mx", register_type(f32, {4, 1}));
  const TensorId mb = s.tensor("mb", register_type(f32, {4, 1024}));
  const TensorId d = s.tensor("d", register_type(f32, {4, 1024}));
  const TensorId e = s.tensor("e", register_type(f32, {4, 1024}));
  const TensorId sum = s.tensor("sum", register_type(f32, {4, 1}));
  const TensorId sb = s.tensor("sb", register_type(f32, {4, 1024}));
  const TensorId yh = s.tensor("yh", register_type(f16, {4, 1024}));
  p.body.push_back(statement(GlobalView{X, x}));
  p.body.push_back(statement(GlobalView{Y, y}));
  p.body.push_back(statement(LetStmt{row, Expr::special(Special::BlockIdX) * 4}));
  p.body.push_back(
      statement(LoadGlobal{xh, X, {row, c(0)}, -std::numeric_limits<double>::infinity()}));
  p.body.push_back(statement(Cast{xf, xh}));
  p.body.push_back(statement(Reduce{mx, xf, ReduceOp::Max, 1}));
  p.body.push_back(statement(Repeat{mb, mx, 1, 1024}));
  p.body.push_back(statement(Elementwise{d, ElementwiseOp::Sub, {xf, mb}}));
  p.body.push_back(statement(Elementwise{d, ElementwiseOp::Mul, {d, cf(1.4426950408889634)}}));
  p.body.push_back(statement(Elementwise{e, ElementwiseOp::Exp2, {d}}));
  p.body.push_back(statement(Reduce{sum, e, ReduceOp::Sum, 1}));
  p.body.push_back(statement(Reduce{sum, sum, ReduceOp::Min, 0}));
  p.body.push_back(statement(Repeat{sb, sum, 1, 1024}));
  p.body.push_back(statement(Elementwise{e, ElementwiseOp::Div, {e, sb}}));
  p.body.push_back(statement(Cast{yh, e}));
  p.body.push_back(statement(StoreGlobal{Y, {row, c(0)}, yh}));
  return p;
}

// Everything else: every elementwise op, shuffles, view, slice, permute, reshape, atomic_add,
// print, while/break/if/else/let/assign, and the corners of expressions and locations.
Program miscellany() {
  Sketch s("misc");
  const int g = s.pointer("g", f32, 4);
  const Expr n = s.scalar("n", i32, 8);
  s.scalar("flag", i32, 1, true);
  const Expr big = s.scalar("big", i64, 1, false, -5);
  Program& p = s.program;
  p.grid = {n, c(2), Expr::cast(big, i32)};
  p.warps = 1;
  const Layout lanes = Layout::parse("S[(32,4):(1@lane,1@reg)]");
  const TensorId G = s.tensor("G", global_type(f32, {n, c(64)}, {c(64), c(1)}));
  const TensorId t = s.tensor("t", register_type(f32, {32, 4}, lanes));
  const TensorId u = s.tensor("u", register_type(f32, {32, 4}, lanes));
  const TensorId w = s.tensor("w", register_type(f32, {32, 4}, lanes));
  const TensorId bits = s.tensor("bits", register_type(DataType::uint(32), {32, 4}, lanes));
  const TensorId nibbles = s.tensor(
      "nibbles", register_type(DataType::uint(4), {32, 32},
                               Layout::parse("S[(32,4,8):(1@lane,8@reg,1@reg)] + R[2:0@warp]")));
  const TensorId sl = s.tensor("sl", register_type(f32, {32, 2}));
  const TensorId pt = s.tensor("pt", register_type(f32, {4, 32}));
  const TensorId rs = s.tensor("rs", register_type(f32, {128}));
  const TensorId cond = s.tensor("cond", register_type(u1, {32, 4}));
  p.body.push_back(statement(GlobalView{G, g}));
  p.body.push_back(statement(AllocRegister{t, std::nullopt}));
  p.body.push_back(statement(Shuffle{u, t, ShuffleMode::Xor, c(16)}));
  p.body.push_back(statement(Shuffle{u, u, ShuffleMode::Up, c(1)}));
  p.body.push_back(statement(Shuffle{w, t, ShuffleMode::Down, n - 1}));
  p.body.push_back(statement(Shuffle{w, w, ShuffleMode::Index, c(0)}));
  p.body.push_back(statement(View{bits, t}));
  p.body.push_back(statement(View{nibbles, bits}));
  p.body.push_back(statement(Slice{sl, t, {0, 2}}));
  p.body.push_back(statement(Permute{pt, t, {1, 0}}));
  p.body.push_back(statement(Reshape{rs, t}));
  p.body.push_back(statement(AtomicAdd{G, {c(0), c(-3)}, rs}));
  p.body.push_back(statement(Elementwise{cond, ElementwiseOp::Gt, {t, cf(0)}}));

  // Every elementwise op, by arity.
  for (int code = 0; code <= static_cast<int>(ElementwiseOp::Where); ++code) {
    const auto op = static_cast<ElementwiseOp>(code);
    const TensorId result = s.tensor(
        fmt::format("r_{}", to_string(op)),
        register_type(arity(op) == 2 && code >= static_cast<int>(ElementwiseOp::Eq) ? u1 : f32,
                      {32, 4}));
    std::vector<Operand> operands;
    if (arity(op) == 1) operands = {t};
    if (arity(op) == 2) operands = {t, u};
    if (op == ElementwiseOp::Fma) operands = {t, u, cf(0.25)};
    if (op == ElementwiseOp::Where) operands = {cond, t, cf(0)};
    p.body.push_back(statement(Elementwise{result, op, operands}));
  }

  p.body.push_back(statement(Print{"t = \"t\"\n\tdone\x01", t, std::nullopt}));
  p.body.push_back(statement(Print{"n", std::nullopt, n * 2}));
  p.body.push_back(statement(Print{"both", t, Expr::special(Special::BlockIdY)}));
  p.body.push_back(statement(Print{"", std::nullopt, std::nullopt}));

  // Scalars: every kind of expression node and constant.
  const Expr i = s.var("i");
  const Expr limit = s.var("limit");
  const Expr wide = s.var("wide", i64);
  p.body.push_back(statement(LetStmt{i, c(0)}, at("C:/src/misc:2.cpp", 40, 1)));
  p.body.push_back(statement(LetStmt{limit, Expr::select(bin(BinaryOp::Gt, n, c(4)), n, c(4))}));
  p.body.push_back(statement(LetStmt{wide, Expr::cast(limit, i64) * c(4, i64)},
                             at("misc.cpp", 42, 0, " padded function ")));
  const std::vector<std::pair<std::string, Expr>> values = {
      {"neg", -n},
      {"neg_constant", -c(3)},
      {"negative", c(-3)},
      {"double_neg", -(-n)},
      {"half", cf(0.5)},
      {"tiny", cf(1e-5)},
      {"huge", cf(1e300, DataType::f64())},
      {"infinity", cf(std::numeric_limits<double>::infinity())},
      {"minus_infinity", cf(-std::numeric_limits<double>::infinity())},
      {"not_a_number", cf(std::numeric_limits<double>::quiet_NaN(), DataType::f64())},
      {"minus_zero", cf(-0.0)},
      {"brain", cf(1.5, DataType::bf16())},
      {"half_type", cf(-2, f16)},
      {"byte", c(200, DataType::uint(8))},
      {"extreme", c(std::numeric_limits<int64_t>::min(), i64)},
      {"yes", Expr::boolean(true)},
      {"no", Expr::unary(UnaryOp::Not, Expr::boolean(false))},
      {"masks", bin(BinaryOp::Shr,
                    bin(BinaryOp::BitOr, bin(BinaryOp::BitAnd, n, c(255)),
                        bin(BinaryOp::Shl, bin(BinaryOp::BitXor, n, c(3)), c(2))),
                    c(1))},
      {"complement", Expr::unary(UnaryOp::BitNot, n)},
      {"division", floordiv(n, 4) + mod(n, c(4)) + min(n, c(1)) - max(n, c(2))},
      {"quotient", bin(BinaryOp::Div, cf(1), cf(3))},
      {"logic", bin(BinaryOp::And, bin(BinaryOp::Le, n, c(2)),
                    bin(BinaryOp::Or, bin(BinaryOp::Ge, n, c(1)), bin(BinaryOp::Ne, n, c(0))))},
      {"block", Expr::special(Special::BlockIdZ) + Expr::special(Special::GridDimX) +
                    Expr::special(Special::GridDimY) + Expr::special(Special::GridDimZ)},
      {"param64", big * c(2, i64)},
  };
  for (const auto& [name, value] : values) {
    p.body.push_back(statement(LetStmt{s.var(name, value.type()), value}));
  }
  // A variable whose value is left empty, with its type written.
  p.body.push_back(statement(LetStmt{s.var("unset", i64), Expr()}));

  // while / if / else / break / assign, with a tensor defined inside a branch.
  const TensorId inner = s.tensor("inner", register_type(f32, {32, 4}));
  Body then_body;
  then_body.push_back(statement(BreakStmt{}, at("misc.cpp", 50)));
  Body else_body;
  else_body.push_back(statement(AssignStmt{i, i + 1}));
  else_body.push_back(statement(Elementwise{inner, ElementwiseOp::Neg, {t}}));
  else_body.push_back(statement(Elementwise{inner, ElementwiseOp::Abs, {inner}}));
  Body while_body;
  while_body.push_back(statement(IfStmt{bin(BinaryOp::Or, bin(BinaryOp::Eq, i, c(3)),
                                            Expr::unary(UnaryOp::Not, bin(BinaryOp::Ne, i, c(2)))),
                                        std::move(then_body), std::move(else_body)},
                                 at("misc.cpp", 49)));
  Body only_then;
  only_then.push_back(statement(AssignStmt{i, i * 2}));
  while_body.push_back(statement(IfStmt{bin(BinaryOp::Lt, i, c(0)), std::move(only_then), {}}));
  p.body.push_back(statement(WhileStmt{bin(BinaryOp::Lt, i, limit), std::move(while_body)}));

  // Loops: an i64 variable, an empty body, no unrolling; one defined before its start is known.
  const Expr j = s.var("j", i64);
  Body j_body;
  j_body.push_back(statement(AtomicAdd{G, {Expr::cast(j, i32), c(0)}, rs}));
  p.body.push_back(statement(ForStmt{j, c(0, i64), wide, c(1, i64), std::move(j_body), 0}));
  const Expr empty_loop = s.var("e");
  p.body.push_back(statement(ForStmt{empty_loop, c(0), n, c(1), {}, 1}));
  const Expr typed = s.var("typed", i64);
  p.body.push_back(statement(ForStmt{typed, Expr(), Expr(), Expr(), {}, 0}));

  // fetch_add on an i32 counter: the variable takes the counter's type.
  const int counts = s.pointer("counts", i32);
  const TensorId Counts = s.tensor("Counts", global_type(i32, {n}, {c(1)}));
  p.body.push_back(statement(GlobalView{Counts, counts}));
  p.body.push_back(
      statement(FetchAddStmt{s.var("ticket"), Counts, {n - 1}, c(1)}, at("misc.cpp", 60)));
  return p;
}

// Clusters of 2 x 1 x 4 blocks reading each other's shared rows.
Program clustered() {
  Sketch s("clustered");
  Program& p = s.program;
  p.grid = {c(4), c(1), c(8)};
  p.cluster = {2, 1, 4};
  p.shared_memory_bytes = 1024;
  const TensorId row = s.tensor("row", shared_type(f32, {1, 64}));
  const TensorId peer = s.tensor("peer", register_type(f32, {1, 16}));
  p.body.push_back(statement(AllocShared{row}));
  p.body.push_back(statement(ClusterBarrier{}, at("cluster.cpp", 4)));
  p.body.push_back(statement(
      LoadPeerShared{peer, row, mod(Expr::special(Special::BlockIdZ), c(4)), {c(0), c(16)}}));
  p.body.push_back(statement(ClusterBarrier{}));
  return p;
}

std::vector<Program> all_programs() {
  return {vector_add(), tiled_gemm(), softmax(), miscellany(), clustered()};
}

// Where two programs differ first, for the test log.
std::string first_difference(const Program& a, const Program& b) {
  if (a.name != b.name) return "name";
  if (a.params != b.params) return "params";
  if (a.grid != b.grid) return "grid";
  if (a.warps != b.warps || a.shared_memory_bytes != b.shared_memory_bytes ||
      a.min_blocks_per_sm != b.min_blocks_per_sm || a.early_trigger != b.early_trigger ||
      a.dependent_launch != b.dependent_launch || a.cluster != b.cluster) {
    return "header";
  }
  if (a.next_var_id != b.next_var_id) return "next_var_id";
  for (size_t i = 0; i < std::min(a.tensors.size(), b.tensors.size()); ++i) {
    if (!(a.tensors[i] == b.tensors[i])) return "tensor " + a.tensors[i].name;
  }
  if (a.tensors.size() != b.tensors.size()) return "tensor count";
  for (size_t i = 0; i < std::min(a.body.size(), b.body.size()); ++i) {
    if (!(a.body[i] == b.body[i])) return "statement " + print(a, a.body[i]);
  }
  if (a.body.size() != b.body.size()) return "statement count";
  return "none";
}

void check_round_trip(const Program& program) {
  const std::string text = print(program);
  INFO(text);
  const Program parsed = parse_program(text);
  CHECK(print(parsed) == text);
  INFO("first difference: " << first_difference(parsed, program));
  CHECK(parsed == program);
}

std::string parse_error(std::string_view text) {
  try {
    parse_program(text, "k.nbl");
  } catch (const ParseError& error) {
    return error.what();
  }
  FAIL("parsed without error:\n" << text);
  return "";
}

const char* const kSmall = R"(kernel small {
  param x: ptr<f32> align 16
  param n: i32
  grid (n, 1, 1)
  warps 1
  shared_memory_bytes 0

  %X = global_view x : f32 global[n] strides [1]
  %a = load_global %X[0] : f32 register[32] @ ?
  store_global %X[0], %a
}
)";

// `kSmall` with `line` inserted before its closing brace.
std::string small_with(std::string_view line) {
  std::string text = kSmall;
  text.insert(text.rfind('}'), std::string(line) + "\n");
  return text;
}

}  // namespace

TEST_CASE("text: every program round-trips to an equal program", "[vm][text]") {
  for (const Program& program : all_programs()) {
    SECTION(program.name) {
      check_round_trip(program);
    }
  }
}

TEST_CASE("text: golden printout of a vector add", "[vm][text]") {
  const std::string expected = R"(kernel vector_add {
  param x: ptr<f32> align 16
  param y: ptr<f32> align 16
  param out: ptr<f32> align 16
  param n: i32 divisor 4
  grid (floordiv((n + 511), 512), 1, 1)
  warps 4
  shared_memory_bytes 0

  %X = global_view x : f32 global[n] strides [1]  # add.cpp:10:3 in vector_add
  %Y = global_view y : f32 global[n] strides [1]
  %O = global_view out : f32 global[n] strides [1]
  let start = (%blockIdx.x * 512)  # add.cpp:13
  %a = load_global %X[start] : f32 register[512] @ ?
  %b = load_global %Y[start] other -1.5 : f32 register[512] @ S[(4,32,4):(1@warp,1@lane,1@reg)]
  %sum = add %a, %b : f32 register[512] @ ?
  %sum = add %sum, 1:f32
  store_global %O[start], %sum  # add.cpp:17:5
}
)";
  CHECK(print(vector_add()) == expected);
  CHECK(parse_program(expected) == vector_add());
}

TEST_CASE("text: the example in vm/printer.h reads back as printed", "[vm][text]") {
  std::ifstream header(nibble::testing::source_dir() / "vm" / "printer.h");
  REQUIRE(header);
  std::string example;
  bool inside = false;
  for (std::string line; std::getline(header, line);) {
    if (line == "//   kernel gemm {") inside = true;
    if (!inside) continue;
    example += line.size() > 5 ? line.substr(5) : "";
    example += "\n";
    if (line == "//   }") break;
  }
  REQUIRE(!example.empty());
  const Program program = parse_program(example, "printer.h");
  CHECK(print(program) == example);
  CHECK(program.tensors.size() == 8);
  CHECK(program.body[0].location == at("gemm.cpp", 12, 3));
  CHECK(program.tensors[0].location == at("gemm.cpp", 12, 3));
}

TEST_CASE("text: printed pieces of the other programs", "[vm][text]") {
  const std::string gemm = print(tiled_gemm());
  CHECK_THAT(gemm, Contains("kernel \"gemm<64, 64>\" {"));
  CHECK_THAT(gemm, Contains("param bm: i32 const = 64"));
  CHECK_THAT(gemm, Contains("%As = alloc_shared : f16 shared[64,32] @ "
                            "S[(64,32):(32@smem,1@smem)] swizzle Sw<2,4,3>"));
  CHECK_THAT(gemm, Contains("%acc = alloc_register fill 0 : f32 register[64,64] @ S["));
  CHECK_THAT(gemm, Contains("  for k0 in range(0, k, 32) unroll 2 {  # gemm.cpp:24:5 in gemm\n"));
  CHECK_THAT(gemm, Contains("    copy_async %As[0, 0], %A[m0, k0] shape [64, 32] threads "
                            "S[(64,4):(4@thread,1@reg)]\n"));
  CHECK_THAT(gemm, Contains("    wait_group 0\n"));
  CHECK_THAT(gemm, Contains("    dot %acc, %ra, %rb  # gemm.cpp:31:9\n"));

  // Types read as vm::to_string(TensorType) writes them.
  for (const TensorInfo& tensor : tiled_gemm().tensors) {
    CHECK_THAT(gemm, Contains("%" + tensor.name + " = ") && Contains(to_string(tensor.type)));
  }

  const std::string misc = print(miscellany());
  CHECK_THAT(misc, Contains("print \"t = \\\"t\\\"\\n\\tdone\\x01\", %t\n"));
  CHECK_THAT(misc, Contains("let neg_constant = -(3)\n"));
  CHECK_THAT(misc, Contains("let negative = -3\n"));
  CHECK_THAT(misc, Contains("let minus_infinity = -inf:f32\n"));
  CHECK_THAT(misc, Contains("let unset: i64 = ?\n"));
  CHECK_THAT(misc, Contains("let i = 0  # \"C:/src/misc:2.cpp\":40:1\n"));
  CHECK_THAT(misc, Contains("# misc.cpp:42 in \" padded function \"\n"));
  CHECK_THAT(misc, Contains("  } else {\n"));
  CHECK_THAT(misc, Contains("for typed: i64 in range(?, ?, ?) {\n"));
  CHECK_THAT(misc, Contains("%r_where = where %cond, %t, 0:f32 : f32 register[32,4] @ ?"));
}

TEST_CASE("text: names are made unique and readable back", "[vm][text]") {
  Sketch s("names");
  const Expr n = s.scalar("for");  // a reserved word
  Program& p = s.program;
  p.grid = {n, c(1), c(1)};
  const Expr first = s.var("i");
  const Expr second = s.var("i");  // the same name, another variable
  const Expr odd = s.var("3 x");   // not an identifier
  const TensorId t = s.tensor("t", register_type(f32, {4}));
  const TensorId t2 = s.tensor("t", register_type(f32, {4}));
  const TensorId special = s.tensor("blockIdx", register_type(f32, {4}));
  p.body.push_back(statement(LetStmt{first, n}));
  p.body.push_back(statement(LetStmt{second, first + 1}));
  p.body.push_back(statement(LetStmt{odd, second}));
  p.body.push_back(statement(AllocRegister{t, 1.0}));
  p.body.push_back(statement(AllocRegister{t2, 2.0}));
  p.body.push_back(statement(Elementwise{special, ElementwiseOp::Add, {t, t2}}));

  const std::string text = print(p);
  INFO(text);
  CHECK_THAT(text, Contains("param for_1: i32"));
  CHECK_THAT(text, Contains("let i = for_1\n"));
  CHECK_THAT(text, Contains("let i_1 = (i + 1)\n"));
  CHECK_THAT(text, Contains("let _3_x = i_1\n"));
  CHECK_THAT(text, Contains("%t_1 = alloc_register fill 2"));
  CHECK_THAT(text, Contains("%blockIdx_1 = add %t, %t_1"));
  const Program parsed = parse_program(text);
  CHECK(print(parsed) == text);
  // The statement printer for messages keeps the program's own names and spells out types.
  CHECK(print(p, p.body[3]) == "%t = alloc_register fill 1 : f32 register[4] @ ?");
  CHECK(print_instruction(p, std::get<Instruction>(p.body[5].node)) ==
        "%blockIdx = add %t, %t : f32 register[4] @ ?");
}

TEST_CASE("text: comments, blank lines and locations", "[vm][text]") {
  const std::string text = R"(# a kernel written by hand
kernel hand {   # trailing comments are fine
  param n: i32

  grid (n, 1, 1)
  # warps and shared memory keep their defaults
  let a = n + 2 * 3  # see the notes: not a location
  let b = a  # lib/x.cpp:7:2 in void f(int, char)
  let d = a  #  "odd:1 name":3
}
)";
  const Program p = parse_program(text, "hand.nbl");
  REQUIRE(p.body.size() == 3);
  CHECK(!p.body[0].location.known());
  CHECK(p.body[1].location == at("lib/x.cpp", 7, 2, "void f(int, char)"));
  CHECK(p.body[2].location == at("odd:1 name", 3));
  CHECK(p.warps == 4);
  // Without parentheses, C precedence.
  CHECK(to_string(std::get<LetStmt>(p.body[0].node).value) == "(n + (2 * 3))");

  const Program located = parse_program(text, "hand.nbl", TextLocations::Text);
  CHECK(located.body[0].location == at("hand.nbl", 7, 3));
  CHECK(located.body[1].location == at("lib/x.cpp", 7, 2, "void f(int, char)"));
}

TEST_CASE("text: parser errors name the line and column", "[vm][text]") {
  SECTION("the full message: position, expectation, the line and a caret") {
    CHECK(parse_error(small_with("  store_global %X[0 %a")) ==
          "k.nbl:11:21: error: expected ',' or ']', found '%a'\n"
          "  store_global %X[0 %a\n"
          "                    ^");
  }
  SECTION("empty input") {
    CHECK(parse_error("") ==
          "k.nbl:1:1: error: expected 'kernel', found the end of the input\n\n^");
  }
  SECTION("unknown tensor") {
    CHECK_THAT(parse_error(small_with("  store_global %X[0], %nope")),
               Contains("k.nbl:11:23: error: unknown tensor %nope"));
  }
  SECTION("unknown name in an expression") {
    CHECK_THAT(parse_error(small_with("  let v = (n + q)")),
               Contains("k.nbl:11:16: error: unknown name 'q'"));
  }
  SECTION("operand types of an expression") {
    CHECK_THAT(parse_error(small_with("  let v = (n + 1:i64)")),
               Contains("k.nbl:11:14: error: +: operand types differ"));
  }
  SECTION("a float constant without its type") {
    CHECK_THAT(parse_error(small_with("  let v = 1.5")),
               Contains("k.nbl:11:11: error: a float constant needs its type: 1.5:f32"));
  }
  SECTION("an integer too large") {
    CHECK_THAT(parse_error(small_with("  let v = 99999999999999999999")),
               Contains("k.nbl:11:11: error: integer 99999999999999999999 does not fit in 64 "
                        "bits"));
    CHECK_THAT(parse_error(small_with("  let v = 300:u8")),
               Contains("k.nbl:11:11: error: integer 300 does not fit in u8"));
  }
  SECTION("a bad layout") {
    CHECK_THAT(parse_error(small_with("  %b = load_global %X[0] : f32 register[32] @ "
                                      "S[(8,4):(4@lane)]")),
               Contains("k.nbl:11:47: error: invalid layout S[(8,4):(4@lane)]: "));
    CHECK_THAT(parse_error(small_with("  %b = load_global %X[0] : f32 register[32] @ "
                                      "S[32:1@nowhere]")),
               Contains("unknown axis 'nowhere'"));
  }
  SECTION("a bad element type") {
    CHECK_THAT(parse_error(small_with("  %b = load_global %X[0] : f17 register[32] @ ?")),
               Contains("k.nbl:11:28: error: expected an element type such as f16 or u4, found "
                        "'f17'"));
  }
  SECTION("a first definition without its type") {
    CHECK_THAT(parse_error(small_with("  %b = neg %a")),
               Contains("k.nbl:11:3: error: unknown tensor %b: its first definition needs its "
                        "type"));
  }
  SECTION("a second definition with a type") {
    CHECK_THAT(parse_error(small_with("  %a = neg %a : f32 register[32] @ ?")),
               Contains("k.nbl:11:3: error: tensor %a is already defined"));
  }
  SECTION("results where there are none, none where there is one") {
    CHECK_THAT(parse_error(small_with("  %q = barrier")),
               Contains("k.nbl:11:3: error: barrier has no result"));
    CHECK_THAT(parse_error(small_with("  cast %a")),
               Contains("k.nbl:11:3: error: cast defines a tensor: write %name = cast"));
  }
  SECTION("an unknown instruction") {
    CHECK_THAT(parse_error(small_with("  frobnicate %a")),
               Contains("k.nbl:11:3: error: expected an instruction, found 'frobnicate'"));
  }
  SECTION("a header word after the first statement") {
    CHECK_THAT(parse_error(small_with("  dependent_launch")),
               Contains("'dependent_launch' belongs to the header, before the first statement"));
  }
  SECTION("a block that does not end") {
    std::string text = kSmall;
    text.insert(text.rfind('}'), "  while true {\n");
    CHECK_THAT(parse_error(text),
               Contains("k.nbl:13:1: error: expected '}' closing the kernel, found the end of "
                        "the input"));
  }
  SECTION("scoping: a loop variable is not visible after its loop") {
    CHECK_THAT(parse_error(small_with("  for i in range(0, n, 1) {\n  }\n  let v = i")),
               Contains("k.nbl:13:11: error: unknown name 'i'"));
  }
  SECTION("nesting too deep") {
    CHECK_THAT(parse_error(small_with("  let v = " + std::string(1000, '(') + "n")),
               Contains("nested deeper than 256 levels"));
    CHECK_THAT(parse_error(small_with("  let v = " + std::string(1000, '-') + "n")),
               Contains("nested deeper than 256 levels"));
    std::string chain = "n";
    for (int i = 0; i < 300; ++i)
      chain += " + n";
    CHECK_THAT(parse_error(small_with("  let v = " + chain)),
               Contains("expression nested deeper than 256 levels"));
  }
  SECTION("the caret lines up under tabs") {
    CHECK_THAT(parse_error(small_with("\tlet v = \tq")),
               Contains("\n\tlet v = \tq\n\t        \t^"));
  }
}

// Mutates the printed programs at random and parses each mutant: the parser must either
// succeed or throw ParseError. When it succeeds, printing is a fixed point from there on.
TEST_CASE("text: the parser survives random mutations", "[vm][text][fuzz]") {
  std::vector<std::string> corpus;
  for (const Program& program : all_programs())
    corpus.push_back(print(program));
  corpus.emplace_back(kSmall);

  const std::vector<std::string> tokens = {
      "%",
      "{",
      "}",
      "(",
      ")",
      "[",
      "]",
      ",",
      ":",
      "=",
      "==",
      "#",
      "\n",
      "-",
      "?",
      "\"",
      "\\",
      "@",
      "+",
      "for",
      "let",
      "if",
      "else",
      "while",
      "break",
      "0",
      "-1",
      "1e999",
      "99999999999999999999",
      "1.5:f32",
      "inf:f32",
      "%acc",
      "%t",
      "n",
      "add",
      "select(",
      "cast<",
      "i64",
      "u4",
      "S[",
      "R[",
      "4@lane",
      " swizzle 128B",
      " @ ?",
      " : f32 register[4] @ ?",
      "range(0, n, 1)",
      "\t",
      "\r",
      "kernel",
      "%blockIdx.x",
      "print \"",
  };
  std::mt19937 random(20240607);
  auto below = [&](size_t bound) {
    return bound == 0 ? size_t{0} : std::uniform_int_distribution<size_t>(0, bound - 1)(random);
  };

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int parsed = 0;
  int rejected = 0;
  for (int round = 0; round < 100000 && std::chrono::steady_clock::now() < deadline; ++round) {
    std::string text = corpus[below(corpus.size())];
    const size_t mutations = 1 + below(4);
    for (size_t m = 0; m < mutations; ++m) {
      const size_t where = below(text.size() + 1);
      switch (below(6)) {
        case 0:  // delete a run
          text.erase(std::min(where, text.size()), 1 + below(8));
          break;
        case 1: {  // duplicate a run
          const std::string run = text.substr(std::min(where, text.size()), 1 + below(16));
          text.insert(std::min(where, text.size()), run);
          break;
        }
        case 2:  // swap two bytes
          if (!text.empty()) std::swap(text[below(text.size())], text[below(text.size())]);
          break;
        case 3:  // insert a token
          text.insert(where, tokens[below(tokens.size())]);
          break;
        case 4:  // insert a random byte
          text.insert(where, 1, static_cast<char>(below(256)));
          break;
        default:  // truncate
          text.resize(where);
          break;
      }
    }
    INFO("mutant:\n" << text);
    try {
      const Program program = parse_program(text);
      ++parsed;
      const std::string printed = print(program);
      INFO("printed:\n" << printed);
      const Program again = parse_program(printed);
      REQUIRE(print(again) == printed);
    } catch (const ParseError&) {
      ++rejected;
    }
  }
  INFO(parsed << " mutants parsed, " << rejected << " rejected");
  CHECK(parsed > 0);
  CHECK(rejected > 0);
}
