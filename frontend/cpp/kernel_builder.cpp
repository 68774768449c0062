#include "frontend/cpp/kernel_builder.h"

#include <fmt/format.h>

#include <algorithm>
#include <exception>
#include <numeric>

#include "layout/axis.h"
#include "vm/printer.h"
#include "vm/verifier.h"

namespace nibble::dsl {
namespace {

// "nibble::examples::gemm" from "nibble::vm::Program nibble::examples::gemm(const GemmConfig&)"
// (and from the lambdas inside it): the qualified name, without return and parameter types.
std::string function_name(std::string_view signature) {
  signature = signature.substr(0, signature.find('('));
  if (const size_t space = signature.rfind(' '); space != std::string_view::npos) {
    signature.remove_prefix(space + 1);
  }
  return std::string(signature);
}

vm::SourceLocation to_vm(const std::source_location& location) {
  return {location.file_name(), static_cast<int>(location.line()),
          static_cast<int>(location.column()), function_name(location.function_name())};
}

std::string_view kind_name(vm::Statement const& statement) {
  if (std::holds_alternative<vm::ForStmt>(statement.node)) return "for loop";
  if (std::holds_alternative<vm::IfStmt>(statement.node)) return "if";
  if (std::holds_alternative<vm::WhileStmt>(statement.node)) return "while loop";
  return "scope";
}

std::string shape_text(const Shape& shape) {
  return layout::shape_to_string(shape);
}

bool is_comparison(vm::ElementwiseOp op) {
  return op >= vm::ElementwiseOp::Eq && op <= vm::ElementwiseOp::Ge;
}

// The result field of the instructions that may update an existing tensor in place.
struct ResultField {
  vm::TensorId* operator()(vm::LoadGlobal& i) const { return &i.result; }
  vm::TensorId* operator()(vm::LoadShared& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Cast& i) const { return &i.result; }
  vm::TensorId* operator()(vm::View& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Slice& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Repeat& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Permute& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Reshape& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Elementwise& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Reduce& i) const { return &i.result; }
  vm::TensorId* operator()(vm::Shuffle& i) const { return &i.result; }
  template <typename Other>
  vm::TensorId* operator()(Other&) const {
    return nullptr;
  }
};

}  // namespace

// ---- LayoutSpec ---------------------------------------------------------------------------------

std::optional<Layout> LayoutSpec::resolve() const {
  if (layout_) return layout_;
  if (text_) return Layout::parse(*text_);
  return std::nullopt;
}

// ---- construction, errors, names ----------------------------------------------------------------

KernelBuilder::KernelBuilder(std::string_view kernel_name, Location location)
    : created_at_(to_vm(location)) {
  program_.name = std::string(kernel_name);
  program_.grid = {Expr::int_constant(1), Expr::int_constant(1), Expr::int_constant(1)};
  frames_.push_back(Frame{FrameKind::Root, 0, 0, {}, {}, {}, false, 0});
  if (!vm::is_identifier(kernel_name)) {
    fail(created_at_,
         fmt::format("kernel name '{}' is not an identifier (letters, digits, '_')", kernel_name));
  }
}

KernelBuilder::~KernelBuilder() = default;

void KernelBuilder::fail(const vm::SourceLocation& location, const std::string& message) const {
  throw BuilderError(vm::format_diagnostic(program_, {location, message}), location);
}

void KernelBuilder::check_open(const vm::SourceLocation& location) const {
  if (finished_) fail(location, "the kernel is finished; its builder takes no more statements");
  if (broken_) fail(location, "the builder cannot continue: " + *broken_);
}

std::string KernelBuilder::unique_tensor_name(std::string_view requested, std::string_view fallback,
                                              const vm::SourceLocation& location) {
  if (!requested.empty() && !vm::is_identifier(requested)) {
    fail(location, fmt::format("'{}' is not a valid tensor name (letters, digits and '_', not "
                               "starting with a digit)",
                               requested));
  }
  const std::string base(requested.empty() ? fallback : requested);
  std::string name = base;
  for (int suffix = 1; tensor_names_.contains(name) || vm::is_reserved_word(name); ++suffix) {
    name = fmt::format("{}_{}", base, suffix);
  }
  tensor_names_.insert(name);
  return name;
}

std::string KernelBuilder::unique_scalar_name(std::string_view requested,
                                              const vm::SourceLocation& location) {
  if (!vm::is_identifier(requested)) {
    fail(location, fmt::format("'{}' is not a valid variable name (letters, digits and '_', not "
                               "starting with a digit)",
                               requested));
  }
  std::string name(requested);
  for (int suffix = 1; scalar_names_.contains(name) || vm::is_reserved_word(name); ++suffix) {
    name = fmt::format("{}_{}", requested, suffix);
  }
  scalar_names_.insert(name);
  return name;
}

// ---- tensors and scalars: ownership, liveness, visibility ---------------------------------------

const vm::TensorInfo& KernelBuilder::info(const Tensor& tensor,
                                          const vm::SourceLocation& location) const {
  if (!tensor.valid()) fail(location, "an empty Tensor handle (default-constructed) is used");
  if (tensor.builder_ != this) {
    fail(location,
         "a tensor of another KernelBuilder is used; tensors belong to the kernel that "
         "made them");
  }
  const auto index = static_cast<size_t>(tensor.id_.index);
  if (index >= tensor_records_.size() || tensor_records_[index].serial != tensor.serial_) {
    auto spent = spent_tensors_.find(tensor.serial_);
    fail(location, spent != spent_tensors_.end()
                       ? fmt::format("this tensor no longer exists: {}", spent->second)
                       : std::string("this tensor no longer exists"));
  }
  return program_.tensors[index];
}

void KernelBuilder::check_tensor(const Tensor& tensor, std::string_view role,
                                 const vm::SourceLocation& location) const {
  const vm::TensorInfo& entry = info(tensor, location);
  const int scope = tensor_records_[static_cast<size_t>(tensor.id_.index)].scope;
  if (!is_visible(scope)) {
    fail(location,
         fmt::format("{} %{} is used outside the loop or branch that defines it (defined at {})",
                     role, entry.name, vm::to_string(entry.location)));
  }
}

void KernelBuilder::check_scope(const Tensor& tensor, std::string_view role, vm::Scope scope,
                                const vm::SourceLocation& location) const {
  check_tensor(tensor, role, location);
  const vm::TensorInfo& entry = info(tensor, location);
  if (entry.type.scope != scope) {
    fail(location, fmt::format("{} %{} is a {} tensor, expected a {} tensor", role, entry.name,
                               vm::to_string(entry.type.scope), vm::to_string(scope)));
  }
}

void KernelBuilder::check_expr(const Expr& expr, const vm::SourceLocation& location) const {
  if (expr.empty()) fail(location, "an empty expression is used");
  switch (expr.kind()) {
    case Expr::Kind::Var: {
      auto scope = variable_scopes_.find(expr.index());
      if (scope == variable_scopes_.end()) {
        fail(location,
             fmt::format("variable {} does not belong to kernel '{}'", expr.name(), program_.name));
      }
      if (!is_visible(scope->second)) {
        fail(location,
             fmt::format("variable {} is used outside the scope that defines it", expr.name()));
      }
      return;
    }
    case Expr::Kind::Param: {
      const auto index = static_cast<size_t>(expr.index());
      if (index >= program_.params.size() || program_.params[index].name != expr.name()) {
        fail(location,
             fmt::format("'{}' is not a parameter of kernel '{}'", expr.name(), program_.name));
      }
      return;
    }
    default:
      for (int i = 0; i < expr.operand_count(); ++i)
        check_expr(expr.operand(i), location);
  }
}

Expr KernelBuilder::resolve(const Scalar& scalar, std::optional<DataType> like,
                            const vm::SourceLocation& location) const {
  Expr expr;
  try {
    expr = scalar.to_expr(like);
  } catch (const std::exception& error) {
    fail(location, error.what());
  }
  check_expr(expr, location);
  return expr;
}

std::vector<Expr> KernelBuilder::resolve(const Scalars& scalars,
                                         const vm::SourceLocation& location) const {
  std::optional<DataType> like;
  for (const Scalar& scalar : scalars) {
    if (const Expr* expr = scalar.expr(); expr && !expr->empty()) {
      like = expr->type();
      break;
    }
  }
  std::vector<Expr> exprs;
  exprs.reserve(scalars.size());
  for (const Scalar& scalar : scalars)
    exprs.push_back(resolve(scalar, like, location));
  return exprs;
}

std::optional<Layout> KernelBuilder::resolve(const LayoutSpec& layout,
                                             const vm::SourceLocation& location) const {
  try {
    return layout.resolve();
  } catch (const std::exception& error) {
    fail(location, fmt::format("bad layout: {}", error.what()));
  }
}

Tensor KernelBuilder::define(std::string_view requested, std::string_view fallback,
                             vm::TensorType type, const vm::SourceLocation& location) {
  std::string name = unique_tensor_name(requested, fallback, location);
  const vm::TensorId id{static_cast<int>(program_.tensors.size())};
  program_.tensors.push_back({std::move(name), std::move(type), location});
  const uint64_t serial = next_tensor_serial_++;
  tensor_records_.push_back({serial, frames_.back().scope});
  return Tensor(this, id, serial);
}

Tensor KernelBuilder::register_result(std::string_view requested, std::string_view fallback,
                                      DataType dtype, Shape shape,
                                      const vm::SourceLocation& location) {
  vm::TensorType type;
  type.scope = vm::Scope::Register;
  type.dtype = dtype;
  type.shape = std::move(shape);
  return define(requested, fallback, std::move(type), location);
}

vm::Body& KernelBuilder::current_body() {
  if (frames_.size() == 1) return program_.body;  // the kernel's top level
  Frame& frame = frames_.back();
  return frame.in_else ? frame.else_body : frame.body;
}

void KernelBuilder::emit(vm::Instruction instruction, const vm::SourceLocation& location) {
  current_body().push_back(vm::Statement{std::move(instruction), location});
}

// ---- scopes -------------------------------------------------------------------------------------

bool KernelBuilder::is_visible(int scope) const {
  return std::any_of(frames_.begin(), frames_.end(),
                     [&](const Frame& frame) { return frame.scope == scope; });
}

KernelBuilder::Frame* KernelBuilder::find_frame(int serial) {
  auto found = std::find_if(frames_.begin(), frames_.end(),
                            [&](const Frame& frame) { return frame.serial == serial; });
  return found == frames_.end() ? nullptr : &*found;
}

int KernelBuilder::open_frame(FrameKind kind, vm::Statement statement) {
  const int serial = ++next_scope_serial_;
  frames_.push_back(
      Frame{kind, serial, serial, std::move(statement), {}, {}, false, std::uncaught_exceptions()});
  return serial;
}

void KernelBuilder::close_frame(int serial, const vm::SourceLocation& location) {
  check_open(location);
  Frame* frame = find_frame(serial);
  if (frame == nullptr) fail(location, "this scope is already closed");
  if (frame != &frames_.back()) {
    fail(location,
         fmt::format("the {} opened at {} is closed while the {} opened at {} inside it "
                     "is still open; close scopes innermost first",
                     kind_name(frame->statement), vm::to_string(frame->statement.location),
                     kind_name(frames_.back().statement),
                     vm::to_string(frames_.back().statement.location)));
  }
  Frame closed = std::move(frames_.back());
  frames_.pop_back();
  vm::Statement statement = std::move(closed.statement);
  if (auto* loop = std::get_if<vm::ForStmt>(&statement.node)) loop->body = std::move(closed.body);
  if (auto* loop = std::get_if<vm::WhileStmt>(&statement.node)) loop->body = std::move(closed.body);
  if (auto* branch = std::get_if<vm::IfStmt>(&statement.node)) {
    branch->then_body = std::move(closed.body);
    branch->else_body = std::move(closed.else_body);
  }
  current_body().push_back(std::move(statement));
}

void KernelBuilder::switch_to_else(int serial, const vm::SourceLocation& location) {
  check_open(location);
  Frame* frame = find_frame(serial);
  if (frame == nullptr) fail(location, "else_: the if is already closed");
  if (frame != &frames_.back()) {
    fail(location, fmt::format("else_: the {} opened at {} inside the if is still open",
                               kind_name(frames_.back().statement),
                               vm::to_string(frames_.back().statement.location)));
  }
  if (frame->in_else) fail(location, "else_: the if already has its else branch");
  frame->in_else = true;
  frame->scope = ++next_scope_serial_;  // the then branch's tensors are not visible here
}

void KernelBuilder::close_from_destructor(int serial) noexcept {
  try {
    Frame* frame = find_frame(serial);
    if (frame == nullptr || finished_ || broken_) return;
    if (std::uncaught_exceptions() > frame->uncaught_exceptions) {
      // An exception leaves the kernel's code: the scope cannot be completed.
      broken_ = fmt::format("an exception left the {} opened at {}", kind_name(frame->statement),
                            vm::to_string(frame->statement.location));
    } else if (frame != &frames_.back()) {
      broken_ = fmt::format(
          "the {} opened at {} ended while the {} opened at {} inside it was still open; close "
          "scopes innermost first",
          kind_name(frame->statement), vm::to_string(frame->statement.location),
          kind_name(frames_.back().statement), vm::to_string(frames_.back().statement.location));
    } else {
      close_frame(serial, frame->statement.location);
      return;
    }
    while (frames_.size() > 1 && frames_.back().serial != serial)
      frames_.pop_back();
    if (frames_.size() > 1) frames_.pop_back();
  } catch (...) {
    if (!broken_) broken_ = "a scope could not be closed";
  }
}

ForScope::~ForScope() {
  if (open_) builder_->close_from_destructor(serial_);
}

ForScope& ForScope::unroll(int factor, Location location) {
  const vm::SourceLocation where = to_vm(location);
  builder_->check_open(where);
  KernelBuilder::Frame* frame = open_ ? builder_->find_frame(serial_) : nullptr;
  if (frame == nullptr) builder_->fail(where, "unroll: the loop is already closed");
  if (factor < 0) builder_->fail(where, fmt::format("unroll: factor {} is negative", factor));
  std::get<vm::ForStmt>(frame->statement.node).unroll = factor;
  return *this;
}

void ForScope::end(Location location) {
  builder_->close_frame(serial_, to_vm(location));
  open_ = false;
}

IfScope::~IfScope() {
  if (open_) builder_->close_from_destructor(serial_);
}

void IfScope::else_(Location location) {
  builder_->switch_to_else(serial_, to_vm(location));
}

void IfScope::end(Location location) {
  builder_->close_frame(serial_, to_vm(location));
  open_ = false;
}

WhileScope::~WhileScope() {
  if (open_) builder_->close_from_destructor(serial_);
}

void WhileScope::end(Location location) {
  builder_->close_frame(serial_, to_vm(location));
  open_ = false;
}

// ---- parameters and launch ----------------------------------------------------------------------

Pointer KernelBuilder::pointer(std::string_view name, DataType dtype, int64_t alignment_bytes,
                               Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (!vm::is_identifier(name) || vm::is_reserved_word(name)) {
    fail(where,
         fmt::format("parameter name '{}' is not an identifier or is a reserved word", name));
  }
  if (!scalar_names_.insert(std::string(name)).second) {
    fail(where, fmt::format("the name '{}' is already taken by a parameter or variable", name));
  }
  vm::Parameter param;
  param.name = std::string(name);
  param.kind = vm::Parameter::Kind::Pointer;
  param.dtype = dtype;
  param.alignment_bytes = alignment_bytes;
  program_.params.push_back(std::move(param));
  return Pointer(this, static_cast<int>(program_.params.size()) - 1);
}

Expr KernelBuilder::scalar(std::string_view name, DataType dtype, int64_t divisor,
                           Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (!vm::is_identifier(name) || vm::is_reserved_word(name)) {
    fail(where,
         fmt::format("parameter name '{}' is not an identifier or is a reserved word", name));
  }
  if (!scalar_names_.insert(std::string(name)).second) {
    fail(where, fmt::format("the name '{}' is already taken by a parameter or variable", name));
  }
  vm::Parameter param;
  param.name = std::string(name);
  param.kind = vm::Parameter::Kind::Scalar;
  param.dtype = dtype;
  param.divisor = divisor;
  program_.params.push_back(std::move(param));
  const int index = static_cast<int>(program_.params.size()) - 1;
  try {
    return program_.params.back().expr(index);
  } catch (const std::exception& error) {
    fail(where, fmt::format("parameter '{}': {}", name, error.what()));
  }
}

Expr KernelBuilder::constant_param(std::string_view name, int64_t value, DataType dtype,
                                   Location location) {
  Expr param = scalar(name, dtype, 1, location);
  program_.params.back().compile_time = true;
  program_.params.back().value = value;
  constant_values_[param.index()] = value;
  return param;
}

void KernelBuilder::launch(const Scalars& grid, int warps, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (launched_) fail(where, "launch: the grid is already set");
  if (grid.empty() || grid.size() > 3) {
    fail(where, fmt::format("launch: the grid has 1 to 3 dimensions, not {}", grid.size()));
  }
  for (size_t axis = 0; axis < 3; ++axis) {
    program_.grid[axis] =
        axis < grid.size() ? resolve(grid[axis], std::nullopt, where) : Expr::int_constant(1);
  }
  program_.warps = warps;
  launched_ = true;
}

void KernelBuilder::shared_memory_budget(int64_t bytes, Location location) {
  check_open(to_vm(location));
  program_.shared_memory_bytes = bytes;
}

void KernelBuilder::min_blocks_per_sm(int blocks, Location location) {
  check_open(to_vm(location));
  program_.min_blocks_per_sm = blocks;
}

void KernelBuilder::early_trigger(Location location) {
  check_open(to_vm(location));
  program_.early_trigger = true;
}

void KernelBuilder::dependent_launch(Location location) {
  check_open(to_vm(location));
  program_.dependent_launch = true;
}

void KernelBuilder::cluster(const std::array<int64_t, 3>& blocks, Location location) {
  check_open(to_vm(location));
  program_.cluster = blocks;
}

// ---- scalars ------------------------------------------------------------------------------------

Expr KernelBuilder::block_id(int axis, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (axis < 0 || axis > 2) fail(where, fmt::format("block_id: axis {} is not 0, 1 or 2", axis));
  return Expr::special(static_cast<vm::Special>(static_cast<int>(vm::Special::BlockIdX) + axis));
}

Expr KernelBuilder::grid_dim(int axis, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (axis < 0 || axis > 2) fail(where, fmt::format("grid_dim: axis {} is not 0, 1 or 2", axis));
  return Expr::special(static_cast<vm::Special>(static_cast<int>(vm::Special::GridDimX) + axis));
}

Expr KernelBuilder::scoped_variable(std::string_view name, DataType type,
                                    const vm::SourceLocation& where) {
  Expr var = Expr::var(unique_scalar_name(name, where), program_.next_var_id++, type);
  variable_scopes_[var.index()] = frames_.back().scope;
  return var;
}

Expr KernelBuilder::let(std::string_view name, const Scalar& value, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  Expr resolved = resolve(value, std::nullopt, where);
  Expr var = scoped_variable(name, resolved.type(), where);
  current_body().push_back(vm::Statement{vm::LetStmt{var, std::move(resolved)}, where});
  return var;
}

void KernelBuilder::assign(const Expr& variable, const Scalar& value, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (variable.empty() || variable.kind() != Expr::Kind::Var) {
    fail(where, "assign: the target must be a variable made by let()");
  }
  check_expr(variable, where);
  if (loop_variables_.contains(variable.index())) {
    fail(where,
         fmt::format("assign: {} is a loop variable; loops update it themselves", variable.name()));
  }
  Expr resolved = resolve(value, variable.type(), where);
  current_body().push_back(vm::Statement{vm::AssignStmt{variable, std::move(resolved)}, where});
}

// ---- control flow -------------------------------------------------------------------------------

ForScope KernelBuilder::for_range(const Scalar& start, const Scalar& stop, const Scalar& step,
                                  std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  const std::optional<DataType> like = common_type({&start, &stop, &step});
  vm::ForStmt loop;
  loop.start = resolve(start, like, where);
  loop.stop = resolve(stop, like, where);
  loop.step = resolve(step, like, where);
  loop.var = Expr::var(unique_scalar_name(name, where), program_.next_var_id++,
                       like.value_or(loop.start.type()));
  Expr var = loop.var;
  const int serial = open_frame(FrameKind::For, vm::Statement{std::move(loop), where});
  variable_scopes_[var.index()] = serial;
  loop_variables_.insert(var.index());
  return ForScope(this, serial, std::move(var));
}

IfScope KernelBuilder::if_(const Expr& condition, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_expr(condition, where);
  vm::IfStmt branch;
  branch.condition = condition;
  return IfScope(this, open_frame(FrameKind::If, vm::Statement{std::move(branch), where}));
}

WhileScope KernelBuilder::while_(const Expr& condition, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_expr(condition, where);
  vm::WhileStmt loop;
  loop.condition = condition;
  return WhileScope(this, open_frame(FrameKind::While, vm::Statement{std::move(loop), where}));
}

void KernelBuilder::break_(Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  const bool in_loop = std::any_of(frames_.begin(), frames_.end(), [](const Frame& frame) {
    return frame.kind == FrameKind::For || frame.kind == FrameKind::While;
  });
  if (!in_loop) fail(where, "break_ outside a loop");
  current_body().push_back(vm::Statement{vm::BreakStmt{}, where});
}

// ---- memory -------------------------------------------------------------------------------------

Tensor KernelBuilder::view(const Pointer& pointer, const Scalars& shape, std::string_view name,
                           Location location) {
  return row_major_view(pointer, shape, std::nullopt, name, location);
}

Tensor KernelBuilder::byte_view(const Pointer& pointer, const Scalars& shape, std::string_view name,
                                Location location) {
  return row_major_view(pointer, shape, DataType::uint(8), name, location);
}

Tensor KernelBuilder::row_major_view(const Pointer& pointer, const Scalars& shape,
                                     std::optional<DataType> dtype, std::string_view name,
                                     Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  std::vector<Expr> extents = resolve(shape, where);
  // Row-major strides, folded where the extents are constants.
  std::vector<Expr> strides(extents.size());
  try {
    for (size_t d = extents.size(); d-- > 0;) {
      if (d + 1 == extents.size()) {
        strides[d] = Expr::int_constant(1, extents[d].type());
        continue;
      }
      const auto inner = strides[d + 1].as_int();
      const auto extent = extents[d + 1].as_int();
      strides[d] = inner && extent ? Expr::int_constant(*inner * *extent, extents[d + 1].type())
                   : inner == 1    ? extents[d + 1]
                                   : strides[d + 1] * extents[d + 1];
    }
  } catch (const std::exception& error) {
    fail(where, fmt::format("view: {}", error.what()));
  }
  return global_view(
      pointer, shape,
      [&] {
        Scalars list;
        for (const Expr& stride : strides)
          list.emplace_back(stride);
        return list;
      }(),
      dtype, name, location);
}

Tensor KernelBuilder::strided_view(const Pointer& pointer, const Scalars& shape,
                                   const Scalars& strides, std::string_view name,
                                   Location location) {
  return global_view(pointer, shape, strides, std::nullopt, name, location);
}

Tensor KernelBuilder::global_view(const Pointer& pointer, const Scalars& shape,
                                  const Scalars& strides, std::optional<DataType> dtype,
                                  std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (pointer.builder_ != this || pointer.index_ < 0 ||
      static_cast<size_t>(pointer.index_) >= program_.params.size()) {
    fail(where, "view: the pointer is not a parameter of this kernel");
  }
  const vm::Parameter& param = program_.params[static_cast<size_t>(pointer.index_)];
  vm::TensorType type;
  type.scope = vm::Scope::Global;
  type.dtype = dtype.value_or(param.dtype);
  type.global_shape = resolve(shape, where);
  type.global_strides = resolve(strides, where);
  Tensor result = define(name, param.name, std::move(type), where);
  emit(vm::GlobalView{result.id_, pointer.index_}, where);
  return result;
}

Tensor KernelBuilder::alloc_shared(const Shape& shape, DataType dtype, std::string_view name,
                                   Swizzle swizzle, const LayoutSpec& layout, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  vm::TensorType type;
  type.scope = vm::Scope::Shared;
  type.dtype = dtype;
  type.shape = shape;
  type.layout = resolve(layout, where);
  if (!type.layout) type.layout = Layout::row_major(shape, layout::Axis::smem());
  type.swizzle = swizzle;
  Tensor result = define(name, "smem", std::move(type), where);
  emit(vm::AllocShared{result.id_}, where);
  return result;
}

Tensor KernelBuilder::alloc_register_filled(const Shape& shape, DataType dtype,
                                            std::optional<double> fill, std::string_view name,
                                            std::string_view fallback, const LayoutSpec& layout,
                                            const vm::SourceLocation& location) {
  check_open(location);
  vm::TensorType type;
  type.scope = vm::Scope::Register;
  type.dtype = dtype;
  type.shape = shape;
  type.layout = resolve(layout, location);
  Tensor result = define(name, fallback, std::move(type), location);
  emit(vm::AllocRegister{result.id_, fill}, location);
  return result;
}

Tensor KernelBuilder::alloc_register(const Shape& shape, DataType dtype, std::string_view name,
                                     const LayoutSpec& layout, Location location) {
  return alloc_register_filled(shape, dtype, std::nullopt, name, "regs", layout, to_vm(location));
}

Tensor KernelBuilder::zeros(const Shape& shape, DataType dtype, std::string_view name,
                            const LayoutSpec& layout, Location location) {
  return alloc_register_filled(shape, dtype, 0.0, name, "zeros", layout, to_vm(location));
}

Tensor KernelBuilder::full(const Shape& shape, DataType dtype, double value, std::string_view name,
                           const LayoutSpec& layout, Location location) {
  return alloc_register_filled(shape, dtype, value, name, "full", layout, to_vm(location));
}

Tensor KernelBuilder::load(const Tensor& view, const Scalars& offsets, const Shape& shape,
                           std::string_view name, double other, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(view, "load: source", vm::Scope::Global, where);
  std::vector<Expr> starts = resolve(offsets, where);
  Tensor result = register_result(name, "load", view.dtype(), shape, where);
  emit(vm::LoadGlobal{result.id_, view.id_, std::move(starts), other}, where);
  return result;
}

void KernelBuilder::store(const Tensor& view, const Scalars& offsets, const Tensor& value,
                          Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(view, "store: destination", vm::Scope::Global, where);
  check_tensor(value, "store: value", where);
  emit(vm::StoreGlobal{view.id_, resolve(offsets, where), value.id_}, where);
}

Tensor KernelBuilder::load_shared(const Tensor& tile, const Scalars& offsets, const Shape& shape,
                                  std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(tile, "load_shared: source", vm::Scope::Shared, where);
  std::vector<Expr> starts = resolve(offsets, where);
  Tensor result = register_result(name, "load_shared", tile.dtype(), shape, where);
  emit(vm::LoadShared{result.id_, tile.id_, std::move(starts)}, where);
  return result;
}

void KernelBuilder::store_shared(const Tensor& tile, const Scalars& offsets, const Tensor& value,
                                 Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(tile, "store_shared: destination", vm::Scope::Shared, where);
  check_tensor(value, "store_shared: value", where);
  emit(vm::StoreShared{tile.id_, resolve(offsets, where), value.id_}, where);
}

void KernelBuilder::copy_async(const Tensor& tile, const Scalars& tile_offsets, const Tensor& view,
                               const Scalars& view_offsets, const Shape& shape,
                               const LayoutSpec& threads, std::vector<int> in_bounds,
                               Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(tile, "copy_async: destination", vm::Scope::Shared, where);
  check_scope(view, "copy_async: source", vm::Scope::Global, where);
  emit(vm::CopyAsync{tile.id_, resolve(tile_offsets, where), view.id_, resolve(view_offsets, where),
                     shape, resolve(threads, where), std::move(in_bounds)},
       where);
}

void KernelBuilder::commit(Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  emit(vm::CommitGroup{}, where);
}

void KernelBuilder::wait(int pending, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  emit(vm::WaitGroup{pending}, where);
}

void KernelBuilder::barrier(Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  emit(vm::Barrier{}, where);
}

void KernelBuilder::cluster_barrier(Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  emit(vm::ClusterBarrier{}, where);
}

Tensor KernelBuilder::load_peer_shared(const Tensor& tile, const Scalar& block,
                                       const Scalars& offsets, const Shape& shape,
                                       std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(tile, "load_peer_shared: source", vm::Scope::Shared, where);
  Expr rank = resolve(block, std::nullopt, where);
  std::vector<Expr> starts = resolve(offsets, where);
  Tensor result = register_result(name, "load_peer_shared", tile.dtype(), shape, where);
  emit(vm::LoadPeerShared{result.id_, tile.id_, std::move(rank), std::move(starts)}, where);
  return result;
}

void KernelBuilder::atomic_add(const Tensor& view, const Scalars& offsets, const Tensor& value,
                               Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(view, "atomic_add: destination", vm::Scope::Global, where);
  check_tensor(value, "atomic_add: value", where);
  emit(vm::AtomicAdd{view.id_, resolve(offsets, where), value.id_}, where);
}

Expr KernelBuilder::fetch_add(std::string_view name, const Tensor& counter, const Scalars& offsets,
                              const Scalar& value, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(counter, "fetch_add: counter", vm::Scope::Global, where);
  const DataType dtype = counter.dtype();
  Expr var = scoped_variable(name, dtype, where);
  current_body().push_back(vm::Statement{
      vm::FetchAddStmt{var, counter.id_, resolve(offsets, where), resolve(value, dtype, where)},
      where});
  return var;
}

// ---- data ---------------------------------------------------------------------------------------

Tensor KernelBuilder::cast(const Tensor& source, DataType dtype, std::string_view name,
                           Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(source, "cast: source", where);
  Tensor result = register_result(name, "converted", dtype, source.shape(), where);
  emit(vm::Cast{result.id_, source.id_}, where);
  return result;
}

Tensor KernelBuilder::bitcast(const Tensor& source, DataType dtype, const Shape& shape,
                              std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(source, "bitcast: source", where);
  Tensor result = register_result(name, "bitcast", dtype, shape, where);
  emit(vm::View{result.id_, source.id_}, where);
  return result;
}

Tensor KernelBuilder::slice(const Tensor& source, const std::vector<int64_t>& offsets,
                            const Shape& shape, std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(source, "slice: source", where);
  Tensor result = register_result(name, "slice", source.dtype(), shape, where);
  emit(vm::Slice{result.id_, source.id_, offsets}, where);
  return result;
}

Tensor KernelBuilder::repeat_at(const Tensor& source, int64_t count, int axis,
                                std::string_view name, const vm::SourceLocation& location) {
  check_open(location);
  check_tensor(source, "repeat: source", location);
  Shape shape = source.shape();
  if (axis < 0 || axis >= static_cast<int>(shape.size())) {
    fail(location, fmt::format("repeat: axis {} is not a dimension of %{} (rank {})", axis,
                               source.name(), shape.size()));
  }
  if (count < 1) fail(location, fmt::format("repeat: count {} must be positive", count));
  shape[static_cast<size_t>(axis)] *= count;
  Tensor result = register_result(name, "repeat", source.dtype(), std::move(shape), location);
  emit(vm::Repeat{result.id_, source.id_, axis, count}, location);
  return result;
}

Tensor KernelBuilder::repeat(const Tensor& source, int64_t count, int axis, std::string_view name,
                             Location location) {
  return repeat_at(source, count, axis, name, to_vm(location));
}

Tensor KernelBuilder::permute(const Tensor& source, const std::vector<int>& dims,
                              std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(source, "permute: source", where);
  const Shape& from = source.shape();
  std::vector<int> sorted = dims;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int> identity(from.size());
  std::iota(identity.begin(), identity.end(), 0);
  if (sorted != identity) {
    fail(where, fmt::format("permute: dims must be a permutation of 0..{} for %{} of shape {}",
                            static_cast<int>(from.size()) - 1, source.name(), shape_text(from)));
  }
  Shape shape;
  for (int d : dims)
    shape.push_back(from[static_cast<size_t>(d)]);
  Tensor result = register_result(name, "permute", source.dtype(), std::move(shape), where);
  emit(vm::Permute{result.id_, source.id_, dims}, where);
  return result;
}

Tensor KernelBuilder::reshape(const Tensor& source, const Shape& shape, std::string_view name,
                              Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(source, "reshape: source", where);
  Tensor result = register_result(name, "reshape", source.dtype(), shape, where);
  emit(vm::Reshape{result.id_, source.id_}, where);
  return result;
}

// ---- compute ------------------------------------------------------------------------------------

Tensor KernelBuilder::elementwise(vm::ElementwiseOp op, const std::vector<Operand>& operands,
                                  std::string_view name, Location location) {
  return elementwise_at(op, operands, name, to_vm(location));
}

Tensor KernelBuilder::elementwise_at(vm::ElementwiseOp op, const std::vector<Operand>& operands,
                                     std::string_view name, const vm::SourceLocation& location) {
  check_open(location);
  const std::string op_name(vm::to_string(op));
  if (static_cast<int>(operands.size()) != vm::arity(op)) {
    fail(location,
         fmt::format("{}: takes {} operands, got {}", op_name, vm::arity(op), operands.size()));
  }
  const bool where_op = op == vm::ElementwiseOp::Where;
  // The result's shape: the tensor operands', broadcast over extent-1 dimensions.
  std::optional<Shape> shape;
  std::optional<DataType> value_dtype;
  for (size_t i = 0; i < operands.size(); ++i) {
    const bool condition = where_op && i == 0;
    if (const Tensor* tensor = operands[i].tensor()) {
      check_scope(*tensor, fmt::format("{}: operand", op_name), vm::Scope::Register, location);
      const Shape& operand_shape = tensor->shape();
      if (!shape) {
        shape = operand_shape;
      } else if (shape->size() != operand_shape.size()) {
        fail(location, fmt::format("{}: operands of shapes {} and {} do not broadcast (ranks "
                                   "differ; reshape first)",
                                   op_name, shape_text(*shape), shape_text(operand_shape)));
      } else {
        for (size_t d = 0; d < shape->size(); ++d) {
          int64_t& extent = (*shape)[d];
          if (extent == operand_shape[d] || operand_shape[d] == 1) continue;
          if (extent != 1) {
            fail(location, fmt::format("{}: operands of shapes {} and {} do not broadcast "
                                       "(dimension {}: {} vs {})",
                                       op_name, shape_text(*shape), shape_text(operand_shape), d,
                                       extent, operand_shape[d]));
          }
          extent = operand_shape[d];
        }
      }
      if (!condition && !value_dtype) value_dtype = tensor->dtype();
    }
  }
  if (!shape) {
    fail(location,
         fmt::format("{}: no operand is a tensor (use scalar expressions for scalars)", op_name));
  }
  for (size_t i = 0; i < operands.size() && !value_dtype; ++i) {
    const Scalar* scalar = operands[i].scalar();
    if (scalar && scalar->expr() && !(where_op && i == 0)) value_dtype = scalar->expr()->type();
  }
  if (!value_dtype) {
    fail(location, fmt::format("{}: the values are numbers without a type; make one a tensor or "
                               "a typed expression",
                               op_name));
  }
  std::vector<vm::Operand> vm_operands;
  for (size_t i = 0; i < operands.size(); ++i) {
    const bool condition = where_op && i == 0;
    if (const Tensor* tensor = operands[i].tensor()) {
      vm_operands.emplace_back(broadcast_to(*tensor, *shape, op_name, location).id_);
    } else {
      vm_operands.emplace_back(
          resolve(*operands[i].scalar(), condition ? u1 : *value_dtype, location));
    }
  }
  const DataType result_dtype = is_comparison(op) ? u1 : *value_dtype;
  // `max` and `min` are reserved words of the text format: name those results in full.
  const std::string fallback = op == vm::ElementwiseOp::Max   ? "maximum"
                               : op == vm::ElementwiseOp::Min ? "minimum"
                                                              : op_name;
  Tensor result = register_result(name, fallback, result_dtype, *shape, location);
  emit(vm::Elementwise{result.id_, op, std::move(vm_operands)}, location);
  return result;
}

Tensor KernelBuilder::broadcast_to(const Tensor& tensor, const Shape& shape, std::string_view op,
                                   const vm::SourceLocation& location) {
  Tensor result = tensor;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (result.shape()[d] == shape[d]) continue;
    result =
        repeat_at(result, shape[d], static_cast<int>(d), fmt::format("{}_broadcast", op), location);
  }
  return result;
}

Tensor KernelBuilder::reduce(const Tensor& source, int axis, vm::ReduceOp op, std::string_view name,
                             const vm::SourceLocation& location) {
  check_open(location);
  check_tensor(source, "reduce: source", location);
  Shape shape = source.shape();
  if (axis < 0 || axis >= static_cast<int>(shape.size())) {
    fail(location, fmt::format("reduce: axis {} is not a dimension of %{} (rank {})", axis,
                               source.name(), shape.size()));
  }
  shape[static_cast<size_t>(axis)] = 1;
  Tensor result = register_result(name, fmt::format("reduce_{}", vm::to_string(op)), source.dtype(),
                                  std::move(shape), location);
  emit(vm::Reduce{result.id_, source.id_, op, axis}, location);
  return result;
}

Tensor KernelBuilder::reduce_sum(const Tensor& source, int axis, std::string_view name,
                                 Location location) {
  return reduce(source, axis, vm::ReduceOp::Sum, name, to_vm(location));
}

Tensor KernelBuilder::reduce_max(const Tensor& source, int axis, std::string_view name,
                                 Location location) {
  return reduce(source, axis, vm::ReduceOp::Max, name, to_vm(location));
}

Tensor KernelBuilder::reduce_min(const Tensor& source, int axis, std::string_view name,
                                 Location location) {
  return reduce(source, axis, vm::ReduceOp::Min, name, to_vm(location));
}

void KernelBuilder::dot(const Tensor& accumulator, const Tensor& a, const Tensor& b,
                        Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(accumulator, "dot: accumulator", where);
  check_tensor(a, "dot: a", where);
  check_tensor(b, "dot: b", where);
  emit(vm::Dot{accumulator.id_, a.id_, b.id_, {}, false, false}, where);
}

void KernelBuilder::dot(const Tensor& accumulator, const Tensor& a, const Tensor& b_tile,
                        const Scalars& b_offsets, bool transposed, Location location) {
  shared_dot(accumulator, a, b_tile, b_offsets, transposed, false, to_vm(location));
}

void KernelBuilder::dot_async(const Tensor& accumulator, const Tensor& a, const Tensor& b_tile,
                              const Scalars& b_offsets, bool transposed, Location location) {
  shared_dot(accumulator, a, b_tile, b_offsets, transposed, true, to_vm(location));
}

void KernelBuilder::shared_dot(const Tensor& accumulator, const Tensor& a, const Tensor& b_tile,
                               const Scalars& b_offsets, bool transposed, bool async,
                               const vm::SourceLocation& where) {
  const std::string op = async ? "dot_async" : "dot";
  check_open(where);
  check_tensor(accumulator, op + ": accumulator", where);
  check_tensor(a, op + ": a", where);
  check_scope(b_tile, op + ": b", vm::Scope::Shared, where);
  emit(vm::Dot{accumulator.id_, a.id_, b_tile.id_, resolve(b_offsets, where), transposed, async},
       where);
}

void KernelBuilder::wait_dots(int pending, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  emit(vm::WaitDots{pending}, where);
}

Tensor KernelBuilder::shuffle(const Tensor& source, vm::ShuffleMode mode, const Scalar& lane,
                              std::string_view name, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(source, "shuffle: source", where);
  Expr lane_expr = resolve(lane, i32, where);
  Tensor result = register_result(name, "shuffled", source.dtype(), source.shape(), where);
  emit(vm::Shuffle{result.id_, source.id_, mode, std::move(lane_expr)}, where);
  return result;
}

void KernelBuilder::assign(const Tensor& target, const Tensor& value, Location location) {
  assign_at(target, value, to_vm(location));
}

void KernelBuilder::assign_at(const Tensor& target, const Tensor& value,
                              const vm::SourceLocation& location) {
  check_open(location);
  check_tensor(target, "assign: target", location);
  check_tensor(value, "assign: value", location);
  if (target.id_ == value.id_) return;
  const vm::TensorInfo& to = info(target, location);
  const vm::TensorInfo& from = info(value, location);
  if (to.type.scope == vm::Scope::Global) {
    fail(location, fmt::format("assign: %{} is a global view; write to it with store()", to.name));
  }
  vm::Body& body = current_body();
  vm::TensorId* result = nullptr;
  if (!body.empty()) {
    if (auto* instruction = std::get_if<vm::Instruction>(&body.back().node)) {
      result = std::visit(ResultField{}, *instruction);
    }
  }
  if (result == nullptr || *result != value.id_ ||
      value.id_.index + 1 != static_cast<int>(program_.tensors.size())) {
    fail(location, fmt::format("assign: %{} must be computed by the instruction just before "
                               "(write b.assign(%{}, <expression>) in one go)",
                               from.name, to.name));
  }
  if (to.type.dtype != from.type.dtype || to.type.shape != from.type.shape) {
    fail(location, fmt::format("assign: %{} is {}{} but %{} is {}{}", from.name,
                               from.type.dtype.name(), shape_text(from.type.shape), to.name,
                               to.type.dtype.name(), shape_text(to.type.shape)));
  }
  if (from.type.layout && to.type.layout && from.type.layout != to.type.layout) {
    fail(location, fmt::format("assign: %{} and %{} have different layouts", from.name, to.name));
  }
  *result = target.id_;
  spent_tensors_[value.serial_] =
      fmt::format("%{} was assigned into %{} at {}", from.name, to.name, vm::to_string(location));
  tensor_names_.erase(from.name);
  program_.tensors.pop_back();
  tensor_records_.pop_back();
}

void KernelBuilder::set_layout(const Tensor& tensor, const LayoutSpec& layout, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_scope(tensor, "set_layout: tensor", vm::Scope::Register, where);
  program_.tensor(tensor.id_).type.layout = resolve(layout, where);
}

// ---- debug --------------------------------------------------------------------------------------

void KernelBuilder::print(std::string_view label, const Tensor& tensor, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_tensor(tensor, "print: tensor", where);
  emit(vm::Print{std::string(label), tensor.id_, std::nullopt}, where);
}

void KernelBuilder::print(std::string_view label, const Expr& scalar, Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  check_expr(scalar, where);
  emit(vm::Print{std::string(label), std::nullopt, scalar}, where);
}

// ---- result -------------------------------------------------------------------------------------

vm::Program KernelBuilder::finish(Location location) {
  const vm::SourceLocation where = to_vm(location);
  check_open(where);
  if (frames_.size() > 1) {
    const vm::Statement& open = frames_.back().statement;
    fail(where, fmt::format("finish: the {} opened at {} is still open", kind_name(open),
                            vm::to_string(open.location)));
  }
  finished_ = true;
  vm::verify_or_throw(program_);
  return program_;
}

// ---- Tensor -------------------------------------------------------------------------------------

const std::string& Tensor::name() const {
  if (builder_ == nullptr) throw BuilderError("an empty Tensor handle has no name", {});
  return builder_->info(*this, {}).name;
}

const vm::TensorType& Tensor::type() const {
  if (builder_ == nullptr) throw BuilderError("an empty Tensor handle has no type", {});
  return builder_->info(*this, {}).type;
}

int64_t Tensor::extent(int dimension) const {
  const Shape& dims = shape();
  if (dimension < 0 || dimension >= static_cast<int>(dims.size())) {
    throw BuilderError(
        fmt::format("extent: %{} has no dimension {} (rank {})", name(), dimension, dims.size()),
        {});
  }
  return dims[static_cast<size_t>(dimension)];
}

Tensor Tensor::named(std::string_view new_name, std::source_location location) const {
  const vm::SourceLocation where = to_vm(location);
  if (builder_ == nullptr) throw BuilderError("named: an empty Tensor handle", where);
  builder_->check_open(where);
  builder_->check_tensor(*this, "named: tensor", where);
  if (!vm::is_identifier(new_name)) {
    builder_->fail(where, fmt::format("named: '{}' is not a valid tensor name", new_name));
  }
  vm::TensorInfo& entry = builder_->program_.tensor(id_);
  builder_->tensor_names_.erase(entry.name);
  entry.name = builder_->unique_tensor_name(new_name, new_name, where);
  return *this;
}

}  // namespace nibble::dsl
