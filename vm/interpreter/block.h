// The interpreter's machinery shared by the instruction families: what is computed once per run
// (the plan: bound arguments, where every tensor element lives), the state of one block, and
// element access with the checks every instruction relies on.
//
// Internal to vm/interpreter/; the model is stated in vm/interpreter.h.
#pragma once

#include <barrier>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "vm/expr_eval.h"
#include "vm/interpreter.h"
#include "vm/program.h"

namespace nibble::vm::interp {

// ---- The plan: the same for every block ------------------------------------------------------

// Where a register tensor's elements live. A "slot" here is a thread's register slot numbered
// across the block: thread * slots_per_thread + reg.
struct RegisterPlacement {
  int64_t slots_per_thread = 1;  // span(reg) of the layout
  int64_t bytes_per_thread = 1;  // ceil(slots_per_thread * bits / 8)
  std::vector<int64_t> first;    // element -> slot of its first place, layout.place(x)
  // Every place of element x (replicas included, each once): places[begin[x] .. begin[x + 1]).
  std::vector<int64_t> begin;
  std::vector<int64_t> places;
};

// Where a shared tile's elements live: the element offset inside the tile after the swizzle.
struct SharedPlacement {
  int64_t base_bytes = 0;  // the tile's offset in the block's shared memory
  int64_t tile_bytes = 0;  // bytes reserved for it (the swizzle never leaves them)
  std::vector<int64_t> element;
};

struct TensorPlan {
  const TensorInfo* info = nullptr;
  Layout layout;  // register and shared: the layout used (inferred or default)
  std::optional<RegisterPlacement> registers;
  std::optional<SharedPlacement> shared;
};

struct BoundArgument {
  bool is_pointer = false;
  HostBuffer buffer;
  ScalarValue scalar;
};

struct Plan {
  const Program* program = nullptr;
  const InterpreterOptions* options = nullptr;
  std::vector<BoundArgument> arguments;
  std::vector<TensorPlan> tensors;
  BlockIndex grid = {1, 1, 1};
  int64_t shared_bytes = 0;  // the extent of all tiles
  int64_t threads = 32;
};

// Checks and binds the arguments, evaluates the grid (fills arguments and grid).
void bind_arguments(Plan& plan, std::span<const Argument> arguments);
// Places every register and shared tensor (fills tensors and shared_bytes). Errors name the
// tensor and where it was defined.
void place_tensors(Plan& plan);

// ---- Block state ------------------------------------------------------------------------------

struct GlobalViewState {
  int param = -1;
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
};

struct TensorState {
  bool defined = false;
  std::vector<uint8_t> registers;  // threads * bytes_per_thread bytes
  GlobalViewState global;
};

// What the race detector knows about one shared byte. Epochs count barriers; they keep growing
// across the blocks a host thread runs, so the tracker is never cleared.
struct SharedByteHistory {
  int64_t writer = -1;
  int64_t write_epoch = -1;
  const Statement* write_statement = nullptr;
  int64_t reader = -1;  // kManyReaders when several threads read it in read_epoch
  int64_t read_epoch = -1;
  const Statement* read_statement = nullptr;
  int32_t pending_copies = 0;              // copy_async writes queued and not completed
  int32_t pending_dot_reads = 0;           // async dots reading it that have not completed
  const Statement* pending_dot = nullptr;  // the last of them
  const Statement* pending_statement = nullptr;
  int64_t pending_issue = -1;  // the copy_async execution that queued the last of them
  int64_t pending_thread = -1;
};
inline constexpr int64_t kManyReaders = -2;

// One element of a copy_async, written when its group completes.
struct AsyncWrite {
  const Statement* statement = nullptr;
  TensorId tile;
  int64_t element = 0;  // swizzled element offset inside the tile
  uint64_t code = 0;
  int64_t thread = 0;
  int64_t issue = 0;  // which execution of a copy_async (Block::copy_issues) queued it
};

// A buffered atomic_add, applied after every block has finished.
struct AtomicUpdate {
  int param = -1;
  DataType dtype = DataType::f32();
  int64_t element = 0;
  uint64_t code = 0;
};

// Storage a host thread reuses for every block it runs.
struct SharedMemory {
  std::vector<uint8_t> bytes;
  std::vector<SharedByteHistory> history;
  int64_t epoch = 0;
};

// The blocks of one cluster (Program::cluster), run at once, each on a host thread of its own:
// cluster_barrier waits for all of them, load_peer_shared reads a peer's shared memory.
struct ClusterContext {
  explicit ClusterContext(int64_t blocks)
      : barrier(blocks),
        shared(static_cast<size_t>(blocks)),
        barriers_passed(static_cast<size_t>(blocks), 0) {}
  std::barrier<> barrier;
  std::vector<SharedMemory*> shared;     // by rank
  std::vector<int64_t> barriers_passed;  // by rank
};

class Block {
 public:
  Block(const Plan& plan, BlockIndex index, SharedMemory& shared);
  ~Block();
  Block(const Block&) = delete;
  Block& operator=(const Block&) = delete;

  const Plan& plan;
  const Program& program;
  const BlockIndex index;
  SharedMemory& shared;
  ClusterContext* cluster = nullptr;  // kernels with clusters only
  int64_t cluster_rank = 0;

  std::vector<std::optional<ScalarValue>> variables;  // by Var id
  std::vector<TensorState> tensors;                   // by TensorId
  std::vector<AsyncWrite> open_group;                 // copies not yet committed
  int64_t copy_issues = 0;                            // copy_async executions so far
  std::deque<std::vector<AsyncWrite>> committed_groups;
  // Async dots in flight, oldest first, and per tensor how many of them accumulate into it.
  struct DotInFlight {
    const Statement* statement = nullptr;
    TensorId accumulator;
    TensorId tile;
    std::vector<int64_t> elements;  // the elements of b's tile it reads
  };
  std::deque<DotInFlight> dots_in_flight;
  std::vector<int32_t> accumulator_in_flight;  // by TensorId
  std::vector<AtomicUpdate> atomics;
  std::string printed;
  const Statement* current = nullptr;  // the statement being executed, for messages

  // Throws InterpreterError prefixed with the current statement, its location and the block.
  [[noreturn]] void fail(const std::string& message) const;
  // "load_global at f.cpp:3:1, block (0, 0, 0)".
  std::string context() const;
  std::string statement_name(const Statement* statement) const;

  ScalarValue evaluate(const Expr& expr) const;
  int64_t evaluate_integer(const Expr& expr) const;
  std::vector<int64_t> evaluate_indices(const std::vector<Expr>& exprs, size_t rank,
                                        std::string_view what) const;

  const TensorPlan& tensor_plan(TensorId id) const;
  const TensorInfo& info(TensorId id) const { return *tensor_plan(id).info; }
  const std::string& name(TensorId id) const { return tensor_plan(id).info->name; }
  // The state of a tensor an instruction reads; fails when it has not been defined, or when
  // its scope is not `scope`.
  const TensorState& defined(TensorId id, Scope scope) const;
  TensorState& state(TensorId id);
};

// ---- Elements ---------------------------------------------------------------------------------

// Values of element codes (the low dtype.bits() bits).
double real_of(DataType type, uint64_t code);
int64_t integer_of(DataType type, uint64_t code);  // sign-extended for signed types
// Wraps to the type's width.
uint64_t code_of_integer(DataType type, int64_t value);
// Rounds to nearest even with dtypes/codec.h saturation; throws dtypes::DTypeError for NaN into
// a type without NaN.
uint64_t code_of_real(DataType type, double value);
// The cast: encode(to, decode(from, code)) with the codec's rounding (nearest even) and
// saturation. Integer to integer saturates exactly (no detour through double); NaN becomes 0 in
// an integer; NaN into a float without NaN throws dtypes::DTypeError.
uint64_t cast_code(DataType from, uint64_t code, DataType to);

// Row-major multi-index <-> flat index.
std::vector<int64_t> unflatten(int64_t flat, std::span<const int64_t> shape);
int64_t flatten(std::span<const int64_t> index, std::span<const int64_t> shape);
std::string index_to_string(std::span<const int64_t> index);

// ---- Register tensors -------------------------------------------------------------------------

// The logical elements of a register tensor (each from its first place), as codes.
std::vector<uint64_t> read_registers(const Block& block, TensorId id);
// Defines (or redefines) a register tensor from its logical elements: every place of every
// element is written.
void write_registers(Block& block, TensorId id, std::span<const uint64_t> codes);

// ---- Global memory ----------------------------------------------------------------------------

// Whether index lies inside the view's shape (the bounds mask).
bool inside_view(const GlobalViewState& view, std::span<const int64_t> index);
// The element offset of an in-view index; fails naming the element when it is outside the
// buffer.
int64_t global_element(const Block& block, TensorId view_id, std::span<const int64_t> index);
// Access to one element of a buffer; safe against other blocks touching the same bytes.
uint64_t read_global(const HostBuffer& buffer, DataType type, int64_t element);
void write_global(const HostBuffer& buffer, DataType type, int64_t element, uint64_t code);

// ---- Shared memory ----------------------------------------------------------------------------

// The swizzled element offset inside the tile of logical index `index`; fails when the index
// lies outside the tile's shape.
int64_t shared_element(const Block& block, TensorId tile, std::span<const int64_t> index);
// Reads and writes by `thread` with the hazard checks of vm/interpreter.h.
uint64_t read_shared(Block& block, TensorId tile, int64_t element, int64_t thread);
// A read by several threads of the same element (a replicated register layout).
uint64_t read_shared(Block& block, TensorId tile, int64_t element,
                     std::span<const int64_t> threads);
// The element of a peer block's copy of `tile` (load_peer_shared; the cluster barrier that
// separates the peer's writes from this read is the program's to place: not race-checked).
uint64_t read_peer_shared(const Block& block, TensorId tile, int64_t element,
                          const SharedMemory& peer);
void write_shared(Block& block, TensorId tile, int64_t element, uint64_t code, int64_t thread,
                  const Statement* statement);
// A copy_async element: queued (pending until its group completes, after checking for races
// with what other threads did to the bytes in this epoch), completed by wait_group (written as
// the issuing thread), or forgotten when the block ends with it still in flight.
void queue_shared_write(Block& block, const AsyncWrite& write);
void complete_shared_write(Block& block, const AsyncWrite& write);
void forget_shared_write(Block& block, const AsyncWrite& write);
// The bytes an async dot reads from shared memory: marked when it is issued (writing them is an
// error until then), completed by wait_dots (then read by the whole block in this epoch: another
// thread's write needs a barrier first), or forgotten when the block ends with it in flight.
void mark_dot_reads(Block& block, const Block::DotInFlight& dot);
void complete_dot_reads(Block& block, const Block::DotInFlight& dot);
void forget_dot_reads(Block& block, const Block::DotInFlight& dot);

}  // namespace nibble::vm::interp
