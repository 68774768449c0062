// Programs of the VM: one kernel, written for a whole thread block.
//
// A Program has typed parameters, a grid (scalar expressions of the parameters), a block of
// `warps` x 32 threads, a shared-memory budget, a table of tensors and a structured body.
//
// Statements: for, if, while, break, let (define a scalar variable), assign (update one),
// fetch_add (define one from an atomic counter that blocks share), and instructions. Instructions
// act on whole tensors, the way a thread block does; which thread does what is given by the
// tensors' layouts, never by the program text.
//
// Tensors are named in the program's tensor table and referred to by TensorId. An instruction's
// result is either a new tensor (its first definition) or, for register and shared tensors, an
// existing tensor of the same type: an in-place update (the accumulator of a loop, the running
// maximum of an online softmax). Tensors defined inside a loop or branch are visible only
// there.
//
// Each instruction has five facets, found in predictable places:
//   definition    this header (one struct per instruction, in the Instruction variant)
//   verifier      vm/verifier.cpp   (one check function per instruction)
//   text form     vm/printer.cpp and vm/parser.cpp (one mnemonic per instruction)
//   semantics     vm/interpreter/ (one execute function per instruction)
//   codegen       codegen/ emitters (one per instruction family)
#pragma once

#include <array>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "vm/expr.h"
#include "vm/types.h"

namespace nibble::vm {

// Where a statement came from in the front end's source (C++ DSL: std::source_location;
// Python: the decorated function's file and line; text format: the line and column).
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;
  std::string function;
  bool known() const { return line > 0; }
  bool operator==(const SourceLocation&) const = default;
};
// "gemm.cpp:42:7" or "<unknown>".
std::string to_string(const SourceLocation& location);

struct TensorId {
  int index = -1;
  bool valid() const { return index >= 0; }
  bool operator==(const TensorId&) const = default;
};

// An operand of an elementwise instruction: a tensor, or a scalar broadcast to every element.
using Operand = std::variant<TensorId, Expr>;

// ---- memory ----------------------------------------------------------------------------------

// A global view of pointer parameter `param`: the result tensor's type holds the shape and
// strides (scalar expressions).
struct GlobalView {
  TensorId result;
  int param = -1;
};
// A shared-memory tile; its bytes come out of the block's shared-memory budget.
struct AllocShared {
  TensorId result;
};
// A register tile, optionally filled with a value (zeros for an accumulator).
struct AllocRegister {
  TensorId result;
  std::optional<double> fill;
};
// result[i] = source[offsets + i] for the box of the result's shape. Elements outside the
// view's shape are not read and get `other` (the bounds mask).
struct LoadGlobal {
  TensorId result;
  TensorId source;
  std::vector<Expr> offsets;
  double other = 0;
};
// destination[offsets + i] = value[i]; elements outside the view's shape are not written.
struct StoreGlobal {
  TensorId destination;
  std::vector<Expr> offsets;
  TensorId value;
};
// result[i] = source[offsets + i] (shared -> registers). Out-of-tile offsets are an error.
struct LoadShared {
  TensorId result;
  TensorId source;
  std::vector<Expr> offsets;
};
// destination[offsets + i] = value[i] (registers -> shared).
struct StoreShared {
  TensorId destination;
  std::vector<Expr> offsets;
  TensorId value;
};
// Asynchronous copy of a box of `shape` from global source[source_offsets + i] to shared
// destination[destination_offsets + i]; elements outside the view are filled with zeros. The
// copy belongs to the current commit group; data is visible after wait_group and a barrier.
// `threads` distributes the box over the threads (thread axes + reg, one place per element);
// empty = inferred (16-byte vectors where the alignment allows). `in_bounds` lists dimensions
// along which the program promises every element of the box lies inside the view: the
// interpreter checks the promise (an error names the element), the GPU code drops those bounds
// checks (and the zero fill) — the hot loops of tiled kernels copy whole tiles.
struct CopyAsync {
  TensorId destination;
  std::vector<Expr> destination_offsets;
  TensorId source;
  std::vector<Expr> source_offsets;
  Shape shape;
  std::optional<Layout> threads;
  std::vector<int> in_bounds;
};
struct CommitGroup {};
// Waits until at most `pending` commit groups of this thread are still in flight.
struct WaitGroup {
  int pending = 0;
};
// Every thread of the block arrives; shared-memory writes before it are visible after it.
struct Barrier {};
// Every thread of every block of the cluster (Program::cluster) arrives; each block's
// shared-memory writes before it are visible to the cluster's load_peer_shared after it. A block
// must not leave while a peer may still read its shared memory: a last cluster_barrier after
// the peers' reads keeps it.
struct ClusterBarrier {};
// result[i] = source[offsets + i] of the shared tile `source` of the cluster's block `block` (its
// rank in the cluster, x fastest: blockIdx.x % cluster.x + cluster.x * (blockIdx.y % cluster.y
// + cluster.y * (blockIdx.z % cluster.z))): sm_90's distributed shared memory. What the peer
// wrote before a cluster_barrier that both passed is what is read.
struct LoadPeerShared {
  TensorId result;
  TensorId source;
  Expr block;
  std::vector<Expr> offsets;
};

// ---- data ------------------------------------------------------------------------------------

// Element-wise conversion to the result's dtype (exact rounding: dtypes/codec.h).
struct Cast {
  TensorId result;
  TensorId source;
};
// The same bits per thread, reinterpreted: the result's dtype and layout must give each thread
// exactly the bits it already holds (u32[…] as u4[…] with 8x the register slots, and so on).
struct View {
  TensorId result;
  TensorId source;
};
// result[i] = source[offsets + i] for the box of the result's shape (static offsets).
struct Slice {
  TensorId result;
  TensorId source;
  std::vector<int64_t> offsets;
};
// result[…, i, …] = source[…, i / count, …] along `axis`: broadcast (extent 1 -> count) and
// repeat (each group scale over its group of rows).
struct Repeat {
  TensorId result;
  TensorId source;
  int axis = 0;
  int64_t count = 1;
};
// result dimension d is source dimension dims[d].
struct Permute {
  TensorId result;
  TensorId source;
  std::vector<int> dims;
};
// Same elements in row-major order, another shape.
struct Reshape {
  TensorId result;
  TensorId source;
};

// ---- compute ---------------------------------------------------------------------------------

enum class ElementwiseOp : uint8_t {
  // unary
  Neg,
  Abs,
  Exp2,
  Log2,
  Rsqrt,
  // binary
  Add,
  Sub,
  Mul,
  Div,
  Max,
  Min,
  Eq,
  Ne,
  Lt,
  Le,
  Gt,
  Ge,
  // ternary
  Fma,
  Where,
};
int arity(ElementwiseOp op);
std::string_view to_string(ElementwiseOp op);

// result = op(operands…) element by element; scalar operands are broadcast, tensor operands
// have the result's shape. Comparisons give u1; `where(c, a, b)` takes a u1 condition.
struct Elementwise {
  TensorId result;
  ElementwiseOp op = ElementwiseOp::Add;
  std::vector<Operand> operands;
};

enum class ReduceOp : uint8_t { Sum, Max, Min };
std::string_view to_string(ReduceOp op);
// result = reduce over `axis` of source; the result keeps the axis with extent 1. Within a
// thread, then across the lanes and warps that share an output element.
struct Reduce {
  TensorId result;
  TensorId source;
  ReduceOp op = ReduceOp::Sum;
  int axis = 0;
};
// accumulator[m, n] += Σ_k a[m, k] · b[k, n]: f16·f16, bf16·bf16 -> f32; f32·f32 -> f32;
// {i8,u8}·{i8,u8} -> i32; {f8e4m3,f8e5m2}·{f8e4m3,f8e5m2} -> f32. Products are exact; the sum is
// accumulated in k order, in the accumulator's type, rounding after each addition (the
// interpreter's order; the GPU's differs within a tensor-core step and is compared with a tolerance
// per dtype).
// `b` may instead be a shared tile read in place (the B operand of sm_90's wgmma, which reads it
// from shared memory): the operand is then the box b[b_offsets + (k, n)] of the tile, or with
// b_transposed the box b[b_offsets + (n, k)] (a tile that holds B^T: the keys of attention's
// Q·K^T, the activations of the quantized GEMM's transposed dot); the accumulator and a give its
// extents. b_offsets is empty exactly when b is a register tensor.
// A dot with a shared b may be `async` (wgmma.mma_async): it is issued as its own group and
// completes at a later wait_dots. Until then its accumulator may be neither read nor written
// except by further async dots into it (which queue behind it), and the bytes of b may not be
// written (a may be redefined: a new definition is a new value, which codegen keeps apart); once it
// has completed, a barrier must still separate its reads of b from another thread's writes. The
// math overlaps what the threads do meanwhile (the dequantization of the next weights, the next
// copies).
struct Dot {
  TensorId accumulator;
  TensorId a;
  TensorId b;
  std::vector<Expr> b_offsets;
  bool b_transposed = false;
  bool async = false;
};
// Waits until at most `pending` async dots of the block are still in flight (the oldest
// complete first).
struct WaitDots {
  int pending = 0;
};
enum class ShuffleMode : uint8_t { Xor, Up, Down, Index };
std::string_view to_string(ShuffleMode mode);
// For every register slot: result held by lane l = source held by lane f(l) of the same warp,
// f given by `mode` and `lane` (xor: l ^ lane; up: l - lane; down: l + lane; index: lane). A
// source lane outside the warp leaves the lane's own value (as shfl.sync does).
struct Shuffle {
  TensorId result;
  TensorId source;
  ShuffleMode mode = ShuffleMode::Xor;
  Expr lane;
};
// destination[offsets + i] += value[i], atomically; elements outside the view are skipped.
struct AtomicAdd {
  TensorId destination;
  std::vector<Expr> offsets;
  TensorId value;
};
// Prints a tensor or a scalar from the interpreter (and from thread 0 of each block on GPU).
struct Print {
  std::string label;
  std::optional<TensorId> tensor;
  std::optional<Expr> scalar;
};

using Instruction =
    std::variant<GlobalView, AllocShared, AllocRegister, LoadGlobal, StoreGlobal, LoadShared,
                 StoreShared, CopyAsync, CommitGroup, WaitGroup, Barrier, Cast, View, Slice, Repeat,
                 Permute, Reshape, Elementwise, Reduce, Dot, WaitDots, Shuffle, AtomicAdd, Print,
                 ClusterBarrier, LoadPeerShared>;
// The text-format mnemonic: "global_view", "load_global", "dot", …
std::string_view mnemonic(const Instruction& instruction);

// ---- statements ------------------------------------------------------------------------------

struct Statement;
using Body = std::vector<Statement>;

// for var in [start, stop) by step (step > 0); `var` is a Var expression.
struct ForStmt {
  Expr var;
  Expr start;
  Expr stop;
  Expr step;
  Body body;
  int unroll = 0;  // 0: the compiler decides; 1: never; n: by n
};
struct IfStmt {
  Expr condition;
  Body then_body;
  Body else_body;
};
struct WhileStmt {
  Expr condition;
  Body body;
};
struct BreakStmt {};
// Defines scalar variable `var` (a Var expression), visible to the end of the enclosing body.
struct LetStmt {
  Expr var;
  Expr value;
};
// Updates a variable defined by an enclosing let.
struct AssignStmt {
  Expr var;
  Expr value;
};
// Defines scalar variable `var` as the old value of counter[offsets] (an i32 or u32 element of
// a global view), to which the block adds `value` atomically, once. Every thread of the block
// arrives first (a barrier), and the block's global stores before it are visible to every
// block whose fetch_add on the same element comes later, for its global loads after it: the
// last of n blocks to arrive (old value n - 1) reads what the others stored. This is how blocks
// hand partial results to one another (a split-K reduction finished by its last block), stores
// and atomic_add updates alike (the interpreter applies a block's buffered atomic_add updates at
// its fetch_add, in the order the blocks arrive). The order of arrival, and so which block sees
// which value, is not fixed.
struct FetchAddStmt {
  Expr var;
  TensorId counter;
  std::vector<Expr> offsets;
  Expr value;
};

struct Statement {
  using Node = std::variant<Instruction, ForStmt, IfStmt, WhileStmt, BreakStmt, LetStmt, AssignStmt,
                            FetchAddStmt>;
  Node node;
  SourceLocation location;
};

// ---- programs --------------------------------------------------------------------------------

struct Parameter {
  enum class Kind : uint8_t { Pointer, Scalar };
  std::string name;
  Kind kind = Kind::Scalar;
  DataType dtype = DataType::sint(32);  // the pointee for pointers
  // Pointers: the alignment of the base address the kernel may assume, in bytes (checked at
  // launch). Scalars: a divisor of the value the kernel may assume (K % 128 == 0).
  int64_t alignment_bytes = 0;
  int64_t divisor = 1;
  bool compile_time = false;     // specializes the kernel; needs `value` to compile
  std::optional<int64_t> value;  // the specialized value of a compile-time scalar
  bool operator==(const Parameter&) const = default;

  // The scalar expression that reads this parameter (scalars only).
  Expr expr(int index) const { return Expr::param(name, index, dtype); }
};

struct TensorInfo {
  std::string name;
  TensorType type;
  SourceLocation location;  // where it was first defined
};

struct Program {
  std::string name;
  std::vector<Parameter> params;
  std::array<Expr, 3> grid;         // blocks in x, y, z
  int warps = 4;                    // threads per block = 32 * warps
  int64_t shared_memory_bytes = 0;  // budget; the verifier checks the allocations fit
  // Blocks that must fit on one SM at once (0: no request): the compiler keeps registers to
  // 65536 / (threads * min_blocks_per_sm) per thread, as CUDA's __launch_bounds__ does. The
  // interpreter ignores it.
  int min_blocks_per_sm = 0;
  // Programmatic dependent launch (sm_90; the interpreter, older targets and plain launches
  // ignore both). early_trigger: once every block of this kernel has started, the next kernel of
  // the stream may launch, if it was launched as a dependent. dependent_launch: the kernel is
  // launched as one, and at its start waits until the previous kernel of its stream has
  // finished and its writes are visible. Together they hide the launch of a short kernel that
  // reads what a long one wrote (the split-K finish) behind the long one's last blocks.
  bool early_trigger = false;
  bool dependent_launch = false;
  // Blocks per cluster in x, y, z (sm_90; each divides the grid's extent): the blocks of a
  // cluster run at once on one GPU processing cluster, pass cluster_barrier together and read
  // one another's shared memory (load_peer_shared). At most 16 blocks. {1, 1, 1}: no clusters.
  std::array<int64_t, 3> cluster = {1, 1, 1};
  int64_t cluster_blocks() const { return cluster[0] * cluster[1] * cluster[2]; }
  std::vector<TensorInfo> tensors;
  Body body;
  int next_var_id = 0;  // ids of Var expressions are unique within a program

  const TensorInfo& tensor(TensorId id) const { return tensors.at(static_cast<size_t>(id.index)); }
  TensorInfo& tensor(TensorId id) { return tensors.at(static_cast<size_t>(id.index)); }
  int threads() const { return 32 * warps; }
};

}  // namespace nibble::vm
