// The state of one block: its scalars, its tensors, and the messages that say where it failed.
#include <fmt/format.h>

#include <stdexcept>

#include "vm/interpreter/block.h"

namespace nibble::vm::interp {

Block::Block(const Plan& block_plan, BlockIndex block_index, SharedMemory& shared_memory)
    : plan(block_plan),
      program(*block_plan.program),
      index(block_index),
      shared(shared_memory),
      variables(static_cast<size_t>(std::max(0, block_plan.program->next_var_id))),
      tensors(block_plan.program->tensors.size()),
      accumulator_in_flight(block_plan.program->tensors.size(), 0) {
  // A new epoch makes the previous block's history stale; fresh zeros make a read of shared
  // memory nobody wrote deterministic, whichever host thread runs the block.
  ++shared.epoch;
  std::fill(shared.bytes.begin(), shared.bytes.end(), uint8_t{0});
}

Block::~Block() {
  for (const AsyncWrite& write : open_group)
    forget_shared_write(*this, write);
  for (const auto& group : committed_groups) {
    for (const AsyncWrite& write : group)
      forget_shared_write(*this, write);
  }
  for (const DotInFlight& dot : dots_in_flight)
    forget_dot_reads(*this, dot);
}

std::string Block::statement_name(const Statement* statement) const {
  if (statement == nullptr) return "the program";
  const std::string_view name = std::visit(
      [](const auto& node) -> std::string_view {
        using T = std::decay_t<decltype(node)>;
        if constexpr (std::is_same_v<T, Instruction>) {
          return mnemonic(node);
        } else if constexpr (std::is_same_v<T, ForStmt>) {
          return "for";
        } else if constexpr (std::is_same_v<T, IfStmt>) {
          return "if";
        } else if constexpr (std::is_same_v<T, WhileStmt>) {
          return "while";
        } else if constexpr (std::is_same_v<T, BreakStmt>) {
          return "break";
        } else if constexpr (std::is_same_v<T, LetStmt>) {
          return "let";
        } else if constexpr (std::is_same_v<T, FetchAddStmt>) {
          return "fetch_add";
        } else {
          static_assert(std::is_same_v<T, AssignStmt>);
          return "assign";
        }
      },
      statement->node);
  return fmt::format("{} at {}", name, to_string(statement->location));
}

std::string Block::context() const {
  return fmt::format("{}, block ({}, {}, {})", statement_name(current), index[0], index[1],
                     index[2]);
}

void Block::fail(const std::string& message) const {
  std::string instruction;
  SourceLocation location;
  if (current != nullptr) {
    const std::string name = statement_name(current);
    instruction = name.substr(0, name.find(' '));
    location = current->location;
  }
  throw InterpreterError(fmt::format("{}: {}", context(), message), instruction, location, index);
}

ScalarValue Block::evaluate(const Expr& expr) const {
  if (expr.empty()) fail("an expression is missing");
  const auto leaf = [this](const Expr& e) -> ScalarValue {
    switch (e.kind()) {
      case Expr::Kind::Param: {
        const auto i = static_cast<size_t>(e.index());
        if (i >= plan.arguments.size()) {
          fail(fmt::format("parameter '{}' (#{}) is not a parameter of the program", e.name(), i));
        }
        if (plan.arguments[i].is_pointer) {
          fail(fmt::format("'{}' is a pointer parameter; a scalar expression cannot read it",
                           e.name()));
        }
        return plan.arguments[i].scalar;
      }
      case Expr::Kind::Var: {
        const auto id = static_cast<size_t>(e.index());
        if (id >= variables.size() || !variables[id]) {
          fail(fmt::format("variable '{}' is read before it is defined", e.name()));
        }
        return *variables[id];
      }
      case Expr::Kind::Special: {
        const auto i32 = DataType::sint(32);
        switch (e.special_register()) {
          case Special::BlockIdX:
            return ScalarValue::of_int(index[0], i32);
          case Special::BlockIdY:
            return ScalarValue::of_int(index[1], i32);
          case Special::BlockIdZ:
            return ScalarValue::of_int(index[2], i32);
          case Special::GridDimX:
            return ScalarValue::of_int(plan.grid[0], i32);
          case Special::GridDimY:
            return ScalarValue::of_int(plan.grid[1], i32);
          case Special::GridDimZ:
            return ScalarValue::of_int(plan.grid[2], i32);
        }
        break;
      }
      default:
        break;
    }
    fail("unexpected leaf in a scalar expression");
  };
  try {
    return vm::evaluate(expr, leaf);
  } catch (const std::invalid_argument& error) {  // ExprError, DTypeError
    fail(error.what());
  }
}

int64_t Block::evaluate_integer(const Expr& expr) const {
  const ScalarValue value = evaluate(expr);
  if (!value.type.is_integer()) {
    fail(
        fmt::format("{} is {}, but an integer is needed here", to_string(expr), value.type.name()));
  }
  return value.integer;
}

std::vector<int64_t> Block::evaluate_indices(const std::vector<Expr>& exprs, size_t rank,
                                             std::string_view what) const {
  if (exprs.size() != rank) {
    fail(fmt::format("{} has {} entries for a tensor of rank {}", what, exprs.size(), rank));
  }
  std::vector<int64_t> values;
  values.reserve(rank);
  for (const Expr& expr : exprs)
    values.push_back(evaluate_integer(expr));
  return values;
}

const TensorPlan& Block::tensor_plan(TensorId id) const {
  if (id.index < 0 || static_cast<size_t>(id.index) >= plan.tensors.size()) {
    fail(fmt::format("tensor #{} is not in the program's tensor table", id.index));
  }
  return plan.tensors[static_cast<size_t>(id.index)];
}

const TensorState& Block::defined(TensorId id, Scope scope) const {
  const TensorPlan& tensor = tensor_plan(id);
  if (tensor.info->type.scope != scope) {
    fail(fmt::format("'{}' is a {} tensor; a {} tensor is needed here", tensor.info->name,
                     to_string(tensor.info->type.scope), to_string(scope)));
  }
  const TensorState& tensor_state = tensors[static_cast<size_t>(id.index)];
  if (!tensor_state.defined) {
    fail(fmt::format("'{}' is read before it is defined", tensor.info->name));
  }
  return tensor_state;
}

TensorState& Block::state(TensorId id) {
  tensor_plan(id);  // checks the id
  return tensors[static_cast<size_t>(id.index)];
}

}  // namespace nibble::vm::interp
