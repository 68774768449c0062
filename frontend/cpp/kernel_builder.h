// The C++ kernel-authoring DSL: a builder of vm::Program.
//
// A kernel is written as straight C++ that calls the builder; each call appends one statement
// (or opens a scope) and records the caller's std::source_location, so the verifier and the
// interpreter name the user's line in every error:
//
//   KernelBuilder b("gemv_u4");
//   Pointer x = b.pointer("x", f16), w = b.pointer("w", u4), y = b.pointer("y", f16);
//   Expr n = b.scalar("n"), k = b.scalar("k");
//   b.launch({cdiv(n, bn)}, /*warps=*/4);
//   Expr n0 = b.let("n0", b.block_id(0) * bn);
//   Tensor X = b.view(x, {1, k}), W = b.view(w, {k, n}), Y = b.view(y, {1, n});
//   Tensor acc = b.zeros({1, bn}, f32, "acc");
//   {
//     auto loop = b.for_range(0, k, bk, "k0");     // the body runs to the end of this scope
//     Expr k0 = loop.var();
//     Tensor xs = b.load(X, {0, k0}, {1, bk});
//     Tensor ws = b.cast(b.load(W, {k0, n0}, {bk, bn}), f16) - 8;
//     b.dot(acc, xs, ws);
//   }
//   b.store(Y, {0, n0}, b.cast(acc, f16));
//   vm::Program program = b.finish();               // verified; errors name the lines above
//
// Scopes. for_range, if_ and while_ return scope objects: the statements built while the object
// lives form the body, and its destructor closes it (or call end()). `branch.else_()` switches
// an if to its else body. Lambda forms exist too: b.for_range(0, k, bk, [&](Expr k0) {…}).
// Tensors and variables defined in a scope are visible only inside it; using one outside is
// reported at once, at the line that uses it.
//
// Values. Every instruction with a result makes a fresh tensor. A loop-carried value is updated
// in place: `acc += x`, or b.assign(acc, max(acc, y)) for any expression (tensor.h). C++ leaves
// the order of evaluation of operands unspecified, so `b.load(…) + b.load(…)` may build the
// second load first: write one statement per instruction where the order matters.
//
// Names. Tensors and variables get unique names: the one given (`acc`), or one derived from
// the instruction (`load`, `add`, `reduce_sum`), with `_1`, `_2`, … appended when taken (and
// when the name is a reserved word of the text format, such as `max` or `for`).
//
// Errors. Misuse of the builder itself (a tensor of another builder, a scope closed out of
// order, a use out of scope, a bad name or layout) throws BuilderError at the call, with the
// caller's file:line. Everything the VM checks is checked once more by finish(), which runs
// vm::verify_or_throw: a vm::VerifyError whose diagnostics carry the lines of the calls.
#pragma once

#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "frontend/cpp/scalar.h"
#include "frontend/cpp/tensor.h"
#include "vm/program.h"

namespace nibble::dsl {

using layout::Layout;
using layout::Shape;
using layout::Swizzle;
using vm::DataType;
using vm::Expr;
using Location = std::source_location;

// Element types, spelled as in the text format.
inline const DataType u1 = DataType::uint(1);
inline const DataType u2 = DataType::uint(2);
inline const DataType u4 = DataType::uint(4);
inline const DataType u8 = DataType::uint(8);
inline const DataType u16 = DataType::uint(16);
inline const DataType u32 = DataType::uint(32);
inline const DataType i4 = DataType::sint(4);
inline const DataType i8 = DataType::sint(8);
inline const DataType i16 = DataType::sint(16);
inline const DataType i32 = DataType::sint(32);
inline const DataType i64 = DataType::sint(64);
inline const DataType f16 = DataType::f16();
inline const DataType bf16 = DataType::bf16();
inline const DataType f32 = DataType::f32();
inline const DataType f64 = DataType::f64();
inline const DataType f8e4m3 = DataType::parse("f8e4m3");
inline const DataType f8e5m2 = DataType::parse("f8e5m2");
inline const DataType f4e2m1 = DataType::parse("f4e2m1");

// Misuse of the builder; what() is "file:line:column: error: in kernel 'k': <message>".
class BuilderError : public std::logic_error {
 public:
  BuilderError(const std::string& what, vm::SourceLocation location)
      : std::logic_error(what), location_(std::move(location)) {}
  const vm::SourceLocation& location() const { return location_; }

 private:
  vm::SourceLocation location_;
};

// A layout given by its text (layout/layout.h notation) or as a Layout; empty: the default
// (row-major on smem for shared tiles, inferred for register tensors).
class LayoutSpec {
 public:
  LayoutSpec() = default;
  LayoutSpec(Layout layout) : layout_(std::move(layout)) {}   // NOLINT: implicit by design
  LayoutSpec(std::string_view text) : text_(text) {}          // NOLINT: implicit by design
  LayoutSpec(const char* text) : text_(std::string(text)) {}  // NOLINT: implicit by design
  LayoutSpec(const std::string& text) : text_(text) {}        // NOLINT: implicit by design

  bool empty() const { return !layout_ && !text_; }
  // Throws layout::LayoutError for malformed text.
  std::optional<Layout> resolve() const;

 private:
  std::optional<Layout> layout_;
  std::optional<std::string> text_;
};

// A list of scalar extents, strides or offsets: {1, k}, {k0, n0 + 64}.
using Scalars = std::vector<Scalar>;

class ForScope;
class IfScope;
class WhileScope;

class KernelBuilder {
 public:
  explicit KernelBuilder(std::string_view kernel_name, Location location = Location::current());
  // Handles point at their builder: it stays where it was made.
  KernelBuilder(const KernelBuilder&) = delete;
  KernelBuilder& operator=(const KernelBuilder&) = delete;
  ~KernelBuilder();

  // ---- parameters and launch ------------------------------------------------------------------

  // A pointer to `dtype` elements whose base address is a multiple of `alignment_bytes`.
  Pointer pointer(std::string_view name, DataType dtype, int64_t alignment_bytes = 16,
                  Location location = Location::current());
  // A run-time scalar; `divisor` is a divisor of its value the kernel may assume.
  Expr scalar(std::string_view name, DataType dtype = i32, int64_t divisor = 1,
              Location location = Location::current());
  // A compile-time scalar (the kernel is specialized on it); reads as a parameter in the text.
  Expr constant_param(std::string_view name, int64_t value, DataType dtype = i32,
                      Location location = Location::current());
  // The grid (1 to 3 dimensions, x first; missing ones are 1) and the warps of a block.
  void launch(const Scalars& grid, int warps = 4, Location location = Location::current());
  // The block's shared-memory budget; 0 (the default) is the sum of the tiles.
  void shared_memory_budget(int64_t bytes, Location location = Location::current());
  // Asks the compiler to keep registers low enough for `blocks` blocks per SM (vm::Program).
  void min_blocks_per_sm(int blocks, Location location = Location::current());
  // Programmatic dependent launch (vm::Program::early_trigger, dependent_launch).
  void early_trigger(Location location = Location::current());
  void dependent_launch(Location location = Location::current());
  // Blocks per cluster in x, y, z (vm::Program::cluster; sm_90): each divides the grid.
  void cluster(const std::array<int64_t, 3>& blocks, Location location = Location::current());

  // ---- scalars ----------------------------------------------------------------------------------

  Expr block_id(int axis, Location location = Location::current());
  Expr grid_dim(int axis, Location location = Location::current());
  // Defines a scalar variable (to the end of the enclosing scope); a literal value is i32/f32.
  Expr let(std::string_view name, const Scalar& value, Location location = Location::current());
  // Updates a variable defined by let().
  void assign(const Expr& variable, const Scalar& value, Location location = Location::current());

  // ---- control flow -----------------------------------------------------------------------------

  // for var in [start, stop) by step. Literals take the type of the first expression bound.
  [[nodiscard]] ForScope for_range(const Scalar& start, const Scalar& stop, const Scalar& step = 1,
                                   std::string_view name = "i",
                                   Location location = Location::current());
  template <std::invocable<Expr> Body>
  void for_range(const Scalar& start, const Scalar& stop, const Scalar& step, Body&& body,
                 Location location = Location::current());
  [[nodiscard]] IfScope if_(const Expr& condition, Location location = Location::current());
  template <std::invocable<> Then>
  void if_(const Expr& condition, Then&& then_body, Location location = Location::current());
  template <std::invocable<> Then, std::invocable<> Else>
  void if_(const Expr& condition, Then&& then_body, Else&& else_body,
           Location location = Location::current());
  [[nodiscard]] WhileScope while_(const Expr& condition, Location location = Location::current());
  void break_(Location location = Location::current());

  // ---- memory -----------------------------------------------------------------------------------

  // A global view of a pointer: shape in elements, row-major strides.
  Tensor view(const Pointer& pointer, const Scalars& shape, std::string_view name = "",
              Location location = Location::current());
  Tensor strided_view(const Pointer& pointer, const Scalars& shape, const Scalars& strides,
                      std::string_view name = "", Location location = Location::current());
  // The pointer's memory as bytes (u8), row-major: packed codes of any width copied in whole
  // 16-byte pieces, read back and bitcast to their type in registers.
  Tensor byte_view(const Pointer& pointer, const Scalars& shape, std::string_view name = "",
                   Location location = Location::current());
  // A shared tile (row-major on smem unless a layout is given), optionally swizzled.
  Tensor alloc_shared(const Shape& shape, DataType dtype, std::string_view name = "",
                      Swizzle swizzle = {}, const LayoutSpec& layout = {},
                      Location location = Location::current());
  // A register tile: uninitialized, zeros, or filled with `value`.
  Tensor alloc_register(const Shape& shape, DataType dtype, std::string_view name = "",
                        const LayoutSpec& layout = {}, Location location = Location::current());
  Tensor zeros(const Shape& shape, DataType dtype, std::string_view name = "",
               const LayoutSpec& layout = {}, Location location = Location::current());
  Tensor full(const Shape& shape, DataType dtype, double value, std::string_view name = "",
              const LayoutSpec& layout = {}, Location location = Location::current());
  // The box `shape` of a global view at `offsets`; elements outside the view read `other`.
  Tensor load(const Tensor& view, const Scalars& offsets, const Shape& shape,
              std::string_view name = "", double other = 0,
              Location location = Location::current());
  // Writes `value` at `offsets`; elements outside the view are not written.
  void store(const Tensor& view, const Scalars& offsets, const Tensor& value,
             Location location = Location::current());
  Tensor load_shared(const Tensor& tile, const Scalars& offsets, const Shape& shape,
                     std::string_view name = "", Location location = Location::current());
  void store_shared(const Tensor& tile, const Scalars& offsets, const Tensor& value,
                    Location location = Location::current());
  // Copies the box `shape` from view[view_offsets…] to tile[tile_offsets…] asynchronously (zeros
  // outside the view); `threads` optionally distributes it over the threads. `in_bounds` lists
  // the dimensions along which the box is promised to lie inside the view (vm::CopyAsync): the
  // interpreter checks it, the GPU code skips those bounds checks.
  void copy_async(const Tensor& tile, const Scalars& tile_offsets, const Tensor& view,
                  const Scalars& view_offsets, const Shape& shape, const LayoutSpec& threads = {},
                  std::vector<int> in_bounds = {}, Location location = Location::current());
  void commit(Location location = Location::current());
  void wait(int pending, Location location = Location::current());
  void barrier(Location location = Location::current());
  // Every block of the cluster arrives (vm::ClusterBarrier).
  void cluster_barrier(Location location = Location::current());
  // tile[offsets + i] of the cluster's block of rank `block` (vm::LoadPeerShared).
  Tensor load_peer_shared(const Tensor& tile, const Scalar& block, const Scalars& offsets,
                          const Shape& shape, std::string_view name = "",
                          Location location = Location::current());
  // view[offsets + i] += value[i], atomically.
  void atomic_add(const Tensor& view, const Scalars& offsets, const Tensor& value,
                  Location location = Location::current());
  // A variable holding the old value of counter[offsets] (i32/u32), to which the block adds
  // `value` once, after every thread arrived and its global stores were made visible to the
  // blocks that come later (vm::FetchAddStmt): the last of n blocks reads n - 1.
  Expr fetch_add(std::string_view name, const Tensor& counter, const Scalars& offsets,
                 const Scalar& value, Location location = Location::current());

  // ---- data -------------------------------------------------------------------------------------

  Tensor cast(const Tensor& source, DataType dtype, std::string_view name = "",
              Location location = Location::current());
  // The same bits per thread read as `dtype` elements of `shape` (vm::View).
  Tensor bitcast(const Tensor& source, DataType dtype, const Shape& shape,
                 std::string_view name = "", Location location = Location::current());
  Tensor slice(const Tensor& source, const std::vector<int64_t>& offsets, const Shape& shape,
               std::string_view name = "", Location location = Location::current());
  // Each element `count` times along `axis` (a group scale over its rows; a broadcast of an
  // extent-1 axis).
  Tensor repeat(const Tensor& source, int64_t count, int axis, std::string_view name = "",
                Location location = Location::current());
  Tensor permute(const Tensor& source, const std::vector<int>& dims, std::string_view name = "",
                 Location location = Location::current());
  Tensor reshape(const Tensor& source, const Shape& shape, std::string_view name = "",
                 Location location = Location::current());

  // ---- compute ----------------------------------------------------------------------------------

  // One elementwise instruction (the operators and functions of tensor.h come here).
  Tensor elementwise(vm::ElementwiseOp op, const std::vector<Operand>& operands,
                     std::string_view name = "", Location location = Location::current());
  // Reduces `axis`, keeping it with extent 1.
  Tensor reduce_sum(const Tensor& source, int axis, std::string_view name = "",
                    Location location = Location::current());
  Tensor reduce_max(const Tensor& source, int axis, std::string_view name = "",
                    Location location = Location::current());
  Tensor reduce_min(const Tensor& source, int axis, std::string_view name = "",
                    Location location = Location::current());
  // accumulator += a · b (in place).
  void dot(const Tensor& accumulator, const Tensor& a, const Tensor& b,
           Location location = Location::current());
  // The same with b read in place from a shared tile: b[k, n] = tile[b_offsets + (k, n)], or
  // tile[b_offsets + (n, k)] when `transposed` (wgmma's shared B operand on sm_90a; vm::Dot).
  void dot(const Tensor& accumulator, const Tensor& a, const Tensor& b_tile,
           const Scalars& b_offsets, bool transposed = false,
           Location location = Location::current());
  // The same, issued asynchronously: it completes at a later wait_dots (vm::Dot's rules on what
  // may touch its operands meanwhile).
  void dot_async(const Tensor& accumulator, const Tensor& a, const Tensor& b_tile,
                 const Scalars& b_offsets, bool transposed = false,
                 Location location = Location::current());
  // Waits until at most `pending` async dots are in flight.
  void wait_dots(int pending, Location location = Location::current());
  Tensor shuffle(const Tensor& source, vm::ShuffleMode mode, const Scalar& lane,
                 std::string_view name = "", Location location = Location::current());

  // Makes `value` the new contents of `target` in place: `value` must be the result of the
  // instruction just built (b.assign(acc, acc + x); b.assign(m, max(m, row_max))), which then
  // writes `target` instead of a new tensor. `value`'s handle is spent.
  void assign(const Tensor& target, const Tensor& value, Location location = Location::current());
  // Gives a register tensor (or an unallocated shared one) a layout.
  void set_layout(const Tensor& tensor, const LayoutSpec& layout,
                  Location location = Location::current());

  // ---- debug ------------------------------------------------------------------------------------

  void print(std::string_view label, const Tensor& tensor, Location location = Location::current());
  void print(std::string_view label, const Expr& scalar, Location location = Location::current());

  // ---- result -----------------------------------------------------------------------------------

  // The program, verified (vm::VerifyError otherwise). The builder accepts no more statements.
  vm::Program finish(Location location = Location::current());

  // The program built so far (unverified; for tools and tests). The statements of scopes that
  // are still open join it when their scopes close.
  const vm::Program& program() const { return program_; }

 private:
  friend class Tensor;
  friend class ForScope;
  friend class IfScope;
  friend class WhileScope;

  enum class FrameKind : uint8_t { Root, For, If, While };
  // An open scope: the statement being built and the body (bodies, for an if) collected so far.
  struct Frame {
    FrameKind kind = FrameKind::Root;
    int serial = 0;  // identifies the scope object
    int scope = 0;   // the visibility scope of the body being built (a new one at else_)
    vm::Statement statement;
    vm::Body body;
    vm::Body else_body;
    bool in_else = false;
    int uncaught_exceptions = 0;  // at opening: tells unwinding from a normal end
  };

  [[noreturn]] void fail(const vm::SourceLocation& location, const std::string& message) const;
  void check_open(const vm::SourceLocation& location) const;
  const vm::TensorInfo& info(const Tensor& tensor, const vm::SourceLocation& location) const;
  void check_tensor(const Tensor& tensor, std::string_view role,
                    const vm::SourceLocation& location) const;
  void check_scope(const Tensor& tensor, std::string_view role, vm::Scope scope,
                   const vm::SourceLocation& location) const;
  void check_expr(const Expr& expr, const vm::SourceLocation& location) const;
  Expr resolve(const Scalar& scalar, std::optional<DataType> like,
               const vm::SourceLocation& location) const;
  std::vector<Expr> resolve(const Scalars& scalars, const vm::SourceLocation& location) const;
  std::optional<Layout> resolve(const LayoutSpec& layout, const vm::SourceLocation& location) const;

  std::string unique_tensor_name(std::string_view requested, std::string_view fallback,
                                 const vm::SourceLocation& location);
  std::string unique_scalar_name(std::string_view requested, const vm::SourceLocation& location);
  // A new scalar variable, visible to the end of the current scope (let, fetch_add).
  Expr scoped_variable(std::string_view name, DataType type, const vm::SourceLocation& where);
  Tensor define(std::string_view requested, std::string_view fallback, vm::TensorType type,
                const vm::SourceLocation& location);
  Tensor register_result(std::string_view requested, std::string_view fallback, DataType dtype,
                         Shape shape, const vm::SourceLocation& location);
  vm::Body& current_body();
  void emit(vm::Instruction instruction, const vm::SourceLocation& location);
  // dot / dot_async with a shared b.
  void shared_dot(const Tensor& accumulator, const Tensor& a, const Tensor& b_tile,
                  const Scalars& b_offsets, bool transposed, bool async,
                  const vm::SourceLocation& where);

  Tensor alloc_register_filled(const Shape& shape, DataType dtype, std::optional<double> fill,
                               std::string_view name, std::string_view fallback,
                               const LayoutSpec& layout, const vm::SourceLocation& location);
  // A global view of `pointer` read as `dtype` (default: the pointer's own).
  Tensor row_major_view(const Pointer& pointer, const Scalars& shape, std::optional<DataType> dtype,
                        std::string_view name, Location location);
  Tensor global_view(const Pointer& pointer, const Scalars& shape, const Scalars& strides,
                     std::optional<DataType> dtype, std::string_view name, Location location);
  Tensor repeat_at(const Tensor& source, int64_t count, int axis, std::string_view name,
                   const vm::SourceLocation& location);
  Tensor elementwise_at(vm::ElementwiseOp op, const std::vector<Operand>& operands,
                        std::string_view name, const vm::SourceLocation& location);
  Tensor broadcast_to(const Tensor& tensor, const Shape& shape, std::string_view op,
                      const vm::SourceLocation& location);
  Tensor reduce(const Tensor& source, int axis, vm::ReduceOp op, std::string_view name,
                const vm::SourceLocation& location);
  void assign_at(const Tensor& target, const Tensor& value, const vm::SourceLocation& location);

  int open_frame(FrameKind kind, vm::Statement statement);
  void close_frame(int serial, const vm::SourceLocation& location);
  void switch_to_else(int serial, const vm::SourceLocation& location);
  void close_from_destructor(int serial) noexcept;
  bool is_visible(int scope) const;
  Frame* find_frame(int serial);

  vm::Program program_;
  vm::SourceLocation created_at_;
  std::vector<Frame> frames_;
  int next_scope_serial_ = 0;
  uint64_t next_tensor_serial_ = 1;
  bool launched_ = false;
  bool finished_ = false;
  std::optional<std::string> broken_;  // a misuse found where it could not be thrown

  struct TensorRecord {
    uint64_t serial = 0;
    int scope = 0;  // the scope serial that defines it
  };
  std::vector<TensorRecord> tensor_records_;                 // by TensorId
  std::unordered_map<uint64_t, std::string> spent_tensors_;  // serial -> why it is gone
  std::unordered_set<std::string> tensor_names_;
  std::unordered_set<std::string> scalar_names_;  // parameters and variables
  std::unordered_map<int, int> variable_scopes_;  // Var id -> scope serial
  std::unordered_set<int> loop_variables_;        // Var ids of for loops
  std::map<int, int64_t> constant_values_;        // compile-time parameter index -> value
};

// ---- scopes -----------------------------------------------------------------------------------

// The body of a for loop, from the for_range() call to the end of this object's scope.
class ForScope {
 public:
  // Movable (the moved-from object closes nothing), not copyable.
  ForScope(ForScope&& other) noexcept
      : builder_(other.builder_),
        serial_(other.serial_),
        var_(std::move(other.var_)),
        open_(std::exchange(other.open_, false)) {}
  ForScope(const ForScope&) = delete;
  ForScope& operator=(const ForScope&) = delete;
  ForScope& operator=(ForScope&&) = delete;
  ~ForScope();

  // The loop variable.
  const Expr& var() const { return var_; }
  // 0: the compiler decides; 1: never; n: by n.
  ForScope& unroll(int factor, Location location = Location::current());
  // Closes the loop before the end of the C++ scope; it must be the innermost open scope.
  void end(Location location = Location::current());

 private:
  friend class KernelBuilder;
  ForScope(KernelBuilder* builder, int serial, Expr var)
      : builder_(builder), serial_(serial), var_(std::move(var)) {}
  KernelBuilder* builder_;
  int serial_;
  Expr var_;
  bool open_ = true;
};

// The then body of an if, and after else_() its else body.
class IfScope {
 public:
  // Movable (the moved-from object closes nothing), not copyable.
  IfScope(IfScope&& other) noexcept
      : builder_(other.builder_),
        serial_(other.serial_),
        open_(std::exchange(other.open_, false)) {}
  IfScope(const IfScope&) = delete;
  IfScope& operator=(const IfScope&) = delete;
  IfScope& operator=(IfScope&&) = delete;
  ~IfScope();

  void else_(Location location = Location::current());
  void end(Location location = Location::current());

 private:
  friend class KernelBuilder;
  IfScope(KernelBuilder* builder, int serial) : builder_(builder), serial_(serial) {}
  KernelBuilder* builder_;
  int serial_;
  bool open_ = true;
};

class WhileScope {
 public:
  // Movable (the moved-from object closes nothing), not copyable.
  WhileScope(WhileScope&& other) noexcept
      : builder_(other.builder_),
        serial_(other.serial_),
        open_(std::exchange(other.open_, false)) {}
  WhileScope(const WhileScope&) = delete;
  WhileScope& operator=(const WhileScope&) = delete;
  WhileScope& operator=(WhileScope&&) = delete;
  ~WhileScope();

  void end(Location location = Location::current());

 private:
  friend class KernelBuilder;
  WhileScope(KernelBuilder* builder, int serial) : builder_(builder), serial_(serial) {}
  KernelBuilder* builder_;
  int serial_;
  bool open_ = true;
};

template <std::invocable<Expr> Body>
void KernelBuilder::for_range(const Scalar& start, const Scalar& stop, const Scalar& step,
                              Body&& body, Location location) {
  ForScope loop = for_range(start, stop, step, "i", location);
  std::forward<Body>(body)(loop.var());
  loop.end(location);
}

template <std::invocable<> Then>
void KernelBuilder::if_(const Expr& condition, Then&& then_body, Location location) {
  IfScope branch = if_(condition, location);
  std::forward<Then>(then_body)();
  branch.end(location);
}

template <std::invocable<> Then, std::invocable<> Else>
void KernelBuilder::if_(const Expr& condition, Then&& then_body, Else&& else_body,
                        Location location) {
  IfScope branch = if_(condition, location);
  std::forward<Then>(then_body)();
  branch.else_(location);
  std::forward<Else>(else_body)();
  branch.end(location);
}

}  // namespace nibble::dsl
