// Semantics of the statements (for, if, while, break, let, assign, fetch_add), of print, and the
// dispatch of instructions to their execute functions. Control flow is uniform over the block:
// every condition and loop bound is one scalar per block.
#include <fmt/format.h>

#include <fmt/ranges.h>

#include <mutex>
#include <ostream>

#include "vm/interpreter/execute.h"

namespace nibble::vm::interp {
namespace {

enum class Flow { Next, Break };

Flow run_body(Block& block, const Body& body);

void set_variable(Block& block, const Expr& var, const ScalarValue& value) {
  if (var.empty() || var.kind() != Expr::Kind::Var) block.fail("the target is not a variable");
  if (value.type != var.type()) {
    block.fail(fmt::format("'{}' is {} but the value is {}", var.name(), var.type().name(),
                           value.type.name()));
  }
  const auto id = static_cast<size_t>(var.index());
  if (id >= block.variables.size()) block.variables.resize(id + 1);
  block.variables[id] = value;
}

// start, stop and step are evaluated once, when the loop starts.
Flow run(Block& block, const Statement& statement, const ForStmt& loop) {
  const int64_t start = block.evaluate_integer(loop.start);
  const int64_t stop = block.evaluate_integer(loop.stop);
  const int64_t step = block.evaluate_integer(loop.step);
  if (step <= 0) block.fail(fmt::format("the step {} is not positive", step));
  const int64_t limit = block.plan.options->max_loop_iterations;
  if (start < stop && (stop - start - 1) / step + 1 > limit) {
    block.fail(fmt::format("{} iterations exceed the limit of {} (max_loop_iterations)",
                           (stop - start - 1) / step + 1, limit));
  }
  for (int64_t i = start; i < stop;) {
    block.current = &statement;
    set_variable(block, loop.var, ScalarValue::of_int(i, loop.var.type()));
    if (run_body(block, loop.body) == Flow::Break) break;
    if (__builtin_add_overflow(i, step, &i)) break;
  }
  return Flow::Next;
}

Flow run(Block& block, const Statement& statement, const WhileStmt& loop) {
  const int64_t limit = block.plan.options->max_loop_iterations;
  for (int64_t iterations = 0;; ++iterations) {
    block.current = &statement;
    if (block.evaluate(loop.condition).as_double() == 0) break;
    if (iterations == limit) {
      block.fail(
          fmt::format("the loop did not finish within {} iterations (max_loop_iterations)", limit));
    }
    if (run_body(block, loop.body) == Flow::Break) break;
  }
  return Flow::Next;
}

Flow run(Block& block, const Statement&, const IfStmt& branch) {
  const bool taken = block.evaluate(branch.condition).as_double() != 0;
  return run_body(block, taken ? branch.then_body : branch.else_body);
}

Flow run(Block&, const Statement&, const BreakStmt&) {
  return Flow::Break;
}

Flow run(Block& block, const Statement&, const LetStmt& let) {
  set_variable(block, let.var, block.evaluate(let.value));
  return Flow::Next;
}

// Blocks run on several host threads: one lock orders every fetch_add of a run, and with it
// the stores each block made before its own (the lock's release and acquire). The block's
// atomic_add updates so far are applied under the lock, so a later block's loads see them too
// (in the order the blocks arrive, which the host threads decide).
Flow run(Block& block, const Statement&, const FetchAddStmt& fetch) {
  static std::mutex counters_lock;
  const GlobalViewState& view = block.defined(fetch.counter, Scope::Global).global;
  const std::vector<int64_t> index =
      block.evaluate_indices(fetch.offsets, view.shape.size(), "the counter's offsets");
  if (!inside_view(view, index)) {
    block.fail(fmt::format("fetch_add: the counter element [{}] is outside '{}'",
                           fmt::join(index, ", "), block.info(fetch.counter).name));
  }
  const DataType dtype = block.info(fetch.counter).type.dtype;
  const HostBuffer& buffer = block.plan.arguments[static_cast<size_t>(view.param)].buffer;
  const int64_t element = global_element(block, fetch.counter, index);
  const int64_t increment = block.evaluate_integer(fetch.value);
  uint64_t old = 0;
  {
    std::lock_guard<std::mutex> hold(counters_lock);
    apply_atomics(block.plan, block.atomics);
    block.atomics.clear();
    old = read_global(buffer, dtype, element);
    write_global(
        buffer, dtype, element,
        wrap_to_type(static_cast<int64_t>(old) + increment, dtype) & ((uint64_t{1} << 32) - 1));
  }
  const int64_t value = dtype.is_signed() ? static_cast<int32_t>(old) : static_cast<int64_t>(old);
  set_variable(block, fetch.var, ScalarValue::of_int(value, dtype));
  return Flow::Next;
}

Flow run(Block& block, const Statement&, const AssignStmt& assign) {
  const auto id = static_cast<size_t>(assign.var.empty() ? -1 : assign.var.index());
  if (assign.var.empty() || id >= block.variables.size() || !block.variables[id]) {
    block.fail(fmt::format("'{}' is assigned before its let",
                           assign.var.empty() ? "?" : assign.var.name()));
  }
  set_variable(block, assign.var, block.evaluate(assign.value));
  return Flow::Next;
}

Flow run(Block& block, const Statement&, const Instruction& instruction) {
  std::visit([&](const auto& node) { execute(block, node); }, instruction);
  return Flow::Next;
}

Flow run_statement(Block& block, const Statement& statement) {
  block.current = &statement;
  try {
    return std::visit([&](const auto& node) { return run(block, statement, node); },
                      statement.node);
  } catch (const InterpreterError&) {
    throw;
  } catch (const std::invalid_argument& error) {  // LayoutError, DTypeError, ExprError
    block.current = &statement;
    block.fail(error.what());
  } catch (const std::out_of_range& error) {
    block.current = &statement;
    block.fail(error.what());
  }
}

Flow run_body(Block& block, const Body& body) {
  for (const Statement& statement : body) {
    if (run_statement(block, statement) == Flow::Break) return Flow::Break;
  }
  return Flow::Next;
}

std::string value_text(DataType type, uint64_t code) {
  if (type.is_integer()) return std::to_string(integer_of(type, code));
  return fmt::format("{}", real_of(type, code));
}

// Nested brackets, row-major: [[1, 2], [3, 4]].
void append_nested(std::string& out, DataType type, std::span<const uint64_t> codes,
                   std::span<const int64_t> shape) {
  if (shape.empty()) {
    out += value_text(type, codes[0]);
    return;
  }
  const size_t inner = codes.size() / static_cast<size_t>(shape[0]);
  out += '[';
  for (int64_t i = 0; i < shape[0]; ++i) {
    if (i > 0) out += ", ";
    append_nested(out, type, codes.subspan(static_cast<size_t>(i) * inner, inner),
                  shape.subspan(1));
  }
  out += ']';
}

}  // namespace

// Output is buffered per block and written in block order after the grid finishes, one line per
// print: "block (0, 0, 0) label: f32[2, 2] [[1, 2], [3, 4]]".
void execute(Block& block, const Print& instruction) {
  std::string text = fmt::format("block ({}, {}, {}) {}:", block.index[0], block.index[1],
                                 block.index[2], instruction.label);
  if (instruction.scalar) {
    const ScalarValue value = block.evaluate(*instruction.scalar);
    text += " " +
            (value.type.is_float() ? fmt::format("{}", value.real) : std::to_string(value.integer));
  }
  if (instruction.tensor) {
    const TensorId id = *instruction.tensor;
    const TensorType& type = block.info(id).type;
    if (type.scope == Scope::Global) {
      const GlobalViewState& view = block.defined(id, Scope::Global).global;
      text += fmt::format(" {} global view of '{}' with shape [{}]", type.dtype.name(),
                          block.program.params[static_cast<size_t>(view.param)].name,
                          fmt::join(view.shape, ", "));
    } else {
      std::vector<uint64_t> codes;
      if (type.scope == Scope::Register) {
        codes = read_registers(block, id);
      } else {
        // A debugging read: no hazard checks, the bytes as they are now.
        block.defined(id, Scope::Shared);
        const int64_t base = block.tensor_plan(id).shared->base_bytes;
        for (int64_t element : block.tensor_plan(id).shared->element) {
          const int64_t bit = base * 8 + element * type.dtype.bits();
          uint64_t code = 0;
          for (int b = 0; b < type.dtype.bits(); ++b) {
            const int64_t at = bit + b;
            code |= uint64_t{(block.shared.bytes[static_cast<size_t>(at / 8)] >> (at % 8)) & 1u}
                    << b;
          }
          codes.push_back(code);
        }
      }
      text += fmt::format(" {}{} ", type.dtype.name(), layout::shape_to_string(type.shape));
      append_nested(text, type.dtype, codes, type.shape);
    }
  }
  block.printed += text + "\n";
}

void run_block(Block& block) {
  run_body(block, block.program.body);
  if (!block.dots_in_flight.empty()) {
    block.current = block.dots_in_flight.back().statement;
    block.fail(
        "the kernel ends with this async dot in flight: its result is never waited for "
        "(wait_dots 0)");
  }
  block.current = nullptr;
}

}  // namespace nibble::vm::interp
