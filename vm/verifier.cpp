#include "vm/verifier.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <unordered_set>

#include "layout/queries.h"

namespace nibble::vm {
namespace {

using layout::Axis;

const DataType kBool = DataType::uint(1);

bool is_identifier(std::string_view name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_')) {
    return false;
  }
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string shape_text(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ", "));
}

bool is_register_axis(Axis axis) {
  return axis == Axis::lane() || axis == Axis::warp() || axis == Axis::warpgroup() ||
         axis == Axis::thread() || axis == Axis::reg() || axis == Axis::idx();
}

class Verifier {
 public:
  explicit Verifier(const Program& program) : program_(program) {}

  std::vector<Diagnostic> run() {
    check_program();
    scopes_.emplace_back();
    body(program_.body);
    scopes_.pop_back();
    check_shared_budget();
    return std::move(diagnostics_);
  }

  // ---- instructions (one rule each) ----------------------------------------------------------

  void operator()(const GlobalView& view) {
    if (!define(view.result, "result")) return;
    const TensorType& type = type_of(view.result);
    if (view.param < 0 || view.param >= static_cast<int>(program_.params.size())) {
      return error("global_view: parameter index {} does not exist", view.param);
    }
    const Parameter& param = program_.params[static_cast<size_t>(view.param)];
    if (param.kind != Parameter::Kind::Pointer) {
      return error("global_view: parameter '{}' is a scalar, not a pointer", param.name);
    }
    if (type.scope != Scope::Global) {
      return error("global_view: {} must be a global tensor, not {}", name(view.result),
                   to_string(type.scope));
    }
    // A view reads its pointer's memory as the pointer's type or as bytes.
    if (type.dtype != param.dtype && type.dtype != DataType::uint(8)) {
      error(
          "global_view: {} has dtype {} but parameter '{}' points to {} (a view reads {} or "
          "bytes, u8)",
          name(view.result), type.dtype.name(), param.name, param.dtype.name(), param.dtype.name());
    }
    if (type.global_shape.empty())
      error("global_view: {} needs at least one dimension", name(view.result));
    if (type.global_shape.size() != type.global_strides.size()) {
      error("global_view: {} has {} extents but {} strides", name(view.result),
            type.global_shape.size(), type.global_strides.size());
    }
    for (const Expr& e : type.global_shape)
      integer_expr(e, "global_view: extent");
    for (const Expr& e : type.global_strides)
      integer_expr(e, "global_view: stride");
  }

  void operator()(const AllocShared& alloc) {
    if (!define(alloc.result, "result")) return;
    const TensorType& type = type_of(alloc.result);
    if (type.scope != Scope::Shared) {
      return error("alloc_shared: {} must be a shared tensor, not {}", name(alloc.result),
                   to_string(type.scope));
    }
    static_shape(type, "alloc_shared", alloc.result);
    if (!type.layout) return error("alloc_shared: {} needs a layout on smem", name(alloc.result));
    layout_matches_shape(*type.layout, type, "alloc_shared", alloc.result);
    for (Axis axis : type.layout->axes()) {
      if (axis != Axis::smem() && axis != Axis::idx()) {
        error(
            "alloc_shared: the layout of {} places elements on '{}'; shared tiles live on smem "
            "only",
            name(alloc.result), axis.name());
      }
    }
    if (type.layout->replication() != 1) {
      error(
          "alloc_shared: the layout of {} replicates elements; a shared tile holds each "
          "element once",
          name(alloc.result));
    }
    const int64_t alignment = shared_tile_alignment(type);
    shared_bytes_ = (shared_bytes_ + alignment - 1) / alignment * alignment +
                    (bytes_of(type) + 127) / 128 * 128;
  }

  void operator()(const AllocRegister& alloc) {
    if (!define(alloc.result, "result")) return;
    register_tensor(alloc.result, "alloc_register");
  }

  void operator()(const LoadGlobal& load) {
    if (!use(load.source, "source")) return;
    if (!define_or_update(load.result)) return;
    if (!scope_is(load.source, Scope::Global, "load_global", "source")) return;
    if (!register_tensor(load.result, "load_global")) return;
    same_dtype(load.source, load.result, "load_global");
    offsets(load.offsets, load.source, "load_global");
    same_rank(load.result, load.source, "load_global");
  }

  void operator()(const StoreGlobal& store) {
    if (!use(store.destination, "destination") || !use(store.value, "value")) return;
    if (!scope_is(store.destination, Scope::Global, "store_global", "destination")) return;
    if (!register_tensor(store.value, "store_global")) return;
    same_dtype(store.value, store.destination, "store_global");
    offsets(store.offsets, store.destination, "store_global");
    same_rank(store.value, store.destination, "store_global");
  }

  void operator()(const LoadShared& load) {
    if (!use(load.source, "source")) return;
    if (!define_or_update(load.result)) return;
    if (!scope_is(load.source, Scope::Shared, "load_shared", "source")) return;
    if (!register_tensor(load.result, "load_shared")) return;
    same_dtype(load.source, load.result, "load_shared");
    if (offsets(load.offsets, load.source, "load_shared") &&
        same_rank(load.result, load.source, "load_shared")) {
      box_inside(load.offsets, type_of(load.result).shape, load.source, "load_shared");
    }
  }

  void operator()(const LoadPeerShared& load) {
    if (!use(load.source, "source")) return;
    if (!define_or_update(load.result)) return;
    if (program_.cluster_blocks() == 1) {
      error("load_peer_shared: the kernel has no clusters (cluster (1, 1, 1))");
    }
    if (!scope_is(load.source, Scope::Shared, "load_peer_shared", "source")) return;
    if (!register_tensor(load.result, "load_peer_shared")) return;
    same_dtype(load.source, load.result, "load_peer_shared");
    integer_expr(load.block, "load_peer_shared: block");
    if (offsets(load.offsets, load.source, "load_peer_shared") &&
        same_rank(load.result, load.source, "load_peer_shared")) {
      box_inside(load.offsets, type_of(load.result).shape, load.source, "load_peer_shared");
    }
  }

  void operator()(const StoreShared& store) {
    if (!use(store.destination, "destination") || !use(store.value, "value")) return;
    if (!scope_is(store.destination, Scope::Shared, "store_shared", "destination")) return;
    if (!register_tensor(store.value, "store_shared")) return;
    same_dtype(store.value, store.destination, "store_shared");
    if (offsets(store.offsets, store.destination, "store_shared") &&
        same_rank(store.value, store.destination, "store_shared")) {
      box_inside(store.offsets, type_of(store.value).shape, store.destination, "store_shared");
    }
  }

  void operator()(const CopyAsync& copy) {
    if (!use(copy.destination, "destination") || !use(copy.source, "source")) return;
    if (!scope_is(copy.destination, Scope::Shared, "copy_async", "destination") ||
        !scope_is(copy.source, Scope::Global, "copy_async", "source")) {
      return;
    }
    same_dtype(copy.source, copy.destination, "copy_async");
    if (copy.shape.empty()) return error("copy_async: the copied box has no dimensions");
    for (int64_t extent : copy.shape) {
      if (extent <= 0)
        return error("copy_async: box {} has a non-positive extent", shape_text(copy.shape));
    }
    if (offsets(copy.destination_offsets, copy.destination, "copy_async") &&
        static_cast<int>(copy.shape.size()) == type_of(copy.destination).rank()) {
      box_inside(copy.destination_offsets, copy.shape, copy.destination, "copy_async");
    } else if (static_cast<int>(copy.shape.size()) != type_of(copy.destination).rank()) {
      error("copy_async: box {} has rank {} but {} has rank {}", shape_text(copy.shape),
            copy.shape.size(), name(copy.destination), type_of(copy.destination).rank());
    }
    offsets(copy.source_offsets, copy.source, "copy_async");
    if (static_cast<int>(copy.shape.size()) != type_of(copy.source).rank()) {
      error("copy_async: box {} has rank {} but {} has rank {}", shape_text(copy.shape),
            copy.shape.size(), name(copy.source), type_of(copy.source).rank());
    }
    if (copy.threads) {
      if (copy.threads->size() != layout::shape_size(copy.shape)) {
        error("copy_async: thread layout {} covers {} elements, the box {} has {}",
              copy.threads->to_string(), copy.threads->size(), shape_text(copy.shape),
              layout::shape_size(copy.shape));
      }
      thread_axes_fit(*copy.threads, "copy_async", "the thread layout");
    }
    std::vector<bool> seen(copy.shape.size(), false);
    for (int dim : copy.in_bounds) {
      if (dim < 0 || dim >= static_cast<int>(copy.shape.size())) {
        error("copy_async: in_bounds dimension {} is not one of the box's {} dimensions", dim,
              copy.shape.size());
      } else if (seen[static_cast<size_t>(dim)]) {
        error("copy_async: in_bounds lists dimension {} twice", dim);
      } else {
        seen[static_cast<size_t>(dim)] = true;
      }
    }
  }

  void operator()(const CommitGroup&) {}
  void operator()(const WaitGroup& wait) {
    if (wait.pending < 0) error("wait_group: {} pending groups is negative", wait.pending);
  }
  void operator()(const Barrier&) {}
  void operator()(const ClusterBarrier&) {
    if (program_.cluster_blocks() == 1) {
      error("cluster_barrier: the kernel has no clusters (cluster (1, 1, 1))");
    }
  }
  void operator()(const WaitDots& wait) {
    if (wait.pending < 0) error("wait_dots: {} pending dots is negative", wait.pending);
  }

  void operator()(const Cast& cast) {
    if (!use(cast.source, "source") || !define_or_update(cast.result)) return;
    if (!register_tensor(cast.source, "cast") || !register_tensor(cast.result, "cast")) return;
    same_shape(cast.source, cast.result, "cast");
  }

  void operator()(const View& view) {
    if (!use(view.source, "source") || !define_or_update(view.result)) return;
    if (!register_tensor(view.source, "view") || !register_tensor(view.result, "view")) return;
    const TensorType& from = type_of(view.source);
    const TensorType& to = type_of(view.result);
    const int64_t from_bits = from.element_count() * from.dtype.bits();
    const int64_t to_bits = to.element_count() * to.dtype.bits();
    if (from_bits != to_bits) {
      return error("view: {} holds {} bits ({} x {}) but {} holds {} bits ({} x {})",
                   name(view.source), from_bits, shape_text(from.shape), from.dtype.name(),
                   name(view.result), to_bits, shape_text(to.shape), to.dtype.name());
    }
    if (from.layout && to.layout) {
      const int64_t from_thread_bits = from.layout->span(Axis::reg()) * from.dtype.bits();
      const int64_t to_thread_bits = to.layout->span(Axis::reg()) * to.dtype.bits();
      if (from_thread_bits != to_thread_bits) {
        error(
            "view: each thread holds {} bits of {} but would hold {} bits of {}; a view keeps "
            "every thread's bits",
            from_thread_bits, name(view.source), to_thread_bits, name(view.result));
      }
    }
  }

  void operator()(const Slice& slice) {
    if (!use(slice.source, "source") || !define_or_update(slice.result)) return;
    if (!register_tensor(slice.source, "slice") || !register_tensor(slice.result, "slice")) return;
    same_dtype(slice.source, slice.result, "slice");
    const TensorType& from = type_of(slice.source);
    const TensorType& to = type_of(slice.result);
    if (slice.offsets.size() != from.shape.size() || to.shape.size() != from.shape.size()) {
      return error("slice: {} has rank {}, but the slice gives {} offsets for a result of rank {}",
                   name(slice.source), from.shape.size(), slice.offsets.size(), to.shape.size());
    }
    for (size_t d = 0; d < from.shape.size(); ++d) {
      if (slice.offsets[d] < 0 || slice.offsets[d] + to.shape[d] > from.shape[d]) {
        return error("slice: dimension {} takes [{}, {}) of {}, which has extent {}", d,
                     slice.offsets[d], slice.offsets[d] + to.shape[d], name(slice.source),
                     from.shape[d]);
      }
    }
  }

  void operator()(const Repeat& repeat) {
    if (!use(repeat.source, "source") || !define_or_update(repeat.result)) return;
    if (!register_tensor(repeat.source, "repeat") || !register_tensor(repeat.result, "repeat"))
      return;
    same_dtype(repeat.source, repeat.result, "repeat");
    Shape expected = type_of(repeat.source).shape;
    if (repeat.axis < 0 || repeat.axis >= static_cast<int>(expected.size())) {
      return error("repeat: axis {} is not a dimension of {} (rank {})", repeat.axis,
                   name(repeat.source), expected.size());
    }
    if (repeat.count < 1) return error("repeat: count {} must be positive", repeat.count);
    expected[static_cast<size_t>(repeat.axis)] *= repeat.count;
    if (type_of(repeat.result).shape != expected) {
      error("repeat: repeating {} {} times along axis {} gives {}, but {} is {}",
            name(repeat.source), repeat.count, repeat.axis, shape_text(expected),
            name(repeat.result), shape_text(type_of(repeat.result).shape));
    }
  }

  void operator()(const Permute& permute) {
    if (!use(permute.source, "source") || !define_or_update(permute.result)) return;
    if (!register_tensor(permute.source, "permute") || !register_tensor(permute.result, "permute"))
      return;
    same_dtype(permute.source, permute.result, "permute");
    const Shape& from = type_of(permute.source).shape;
    std::vector<int> sorted = permute.dims;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int> identity(from.size());
    std::iota(identity.begin(), identity.end(), 0);
    if (sorted != identity) {
      return error("permute: dims must be a permutation of 0..{}",
                   static_cast<int>(from.size()) - 1);
    }
    Shape expected;
    for (int d : permute.dims)
      expected.push_back(from[static_cast<size_t>(d)]);
    if (type_of(permute.result).shape != expected) {
      error("permute: the result of permuting {} is {}, but {} is {}", name(permute.source),
            shape_text(expected), name(permute.result), shape_text(type_of(permute.result).shape));
    }
  }

  void operator()(const Reshape& reshape) {
    if (!use(reshape.source, "source") || !define_or_update(reshape.result)) return;
    if (!register_tensor(reshape.source, "reshape") || !register_tensor(reshape.result, "reshape"))
      return;
    same_dtype(reshape.source, reshape.result, "reshape");
    if (type_of(reshape.source).element_count() != type_of(reshape.result).element_count()) {
      error("reshape: {} has {} elements but {} has {}", name(reshape.source),
            type_of(reshape.source).element_count(), name(reshape.result),
            type_of(reshape.result).element_count());
    }
  }

  void operator()(const Elementwise& e) {
    const std::string op(to_string(e.op));
    for (const Operand& operand : e.operands) {
      if (const TensorId* id = std::get_if<TensorId>(&operand)) {
        if (!use(*id, "operand")) return;
      } else {
        expr(std::get<Expr>(operand));
      }
    }
    if (!define_or_update(e.result)) return;
    if (!register_tensor(e.result, op)) return;
    if (static_cast<int>(e.operands.size()) != arity(e.op)) {
      return error("{}: takes {} operands, got {}", op, arity(e.op), e.operands.size());
    }
    const TensorType& result = type_of(e.result);
    const bool comparison = e.op >= ElementwiseOp::Eq && e.op <= ElementwiseOp::Ge;
    if (comparison && result.dtype != kBool) {
      return error("{}: {} must be u1 (a comparison's result), not {}", op, name(e.result),
                   result.dtype.name());
    }
    std::optional<DataType> operand_dtype = comparison ? std::nullopt : std::optional(result.dtype);
    for (size_t i = 0; i < e.operands.size(); ++i) {
      const bool is_condition = e.op == ElementwiseOp::Where && i == 0;
      if (const TensorId* id = std::get_if<TensorId>(&e.operands[i])) {
        const TensorType& type = type_of(*id);
        if (type.scope != Scope::Register) {
          return error("{}: operand {} is {}, elementwise operands live in registers", op,
                       name(*id), to_string(type.scope));
        }
        if (type.shape != result.shape) {
          return error("{}: operand {} has shape {} but {} has shape {} (repeat or reshape first)",
                       op, name(*id), shape_text(type.shape), name(e.result),
                       shape_text(result.shape));
        }
        if (is_condition) {
          if (type.dtype != kBool)
            return error("where: condition {} is {}, expected u1", name(*id), type.dtype.name());
          continue;
        }
        if (!operand_dtype) operand_dtype = type.dtype;
        if (type.dtype != *operand_dtype) {
          return error("{}: operand {} is {} but the operation is on {} (cast first)", op,
                       name(*id), type.dtype.name(), operand_dtype->name());
        }
      } else {
        const Expr& scalar = std::get<Expr>(e.operands[i]);
        if (is_condition) {
          if (scalar.type() != kBool)
            return error("where: condition {} is {}, expected u1", to_string(scalar),
                         scalar.type().name());
          continue;
        }
        if (operand_dtype && scalar.type() != *operand_dtype) {
          return error("{}: scalar operand {} is {} but the operation is on {}", op,
                       to_string(scalar), scalar.type().name(), operand_dtype->name());
        }
      }
    }
    if (!operand_dtype) return;
    if (operand_dtype->bits() < 8 && *operand_dtype != kBool) {
      return error("{}: {} is a storage type; cast {} values to f16, f32 or an integer type first",
                   op, operand_dtype->name(), operand_dtype->name());
    }
    const bool needs_float = e.op == ElementwiseOp::Exp2 || e.op == ElementwiseOp::Log2 ||
                             e.op == ElementwiseOp::Rsqrt || e.op == ElementwiseOp::Div;
    if (needs_float && !operand_dtype->is_float()) {
      error("{}: operands are {}, expected a float type", op, operand_dtype->name());
    }
    if (*operand_dtype == kBool && !comparison && e.op != ElementwiseOp::Where) {
      error("{}: arithmetic on u1 truth values is not defined", op);
    }
  }

  void operator()(const Reduce& reduce) {
    if (!use(reduce.source, "source") || !define_or_update(reduce.result)) return;
    if (!register_tensor(reduce.source, "reduce") || !register_tensor(reduce.result, "reduce"))
      return;
    same_dtype(reduce.source, reduce.result, "reduce");
    Shape expected = type_of(reduce.source).shape;
    if (reduce.axis < 0 || reduce.axis >= static_cast<int>(expected.size())) {
      return error("reduce: axis {} is not a dimension of {} (rank {})", reduce.axis,
                   name(reduce.source), expected.size());
    }
    expected[static_cast<size_t>(reduce.axis)] = 1;
    if (type_of(reduce.result).shape != expected) {
      error(
          "reduce: reducing axis {} of {} gives {} (the axis is kept with extent 1), but {} is {}",
          reduce.axis, name(reduce.source), shape_text(expected), name(reduce.result),
          shape_text(type_of(reduce.result).shape));
    }
  }

  void operator()(const Dot& dot) {
    if (!use(dot.a, "a") || !use(dot.b, "b") || !use(dot.accumulator, "accumulator")) return;
    // A shared b is read in place: the box at b_offsets whose shape a and the accumulator give.
    const bool shared_b = type_of(dot.b).scope == Scope::Shared;
    if (shared_b && dot.b_offsets.empty()) {
      return error("dot: {} is a shared tile; give the offsets of the box the dot reads ({}[...])",
                   name(dot.b), name(dot.b));
    }
    if (!shared_b && !dot.b_offsets.empty()) {
      return error(
          "dot: offsets are given for {}, which is a {} tensor; only a shared b takes them",
          name(dot.b), to_string(type_of(dot.b).scope));
    }
    if (!register_tensor(dot.a, "dot") || (!shared_b && !register_tensor(dot.b, "dot")) ||
        !register_tensor(dot.accumulator, "dot")) {
      return;
    }
    const TensorType& a = type_of(dot.a);
    const TensorType& b = type_of(dot.b);
    const TensorType& c = type_of(dot.accumulator);
    if (a.shape.size() != 2 || b.shape.size() != 2 || c.shape.size() != 2) {
      return error("dot: operands must be matrices: {} is {}, {} is {}, {} is {}", name(dot.a),
                   shape_text(a.shape), name(dot.b), shape_text(b.shape), name(dot.accumulator),
                   shape_text(c.shape));
    }
    if (shared_b) {
      const Shape box =
          dot.b_transposed ? Shape{c.shape[1], a.shape[1]} : Shape{a.shape[1], c.shape[1]};
      if (offsets(dot.b_offsets, dot.b, "dot")) box_inside(dot.b_offsets, box, dot.b, "dot");
    } else if (dot.b_transposed || dot.async) {
      error("dot: only a shared b can be read {} ({} is a register tensor)",
            dot.async ? "asynchronously" : "transposed", name(dot.b));
    } else if (a.shape[1] != b.shape[0]) {
      error("dot: k extent {} of {} does not match {} of {}", a.shape[1], name(dot.a), b.shape[0],
            name(dot.b));
    }
    const int64_t n_extent = shared_b ? c.shape[1] : b.shape[1];
    if (c.shape[0] != a.shape[0] || c.shape[1] != n_extent) {
      error("dot: accumulator {} is {} but {} x {} gives [{}, {}]", name(dot.accumulator),
            shape_text(c.shape), name(dot.a), name(dot.b), a.shape[0], n_extent);
    }
    const std::string combination =
        fmt::format("{} x {} -> {}", a.dtype.name(), b.dtype.name(), c.dtype.name());
    // The 8-bit inputs mix signedness and format freely, as mma.sync m16n8k32 does.
    static const std::set<std::string> supported = {
        "f16 x f16 -> f32",       "bf16 x bf16 -> f32",     "f32 x f32 -> f32",
        "i8 x i8 -> i32",         "i8 x u8 -> i32",         "u8 x i8 -> i32",
        "u8 x u8 -> i32",         "f8e4m3 x f8e4m3 -> f32", "f8e4m3 x f8e5m2 -> f32",
        "f8e5m2 x f8e4m3 -> f32", "f8e5m2 x f8e5m2 -> f32"};
    if (!supported.contains(combination)) {
      error(
          "dot: {} is not supported (f16 x f16 -> f32, bf16 x bf16 -> f32, f32 x f32 -> f32, "
          "{{i8, u8}} x {{i8, u8}} -> i32, {{f8e4m3, f8e5m2}} x {{f8e4m3, f8e5m2}} -> f32); cast "
          "the operands first",
          combination);
    }
  }

  void operator()(const Shuffle& shuffle) {
    if (!use(shuffle.source, "source") || !define_or_update(shuffle.result)) return;
    if (!register_tensor(shuffle.source, "shuffle") || !register_tensor(shuffle.result, "shuffle"))
      return;
    same_dtype(shuffle.source, shuffle.result, "shuffle");
    same_shape(shuffle.source, shuffle.result, "shuffle");
    integer_expr(shuffle.lane, "shuffle: lane");
  }

  void operator()(const AtomicAdd& atomic) {
    if (!use(atomic.destination, "destination") || !use(atomic.value, "value")) return;
    if (!scope_is(atomic.destination, Scope::Global, "atomic_add", "destination")) return;
    if (!register_tensor(atomic.value, "atomic_add")) return;
    same_dtype(atomic.value, atomic.destination, "atomic_add");
    offsets(atomic.offsets, atomic.destination, "atomic_add");
    same_rank(atomic.value, atomic.destination, "atomic_add");
    const std::string dtype = type_of(atomic.value).dtype.name();
    if (dtype != "f32" && dtype != "f16" && dtype != "bf16" && dtype != "i32" && dtype != "u32" &&
        dtype != "f64" && dtype != "i64") {
      error("atomic_add: {} has no atomic add (f16, bf16, f32, f64, i32, u32, i64)", dtype);
    }
  }

  void operator()(const Print& print) {
    if (print.tensor) use(*print.tensor, "tensor");
    if (print.scalar) expr(*print.scalar);
    if (!print.tensor && !print.scalar) error("print: nothing to print");
  }

 private:
  template <typename... Args>
  void error(fmt::format_string<Args...> format, Args&&... args) {
    diagnostics_.push_back({location_, fmt::format(format, std::forward<Args>(args)...)});
  }

  // ---- program and statements -----------------------------------------------------------------

  void check_program() {
    if (!is_identifier(program_.name)) {
      error("kernel name '{}' is not an identifier (letters, digits, '_')", program_.name);
    }
    if (program_.warps < 1 || program_.warps > 32) {
      error("a block has 1 to 32 warps, not {}", program_.warps);
    }
    const auto& cluster = program_.cluster;
    if (std::any_of(cluster.begin(), cluster.end(), [](int64_t c) { return c < 1; }) ||
        program_.cluster_blocks() > kMaxClusterBlocks) {
      error("cluster ({}, {}, {}): each extent at least 1, at most {} blocks in all", cluster[0],
            cluster[1], cluster[2], kMaxClusterBlocks);
    }
    // An SM holds at most 32 blocks and 2048 threads (sm_80 and sm_90).
    const int min_blocks = program_.min_blocks_per_sm;
    if (min_blocks < 0 || min_blocks > 32 ||
        int64_t{min_blocks} * program_.threads() > kMaxThreadsPerSm) {
      error(
          "min_blocks_per_sm {}: an SM holds 0 to 32 blocks and at most {} threads ({} per block)",
          min_blocks, kMaxThreadsPerSm, program_.threads());
    }
    std::set<std::string> names;
    for (const Parameter& param : program_.params) {
      if (!is_identifier(param.name)) error("parameter name '{}' is not an identifier", param.name);
      if (!names.insert(param.name).second) error("parameter '{}' is declared twice", param.name);
      if (param.kind == Parameter::Kind::Pointer) {
        const int64_t a = param.alignment_bytes;
        if (a != 0 && (a & (a - 1)) != 0) {
          error("parameter '{}': alignment {} is not a power of two", param.name, a);
        }
        if (param.compile_time)
          error("parameter '{}': a pointer cannot be compile-time", param.name);
      } else {
        if (param.divisor < 1)
          error("parameter '{}': divisor {} must be positive", param.name, param.divisor);
        if (param.value && param.divisor > 1 && *param.value % param.divisor != 0) {
          error("parameter '{}': value {} is not a multiple of its divisor {}", param.name,
                *param.value, param.divisor);
        }
        if (!param.dtype.is_integer() && (param.compile_time || param.divisor != 1)) {
          error("parameter '{}': only integer scalars can be compile-time or have a divisor",
                param.name);
        }
      }
    }
    for (int axis = 0; axis < 3; ++axis) {
      if (program_.grid[static_cast<size_t>(axis)].empty()) {
        error("grid dimension {} is missing", "xyz"[axis]);
        continue;
      }
      integer_expr(program_.grid[static_cast<size_t>(axis)], "grid");
      if (auto value = program_.grid[static_cast<size_t>(axis)].as_int(); value && *value < 1) {
        error("grid dimension {} is {}; it must be at least 1", "xyz"[axis], *value);
      }
    }
    for (size_t i = 0; i < program_.tensors.size(); ++i) {
      if (!is_identifier(program_.tensors[i].name)) {
        error("tensor name '{}' is not an identifier", program_.tensors[i].name);
      }
    }
  }

  void check_shared_budget() {
    location_ = {};
    const int64_t budget = program_.shared_memory_bytes;
    if (budget > kMaxSharedMemoryBytes) {
      error("the shared-memory budget of {} bytes exceeds the {} bytes a block can have", budget,
            kMaxSharedMemoryBytes);
    }
    if (budget > 0 && shared_bytes_ > budget) {
      error("shared tiles need {} bytes (each aligned as placed) but the budget is {} bytes",
            shared_bytes_, budget);
    }
    if (budget == 0 && shared_bytes_ > kMaxSharedMemoryBytes) {
      error("shared tiles need {} bytes, more than the {} bytes a block can have", shared_bytes_,
            kMaxSharedMemoryBytes);
    }
  }

  void body(const Body& statements) {
    for (const Statement& statement : statements) {
      location_ = statement.location;
      std::visit([&](const auto& node) { this->statement(node); }, statement.node);
    }
  }

  void scoped_body(const Body& statements) {
    scopes_.emplace_back();
    body(statements);
    scopes_.pop_back();
  }

  void statement(const Instruction& instruction) { std::visit(*this, instruction); }

  void statement(const ForStmt& loop) {
    expr(loop.start);
    expr(loop.stop);
    expr(loop.step);
    if (loop.var.empty() || loop.var.kind() != Expr::Kind::Var) {
      return error("for: the loop variable must be a variable");
    }
    for (const Expr* bound : {&loop.start, &loop.stop, &loop.step}) {
      if (!bound->empty() && bound->type() != loop.var.type()) {
        error("for: {} is {} but the loop variable {} is {}", to_string(*bound),
              bound->type().name(), loop.var.name(), loop.var.type().name());
      }
    }
    if (auto step = loop.step.as_int(); step && *step <= 0)
      error("for: step {} must be positive", *step);
    if (loop.unroll < 0) error("for: unroll factor {} is negative", loop.unroll);
    scopes_.emplace_back();
    declare_var(loop.var);
    ++loop_depth_;
    body(loop.body);
    --loop_depth_;
    scopes_.pop_back();
  }

  void statement(const IfStmt& branch) {
    expr(branch.condition);
    if (!branch.condition.empty() && branch.condition.type() != kBool) {
      error("if: condition {} is {}, expected u1", to_string(branch.condition),
            branch.condition.type().name());
    }
    scoped_body(branch.then_body);
    scoped_body(branch.else_body);
  }

  void statement(const WhileStmt& loop) {
    expr(loop.condition);
    if (!loop.condition.empty() && loop.condition.type() != kBool) {
      error("while: condition {} is {}, expected u1", to_string(loop.condition),
            loop.condition.type().name());
    }
    ++loop_depth_;
    scoped_body(loop.body);
    --loop_depth_;
  }

  void statement(const BreakStmt&) {
    if (loop_depth_ == 0) error("break outside a loop");
  }

  void statement(const LetStmt& let) {
    expr(let.value);
    if (let.var.empty() || let.var.kind() != Expr::Kind::Var)
      return error("let: the target must be a variable");
    if (!let.value.empty() && let.value.type() != let.var.type()) {
      error("let: {} is {} but {} is {}", let.var.name(), let.var.type().name(),
            to_string(let.value), let.value.type().name());
    }
    declare_var(let.var);
  }

  void statement(const FetchAddStmt& fetch) {
    expr(fetch.value);
    if (fetch.var.empty() || fetch.var.kind() != Expr::Kind::Var)
      return error("fetch_add: the target must be a variable");
    declare_var(fetch.var);
    if (!use(fetch.counter, "counter")) return;
    if (!scope_is(fetch.counter, Scope::Global, "fetch_add", "counter")) return;
    offsets(fetch.offsets, fetch.counter, "fetch_add");
    const DataType dtype = type_of(fetch.counter).dtype;
    if (dtype != DataType::sint(32) && dtype != DataType::uint(32)) {
      return error("fetch_add: the counter {} holds {}, not i32 or u32",
                   program_.tensor(fetch.counter).name, dtype.name());
    }
    if (!fetch.value.empty() && fetch.value.type() != dtype) {
      error("fetch_add: the value {} is {} but the counter holds {}", to_string(fetch.value),
            fetch.value.type().name(), dtype.name());
    }
    if (fetch.var.type() != dtype) {
      error("fetch_add: {} is {} but the counter holds {}", fetch.var.name(),
            fetch.var.type().name(), dtype.name());
    }
  }

  void statement(const AssignStmt& assign) {
    expr(assign.value);
    if (assign.var.empty() || assign.var.kind() != Expr::Kind::Var) {
      return error("assign: the target must be a variable");
    }
    if (!var_visible(assign.var)) {
      return error("assign: variable {} is not defined here (define it with let first)",
                   assign.var.name());
    }
    if (!assign.value.empty() && assign.value.type() != assign.var.type()) {
      error("assign: {} is {} but {} is {}", assign.var.name(), assign.var.type().name(),
            to_string(assign.value), assign.value.type().name());
    }
  }

  // ---- scalars ---------------------------------------------------------------------------------

  void declare_var(const Expr& var) {
    if (var_visible(var)) error("variable {} is defined twice", var.name());
    scopes_.back().vars.insert(var.index());
  }

  bool var_visible(const Expr& var) const {
    return std::any_of(scopes_.begin(), scopes_.end(),
                       [&](const ScopeFrame& scope) { return scope.vars.contains(var.index()); });
  }

  // Every leaf of `e` is defined here.
  void expr(const Expr& e) {
    if (e.empty()) return error("missing expression");
    switch (e.kind()) {
      case Expr::Kind::Param: {
        const auto index = static_cast<size_t>(e.index());
        if (e.index() < 0 || index >= program_.params.size() ||
            program_.params[index].name != e.name()) {
          return error("'{}' is not a parameter of kernel '{}'", e.name(), program_.name);
        }
        const Parameter& param = program_.params[index];
        if (param.kind == Parameter::Kind::Pointer) {
          return error("'{}' is a pointer; use it through a global view", e.name());
        }
        if (param.dtype != e.type()) {
          error("'{}' is used as {} but declared {}", e.name(), e.type().name(),
                param.dtype.name());
        }
        return;
      }
      case Expr::Kind::Var:
        if (!var_visible(e))
          error("variable {} is used outside the scope that defines it", e.name());
        return;
      default:
        for (int i = 0; i < e.operand_count(); ++i)
          expr(e.operand(i));
    }
  }

  void integer_expr(const Expr& e, std::string_view what) {
    expr(e);
    if (!e.empty() && (!e.type().is_integer() || e.type() == kBool)) {
      error("{} {} is {}, expected an integer", what, to_string(e), e.type().name());
    }
  }

  // ---- tensors ---------------------------------------------------------------------------------

  std::string name(TensorId id) const {
    if (!id.valid() || id.index >= static_cast<int>(program_.tensors.size())) {
      return fmt::format("<tensor #{}>", id.index);
    }
    return "%" + program_.tensor(id).name;
  }

  const TensorType& type_of(TensorId id) const { return program_.tensor(id).type; }

  bool exists(TensorId id, std::string_view role) {
    if (!id.valid() || id.index >= static_cast<int>(program_.tensors.size())) {
      error("{} refers to tensor #{}, which is not in the tensor table", role, id.index);
      return false;
    }
    return true;
  }

  bool visible(TensorId id) const {
    return std::any_of(scopes_.begin(), scopes_.end(),
                       [&](const ScopeFrame& scope) { return scope.tensors.contains(id.index); });
  }

  bool use(TensorId id, std::string_view role) {
    if (!exists(id, role)) return false;
    if (!visible(id)) {
      error("{} {} is used before it is defined (or outside the loop or branch that defines it)",
            role, name(id));
      return false;
    }
    return true;
  }

  // A first definition (allocations and views must be new).
  bool define(TensorId id, std::string_view role) {
    if (!exists(id, role)) return false;
    if (visible(id)) {
      error("{} is defined twice; allocate it once and update it in place", name(id));
      return false;
    }
    scopes_.back().tensors.insert(id.index);
    return true;
  }

  // A definition, or an in-place update of a visible register/shared tensor.
  bool define_or_update(TensorId id) {
    if (!exists(id, "result")) return false;
    if (!visible(id)) scopes_.back().tensors.insert(id.index);
    return true;
  }

  bool scope_is(TensorId id, Scope scope, std::string_view op, std::string_view role) {
    if (type_of(id).scope != scope) {
      error("{}: {} {} is a {} tensor, expected {}", op, role, name(id),
            to_string(type_of(id).scope), to_string(scope));
      return false;
    }
    return true;
  }

  void static_shape(const TensorType& type, std::string_view op, TensorId id) {
    if (type.shape.empty()) error("{}: {} has no dimensions", op, name(id));
    for (int64_t extent : type.shape) {
      if (extent <= 0)
        return error("{}: {} has a non-positive extent in {}", op, name(id),
                     shape_text(type.shape));
    }
  }

  void layout_matches_shape(const Layout& l, const TensorType& type, std::string_view op,
                            TensorId id) {
    if (l.size() != type.element_count()) {
      error("{}: the layout {} of {} places {} elements, but the shape {} has {}", op,
            l.to_string(), name(id), l.size(), shape_text(type.shape), type.element_count());
    }
  }

  void thread_axes_fit(const Layout& l, std::string_view op, std::string_view what) {
    if (l.span(Axis::lane()) > 32) {
      error("{}: {} uses lanes up to {}; a warp has 32", op, what, l.span(Axis::lane()) - 1);
    }
    if (layout::threads_used(l) > program_.threads()) {
      error("{}: {} uses {} threads but the block has {} ({} warps)", op, what,
            layout::threads_used(l), program_.threads(), program_.warps);
    }
  }

  bool register_tensor(TensorId id, std::string_view op) {
    const TensorType& type = type_of(id);
    if (type.scope != Scope::Register) {
      error("{}: {} is a {} tensor, expected a register tensor", op, name(id),
            to_string(type.scope));
      return false;
    }
    static_shape(type, op, id);
    if (!type.layout) return true;  // layout inference fills it
    layout_matches_shape(*type.layout, type, op, id);
    for (Axis axis : type.layout->axes()) {
      if (!is_register_axis(axis)) {
        error(
            "{}: the layout of {} places elements on '{}'; register tensors live on lane, warp, "
            "warpgroup and reg",
            op, name(id), axis.name());
        return false;
      }
    }
    thread_axes_fit(*type.layout, op, "the layout of " + name(id));
    return true;
  }

  void same_dtype(TensorId a, TensorId b, std::string_view op) {
    if (type_of(a).dtype != type_of(b).dtype) {
      error("{}: {} is {} but {} is {} (cast first)", op, name(a), type_of(a).dtype.name(), name(b),
            type_of(b).dtype.name());
    }
  }

  void same_shape(TensorId a, TensorId b, std::string_view op) {
    if (type_of(a).shape != type_of(b).shape) {
      error("{}: {} has shape {} but {} has shape {}", op, name(a), shape_text(type_of(a).shape),
            name(b), shape_text(type_of(b).shape));
    }
  }

  bool same_rank(TensorId a, TensorId b, std::string_view op) {
    if (type_of(a).rank() != type_of(b).rank()) {
      error("{}: {} has rank {} but {} has rank {}", op, name(a), type_of(a).rank(), name(b),
            type_of(b).rank());
      return false;
    }
    return true;
  }

  bool offsets(const std::vector<Expr>& offsets, TensorId tensor, std::string_view op) {
    for (const Expr& offset : offsets)
      integer_expr(offset, fmt::format("{}: offset", op));
    if (static_cast<int>(offsets.size()) != type_of(tensor).rank()) {
      error("{}: {} offsets given but {} has rank {}", op, offsets.size(), name(tensor),
            type_of(tensor).rank());
      return false;
    }
    return true;
  }

  // A box at constant offsets must lie inside a shared tile.
  void box_inside(const std::vector<Expr>& offsets, const Shape& box, TensorId tile,
                  std::string_view op) {
    const Shape& extent = type_of(tile).shape;
    for (size_t d = 0; d < offsets.size() && d < box.size() && d < extent.size(); ++d) {
      if (auto start = offsets[d].as_int()) {
        if (*start < 0 || *start + box[d] > extent[d]) {
          error("{}: dimension {} covers [{}, {}) of {}, which has extent {}", op, d, *start,
                *start + box[d], name(tile), extent[d]);
        }
      } else if (box[d] > extent[d]) {
        error("{}: dimension {} moves {} elements but {} has extent {}", op, d, box[d], name(tile),
              extent[d]);
      }
    }
  }

  int64_t bytes_of(const TensorType& type) const {
    const int64_t span = type.layout ? type.layout->span(Axis::smem()) : type.element_count();
    return (span * type.dtype.bits() + 7) / 8;
  }

  struct ScopeFrame {
    std::unordered_set<int> tensors;
    std::unordered_set<int> vars;
  };

  const Program& program_;
  std::vector<Diagnostic> diagnostics_;
  std::vector<ScopeFrame> scopes_;
  int loop_depth_ = 0;
  int64_t shared_bytes_ = 0;
  SourceLocation location_;
};

}  // namespace

std::string format_diagnostic(const Program& program, const Diagnostic& diagnostic) {
  const std::string where =
      diagnostic.location.known() ? to_string(diagnostic.location) + ": " : "";
  return fmt::format("{}error: in kernel '{}': {}", where, program.name, diagnostic.message);
}

std::vector<Diagnostic> verify(const Program& program) {
  return Verifier(program).run();
}

void verify_or_throw(const Program& program) {
  std::vector<Diagnostic> diagnostics = verify(program);
  if (diagnostics.empty()) return;
  std::string message;
  for (const Diagnostic& diagnostic : diagnostics) {
    message += (message.empty() ? "" : "\n") + format_diagnostic(program, diagnostic);
  }
  throw VerifyError(std::move(message), std::move(diagnostics));
}

}  // namespace nibble::vm
