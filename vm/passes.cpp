#include "vm/passes.h"

#include <fmt/format.h>

#include <functional>
#include <set>

#include "vm/default_layout.h"
#include "vm/verifier.h"

namespace nibble::vm {
namespace {

// ---- generic traversal -----------------------------------------------------------------------

// Rebuilds `e` bottom-up, replacing each node for which `replace` returns a value.
Expr rewrite(const Expr& e, const std::function<std::optional<Expr>(const Expr&)>& replace) {
  if (e.empty()) return e;
  if (auto replaced = replace(e)) return *replaced;
  switch (e.kind()) {
    case Expr::Kind::Unary: {
      Expr operand = rewrite(e.operand(0), replace);
      return e.unary_op() == UnaryOp::Cast ? Expr::cast(operand, e.type())
                                           : Expr::unary(e.unary_op(), operand);
    }
    case Expr::Kind::Binary:
      return Expr::binary(e.binary_op(), rewrite(e.operand(0), replace),
                          rewrite(e.operand(1), replace));
    case Expr::Kind::Select:
      return Expr::select(rewrite(e.operand(0), replace), rewrite(e.operand(1), replace),
                          rewrite(e.operand(2), replace));
    default:
      return e;
  }
}

void collect_vars(const Expr& e, std::set<int>& var_ids) {
  if (e.empty()) return;
  if (e.kind() == Expr::Kind::Var) var_ids.insert(e.index());
  for (int i = 0; i < e.operand_count(); ++i)
    collect_vars(e.operand(i), var_ids);
}

// Calls `visit` on every scalar expression held by an instruction.
template <typename Instr, typename Visit>
void instruction_exprs(Instr& instruction, Visit&& visit) {
  std::visit(
      [&](auto& node) {
        using T = std::decay_t<decltype(node)>;
        if constexpr (requires { node.offsets; } && !std::is_same_v<T, Slice>) {  // Slice: static
          for (auto& offset : node.offsets)
            visit(offset);
        }
        if constexpr (std::is_same_v<T, Dot>) {
          for (auto& offset : node.b_offsets)
            visit(offset);
        }
        if constexpr (std::is_same_v<T, CopyAsync>) {
          for (auto& offset : node.destination_offsets)
            visit(offset);
          for (auto& offset : node.source_offsets)
            visit(offset);
        }
        if constexpr (std::is_same_v<T, Elementwise>) {
          for (auto& operand : node.operands) {
            if (auto* scalar = std::get_if<Expr>(&operand)) visit(*scalar);
          }
        }
        if constexpr (std::is_same_v<T, Shuffle>) visit(node.lane);
        if constexpr (std::is_same_v<T, LoadPeerShared>) visit(node.block);
        if constexpr (std::is_same_v<T, Print>) {
          if (node.scalar) visit(*node.scalar);
        }
      },
      instruction);
}

// Tensors an instruction reads, and the one it writes (if any).
struct TensorAccess {
  std::vector<TensorId> reads;
  std::optional<TensorId> writes;
  bool has_effect = false;  // observable beyond its result: memory, synchronization, output
};

TensorAccess access_of(const Instruction& instruction) {
  return std::visit(
      [](const auto& node) -> TensorAccess {
        using T = std::decay_t<decltype(node)>;
        if constexpr (std::is_same_v<T, GlobalView> || std::is_same_v<T, AllocShared> ||
                      std::is_same_v<T, AllocRegister>) {
          return {{}, node.result, false};
        } else if constexpr (std::is_same_v<T, LoadGlobal> || std::is_same_v<T, LoadShared> ||
                             std::is_same_v<T, LoadPeerShared> || std::is_same_v<T, Cast> ||
                             std::is_same_v<T, View> || std::is_same_v<T, Slice> ||
                             std::is_same_v<T, Repeat> || std::is_same_v<T, Permute> ||
                             std::is_same_v<T, Reshape> || std::is_same_v<T, Reduce> ||
                             std::is_same_v<T, Shuffle>) {
          return {{node.source}, node.result, false};
        } else if constexpr (std::is_same_v<T, StoreGlobal> || std::is_same_v<T, StoreShared> ||
                             std::is_same_v<T, AtomicAdd>) {
          return {{node.destination, node.value}, std::nullopt, true};
        } else if constexpr (std::is_same_v<T, CopyAsync>) {
          return {{node.destination, node.source}, std::nullopt, true};
        } else if constexpr (std::is_same_v<T, Elementwise>) {
          TensorAccess access{{}, node.result, false};
          for (const Operand& operand : node.operands) {
            if (const auto* id = std::get_if<TensorId>(&operand)) access.reads.push_back(*id);
          }
          return access;
        } else if constexpr (std::is_same_v<T, Dot>) {
          return {{node.a, node.b, node.accumulator}, node.accumulator, false};
        } else if constexpr (std::is_same_v<T, Print>) {
          TensorAccess access{{}, std::nullopt, true};
          if (node.tensor) access.reads.push_back(*node.tensor);
          return access;
        } else {  // CommitGroup, WaitGroup, Barrier, ClusterBarrier
          return {{}, std::nullopt, true};
        }
      },
      instruction);
}

// ---- simplification --------------------------------------------------------------------------

class ProgramSimplifier {
 public:
  explicit ProgramSimplifier(Program& program)
      : program_(program), facts_(program_facts(program)) {}

  void run() {
    for (Expr& dimension : program_.grid)
      dimension = apply(dimension);
    for (TensorInfo& tensor : program_.tensors) {
      for (Expr& e : tensor.type.global_shape)
        e = apply(e);
      for (Expr& e : tensor.type.global_strides)
        e = apply(e);
    }
    body(program_.body);
  }

 private:
  Expr apply(const Expr& e) {
    if (e.empty()) return e;
    const Expr substituted = rewrite(e, [&](const Expr& node) -> std::optional<Expr> {
      if (node.kind() != Expr::Kind::Param) return std::nullopt;
      const Parameter& param = program_.params.at(static_cast<size_t>(node.index()));
      if (param.compile_time && param.value) return Expr::int_constant(*param.value, param.dtype);
      return std::nullopt;
    });
    return simplify(substituted, facts_);
  }

  void body(Body& statements) {
    for (Statement& statement : statements) {
      std::visit([&](auto& node) { this->statement(node); }, statement.node);
    }
  }

  void statement(Instruction& instruction) {
    instruction_exprs(instruction, [&](Expr& e) { e = apply(e); });
  }
  void statement(ForStmt& loop) {
    loop.start = apply(loop.start);
    loop.stop = apply(loop.stop);
    loop.step = apply(loop.step);
    const auto start = bound(loop.start, facts_);
    const auto stop = bound(loop.stop, facts_);
    // Inside the body the variable stays in [start, stop): loop variables are never assigned.
    if (start && stop && stop->hi > start->lo)
      facts_.set_range(loop.var, {start->lo, stop->hi - 1});
    body(loop.body);
  }
  void statement(IfStmt& branch) {
    branch.condition = apply(branch.condition);
    body(branch.then_body);
    body(branch.else_body);
  }
  void statement(WhileStmt& loop) {
    loop.condition = apply(loop.condition);
    body(loop.body);
  }
  void statement(BreakStmt&) {}
  void statement(LetStmt& let) { let.value = apply(let.value); }
  void statement(AssignStmt& assign) { assign.value = apply(assign.value); }
  void statement(FetchAddStmt& fetch) {
    for (Expr& offset : fetch.offsets)
      offset = apply(offset);
    fetch.value = apply(fetch.value);
  }

  Program& program_;
  Facts facts_;
};

// ---- dead code -------------------------------------------------------------------------------

class DeadCodeEliminator {
 public:
  explicit DeadCodeEliminator(Program& program) : program_(program) {}

  int run() {
    int removed_total = 0;
    while (true) {
      reads_.assign(program_.tensors.size(), 0);
      read_vars_.clear();
      count(program_.body);
      const int removed = prune(program_.body);
      if (removed == 0) return removed_total;
      removed_total += removed;
    }
  }

 private:
  void note_expr(const Expr& e) { collect_vars(e, read_vars_); }

  void count(const Body& statements) {
    for (const Statement& statement : statements) {
      std::visit(
          [&](const auto& node) {
            using T = std::decay_t<decltype(node)>;
            if constexpr (std::is_same_v<T, Instruction>) {
              Instruction copy = node;
              instruction_exprs(copy, [&](Expr& e) { note_expr(e); });
              const TensorAccess access = access_of(node);
              for (TensorId id : access.reads) {
                if (!access.writes || !(*access.writes == id))
                  ++reads_[static_cast<size_t>(id.index)];
              }
            } else if constexpr (std::is_same_v<T, ForStmt>) {
              note_expr(node.start);
              note_expr(node.stop);
              note_expr(node.step);
              count(node.body);
            } else if constexpr (std::is_same_v<T, IfStmt>) {
              note_expr(node.condition);
              count(node.then_body);
              count(node.else_body);
            } else if constexpr (std::is_same_v<T, WhileStmt>) {
              note_expr(node.condition);
              count(node.body);
            } else if constexpr (std::is_same_v<T, LetStmt> || std::is_same_v<T, AssignStmt>) {
              note_expr(node.value);
            } else if constexpr (std::is_same_v<T, FetchAddStmt>) {
              for (const Expr& offset : node.offsets)
                note_expr(offset);
              note_expr(node.value);
              ++reads_[static_cast<size_t>(node.counter.index)];
            }
          },
          statement.node);
    }
    // Global views and grid sizes read scalars too.
    for (const TensorInfo& tensor : program_.tensors) {
      for (const Expr& e : tensor.type.global_shape)
        note_expr(e);
      for (const Expr& e : tensor.type.global_strides)
        note_expr(e);
    }
  }

  bool is_dead(const Statement& statement) const {
    if (const auto* instruction = std::get_if<Instruction>(&statement.node)) {
      const TensorAccess access = access_of(*instruction);
      return !access.has_effect && access.writes &&
             reads_[static_cast<size_t>(access.writes->index)] == 0;
    }
    if (const auto* let = std::get_if<LetStmt>(&statement.node)) {
      return !read_vars_.contains(let->var.index());
    }
    if (const auto* assign = std::get_if<AssignStmt>(&statement.node)) {
      return !read_vars_.contains(assign->var.index());
    }
    if (const auto* loop = std::get_if<ForStmt>(&statement.node)) return loop->body.empty();
    if (const auto* branch = std::get_if<IfStmt>(&statement.node)) {
      return branch->then_body.empty() && branch->else_body.empty();
    }
    return false;
  }

  int prune(Body& statements) {
    int removed = 0;
    for (Statement& statement : statements) {
      if (auto* loop = std::get_if<ForStmt>(&statement.node)) removed += prune(loop->body);
      if (auto* branch = std::get_if<IfStmt>(&statement.node)) {
        removed += prune(branch->then_body) + prune(branch->else_body);
      }
      if (auto* loop = std::get_if<WhileStmt>(&statement.node)) removed += prune(loop->body);
    }
    const auto before = statements.size();
    std::erase_if(statements, [&](const Statement& statement) { return is_dead(statement); });
    return removed + static_cast<int>(before - statements.size());
  }

  Program& program_;
  std::vector<int> reads_;
  std::set<int> read_vars_;
};

// ---- layouts ---------------------------------------------------------------------------------

void infer_in(Program& program, const Body& statements) {
  for (const Statement& statement : statements) {
    if (const auto* instruction = std::get_if<Instruction>(&statement.node)) {
      const TensorAccess access = access_of(*instruction);
      if (!access.writes) continue;
      TensorType& result = program.tensor(*access.writes).type;
      if (result.scope != Scope::Register || result.layout) continue;
      const bool keeps_elements = std::holds_alternative<Elementwise>(*instruction) ||
                                  std::holds_alternative<Cast>(*instruction) ||
                                  std::holds_alternative<Shuffle>(*instruction);
      if (keeps_elements) {
        for (TensorId read : access.reads) {
          const TensorType& operand = program.tensor(read).type;
          if (operand.scope == Scope::Register && operand.layout && operand.shape == result.shape) {
            result.layout = operand.layout;
            break;
          }
        }
      }
      if (!result.layout)
        result.layout = default_register_layout(result.shape, result.dtype, program.warps);
    } else if (const auto* loop = std::get_if<ForStmt>(&statement.node)) {
      infer_in(program, loop->body);
    } else if (const auto* branch = std::get_if<IfStmt>(&statement.node)) {
      infer_in(program, branch->then_body);
      infer_in(program, branch->else_body);
    } else if (const auto* while_loop = std::get_if<WhileStmt>(&statement.node)) {
      infer_in(program, while_loop->body);
    }
  }
}

}  // namespace

Facts program_facts(const Program& program) {
  Facts facts;
  for (size_t i = 0; i < program.params.size(); ++i) {
    const Parameter& param = program.params[i];
    if (param.kind != Parameter::Kind::Scalar || !param.dtype.is_integer()) continue;
    const Expr leaf = param.expr(static_cast<int>(i));
    if (param.divisor > 1) facts.set_divisor(leaf, param.divisor);
  }
  return facts;
}

void simplify_program(Program& program) {
  ProgramSimplifier(program).run();
}

int eliminate_dead_code(Program& program) {
  return DeadCodeEliminator(program).run();
}

void infer_layouts(Program& program) {
  infer_in(program, program.body);
  for (TensorInfo& tensor : program.tensors) {
    if (tensor.type.scope == Scope::Register && !tensor.type.layout) {
      tensor.type.layout =
          default_register_layout(tensor.type.shape, tensor.type.dtype, program.warps);
    }
  }
}

void run_default_passes(Program& program) {
  verify_or_throw(program);
  simplify_program(program);
  eliminate_dead_code(program);
  infer_layouts(program);
  verify_or_throw(program);
}

}  // namespace nibble::vm
