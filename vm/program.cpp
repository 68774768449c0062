#include "vm/program.h"

#include <fmt/format.h>

namespace nibble::vm {

std::string to_string(const SourceLocation& location) {
  if (!location.known()) return "<unknown>";
  if (location.column > 0) {
    return fmt::format("{}:{}:{}", location.file, location.line, location.column);
  }
  return fmt::format("{}:{}", location.file, location.line);
}

int arity(ElementwiseOp op) {
  switch (op) {
    case ElementwiseOp::Neg:
    case ElementwiseOp::Abs:
    case ElementwiseOp::Exp2:
    case ElementwiseOp::Log2:
    case ElementwiseOp::Rsqrt:
      return 1;
    case ElementwiseOp::Fma:
    case ElementwiseOp::Where:
      return 3;
    default:
      return 2;
  }
}

std::string_view to_string(ElementwiseOp op) {
  switch (op) {
    case ElementwiseOp::Neg:
      return "neg";
    case ElementwiseOp::Abs:
      return "abs";
    case ElementwiseOp::Exp2:
      return "exp2";
    case ElementwiseOp::Log2:
      return "log2";
    case ElementwiseOp::Rsqrt:
      return "rsqrt";
    case ElementwiseOp::Add:
      return "add";
    case ElementwiseOp::Sub:
      return "sub";
    case ElementwiseOp::Mul:
      return "mul";
    case ElementwiseOp::Div:
      return "div";
    case ElementwiseOp::Max:
      return "max";
    case ElementwiseOp::Min:
      return "min";
    case ElementwiseOp::Eq:
      return "eq";
    case ElementwiseOp::Ne:
      return "ne";
    case ElementwiseOp::Lt:
      return "lt";
    case ElementwiseOp::Le:
      return "le";
    case ElementwiseOp::Gt:
      return "gt";
    case ElementwiseOp::Ge:
      return "ge";
    case ElementwiseOp::Fma:
      return "fma";
    case ElementwiseOp::Where:
      return "where";
  }
  return "?";
}

std::string_view to_string(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
      return "sum";
    case ReduceOp::Max:
      return "max";
    case ReduceOp::Min:
      return "min";
  }
  return "?";
}

std::string_view to_string(ShuffleMode mode) {
  switch (mode) {
    case ShuffleMode::Xor:
      return "xor";
    case ShuffleMode::Up:
      return "up";
    case ShuffleMode::Down:
      return "down";
    case ShuffleMode::Index:
      return "index";
  }
  return "?";
}

namespace {

struct MnemonicOf {
  std::string_view operator()(const GlobalView&) const { return "global_view"; }
  std::string_view operator()(const AllocShared&) const { return "alloc_shared"; }
  std::string_view operator()(const AllocRegister&) const { return "alloc_register"; }
  std::string_view operator()(const LoadGlobal&) const { return "load_global"; }
  std::string_view operator()(const StoreGlobal&) const { return "store_global"; }
  std::string_view operator()(const LoadShared&) const { return "load_shared"; }
  std::string_view operator()(const StoreShared&) const { return "store_shared"; }
  std::string_view operator()(const CopyAsync&) const { return "copy_async"; }
  std::string_view operator()(const CommitGroup&) const { return "commit_group"; }
  std::string_view operator()(const WaitGroup&) const { return "wait_group"; }
  std::string_view operator()(const Barrier&) const { return "barrier"; }
  std::string_view operator()(const ClusterBarrier&) const { return "cluster_barrier"; }
  std::string_view operator()(const LoadPeerShared&) const { return "load_peer_shared"; }
  std::string_view operator()(const Cast&) const { return "cast"; }
  std::string_view operator()(const View&) const { return "view"; }
  std::string_view operator()(const Slice&) const { return "slice"; }
  std::string_view operator()(const Repeat&) const { return "repeat"; }
  std::string_view operator()(const Permute&) const { return "permute"; }
  std::string_view operator()(const Reshape&) const { return "reshape"; }
  std::string_view operator()(const Elementwise& e) const { return to_string(e.op); }
  std::string_view operator()(const Reduce&) const { return "reduce"; }
  std::string_view operator()(const Dot&) const { return "dot"; }
  std::string_view operator()(const WaitDots&) const { return "wait_dots"; }
  std::string_view operator()(const Shuffle&) const { return "shuffle"; }
  std::string_view operator()(const AtomicAdd&) const { return "atomic_add"; }
  std::string_view operator()(const Print&) const { return "print"; }
};

}  // namespace

std::string_view mnemonic(const Instruction& instruction) {
  return std::visit(MnemonicOf{}, instruction);
}

}  // namespace nibble::vm
