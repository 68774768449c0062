// What is the same for every block: the bound arguments, the grid, and where every element of
// every register and shared tensor lives. Computed once per run, before any block starts, so
// bad arguments and impossible placements are reported once and up front.
#include <fmt/format.h>

#include <algorithm>

#include "dtypes/packing.h"
#include "layout/queries.h"
#include "vm/default_layout.h"
#include "vm/interpreter/block.h"

namespace nibble::vm::interp {
namespace {

[[noreturn]] void fail_program(const Program& program, const std::string& message) {
  throw InterpreterError(fmt::format("interpret '{}': {}", program.name, message));
}

[[noreturn]] void fail_statement(const Statement& statement, const std::string& message) {
  const std::string_view name = std::holds_alternative<Instruction>(statement.node)
                                    ? mnemonic(std::get<Instruction>(statement.node))
                                    : std::string_view("statement");
  throw InterpreterError(fmt::format("{} at {}: {}", name, to_string(statement.location), message),
                         std::string(name), statement.location);
}

std::string_view argument_kind(const Argument& argument) {
  if (std::holds_alternative<HostBuffer>(argument)) return "a buffer";
  if (std::holds_alternative<int64_t>(argument)) return "an integer";
  return "a double";
}

BoundArgument bind_one(const Program& program, size_t position, const Parameter& param,
                       const std::optional<Argument>& given) {
  const std::string where = fmt::format("argument {} ('{}')", position, param.name);
  BoundArgument bound;
  if (param.kind == Parameter::Kind::Pointer) {
    if (!given || !std::holds_alternative<HostBuffer>(*given)) {
      fail_program(program,
                   fmt::format("{}: a pointer to {} needs a HostBuffer, got {}", where,
                               param.dtype.name(), given ? argument_kind(*given) : "nothing"));
    }
    bound.is_pointer = true;
    bound.buffer = std::get<HostBuffer>(*given);
    if (bound.buffer.data == nullptr && bound.buffer.bytes > 0) {
      fail_program(program,
                   fmt::format("{}: a null buffer of {} bytes", where, bound.buffer.bytes));
    }
    return bound;
  }
  std::optional<Argument> value = given;
  if (param.compile_time && param.value) {
    if (given &&
        !(std::holds_alternative<int64_t>(*given) && std::get<int64_t>(*given) == *param.value)) {
      fail_program(program,
                   fmt::format("{}: the kernel was specialized for {} = {}; the argument differs",
                               where, param.name, *param.value));
    }
    value = Argument(*param.value);
  }
  if (!value || std::holds_alternative<HostBuffer>(*value)) {
    fail_program(program,
                 fmt::format("{}: a scalar of type {} needs a number, got {}", where,
                             param.dtype.name(), value ? argument_kind(*value) : "nothing"));
  }
  if (param.dtype.is_float()) {
    const double real = std::holds_alternative<double>(*value)
                            ? std::get<double>(*value)
                            : static_cast<double>(std::get<int64_t>(*value));
    bound.scalar = ScalarValue::of_float(real, param.dtype);
    return bound;
  }
  if (!std::holds_alternative<int64_t>(*value)) {
    fail_program(program, fmt::format("{}: an integer of type {} needs an integer, got a double",
                                      where, param.dtype.name()));
  }
  const int64_t integer = std::get<int64_t>(*value);
  if (wrap_to_type(integer, param.dtype) != integer) {
    fail_program(program,
                 fmt::format("{}: {} does not fit in {}", where, integer, param.dtype.name()));
  }
  if (param.divisor > 1 && integer % param.divisor != 0) {
    fail_program(program, fmt::format("{}: {} is not a multiple of {}, which the kernel assumes",
                                      where, integer, param.divisor));
  }
  bound.scalar = ScalarValue::of_int(integer, param.dtype);
  return bound;
}

}  // namespace

void bind_arguments(Plan& plan, std::span<const Argument> arguments) {
  const Program& program = *plan.program;
  const size_t all = program.params.size();
  const auto runtime = static_cast<size_t>(
      std::count_if(program.params.begin(), program.params.end(),
                    [](const Parameter& p) { return !(p.compile_time && p.value); }));
  if (arguments.size() != all && arguments.size() != runtime) {
    fail_program(program,
                 runtime == all
                     ? fmt::format("takes {} arguments, got {}", all, arguments.size())
                     : fmt::format("takes {} arguments ({} without its compile-time parameters), "
                                   "got {}",
                                   all, runtime, arguments.size()));
  }
  const bool all_given = arguments.size() == all;
  size_t next = 0;
  for (size_t i = 0; i < all; ++i) {
    const Parameter& param = program.params[i];
    std::optional<Argument> given;
    if (all_given || !(param.compile_time && param.value)) given = arguments[next++];
    plan.arguments.push_back(bind_one(program, i, param, given));
  }

  const auto leaf = [&](const Expr& e) -> ScalarValue {
    const auto i = static_cast<size_t>(e.index());
    if (e.kind() != Expr::Kind::Param || i >= plan.arguments.size() ||
        plan.arguments[i].is_pointer) {
      fail_program(program,
                   fmt::format("the grid may read scalar parameters only, not {}", to_string(e)));
    }
    return plan.arguments[i].scalar;
  };
  for (size_t d = 0; d < 3; ++d) {
    const Expr& extent = program.grid[d];
    if (extent.empty()) continue;  // 1
    ScalarValue value;
    try {
      value = vm::evaluate(extent, leaf);
    } catch (const std::invalid_argument& error) {
      fail_program(program, fmt::format("grid: {}", error.what()));
    }
    if (!value.type.is_integer() || value.integer < 0) {
      fail_program(program, fmt::format("grid extent {} = {} is not a non-negative integer",
                                        to_string(extent), value.as_double()));
    }
    plan.grid[d] = value.integer;
  }
}

namespace {

void place_registers(const Plan& plan, TensorPlan& tensor) {
  const TensorInfo& info = *tensor.info;
  const DataType dtype = info.type.dtype;
  const auto fail = [&](const std::string& message) {
    throw InterpreterError(fmt::format("register tensor '{}' ({}), defined at {}: {}", info.name,
                                       to_string(info.type), to_string(info.location), message));
  };
  tensor.layout = info.type.layout
                      ? *info.type.layout
                      : default_register_layout(info.type.shape, dtype, plan.program->warps);
  const layout::Layout& l = tensor.layout;
  if (l.size() != info.type.element_count()) {
    fail(fmt::format("the layout holds {} elements, the shape {}", l.size(),
                     info.type.element_count()));
  }
  for (layout::Axis axis : l.axes()) {
    if (!axis.is_thread() && axis != layout::Axis::reg()) {
      fail(fmt::format("axis '{}' has no place in registers (thread axes and reg only)",
                       axis.name()));
    }
  }
  RegisterPlacement placement;
  placement.slots_per_thread = l.span(layout::Axis::reg());
  placement.bytes_per_thread = (placement.slots_per_thread * dtype.bits() + 7) / 8;
  const int64_t thread_bits = placement.bytes_per_thread * 8;
  const auto bit_of = [&](const layout::Coord& place, int64_t x) {
    const int64_t thread = layout::thread_of(place);
    if (thread >= plan.threads) {
      fail(fmt::format("element {} is placed in thread {}, beyond the block's {} threads", x,
                       thread, plan.threads));
    }
    return thread * thread_bits + place.get(layout::Axis::reg()) * dtype.bits();
  };
  // Two elements in one register slot would overwrite each other: no GPU could hold that.
  std::vector<int64_t> owner(static_cast<size_t>(plan.threads * placement.slots_per_thread), -1);
  const int64_t size = l.size();
  placement.first.reserve(static_cast<size_t>(size));
  placement.begin.reserve(static_cast<size_t>(size + 1));
  for (int64_t x = 0; x < size; ++x) {
    placement.first.push_back(bit_of(l.place(x), x));
    placement.begin.push_back(static_cast<int64_t>(placement.places.size()));
    for (const layout::Coord& place : l.apply(x)) {
      const int64_t bit = bit_of(place, x);
      const int64_t slot =
          layout::thread_of(place) * placement.slots_per_thread + place.get(layout::Axis::reg());
      int64_t& slot_owner = owner[static_cast<size_t>(slot)];
      if (slot_owner >= 0 && slot_owner != x) {
        fail(fmt::format("elements {} and {} share register slot {} of thread {}", slot_owner, x,
                         place.get(layout::Axis::reg()), layout::thread_of(place)));
      }
      slot_owner = x;
      placement.places.push_back(bit);
    }
  }
  placement.begin.push_back(static_cast<int64_t>(placement.places.size()));
  tensor.registers = std::move(placement);
}

void place_shared(const Plan& plan, TensorPlan& tensor, const Statement& alloc, int64_t& end) {
  const TensorInfo& info = *tensor.info;
  const DataType dtype = info.type.dtype;
  const auto fail = [&](const std::string& message) {
    fail_statement(
        alloc, fmt::format("shared tile '{}' ({}): {}", info.name, to_string(info.type), message));
  };
  if (!info.type.layout) fail("it has no layout");
  tensor.layout = *info.type.layout;
  const layout::Layout& l = tensor.layout;
  if (l.size() != info.type.element_count()) {
    fail(fmt::format("the layout holds {} elements, the shape {}", l.size(),
                     info.type.element_count()));
  }
  if (l.replication() != 1) fail("a shared tile holds each element once (no replicas)");
  for (layout::Axis axis : l.axes()) {
    if (axis != layout::Axis::smem()) {
      fail(fmt::format("axis '{}' has no place in a shared tile (smem only)", axis.name()));
    }
  }
  const Swizzle& swizzle = info.type.swizzle;
  SharedPlacement placement;
  // A swizzle moves bytes only within aligned chunks of 2^(base + bits) bytes; reserving whole
  // chunks keeps every swizzled address inside the tile.
  const int64_t chunk = swizzle.is_identity() ? 1 : int64_t{1} << (swizzle.base() + swizzle.bits());
  const int64_t span_bytes = static_cast<int64_t>(
      dtypes::packed_size_bytes(dtype, static_cast<size_t>(l.span(layout::Axis::smem()))));
  placement.tile_bytes = (span_bytes + chunk - 1) / chunk * chunk;
  const int64_t alignment = shared_tile_alignment(info.type);
  placement.base_bytes = (end + alignment - 1) / alignment * alignment;
  end = placement.base_bytes + placement.tile_bytes;
  const int64_t budget = plan.program->shared_memory_bytes;
  if (budget > 0 && end > budget) {
    fail(
        fmt::format("it needs bytes [{}, {}) of shared memory, beyond the block's budget of {} "
                    "bytes",
                    placement.base_bytes, end, budget));
  }
  placement.element.reserve(static_cast<size_t>(l.size()));
  for (int64_t x = 0; x < l.size(); ++x) {
    int64_t element = 0;
    try {
      element = swizzle.on_element(l.place(x).get(layout::Axis::smem()), dtype.bits());
    } catch (const std::invalid_argument& error) {
      fail(error.what());
    }
    if ((element + 1) * dtype.bits() > placement.tile_bytes * 8) {
      fail(fmt::format("element {} lands outside the tile's {} bytes", x, placement.tile_bytes));
    }
    placement.element.push_back(element);
  }
  tensor.shared = std::move(placement);
}

// Tiles are placed statically, in program order: an alloc_shared inside a loop reuses its
// bytes on every iteration, as the GPU's static shared memory does.
void place_tiles(Plan& plan, const Body& body, int64_t& end) {
  for (const Statement& statement : body) {
    std::visit(
        [&](const auto& node) {
          using T = std::decay_t<decltype(node)>;
          if constexpr (std::is_same_v<T, Instruction>) {
            if (const auto* alloc = std::get_if<AllocShared>(&node)) {
              const auto i = static_cast<size_t>(alloc->result.index);
              if (alloc->result.index < 0 || i >= plan.tensors.size()) {
                fail_statement(statement, "the result is not in the tensor table");
              }
              TensorPlan& tensor = plan.tensors[i];
              if (tensor.info->type.scope != Scope::Shared) {
                fail_statement(statement,
                               fmt::format("'{}' is not a shared tensor", tensor.info->name));
              }
              if (!tensor.shared) place_shared(plan, tensor, statement, end);
            }
          } else if constexpr (std::is_same_v<T, ForStmt> || std::is_same_v<T, WhileStmt>) {
            place_tiles(plan, node.body, end);
          } else if constexpr (std::is_same_v<T, IfStmt>) {
            place_tiles(plan, node.then_body, end);
            place_tiles(plan, node.else_body, end);
          }
        },
        statement.node);
  }
}

}  // namespace

void place_tensors(Plan& plan) {
  const Program& program = *plan.program;
  if (program.warps < 1) fail_program(program, fmt::format("{} warps", program.warps));
  plan.threads = program.threads();
  plan.tensors.resize(program.tensors.size());
  for (size_t i = 0; i < program.tensors.size(); ++i) {
    TensorPlan& tensor = plan.tensors[i];
    tensor.info = &program.tensors[i];
    if (tensor.info->type.scope == Scope::Register) place_registers(plan, tensor);
  }
  int64_t end = 0;
  place_tiles(plan, program.body, end);
  plan.shared_bytes = end;
}

}  // namespace nibble::vm::interp
