#include "vm/printer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <unordered_map>
#include <unordered_set>

namespace nibble::vm {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_identifier_char(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

// ---- names -----------------------------------------------------------------------------------

// The printable form of a name: identifier characters only, not starting with a digit.
std::string as_identifier(std::string_view name) {
  std::string out;
  for (char c : name)
    out += is_identifier_char(c) ? c : '_';
  if (out.empty() || is_digit(out[0])) out.insert(0, "_");
  return out;
}

// Hands out names that are identifiers, not reserved, and distinct from every name handed out
// before; a name that is already all of that is kept as it is.
class NamePool {
 public:
  std::string claim(std::string_view wanted) {
    const std::string base = as_identifier(wanted);
    std::string name = base;
    for (int suffix = 1; !available(name); ++suffix)
      name = fmt::format("{}_{}", base, suffix);
    taken_.insert(name);
    return name;
  }

 private:
  bool available(const std::string& name) const {
    return !taken_.contains(name) && !is_reserved_word(name);
  }
  std::unordered_set<std::string> taken_;
};

// ---- expressions under renaming -------------------------------------------------------------

// The names the printed text uses for parameters (by index) and variables (by id), where they
// differ from the names the expressions carry.
struct Renaming {
  std::unordered_map<int, std::string> params;
  std::unordered_map<int, std::string> vars;
  bool empty() const { return params.empty() && vars.empty(); }
};

// `expr` with its parameter and variable leaves renamed; the same tree when nothing changes.
// Every node was built by Expr's checked constructors, so rebuilding it passes the same checks.
Expr renamed(const Expr& expr, const Renaming& renaming) {
  if (expr.empty()) return expr;
  switch (expr.kind()) {
    case Expr::Kind::Constant:
    case Expr::Kind::Special:
      return expr;
    case Expr::Kind::Param:
    case Expr::Kind::Var: {
      const auto& table = expr.kind() == Expr::Kind::Param ? renaming.params : renaming.vars;
      auto found = table.find(expr.index());
      if (found == table.end() || found->second == expr.name()) return expr;
      return expr.kind() == Expr::Kind::Param
                 ? Expr::param(found->second, expr.index(), expr.type())
                 : Expr::var(found->second, expr.index(), expr.type());
    }
    case Expr::Kind::Unary:
    case Expr::Kind::Binary:
    case Expr::Kind::Select:
      break;
  }
  std::array<Expr, 3> operands;
  bool changed = false;
  for (int i = 0; i < expr.operand_count(); ++i) {
    operands[static_cast<size_t>(i)] = renamed(expr.operand(i), renaming);
    changed = changed || !(operands[static_cast<size_t>(i)] == expr.operand(i));
  }
  if (!changed) return expr;
  switch (expr.kind()) {
    case Expr::Kind::Unary:
      return expr.unary_op() == UnaryOp::Cast ? Expr::cast(operands[0], expr.type())
                                              : Expr::unary(expr.unary_op(), operands[0]);
    case Expr::Kind::Binary:
      return Expr::binary(expr.binary_op(), operands[0], operands[1]);
    default:
      return Expr::select(operands[0], operands[1], operands[2]);
  }
}

// ---- source locations ------------------------------------------------------------------------

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool has_surrounding_blank(std::string_view text) {
  return !text.empty() && (is_blank(text.front()) || is_blank(text.back()));
}

// A file name reads back unquoted when nothing in it looks like the `:LINE` that follows it.
bool file_reads_back(std::string_view file) {
  if (file.empty() || file.front() == '"' || has_control_character(file) ||
      has_surrounding_blank(file)) {
    return false;
  }
  for (size_t i = 0; i + 1 < file.size(); ++i) {
    if (file[i] == ':' && is_digit(file[i + 1])) return false;
  }
  return true;
}

bool function_reads_back(std::string_view function) {
  return !function.empty() && function.front() != '"' && !has_control_character(function) &&
         !has_surrounding_blank(function);
}

std::string location_text(const SourceLocation& location) {
  std::string out = file_reads_back(location.file) ? location.file : quoted(location.file);
  out += fmt::format(":{}", location.line);
  if (location.column > 0) out += fmt::format(":{}", location.column);
  if (!location.function.empty()) {
    out += " in ";
    out += function_reads_back(location.function) ? location.function : quoted(location.function);
  }
  return out;
}

// ---- the printer -----------------------------------------------------------------------------

template <class... Handlers>
struct Overloaded : Handlers... {
  using Handlers::operator()...;
};
template <class... Handlers>
Overloaded(Handlers...) -> Overloaded<Handlers...>;

std::string join(const std::vector<std::string>& parts) {
  return fmt::format("{}", fmt::join(parts, ", "));
}

std::string double_text(double value) {
  return fmt::format("{}", value);
}

// What is printed: a whole program, to be read back (names made unique, each type once), or an
// excerpt for a message (the program's own names, every result's type).
enum class Mode : uint8_t { Program, Excerpt };

class Printer {
 public:
  Printer(const Program& program, Mode mode) : program_(program), mode_(mode) {
    for (const Parameter& param : program.params)
      param_names_.push_back(param.name);
    for (const TensorInfo& tensor : program.tensors)
      tensor_names_.push_back(tensor.name);
    defined_.assign(program.tensors.size(), false);
    if (mode == Mode::Program) choose_names();
  }

  std::string program_text() {
    const Program& p = program_;
    out_ += fmt::format("kernel {} {{\n", is_identifier(p.name) ? p.name : quoted(p.name));
    for (size_t i = 0; i < p.params.size(); ++i)
      out_ += "  " + param_line(i) + "\n";
    out_ += fmt::format("  grid ({}, {}, {})\n", expr(p.grid[0]), expr(p.grid[1]), expr(p.grid[2]));
    out_ += fmt::format("  warps {}\n", p.warps);
    out_ += fmt::format("  shared_memory_bytes {}\n", p.shared_memory_bytes);
    if (p.min_blocks_per_sm > 0)
      out_ += fmt::format("  min_blocks_per_sm {}\n", p.min_blocks_per_sm);
    if (p.early_trigger) out_ += "  early_trigger\n";
    if (p.dependent_launch) out_ += "  dependent_launch\n";
    if (p.cluster_blocks() != 1) {
      out_ += fmt::format("  cluster ({}, {}, {})\n", p.cluster[0], p.cluster[1], p.cluster[2]);
    }
    if (!p.body.empty()) out_ += "\n";
    body(p.body, 1);
    out_ += "}\n";
    return std::move(out_);
  }

  std::string statement_text(const Statement& s) {
    statement(s, 0);
    if (!out_.empty() && out_.back() == '\n') out_.pop_back();
    return std::move(out_);
  }

  std::string instruction(const Instruction& instruction) {
    return std::visit([this](const auto& i) { return line(i); }, instruction);
  }

 private:
  void choose_names() {
    NamePool scalars;
    for (std::string& name : param_names_)
      name = scalars.claim(name);
    for (size_t i = 0; i < param_names_.size(); ++i) {
      renaming_.params.emplace(static_cast<int>(i), param_names_[i]);
    }
    name_vars(program_.body, scalars);
    NamePool tensors;
    for (std::string& name : tensor_names_)
      name = tensors.claim(name);
  }

  void name_vars(const Body& body, NamePool& pool) {
    auto define = [&](const Expr& var) {
      if (var.empty() || var.kind() != Expr::Kind::Var) return;
      if (renaming_.vars.contains(var.index())) return;
      renaming_.vars.emplace(var.index(), pool.claim(var.name()));
    };
    for (const Statement& s : body) {
      if (const auto* loop = std::get_if<ForStmt>(&s.node)) {
        define(loop->var);
        name_vars(loop->body, pool);
      } else if (const auto* let = std::get_if<LetStmt>(&s.node)) {
        define(let->var);
      } else if (const auto* fetch = std::get_if<FetchAddStmt>(&s.node)) {
        define(fetch->var);
      } else if (const auto* branch = std::get_if<IfStmt>(&s.node)) {
        name_vars(branch->then_body, pool);
        name_vars(branch->else_body, pool);
      } else if (const auto* repeat = std::get_if<WhileStmt>(&s.node)) {
        name_vars(repeat->body, pool);
      }
    }
  }

  // ---- pieces ----

  std::string expr(const Expr& e) const {
    if (e.empty()) return "?";
    if (renaming_.empty()) return to_string(e);
    try {
      return to_string(renamed(e, renaming_));
    } catch (const ExprError&) {
      return to_string(e);  // unreachable for checked trees; print what there is
    }
  }

  std::string slots(const std::vector<Expr>& exprs) const {
    std::vector<std::string> parts;
    for (const Expr& e : exprs)
      parts.push_back(expr(e));
    return join(parts);
  }

  template <class Integer>
  static std::string integers(const std::vector<Integer>& values) {
    return fmt::format("[{}]", fmt::join(values, ", "));
  }

  std::string tensor(TensorId id) const {
    if (id.index < 0 || static_cast<size_t>(id.index) >= tensor_names_.size()) {
      return fmt::format("%<invalid tensor {}>", id.index);
    }
    return "%" + tensor_names_[static_cast<size_t>(id.index)];
  }

  std::string access(TensorId id, const std::vector<Expr>& offsets) const {
    return fmt::format("{}[{}]", tensor(id), slots(offsets));
  }

  // As vm::to_string(TensorType) writes a well-formed type; every field that is set is
  // printed, whatever the scope, so that no input makes the printer read out of bounds.
  std::string type(const TensorType& type) const {
    if (type.scope == Scope::Global) {
      return fmt::format("{} global[{}] strides [{}]", type.dtype.name(), slots(type.global_shape),
                         slots(type.global_strides));
    }
    std::string out = fmt::format("{} {}{} @ ", type.dtype.name(), to_string(type.scope),
                                  layout::shape_to_string(type.shape));
    out += type.layout ? type.layout->to_string() : "?";
    if (!type.swizzle.is_identity()) out += " swizzle " + type.swizzle.to_string();
    return out;
  }

  // "%r = " … " : type": the type only at the tensor's first definition.
  std::string defining(TensorId id, std::string_view rest) {
    std::string out = fmt::format("{} = {}", tensor(id), rest);
    if (id.index < 0 || static_cast<size_t>(id.index) >= defined_.size()) return out;
    const size_t index = static_cast<size_t>(id.index);
    if (!defined_[index] || mode_ == Mode::Excerpt)
      out += " : " + type(program_.tensors[index].type);
    defined_[index] = true;
    return out;
  }

  std::string var_name(const Expr& var) const {
    if (var.empty()) return "?";
    if (var.kind() != Expr::Kind::Var) return expr(var);
    auto found = renaming_.vars.find(var.index());
    return found == renaming_.vars.end() ? var.name() : found->second;
  }

  // ": i64" where a variable's type differs from the type of the value that defines it.
  static std::string annotation(const Expr& var, const Expr& value) {
    if (var.empty()) return "";
    if (!value.empty() && value.type() == var.type()) return "";
    return ": " + var.type().name();
  }

  std::string param_line(size_t i) const {
    const Parameter& param = program_.params[i];
    std::string out = fmt::format("param {}: ", param_names_[i]);
    out += param.kind == Parameter::Kind::Pointer ? fmt::format("ptr<{}>", param.dtype.name())
                                                  : param.dtype.name();
    if (param.alignment_bytes != 0) out += fmt::format(" align {}", param.alignment_bytes);
    if (param.divisor != 1) out += fmt::format(" divisor {}", param.divisor);
    if (param.compile_time) out += " const";
    if (param.value) out += fmt::format(" = {}", *param.value);
    return out;
  }

  // ---- instructions, one line each ----

  std::string line(const GlobalView& i) {
    const bool known = i.param >= 0 && static_cast<size_t>(i.param) < param_names_.size();
    return defining(i.result,
                    "global_view " + (known ? param_names_[static_cast<size_t>(i.param)]
                                            : fmt::format("<invalid parameter {}>", i.param)));
  }
  std::string line(const AllocShared& i) { return defining(i.result, "alloc_shared"); }
  std::string line(const AllocRegister& i) {
    return defining(i.result, i.fill ? "alloc_register fill " + double_text(*i.fill)
                                     : std::string("alloc_register"));
  }
  std::string line(const LoadGlobal& i) {
    std::string rest = "load_global " + access(i.source, i.offsets);
    if (std::bit_cast<uint64_t>(i.other) != 0) rest += " other " + double_text(i.other);
    return defining(i.result, rest);
  }
  std::string line(const StoreGlobal& i) const {
    return fmt::format("store_global {}, {}", access(i.destination, i.offsets), tensor(i.value));
  }
  std::string line(const LoadShared& i) {
    return defining(i.result, "load_shared " + access(i.source, i.offsets));
  }
  std::string line(const StoreShared& i) const {
    return fmt::format("store_shared {}, {}", access(i.destination, i.offsets), tensor(i.value));
  }
  std::string line(const CopyAsync& i) const {
    std::string out =
        fmt::format("copy_async {}, {} shape {}", access(i.destination, i.destination_offsets),
                    access(i.source, i.source_offsets), integers(i.shape));
    if (!i.in_bounds.empty()) out += " in_bounds " + integers(i.in_bounds);
    if (i.threads) out += " threads " + i.threads->to_string();
    return out;
  }
  std::string line(const CommitGroup&) const { return "commit_group"; }
  std::string line(const WaitGroup& i) const { return fmt::format("wait_group {}", i.pending); }
  std::string line(const Barrier&) const { return "barrier"; }
  std::string line(const ClusterBarrier&) const { return "cluster_barrier"; }
  std::string line(const LoadPeerShared& i) {
    return defining(i.result, fmt::format("load_peer_shared {} block {}",
                                          access(i.source, i.offsets), expr(i.block)));
  }
  std::string line(const Cast& i) { return defining(i.result, "cast " + tensor(i.source)); }
  std::string line(const View& i) { return defining(i.result, "view " + tensor(i.source)); }
  std::string line(const Slice& i) {
    return defining(i.result,
                    fmt::format("slice {}[{}]", tensor(i.source), fmt::join(i.offsets, ", ")));
  }
  std::string line(const Repeat& i) {
    return defining(i.result,
                    fmt::format("repeat {} axis {} count {}", tensor(i.source), i.axis, i.count));
  }
  std::string line(const Permute& i) {
    return defining(i.result,
                    fmt::format("permute {} dims {}", tensor(i.source), integers(i.dims)));
  }
  std::string line(const Reshape& i) { return defining(i.result, "reshape " + tensor(i.source)); }
  std::string line(const Elementwise& i) {
    std::vector<std::string> operands;
    for (const Operand& operand : i.operands) {
      operands.push_back(std::visit(Overloaded{[&](const TensorId& t) { return tensor(t); },
                                               [&](const Expr& e) { return expr(e); }},
                                    operand));
    }
    std::string rest(to_string(i.op));
    if (!operands.empty()) rest += " " + join(operands);
    return defining(i.result, rest);
  }
  std::string line(const Reduce& i) {
    return defining(i.result,
                    fmt::format("reduce {} {} axis {}", to_string(i.op), tensor(i.source), i.axis));
  }
  std::string line(const Dot& i) const {
    return fmt::format("dot {}, {}, {}{}{}", tensor(i.accumulator), tensor(i.a),
                       i.b_offsets.empty() ? tensor(i.b) : access(i.b, i.b_offsets),
                       i.b_transposed ? " transposed" : "", i.async ? " async" : "");
  }
  std::string line(const WaitDots& i) const { return fmt::format("wait_dots {}", i.pending); }
  std::string line(const Shuffle& i) {
    return defining(i.result, fmt::format("shuffle {} {} lane {}", to_string(i.mode),
                                          tensor(i.source), expr(i.lane)));
  }
  std::string line(const AtomicAdd& i) const {
    return fmt::format("atomic_add {}, {}", access(i.destination, i.offsets), tensor(i.value));
  }
  std::string line(const Print& i) const {
    std::string out = "print " + quoted(i.label);
    if (i.tensor) out += ", " + tensor(*i.tensor);
    if (i.scalar) out += ", " + expr(*i.scalar);
    return out;
  }

  // ---- statements ----

  void body(const Body& statements, int depth) {
    for (const Statement& s : statements)
      statement(s, depth);
  }

  void emit(int depth, const std::string& content, const SourceLocation& location) {
    out_.append(static_cast<size_t>(2 * depth), ' ');
    out_ += content;
    if (location.known()) out_ += "  # " + location_text(location);
    out_ += '\n';
  }

  void close(int depth) {
    out_.append(static_cast<size_t>(2 * depth), ' ');
    out_ += "}\n";
  }

  void statement(const Statement& s, int depth) {
    const SourceLocation& at = s.location;
    std::visit(
        Overloaded{
            [&](const Instruction& i) { emit(depth, instruction(i), at); },
            [&](const ForStmt& loop) {
              std::string head = fmt::format("for {}{} in range({}, {}, {})", var_name(loop.var),
                                             annotation(loop.var, loop.start), expr(loop.start),
                                             expr(loop.stop), expr(loop.step));
              if (loop.unroll != 0) head += fmt::format(" unroll {}", loop.unroll);
              emit(depth, head + " {", at);
              body(loop.body, depth + 1);
              close(depth);
            },
            [&](const IfStmt& branch) {
              emit(depth, fmt::format("if {} {{", expr(branch.condition)), at);
              body(branch.then_body, depth + 1);
              if (!branch.else_body.empty()) {
                out_.append(static_cast<size_t>(2 * depth), ' ');
                out_ += "} else {\n";
                body(branch.else_body, depth + 1);
              }
              close(depth);
            },
            [&](const WhileStmt& loop) {
              emit(depth, fmt::format("while {} {{", expr(loop.condition)), at);
              body(loop.body, depth + 1);
              close(depth);
            },
            [&](const BreakStmt&) { emit(depth, "break", at); },
            [&](const LetStmt& let) {
              emit(depth,
                   fmt::format("let {}{} = {}", var_name(let.var), annotation(let.var, let.value),
                               expr(let.value)),
                   at);
            },
            [&](const AssignStmt& assign) {
              emit(depth, fmt::format("{} = {}", var_name(assign.var), expr(assign.value)), at);
            },
            [&](const FetchAddStmt& fetch) {
              emit(depth,
                   fmt::format("let {} = fetch_add {}, {}", var_name(fetch.var),
                               access(fetch.counter, fetch.offsets), expr(fetch.value)),
                   at);
            },
        },
        s.node);
  }

  const Program& program_;
  Mode mode_;
  std::vector<std::string> param_names_;
  std::vector<std::string> tensor_names_;
  Renaming renaming_;
  std::vector<bool> defined_;
  std::string out_;
};

}  // namespace

bool is_identifier(std::string_view name) {
  if (name.empty() || is_digit(name.front())) return false;
  return std::all_of(name.begin(), name.end(), is_identifier_char);
}

bool is_reserved_word(std::string_view name) {
  static constexpr std::string_view kReserved[] = {
      // program and header
      "kernel", "param", "grid", "warps", "shared_memory_bytes", "min_blocks_per_sm",
      "early_trigger", "dependent_launch", "cluster",
      // statements
      "for", "in", "range", "unroll", "if", "else", "while", "break", "let", "fetch_add",
      // expressions
      "true", "false", "inf", "nan", "select", "cast", "floordiv", "mod", "min", "max", "blockIdx",
      "gridDim"};
  return std::find(std::begin(kReserved), std::end(kReserved), name) != std::end(kReserved);
}

std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (byte < 0x20 || byte == 0x7f) {
      out += fmt::format("\\x{:02x}", byte);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string print(const Program& program) {
  return Printer(program, Mode::Program).program_text();
}

std::string print(const Program& program, const Statement& statement) {
  return Printer(program, Mode::Excerpt).statement_text(statement);
}

std::string print_instruction(const Program& program, const Instruction& instruction) {
  return Printer(program, Mode::Excerpt).instruction(instruction);
}

}  // namespace nibble::vm
