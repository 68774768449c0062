// The interpreter: the VM's exact, executable specification.
//
// interpret() runs a Program on the CPU over host buffers. It is the test oracle of codegen and
// what runs where no GPU is, so it defines what every instruction means, bit for bit. The
// semantics of each instruction live in one execute function under vm/interpreter/ (memory.cpp,
// data_movement.cpp, compute.cpp, control_flow.cpp); this header states the model they share.
//
// Blocks. The grid (program.grid evaluated on the arguments) is a set of independent blocks.
// Each block executes the structured body once, at block level: scalars and control flow are
// uniform over the block, instructions act on whole tensors. Blocks run on several host threads
// and the results do not depend on how many: atomic_add updates and print output are buffered
// per block and applied after all blocks finish, in block order (x fastest, then y, then z).
// When blocks fail, the error of the first failing block in that order is reported.
//
// Arguments. One per parameter, in order; compile-time parameters may be left out (their
// `value` is used) and, when given, must equal it. A pointer binds to a HostBuffer of packed
// elements (dtypes/packing.h: sub-byte elements in little-endian bit-stream order); a scalar
// binds to an integer (which must fit the parameter's type and be a multiple of its declared
// divisor) or, for float parameters, to a double. Mismatches are reported before any block runs.
//
// Register tensors are stored per thread as their layout says. Each of the block's 32 * warps
// threads holds span(reg) slots of dtype-bits each; slot r is bits [r*b, (r+1)*b) of the
// thread's bit storage. Writing logical element x writes every place of layout.apply(x) (the
// replicas); reading takes the first place, layout.place(x). Instructions compute per logical
// element and write their result through the result's layout, except `view` and `shuffle`,
// which move each thread's bits as the GPU does. A register tensor whose layout was not
// inferred gets vm::default_register_layout.
//
// Shared memory is one byte array per block. alloc_shared places tiles statically, in program
// order (an alloc_shared in a loop reuses its bytes), with a bump allocator aligned to 128
// bytes; the budget is program.shared_memory_bytes (tiles beyond it are an error), or the sum of
// the tiles when that is 0. Every block starts with zeroed shared memory, so a read of bytes
// nobody wrote is at least deterministic.
// Element x of a tile starts at bit 8 * base + swizzle.on_element(smem(x), bits) * bits: the
// swizzle permutes byte offsets within the tile (codegen relying on a swizzle of absolute
// addresses, as TMA does, aligns such tiles to the swizzle period, where the two agree).
//
// Global memory. Element (i_0, …, i_k) of a view is element base + Σ i_d · stride_d of its
// buffer. Accesses outside the *view's* shape are masked (loads give `other`, copy_async gives
// zero, stores and atomics are skipped); an in-view element outside the buffer is an
// InterpreterError naming the instruction, its source location, the block, the element's index
// and its offset and byte range.
//
// Hazards the GPU would not report are errors here, so a missing wait or barrier shows up on the
// CPU: reading (or overwriting) shared bytes that a copy_async which has not completed will
// write ("read before wait_group"); and a shared-memory race: two different threads touching
// the same byte between two barriers where at least one writes. Which thread touches which
// element comes from the register tensor's layout (load_shared: every replica reads; store_shared:
// the thread of the first place writes), or from CopyAsync::threads (default: the first place of
// default_register_layout of the copied box). A copy_async reads global memory when issued and
// writes shared memory when a wait_group completes its group, as the thread that issued it;
// wait_group does not complete copies that were never committed, as on the GPU.
//
// Arithmetic is exact: see compute.cpp for each operation. In short, float operations compute
// in double and round once to the result type (f32 fma uses fmaf; dot accumulates in k order,
// one rounding per step); integers wrap at their width. exp2, log2 and rsqrt use the host's math
// library (within an ulp of double before the one rounding); the GPU's approximations
// (ex2.approx, lg2.approx, rsqrt.approx) are compared with a tolerance. Casts are
// encode(target, decode(source)) with the rounding and saturation of dtypes/codec.h: NaN becomes
// 0 in integers and is an error for floats without NaN, and float to integer rounds to nearest
// even and saturates (cvt.rni.sat), where the scalar cast<> of an expression truncates
// (cvt.rzi.sat, vm/expr_eval.h).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <variant>

#include "vm/program.h"

namespace nibble::vm {

// A pointer argument: `bytes` bytes of packed elements at `data` (owned by the caller).
struct HostBuffer {
  void* data = nullptr;
  size_t bytes = 0;
};

// One argument per parameter: a HostBuffer for pointers, an integer or a double for scalars.
using Argument = std::variant<HostBuffer, int64_t, double>;

// A block of the grid: (x, y, z).
using BlockIndex = std::array<int64_t, 3>;

struct InterpreterOptions {
  // Host threads running blocks; 0 = std::thread::hardware_concurrency().
  int host_threads = 0;
  // Where `print` writes; nullptr = std::cout.
  std::ostream* print_stream = nullptr;
  // A loop (for or while) running more iterations than this is an error, not a hang.
  int64_t max_loop_iterations = int64_t{1} << 24;
  // Run this block only (debugging one block of a large grid).
  std::optional<BlockIndex> only_block;
  // Called when a block ends (also when it fails) with its shared memory, tile bytes at the
  // offsets alloc_shared chose (the first tile at 0); from the host thread that ran the block.
  std::function<void(const BlockIndex&, std::span<const uint8_t> shared_memory)>
      shared_memory_probe;
};

// An error of the program being run (out-of-bounds access, race, division by zero, bad
// arguments), with the instruction, source location and block where known; what() is the full
// message: "load_global at gemm.cpp:42:7, block (1, 0, 0): element [3, 130] …".
class InterpreterError : public std::runtime_error {
 public:
  explicit InterpreterError(const std::string& message, std::string instruction = {},
                            SourceLocation location = {}, std::optional<BlockIndex> block = {})
      : std::runtime_error(message),
        instruction_(std::move(instruction)),
        location_(std::move(location)),
        block_(block) {}

  // The mnemonic ("store_global") or statement ("for") where it happened; empty before any.
  const std::string& instruction() const { return instruction_; }
  const SourceLocation& location() const { return location_; }
  const std::optional<BlockIndex>& block() const { return block_; }

 private:
  std::string instruction_;
  SourceLocation location_;
  std::optional<BlockIndex> block_;
};

// Runs `program` over its grid. Throws InterpreterError for bad arguments and for every error of
// the program; host buffers hold whatever the blocks wrote before the error.
void interpret(const Program& program, std::span<const Argument> arguments,
               const InterpreterOptions& options = {});

// The grid `program` would run with these arguments (checked as interpret() checks them).
BlockIndex grid_of(const Program& program, std::span<const Argument> arguments);

}  // namespace nibble::vm
