// Semantics of the memory instructions: views, allocation, loads and stores between global
// memory, shared memory and registers, asynchronous copies with their commit groups, barriers
// and atomics.
#include <fmt/format.h>

#include "dtypes/codec.h"
#include "layout/queries.h"
#include "vm/default_layout.h"
#include "vm/interpreter/execute.h"

namespace nibble::vm::interp {
namespace {

// offsets + the multi-index of box element x.
std::vector<int64_t> shifted(std::span<const int64_t> offsets, int64_t x,
                             std::span<const int64_t> box) {
  std::vector<int64_t> index = unflatten(x, box);
  for (size_t d = 0; d < index.size(); ++d)
    index[d] += offsets[d];
  return index;
}

void require_same_dtype(const Block& block, TensorId a, TensorId b) {
  const DataType x = block.info(a).type.dtype;
  const DataType y = block.info(b).type.dtype;
  if (x != y) {
    block.fail(
        fmt::format("'{}' is {} but '{}' is {}", block.name(a), x.name(), block.name(b), y.name()));
  }
}

void require_rank(const Block& block, TensorId id, size_t rank) {
  if (static_cast<size_t>(block.info(id).type.rank()) != rank) {
    block.fail(fmt::format("'{}' has rank {}, but {} is needed", block.name(id),
                           block.info(id).type.rank(), rank));
  }
}

int64_t thread_of_slot(const Block& block, TensorId id, int64_t bit) {
  return bit / (block.tensor_plan(id).registers->bytes_per_thread * 8);
}

}  // namespace

// The view's shape and strides are evaluated now, with the scalars of this point of the program.
void execute(Block& block, const GlobalView& instruction) {
  const TensorInfo& info = block.info(instruction.result);
  if (info.type.scope != Scope::Global) {
    block.fail(fmt::format("'{}' is not a global tensor", info.name));
  }
  const auto param = static_cast<size_t>(instruction.param);
  if (instruction.param < 0 || param >= block.plan.arguments.size() ||
      !block.plan.arguments[param].is_pointer) {
    block.fail(fmt::format("parameter #{} is not a pointer parameter", instruction.param));
  }
  GlobalViewState view;
  view.param = instruction.param;
  view.shape =
      block.evaluate_indices(info.type.global_shape, info.type.global_shape.size(), "the shape");
  view.strides = block.evaluate_indices(info.type.global_strides, view.shape.size(), "strides");
  for (int64_t extent : view.shape) {
    if (extent < 0) block.fail(fmt::format("'{}' has a negative extent {}", info.name, extent));
  }
  TensorState& state = block.state(instruction.result);
  state.global = std::move(view);
  state.defined = true;
}

// The tile's bytes were placed before the run (plan.cpp); what they hold is whatever the block
// last wrote there, as on the GPU.
void execute(Block& block, const AllocShared& instruction) {
  if (!block.tensor_plan(instruction.result).shared) block.fail("the tile was not placed");
  block.state(instruction.result).defined = true;
}

void execute(Block& block, const AllocRegister& instruction) {
  const TensorInfo& info = block.info(instruction.result);
  uint64_t code = 0;
  if (instruction.fill) {
    try {
      code = dtypes::encode(info.type.dtype, *instruction.fill);
    } catch (const std::invalid_argument& error) {
      block.fail(fmt::format("fill value: {}", error.what()));
    }
  }
  write_registers(block, instruction.result,
                  std::vector<uint64_t>(static_cast<size_t>(info.type.element_count()), code));
}

void execute(Block& block, const LoadGlobal& instruction) {
  const GlobalViewState& view = block.defined(instruction.source, Scope::Global).global;
  require_same_dtype(block, instruction.result, instruction.source);
  require_rank(block, instruction.result, view.shape.size());
  const std::vector<int64_t> offsets =
      block.evaluate_indices(instruction.offsets, view.shape.size(), "the offsets");
  const TensorInfo& result = block.info(instruction.result);
  const HostBuffer& buffer = block.plan.arguments[static_cast<size_t>(view.param)].buffer;
  uint64_t other = 0;
  try {
    other = dtypes::encode(result.type.dtype, instruction.other);
  } catch (const std::invalid_argument& error) {
    block.fail(fmt::format("other: {}", error.what()));
  }
  std::vector<uint64_t> codes(static_cast<size_t>(result.type.element_count()), other);
  for (size_t x = 0; x < codes.size(); ++x) {
    const std::vector<int64_t> index = shifted(offsets, static_cast<int64_t>(x), result.type.shape);
    if (!inside_view(view, index)) continue;  // masked
    codes[x] =
        read_global(buffer, result.type.dtype, global_element(block, instruction.source, index));
  }
  write_registers(block, instruction.result, codes);
}

// Every element is checked before any is written, so a failing store leaves the buffer alone.
void execute(Block& block, const StoreGlobal& instruction) {
  const GlobalViewState& view = block.defined(instruction.destination, Scope::Global).global;
  require_same_dtype(block, instruction.destination, instruction.value);
  require_rank(block, instruction.value, view.shape.size());
  const std::vector<int64_t> offsets =
      block.evaluate_indices(instruction.offsets, view.shape.size(), "the offsets");
  const std::vector<uint64_t> codes = read_registers(block, instruction.value);
  const TensorInfo& value = block.info(instruction.value);
  std::vector<std::pair<int64_t, uint64_t>> writes;
  writes.reserve(codes.size());
  for (size_t x = 0; x < codes.size(); ++x) {
    const std::vector<int64_t> index = shifted(offsets, static_cast<int64_t>(x), value.type.shape);
    if (!inside_view(view, index)) continue;  // masked
    writes.emplace_back(global_element(block, instruction.destination, index), codes[x]);
  }
  const HostBuffer& buffer = block.plan.arguments[static_cast<size_t>(view.param)].buffer;
  for (const auto& [element, code] : writes) {
    write_global(buffer, value.type.dtype, element, code);
  }
}

// Every thread holding a replica of an element reads it.
void execute(Block& block, const LoadShared& instruction) {
  block.defined(instruction.source, Scope::Shared);
  require_same_dtype(block, instruction.result, instruction.source);
  const size_t rank = static_cast<size_t>(block.info(instruction.source).type.rank());
  require_rank(block, instruction.result, rank);
  const std::vector<int64_t> offsets =
      block.evaluate_indices(instruction.offsets, rank, "the offsets");
  const TensorInfo& result = block.info(instruction.result);
  const RegisterPlacement& placement = *block.tensor_plan(instruction.result).registers;
  std::vector<uint64_t> codes(static_cast<size_t>(result.type.element_count()));
  std::vector<int64_t> threads;
  for (size_t x = 0; x < codes.size(); ++x) {
    const int64_t element = shared_element(
        block, instruction.source, shifted(offsets, static_cast<int64_t>(x), result.type.shape));
    threads.clear();
    for (int64_t p = placement.begin[x]; p < placement.begin[x + 1]; ++p) {
      threads.push_back(
          thread_of_slot(block, instruction.result, placement.places[static_cast<size_t>(p)]));
    }
    codes[x] = read_shared(block, instruction.source, element, threads);
  }
  write_registers(block, instruction.result, codes);
}

void execute(Block& block, const LoadPeerShared& instruction) {
  block.defined(instruction.source, Scope::Shared);
  require_same_dtype(block, instruction.result, instruction.source);
  const size_t rank = static_cast<size_t>(block.info(instruction.source).type.rank());
  require_rank(block, instruction.result, rank);
  if (block.cluster == nullptr) block.fail("load_peer_shared: the kernel has no clusters");
  const int64_t peer = block.evaluate_integer(instruction.block);
  const int64_t blocks = static_cast<int64_t>(block.cluster->shared.size());
  if (peer < 0 || peer >= blocks) {
    block.fail(fmt::format("load_peer_shared: block {} is outside the cluster of {} blocks", peer,
                           blocks));
  }
  const std::vector<int64_t> offsets =
      block.evaluate_indices(instruction.offsets, rank, "the offsets");
  const TensorInfo& result = block.info(instruction.result);
  const SharedMemory& memory = *block.cluster->shared[static_cast<size_t>(peer)];
  std::vector<uint64_t> codes(static_cast<size_t>(result.type.element_count()));
  for (size_t x = 0; x < codes.size(); ++x) {
    const int64_t element = shared_element(
        block, instruction.source, shifted(offsets, static_cast<int64_t>(x), result.type.shape));
    codes[x] = read_peer_shared(block, instruction.source, element, memory);
  }
  write_registers(block, instruction.result, codes);
}

// A new epoch as at a barrier; the cluster's other blocks are waited for.
void execute(Block& block, const ClusterBarrier&) {
  if (block.cluster == nullptr) block.fail("cluster_barrier: the kernel has no clusters");
  ++block.shared.epoch;
  ++block.cluster->barriers_passed[static_cast<size_t>(block.cluster_rank)];
  block.cluster->barrier.arrive_and_wait();
}

// A replicated element is written by the thread of its first place only (codegen predicates
// the other replicas off), so replicas are not a race.
void execute(Block& block, const StoreShared& instruction) {
  block.defined(instruction.destination, Scope::Shared);
  require_same_dtype(block, instruction.destination, instruction.value);
  const size_t rank = static_cast<size_t>(block.info(instruction.destination).type.rank());
  require_rank(block, instruction.value, rank);
  const std::vector<int64_t> offsets =
      block.evaluate_indices(instruction.offsets, rank, "the offsets");
  const std::vector<uint64_t> codes = read_registers(block, instruction.value);
  const TensorInfo& value = block.info(instruction.value);
  const RegisterPlacement& placement = *block.tensor_plan(instruction.value).registers;
  for (size_t x = 0; x < codes.size(); ++x) {
    const int64_t element =
        shared_element(block, instruction.destination,
                       shifted(offsets, static_cast<int64_t>(x), value.type.shape));
    write_shared(block, instruction.destination, element, codes[x],
                 thread_of_slot(block, instruction.value, placement.first[x]), block.current);
  }
}

// Global memory is read now (the host has no other writer to race with); the shared bytes are
// written when a wait_group completes the copy's group.
void execute(Block& block, const CopyAsync& instruction) {
  const GlobalViewState& view = block.defined(instruction.source, Scope::Global).global;
  block.defined(instruction.destination, Scope::Shared);
  require_same_dtype(block, instruction.destination, instruction.source);
  const Shape& box = instruction.shape;
  const size_t rank = box.size();
  require_rank(block, instruction.source, rank);
  require_rank(block, instruction.destination, rank);
  const std::vector<int64_t> source_offsets =
      block.evaluate_indices(instruction.source_offsets, rank, "the source offsets");
  const std::vector<int64_t> destination_offsets =
      block.evaluate_indices(instruction.destination_offsets, rank, "the destination offsets");
  const DataType dtype = block.info(instruction.source).type.dtype;
  const int64_t size = layout::shape_size(box);
  const Layout threads = instruction.threads
                             ? *instruction.threads
                             : default_register_layout(box, dtype, block.program.warps);
  if (threads.size() != size) {
    block.fail(fmt::format("the thread distribution {} has {} elements, the box {} has {}",
                           threads.to_string(), threads.size(), layout::shape_to_string(box),
                           size));
  }
  const HostBuffer& buffer = block.plan.arguments[static_cast<size_t>(view.param)].buffer;
  const int64_t issue = block.copy_issues++;
  for (int64_t x = 0; x < size; ++x) {
    const std::vector<int64_t> from = shifted(source_offsets, x, box);
    for (int dim : instruction.in_bounds) {
      const auto d = static_cast<size_t>(dim);
      if (from[d] < 0 || from[d] >= view.shape[d]) {
        block.fail(fmt::format(
            "copy_async declares dimension {} in bounds, but element {} of the box reads index "
            "{} of {}, whose extent there is {}",
            dim, layout::shape_to_string(from), from[d], block.info(instruction.source).name,
            view.shape[d]));
      }
    }
    AsyncWrite write;
    write.statement = block.current;
    write.issue = issue;
    write.tile = instruction.destination;
    write.element =
        shared_element(block, instruction.destination, shifted(destination_offsets, x, box));
    write.code = inside_view(view, from)
                     ? read_global(buffer, dtype, global_element(block, instruction.source, from))
                     : 0;  // zero fill outside the view
    write.thread = layout::thread_of(threads.place(x));
    if (write.thread >= block.plan.threads) {
      block.fail(
          fmt::format("the thread distribution places element {} in thread {}, beyond the "
                      "block's {} threads",
                      x, write.thread, block.plan.threads));
    }
    queue_shared_write(block, write);
  }
}

void execute(Block& block, const CommitGroup&) {
  block.committed_groups.push_back(std::move(block.open_group));
  block.open_group.clear();
}

// Copies not yet committed are not waited for, as cp.async.wait_group does not wait for them.
void execute(Block& block, const WaitGroup& instruction) {
  if (instruction.pending < 0) {
    block.fail(fmt::format("wait_group {}: the count must be non-negative", instruction.pending));
  }
  while (block.committed_groups.size() > static_cast<size_t>(instruction.pending)) {
    for (const AsyncWrite& write : block.committed_groups.front()) {
      complete_shared_write(block, write);
    }
    block.committed_groups.pop_front();
  }
}

// Writes before the barrier are visible to every thread after it: a new race-detection epoch.
void execute(Block& block, const Barrier&) {
  ++block.shared.epoch;
}

// Buffered, and applied after every block has finished, in block order (interpreter.cpp), so the
// sums do not depend on how blocks are scheduled; a fetch_add applies the block's updates before
// it at once (control_flow.cpp). Bounds are checked now, where the message can name the block.
void execute(Block& block, const AtomicAdd& instruction) {
  const GlobalViewState& view = block.defined(instruction.destination, Scope::Global).global;
  require_same_dtype(block, instruction.destination, instruction.value);
  require_rank(block, instruction.value, view.shape.size());
  const std::vector<int64_t> offsets =
      block.evaluate_indices(instruction.offsets, view.shape.size(), "the offsets");
  const std::vector<uint64_t> codes = read_registers(block, instruction.value);
  const TensorInfo& value = block.info(instruction.value);
  for (size_t x = 0; x < codes.size(); ++x) {
    const std::vector<int64_t> index = shifted(offsets, static_cast<int64_t>(x), value.type.shape);
    if (!inside_view(view, index)) continue;  // masked
    block.atomics.push_back(AtomicUpdate{view.param, value.type.dtype,
                                         global_element(block, instruction.destination, index),
                                         codes[x]});
  }
}

void apply_atomics(const Plan& plan, const std::vector<AtomicUpdate>& updates) {
  for (const AtomicUpdate& update : updates) {
    const HostBuffer& buffer = plan.arguments[static_cast<size_t>(update.param)].buffer;
    const uint64_t old = read_global(buffer, update.dtype, update.element);
    uint64_t sum = 0;
    if (update.dtype.is_integer()) {
      sum = code_of_integer(
          update.dtype,
          static_cast<int64_t>(static_cast<uint64_t>(integer_of(update.dtype, old)) +
                               static_cast<uint64_t>(integer_of(update.dtype, update.code))));
    } else {
      // One rounding of the exact sum: double holds the sum of two values of 24 bits or fewer
      // exactly enough (53 >= 2 * 24 + 2), and f64 adds natively.
      sum = code_of_real(update.dtype,
                         real_of(update.dtype, old) + real_of(update.dtype, update.code));
    }
    write_global(buffer, update.dtype, update.element, sum);
  }
}

}  // namespace nibble::vm::interp
