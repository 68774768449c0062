#include "vm/equality.h"

#include <bit>
#include <tuple>

namespace nibble::vm {
namespace {

bool same_bits(double a, double b) {
  return std::bit_cast<uint64_t>(a) == std::bit_cast<uint64_t>(b);
}

bool same_bits(const std::optional<double>& a, const std::optional<double>& b) {
  if (a.has_value() != b.has_value()) return false;
  return !a || same_bits(*a, *b);
}

}  // namespace

bool operator==(const GlobalView& a, const GlobalView& b) {
  return std::tie(a.result, a.param) == std::tie(b.result, b.param);
}
bool operator==(const AllocShared& a, const AllocShared& b) {
  return a.result == b.result;
}
bool operator==(const AllocRegister& a, const AllocRegister& b) {
  return a.result == b.result && same_bits(a.fill, b.fill);
}
bool operator==(const LoadGlobal& a, const LoadGlobal& b) {
  return std::tie(a.result, a.source, a.offsets) == std::tie(b.result, b.source, b.offsets) &&
         same_bits(a.other, b.other);
}
bool operator==(const StoreGlobal& a, const StoreGlobal& b) {
  return std::tie(a.destination, a.offsets, a.value) == std::tie(b.destination, b.offsets, b.value);
}
bool operator==(const LoadShared& a, const LoadShared& b) {
  return std::tie(a.result, a.source, a.offsets) == std::tie(b.result, b.source, b.offsets);
}
bool operator==(const StoreShared& a, const StoreShared& b) {
  return std::tie(a.destination, a.offsets, a.value) == std::tie(b.destination, b.offsets, b.value);
}
bool operator==(const CopyAsync& a, const CopyAsync& b) {
  return std::tie(a.destination, a.destination_offsets, a.source, a.source_offsets, a.shape,
                  a.threads, a.in_bounds) == std::tie(b.destination, b.destination_offsets,
                                                      b.source, b.source_offsets, b.shape,
                                                      b.threads, b.in_bounds);
}
bool operator==(const CommitGroup&, const CommitGroup&) {
  return true;
}
bool operator==(const WaitGroup& a, const WaitGroup& b) {
  return a.pending == b.pending;
}
bool operator==(const Barrier&, const Barrier&) {
  return true;
}
bool operator==(const ClusterBarrier&, const ClusterBarrier&) {
  return true;
}
bool operator==(const LoadPeerShared& a, const LoadPeerShared& b) {
  return std::tie(a.result, a.source, a.block, a.offsets) ==
         std::tie(b.result, b.source, b.block, b.offsets);
}
bool operator==(const Cast& a, const Cast& b) {
  return std::tie(a.result, a.source) == std::tie(b.result, b.source);
}
bool operator==(const View& a, const View& b) {
  return std::tie(a.result, a.source) == std::tie(b.result, b.source);
}
bool operator==(const Slice& a, const Slice& b) {
  return std::tie(a.result, a.source, a.offsets) == std::tie(b.result, b.source, b.offsets);
}
bool operator==(const Repeat& a, const Repeat& b) {
  return std::tie(a.result, a.source, a.axis, a.count) ==
         std::tie(b.result, b.source, b.axis, b.count);
}
bool operator==(const Permute& a, const Permute& b) {
  return std::tie(a.result, a.source, a.dims) == std::tie(b.result, b.source, b.dims);
}
bool operator==(const Reshape& a, const Reshape& b) {
  return std::tie(a.result, a.source) == std::tie(b.result, b.source);
}
bool operator==(const Elementwise& a, const Elementwise& b) {
  return std::tie(a.result, a.op, a.operands) == std::tie(b.result, b.op, b.operands);
}
bool operator==(const Reduce& a, const Reduce& b) {
  return std::tie(a.result, a.source, a.op, a.axis) == std::tie(b.result, b.source, b.op, b.axis);
}
bool operator==(const Dot& a, const Dot& b) {
  return std::tie(a.accumulator, a.a, a.b, a.b_offsets, a.b_transposed, a.async) ==
         std::tie(b.accumulator, b.a, b.b, b.b_offsets, b.b_transposed, b.async);
}
bool operator==(const WaitDots& a, const WaitDots& b) {
  return a.pending == b.pending;
}
bool operator==(const Shuffle& a, const Shuffle& b) {
  return std::tie(a.result, a.source, a.mode, a.lane) ==
         std::tie(b.result, b.source, b.mode, b.lane);
}
bool operator==(const AtomicAdd& a, const AtomicAdd& b) {
  return std::tie(a.destination, a.offsets, a.value) == std::tie(b.destination, b.offsets, b.value);
}
bool operator==(const Print& a, const Print& b) {
  return std::tie(a.label, a.tensor, a.scalar) == std::tie(b.label, b.tensor, b.scalar);
}

bool operator==(const ForStmt& a, const ForStmt& b) {
  return std::tie(a.var, a.start, a.stop, a.step, a.body, a.unroll) ==
         std::tie(b.var, b.start, b.stop, b.step, b.body, b.unroll);
}
bool operator==(const IfStmt& a, const IfStmt& b) {
  return std::tie(a.condition, a.then_body, a.else_body) ==
         std::tie(b.condition, b.then_body, b.else_body);
}
bool operator==(const WhileStmt& a, const WhileStmt& b) {
  return std::tie(a.condition, a.body) == std::tie(b.condition, b.body);
}
bool operator==(const BreakStmt&, const BreakStmt&) {
  return true;
}
bool operator==(const LetStmt& a, const LetStmt& b) {
  return std::tie(a.var, a.value) == std::tie(b.var, b.value);
}
bool operator==(const AssignStmt& a, const AssignStmt& b) {
  return std::tie(a.var, a.value) == std::tie(b.var, b.value);
}
bool operator==(const FetchAddStmt& a, const FetchAddStmt& b) {
  return std::tie(a.var, a.counter, a.offsets, a.value) ==
         std::tie(b.var, b.counter, b.offsets, b.value);
}
bool operator==(const Statement& a, const Statement& b) {
  return std::tie(a.node, a.location) == std::tie(b.node, b.location);
}

bool operator==(const TensorInfo& a, const TensorInfo& b) {
  return std::tie(a.name, a.type, a.location) == std::tie(b.name, b.type, b.location);
}
bool operator==(const Program& a, const Program& b) {
  return std::tie(a.name, a.params, a.grid, a.warps, a.shared_memory_bytes, a.min_blocks_per_sm,
                  a.early_trigger, a.dependent_launch, a.cluster, a.tensors, a.body,
                  a.next_var_id) ==
         std::tie(b.name, b.params, b.grid, b.warps, b.shared_memory_bytes, b.min_blocks_per_sm,
                  b.early_trigger, b.dependent_launch, b.cluster, b.tensors, b.body, b.next_var_id);
}

}  // namespace nibble::vm
