// The compute instructions: elementwise, reduce, dot and shuffle, with the interpreter's
// arithmetic (vm/interpreter/compute.cpp): a float result is computed from the exact operand
// values and rounded once (in f32 where that is provably the same, else in f64), integers wrap
// at the result's width. exp2, log2 and rsqrt use the hardware approximations (ex2.approx,
// lg2.approx, rsqrt.approx), compared with a tolerance.
//
// reduce and the SIMT dot accumulate in index order, rounding after each step, exactly as the
// interpreter does: within a thread when the layouts keep a reduced line in one thread, through
// the shared scratch region otherwise. When a line is spread over lanes of one warp, reduce
// combines each thread's partial value with shfl.sync.bfly steps instead: max and min stay exact,
// sums are added in butterfly order and compared with a tolerance. A dot on mma.sync (f16/bf16
// into f32) accumulates each 16-deep step of k in the tensor core's order: also a tolerance.
#include <fmt/format.h>
#include <llvm/IR/InlineAsm.h>
#include <llvm/IR/IntrinsicsNVPTX.h>

#include <algorithm>
#include <array>
#include <bit>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <tuple>

#include "codegen/emit/kernel_emitter.h"

namespace nibble::codegen {
namespace {

// The LLVM predicate of a comparison: ordered for floats (NaN compares false) except `ne`,
// which is unordered (NaN != x is true); signed for integers (stored values are sign-correct).
llvm::CmpInst::Predicate comparison_predicate(vm::ElementwiseOp op, bool on_floats) {
  using P = llvm::CmpInst::Predicate;
  switch (op) {
    case vm::ElementwiseOp::Eq:
      return on_floats ? P::FCMP_OEQ : P::ICMP_EQ;
    case vm::ElementwiseOp::Ne:
      return on_floats ? P::FCMP_UNE : P::ICMP_NE;
    case vm::ElementwiseOp::Lt:
      return on_floats ? P::FCMP_OLT : P::ICMP_SLT;
    case vm::ElementwiseOp::Le:
      return on_floats ? P::FCMP_OLE : P::ICMP_SLE;
    case vm::ElementwiseOp::Gt:
      return on_floats ? P::FCMP_OGT : P::ICMP_SGT;
    default:
      return on_floats ? P::FCMP_OGE : P::ICMP_SGE;
  }
}

bool is_comparison(vm::ElementwiseOp op) {
  using vm::ElementwiseOp;
  return op == ElementwiseOp::Eq || op == ElementwiseOp::Ne || op == ElementwiseOp::Lt ||
         op == ElementwiseOp::Le || op == ElementwiseOp::Gt || op == ElementwiseOp::Ge;
}

// Packed half arithmetic: the slots 2i and 2i + 1 of a thread form one f16x2 (bf16x2)
// register, the pair the mma fragments and the conversion plans use. Computing on those pairs
// (rather than leaving the pairing to LLVM's vectorizer, which may pair other slots and then
// shuffle) keeps each pair in its register. Exact: IEEE add, sub, mul and fma of f16 (bf16) are
// correctly rounded, as the interpreter's one rounding of the exact result.
bool is_pairable(vm::ElementwiseOp op) {
  using vm::ElementwiseOp;
  return op == ElementwiseOp::Add || op == ElementwiseOp::Sub || op == ElementwiseOp::Mul ||
         op == ElementwiseOp::Fma;
}

}  // namespace

bool KernelEmitter::paired_half_op(const vm::Elementwise& instruction,
                                   const std::vector<OperandValues>& in) {
  const DataType type = reg(instruction.result).dtype;
  const bool half = type == DataType::f16() || (type == DataType::bf16() && target.sm >= 90);
  if (!half || !is_pairable(instruction.op)) return false;
  for (const OperandValues& operand : in)
    if (operand.dtype != type) return false;
  return true;
}

void KernelEmitter::emit_paired_half(vm::ElementwiseOp op, DataType type, const RegisterMap& map,
                                     const std::vector<OperandValues>& in,
                                     std::vector<llvm::Value*>& out) {
  std::vector<int64_t> entry_of_slot(static_cast<size_t>(map.slots), -1);
  for (size_t e = 0; e < map.entries.size(); ++e)
    entry_of_slot[static_cast<size_t>(map.entries[e].slot)] = static_cast<int64_t>(e);
  llvm::Type* scalar_type = value_type(type);
  llvm::Type* pair_type = llvm::FixedVectorType::get(scalar_type, 2);
  auto apply = [&](const std::vector<llvm::Value*>& x) -> llvm::Value* {
    switch (op) {
      case vm::ElementwiseOp::Add:
        return builder.CreateFAdd(x[0], x[1]);
      case vm::ElementwiseOp::Sub:
        return builder.CreateFSub(x[0], x[1]);
      case vm::ElementwiseOp::Mul:
        return builder.CreateFMul(x[0], x[1]);
      default:
        return builder.CreateIntrinsic(llvm::Intrinsic::fma, {x[0]->getType()}, {x[0], x[1], x[2]});
    }
  };
  auto as_value = [&](llvm::Value* v) {
    return v->getType()->isIntegerTy() ? builder.CreateBitCast(v, scalar_type) : v;
  };
  for (int64_t slot = 0; slot < map.slots; slot += 2) {
    const int64_t first = entry_of_slot[static_cast<size_t>(slot)];
    const int64_t second =
        slot + 1 < map.slots ? entry_of_slot[static_cast<size_t>(slot + 1)] : int64_t{-1};
    if (first < 0 || second < 0) {
      for (int64_t e : {first, second}) {
        if (e < 0) continue;
        std::vector<llvm::Value*> x;
        for (const OperandValues& operand : in)
          x.push_back(as_value(operand.at(static_cast<size_t>(e))));
        out[static_cast<size_t>(e)] = apply(x);
      }
      continue;
    }
    std::vector<llvm::Value*> x;
    for (const OperandValues& operand : in) {
      llvm::Value* pair = llvm::PoisonValue::get(pair_type);
      pair = builder.CreateInsertElement(pair, as_value(operand.at(static_cast<size_t>(first))),
                                         uint64_t{0});
      pair = builder.CreateInsertElement(pair, as_value(operand.at(static_cast<size_t>(second))),
                                         uint64_t{1});
      x.push_back(pair);
    }
    llvm::Value* r = apply(x);
    out[static_cast<size_t>(first)] = builder.CreateExtractElement(r, uint64_t{0});
    out[static_cast<size_t>(second)] = builder.CreateExtractElement(r, uint64_t{1});
  }
}

void KernelEmitter::emit(const vm::Elementwise& instruction) {
  using vm::ElementwiseOp;
  const RegisterTensor& result = reg(instruction.result);
  const DataType type = result.dtype;
  const ElementwiseOp op = instruction.op;
  std::vector<OperandValues> in;
  for (const vm::Operand& operand : instruction.operands) {
    OperandValues values;
    if (const auto* tensor = std::get_if<TensorId>(&operand)) {
      values.dtype = info(*tensor).type.dtype;
      values.values = values_in(*tensor, *result.map);
    } else {
      const Expr& expr = std::get<Expr>(operand);
      values.dtype = expr.type();
      values.scalar = scalar(expr);
      if (values.scalar->getType()->isIntegerTy(1))
        values.scalar = builder.CreateZExt(values.scalar, i8());
    }
    in.push_back(std::move(values));
  }
  const size_t entries = result.map->entries.size();
  std::vector<llvm::Value*> out(entries, nullptr);

  const auto one_or_zero = [&](llvm::Value* condition) -> llvm::Value* {
    if (type.is_float()) {
      return round_real(builder.CreateUIToFP(condition, builder.getFloatTy()), type);
    }
    return builder.CreateZExt(condition, value_type(type));
  };
  bool all_exact_f32 = true;
  for (const OperandValues& operand : in)
    all_exact_f32 = all_exact_f32 && exact_in_f32(operand.dtype);

  if (is_comparison(op)) {
    const bool on_floats = in[0].dtype.is_float() || in[1].dtype.is_float();
    llvm::Type* compute = nullptr;
    if (on_floats) {
      compute = (in[0].dtype == in[1].dtype && in[0].dtype.bits() >= 16 &&
                 in[0].dtype != DataType::f64() && exact_in_f32(in[0].dtype)) ||
                        all_exact_f32
                    ? builder.getFloatTy()
                    : builder.getDoubleTy();
    }
    for (size_t e = 0; e < entries; ++e) {
      llvm::Value* condition = nullptr;
      if (on_floats) {
        llvm::Value* a = to_real(in[0].at(e), in[0].dtype, compute);
        llvm::Value* b = to_real(in[1].at(e), in[1].dtype, compute);
        condition = builder.CreateCmp(comparison_predicate(op, /*on_floats=*/true), a, b);
      } else {
        llvm::Value* a = to_integer(in[0].at(e), in[0].dtype, i64());
        llvm::Value* b = to_integer(in[1].at(e), in[1].dtype, i64());
        condition = builder.CreateCmp(comparison_predicate(op, /*on_floats=*/false), a, b);
      }
      out[e] = one_or_zero(condition);
    }
  } else if (op == ElementwiseOp::Where) {
    for (size_t e = 0; e < entries; ++e) {
      llvm::Value* c = in[0].at(e);
      llvm::Value* condition =
          in[0].dtype.is_float()
              ? builder.CreateFCmpUNE(to_real(c, in[0].dtype, builder.getFloatTy()),
                                      llvm::ConstantFP::get(builder.getFloatTy(), 0))
              : builder.CreateICmpNE(c, llvm::Constant::getNullValue(c->getType()));
      out[e] = builder.CreateSelect(condition, convert(in[1].at(e), in[1].dtype, type),
                                    convert(in[2].at(e), in[2].dtype, type));
    }
  } else if (type.is_float() && (op == ElementwiseOp::Neg || op == ElementwiseOp::Abs) &&
             in[0].dtype == type) {
    for (size_t e = 0; e < entries; ++e) {
      llvm::Value* a = in[0].at(e);
      if (a->getType()->isIntegerTy()) {
        const uint64_t sign = uint64_t{1} << (type.bits() - 1);
        out[e] = op == ElementwiseOp::Neg ? builder.CreateXor(a, sign)
                                          : builder.CreateAnd(a, ~sign & 0xff);
      } else {
        out[e] = op == ElementwiseOp::Neg ? builder.CreateFNeg(a)
                                          : builder.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, a);
      }
    }
  } else if (paired_half_op(instruction, in)) {
    emit_paired_half(op, type, *result.map, in, out);
  } else if (type.is_float()) {
    const bool narrow_fma = op == ElementwiseOp::Fma && type != DataType::f32();
    const bool use_f32 = type.bits() <= 32 && all_exact_f32 && !narrow_fma;
    llvm::Type* compute = use_f32 ? builder.getFloatTy() : builder.getDoubleTy();
    const bool approximate =
        op == ElementwiseOp::Exp2 || op == ElementwiseOp::Log2 || op == ElementwiseOp::Rsqrt;
    if (approximate && !use_f32) {
      unsupported(fmt::format("{} in {} on the GPU (the approximations are f32)", vm::to_string(op),
                              type.name()));
    }
    for (size_t e = 0; e < entries; ++e) {
      std::vector<llvm::Value*> x;
      for (const OperandValues& operand : in)
        x.push_back(to_real(operand.at(e), operand.dtype, compute));
      llvm::Value* r = nullptr;
      switch (op) {
        case ElementwiseOp::Neg:
          r = builder.CreateFNeg(x[0]);
          break;
        case ElementwiseOp::Abs:
          r = builder.CreateUnaryIntrinsic(llvm::Intrinsic::fabs, x[0]);
          break;
        case ElementwiseOp::Exp2:
          r = builder.CreateIntrinsic(llvm::Intrinsic::nvvm_ex2_approx_f, {}, {x[0]});
          break;
        case ElementwiseOp::Log2:
          r = builder.CreateIntrinsic(llvm::Intrinsic::nvvm_lg2_approx_f, {}, {x[0]});
          break;
        case ElementwiseOp::Rsqrt:
          r = builder.CreateIntrinsic(llvm::Intrinsic::nvvm_rsqrt_approx_f, {}, {x[0]});
          break;
        case ElementwiseOp::Add:
          r = builder.CreateFAdd(x[0], x[1]);
          break;
        case ElementwiseOp::Sub:
          r = builder.CreateFSub(x[0], x[1]);
          break;
        case ElementwiseOp::Mul:
          r = builder.CreateFMul(x[0], x[1]);
          break;
        case ElementwiseOp::Div:
          r = builder.CreateFDiv(x[0], x[1]);
          break;
        case ElementwiseOp::Max:
          r = builder.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, x[0], x[1]);
          break;
        case ElementwiseOp::Min:
          r = builder.CreateBinaryIntrinsic(llvm::Intrinsic::minnum, x[0], x[1]);
          break;
        case ElementwiseOp::Fma:
          r = builder.CreateIntrinsic(llvm::Intrinsic::fma, {compute}, {x[0], x[1], x[2]});
          break;
        default:
          unsupported(fmt::format("elementwise {}", vm::to_string(op)));
      }
      out[e] = round_real(r, type);
    }
  } else {
    bool wide = type.bits() > 32 || (type.bits() == 32 && !type.is_signed());
    for (const OperandValues& operand : in) {
      if (operand.dtype.is_float()) {
        unsupported(fmt::format("a {} operand for an integer result of type {}",
                                operand.dtype.name(), type.name()));
      }
      wide = wide || operand.dtype.bits() > 32 ||
             (operand.dtype.bits() == 32 && !operand.dtype.is_signed());
    }
    if (op == ElementwiseOp::Exp2 || op == ElementwiseOp::Log2 || op == ElementwiseOp::Rsqrt) {
      unsupported(fmt::format("{} is defined on floats only", vm::to_string(op)));
    }
    llvm::Type* width = wide ? i64() : i32();
    for (size_t e = 0; e < entries; ++e) {
      std::vector<llvm::Value*> x;
      for (const OperandValues& operand : in)
        x.push_back(to_integer(operand.at(e), operand.dtype, width));
      llvm::Value* zero = llvm::ConstantInt::get(width, 0);
      llvm::Value* r = nullptr;
      switch (op) {
        case ElementwiseOp::Neg:
          r = builder.CreateSub(zero, x[0]);
          break;
        case ElementwiseOp::Abs:
          r = builder.CreateSelect(builder.CreateICmpSLT(x[0], zero), builder.CreateSub(zero, x[0]),
                                   x[0]);
          break;
        case ElementwiseOp::Add:
          r = builder.CreateAdd(x[0], x[1]);
          break;
        case ElementwiseOp::Sub:
          r = builder.CreateSub(x[0], x[1]);
          break;
        case ElementwiseOp::Mul:
          r = builder.CreateMul(x[0], x[1]);
          break;
        case ElementwiseOp::Div: {
          llvm::Value* minus_one = llvm::ConstantInt::get(width, static_cast<uint64_t>(-1), true);
          llvm::Value* special = builder.CreateOr(builder.CreateICmpEQ(x[1], minus_one),
                                                  builder.CreateICmpEQ(x[1], zero));
          llvm::Value* safe = builder.CreateSelect(special, llvm::ConstantInt::get(width, 1), x[1]);
          r = builder.CreateSelect(builder.CreateICmpEQ(x[1], minus_one),
                                   builder.CreateSub(zero, x[0]), builder.CreateSDiv(x[0], safe));
          break;
        }
        case ElementwiseOp::Max:
          r = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smax, x[0], x[1]);
          break;
        case ElementwiseOp::Min:
          r = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smin, x[0], x[1]);
          break;
        case ElementwiseOp::Fma:
          r = builder.CreateAdd(builder.CreateMul(x[0], x[1]), x[2]);
          break;
        default:
          unsupported(fmt::format("elementwise {}", vm::to_string(op)));
      }
      out[e] = wrap_integer(r, type);
    }
  }
  write_entries(result, out);
}

// ---- reduce -----------------------------------------------------------------------------------

// One step of a reduction in the result's type, as the interpreter rounds it.
struct Accumulate {
  KernelEmitter& e;
  vm::ReduceOp op;
  DataType source;
  DataType type;

  llvm::Value* first(llvm::Value* value) {
    if (type.is_float()) return e.round_real(e.to_real(value, source, compute()), type);
    return e.wrap_integer(e.to_integer(value, source, e.i64()), type);
  }
  llvm::Type* compute() {
    return type.bits() <= 32 && KernelEmitter::exact_in_f32(source) ? e.builder.getFloatTy()
                                                                    : e.builder.getDoubleTy();
  }
  llvm::Value* step(llvm::Value* accumulator, llvm::Value* value) {
    llvm::IRBuilderBase& b = e.builder;
    if (type.is_float()) {
      llvm::Value* a = e.to_real(accumulator, type, compute());
      llvm::Value* x = e.to_real(value, source, compute());
      llvm::Value* r = op == vm::ReduceOp::Sum ? b.CreateFAdd(a, x)
                       : op == vm::ReduceOp::Max
                           ? b.CreateBinaryIntrinsic(llvm::Intrinsic::maxnum, a, x)
                           : b.CreateBinaryIntrinsic(llvm::Intrinsic::minnum, a, x);
      return e.round_real(r, type);
    }
    llvm::Value* a = e.to_integer(accumulator, type, e.i64());
    llvm::Value* x = e.to_integer(value, source, e.i64());
    llvm::Value* r = op == vm::ReduceOp::Sum ? b.CreateAdd(a, x)
                     : op == vm::ReduceOp::Max
                         ? b.CreateBinaryIntrinsic(llvm::Intrinsic::smax, a, x)
                         : b.CreateBinaryIntrinsic(llvm::Intrinsic::smin, a, x);
    return e.wrap_integer(r, type);
  }
};

namespace {

// A reduce across the lanes of one warp. The source's primary slots fall into groups, each
// holding (in every thread) elements of one reduced line; each thread accumulates a group's
// slots in logical order, then the partial values of the lanes that differ in the bits of the
// group's `lanes` are combined by butterfly shuffles, so every one of those lanes ends with the
// whole line. `direct[e]`: the group that holds result entry e's line in every thread, or -1 for
// an entry no thread holds; empty when the result layout wants the lines elsewhere (they then
// pass through the scratch region, one value per line).
struct ShuffleGroup {
  std::vector<int64_t> slots;
  int64_t lanes = 0;
};
struct ShufflePlan {
  std::vector<ShuffleGroup> groups;
  std::vector<int64_t> direct;
  int steps() const {
    int most = 0;
    for (const ShuffleGroup& group : groups)
      most = std::max(most, std::popcount(static_cast<uint64_t>(group.lanes)));
    return most;
  }
};

// The plan, checked element by element for every thread of the block; nullopt when the
// contributors of some line are not exactly a power-of-two set of lanes of one warp.
// line_of(x) = (flat index in the result shape, position along the axis) of source element x.
std::optional<ShufflePlan> plan_shuffle_reduce(
    const RegisterMap& source, const RegisterMap& result, int64_t extent,
    const std::function<std::pair<int64_t, int64_t>(int64_t)>& line_of) {
  const int64_t threads = source.threads;
  if (result.threads != threads || threads % 32 != 0) return std::nullopt;
  // Groups from thread 0, by line, each in logical order.
  std::map<int64_t, std::vector<std::pair<int64_t, int64_t>>> by_line;  // line -> (k, slot)
  for (const SlotEntry& s : source.entries) {
    if (!s.primary) continue;
    const int64_t x = source.element_at(0, s.slot);
    if (x < 0) return std::nullopt;
    const auto [line, k] = line_of(x);
    by_line[line].emplace_back(k, s.slot);
  }
  ShufflePlan plan;
  bool across_lanes = false;
  for (auto& [line, members] : by_line) {
    std::sort(members.begin(), members.end());
    ShuffleGroup group;
    for (const auto& [k, slot] : members)
      group.slots.push_back(slot);
    for (int bit = 0; bit < 5; ++bit) {
      const int64_t x = source.element_at(int64_t{1} << bit, group.slots[0]);
      if (x >= 0 && line_of(x).first == line) group.lanes |= int64_t{1} << bit;
    }
    across_lanes = across_lanes || group.lanes != 0;
    plan.groups.push_back(std::move(group));
  }
  if (!across_lanes) return std::nullopt;
  // Every thread: each group's lanes hold, in its slots, each element of one line exactly once.
  std::vector<int64_t> line_at(static_cast<size_t>(threads) * plan.groups.size());
  for (int64_t t = 0; t < threads; ++t) {
    for (size_t g = 0; g < plan.groups.size(); ++g) {
      const ShuffleGroup& group = plan.groups[g];
      const int64_t first = source.element_at(t, group.slots[0]);
      if (first < 0) return std::nullopt;
      const int64_t line = line_of(first).first;
      std::vector<int64_t> positions;
      for (int64_t m = 0; m < 32; ++m) {
        if ((m & ~group.lanes) != 0) continue;
        for (const int64_t slot : group.slots) {
          const int64_t x = source.element_at(t ^ m, slot);
          if (x < 0 || line_of(x).first != line) return std::nullopt;
          positions.push_back(line_of(x).second);
        }
      }
      std::sort(positions.begin(), positions.end());
      if (static_cast<int64_t>(positions.size()) != extent) return std::nullopt;
      for (int64_t k = 0; k < extent; ++k)
        if (positions[static_cast<size_t>(k)] != k) return std::nullopt;
      line_at[static_cast<size_t>(t) * plan.groups.size() + g] = line;
    }
  }
  // Does each result entry find its line in the same group in every thread?
  for (const SlotEntry& entry : result.entries) {
    int64_t found = -1;
    bool ok = true;
    for (int64_t t = 0; t < threads && ok; ++t) {
      const int64_t x = result.element_at(t, entry.slot);
      if (x < 0) continue;
      if (found < 0) {
        for (size_t g = 0; g < plan.groups.size() && found < 0; ++g)
          if (line_at[static_cast<size_t>(t) * plan.groups.size() + g] == x)
            found = static_cast<int64_t>(g);
        ok = found >= 0;
      } else {
        ok = line_at[static_cast<size_t>(t) * plan.groups.size() + static_cast<size_t>(found)] == x;
      }
    }
    if (!ok) {
      plan.direct.clear();
      break;
    }
    plan.direct.push_back(found);
  }
  return plan;
}

}  // namespace

bool KernelEmitter::emit_shuffle_reduce(const vm::Reduce& instruction, Accumulate& accumulate) {
  const RegisterTensor& source = reg(instruction.source);
  const RegisterTensor& result = reg(instruction.result);
  const layout::Shape& from = info(instruction.source).type.shape;
  const layout::Shape& to = info(instruction.result).type.shape;
  const auto axis = static_cast<size_t>(instruction.axis);
  const int64_t extent = from[axis];
  auto line_of = [&](int64_t x) {
    std::vector<int64_t> index(from.size());
    for (size_t d = from.size(); d-- > 0;) {
      index[d] = x % from[d];
      x /= from[d];
    }
    const int64_t k = index[axis];
    index[axis] = 0;
    int64_t flat = 0;
    for (size_t d = 0; d < to.size(); ++d)
      flat = flat * to[d] + index[d];
    return std::pair<int64_t, int64_t>{flat, k};
  };
  const std::optional<ShufflePlan> plan =
      plan_shuffle_reduce(*source.map, *result.map, extent, line_of);
  if (!plan) return false;
  const bool direct = !plan->direct.empty() || result.map->entries.empty();
  note(fmt::format("reduce: {} shuffle steps ('{}'){}", plan->steps(),
                   info(instruction.source).name,
                   direct ? "" : ", to the result layout through shared memory"));
  Accumulate combine{*this, instruction.op, result.dtype, result.dtype};
  auto shuffle_xor = [&](llvm::Value* value, int64_t lane_mask) -> llvm::Value* {
    llvm::Value* bits = to_bits(value);
    const unsigned width = bits->getType()->getIntegerBitWidth();
    auto move = [&](llvm::Value* word) {
      return builder.CreateIntrinsic(llvm::Intrinsic::nvvm_shfl_sync_bfly_i32, {},
                                     {const_i32(-1), word, const_i32(lane_mask), const_i32(31)});
    };
    if (width <= 32) return from_bits(move(builder.CreateZExtOrTrunc(bits, i32())), result.dtype);
    llvm::Value* low = move(builder.CreateTrunc(bits, i32()));
    llvm::Value* high = move(builder.CreateTrunc(builder.CreateLShr(bits, 32), i32()));
    llvm::Value* joined = builder.CreateOr(builder.CreateZExt(low, i64()),
                                           builder.CreateShl(builder.CreateZExt(high, i64()), 32));
    return from_bits(joined, result.dtype);
  };
  std::vector<llvm::Value*> lines;  // per group
  for (const ShuffleGroup& group : plan->groups) {
    llvm::Value* partial = accumulate.first(read_slot(source, group.slots[0]));
    for (size_t j = 1; j < group.slots.size(); ++j)
      partial = accumulate.step(partial, read_slot(source, group.slots[j]));
    lines.push_back(partial);
  }
  // Butterfly over the lane bits, every group at each step (independent shuffles interleave).
  for (int bit = 0; bit < 5; ++bit) {
    for (size_t g = 0; g < lines.size(); ++g) {
      if ((plan->groups[g].lanes & (int64_t{1} << bit)) == 0) continue;
      lines[g] = combine.step(lines[g], shuffle_xor(lines[g], int64_t{1} << bit));
    }
  }
  std::vector<llvm::Value*> out(result.map->entries.size(), nullptr);
  if (direct) {
    for (size_t e = 0; e < out.size(); ++e) {
      out[e] = plan->direct[e] < 0 ? llvm::Constant::getNullValue(value_type(result.dtype))
                                   : lines[static_cast<size_t>(plan->direct[e])];
    }
    write_entries(result, out);
    return true;
  }
  // One value per line through the scratch region, at the line's flat index in the result shape.
  llvm::Type* type = value_type(result.dtype);
  const int64_t bytes = type->getPrimitiveSizeInBits().getFixedValue() / 8;
  const int64_t base = reserve_scratch(layout::shape_size(to) * bytes);
  auto address = [&](const std::vector<llvm::Value*>& index) {
    llvm::Value* flat = const_i32(0);
    for (size_t d = 0; d < to.size(); ++d) {
      llvm::Value* i = d == axis ? const_i32(0) : index[d];
      flat = builder.CreateAdd(builder.CreateMul(flat, const_i32(to[d])), i);
    }
    return flat;
  };
  barrier();
  guarded(source.thread->primary, [&] {
    for (size_t g = 0; g < lines.size(); ++g) {
      const SlotEntry* entry = source.map->entry_of_slot(plan->groups[g].slots[0]);
      llvm::Value* flat = address(entry_index(source, *entry));
      builder.CreateStore(
          lines[g], shared_pointer(builder.CreateAdd(const_i32(base),
                                                     builder.CreateMul(flat, const_i32(bytes)))));
    }
  });
  barrier();
  for (size_t e = 0; e < out.size(); ++e) {
    llvm::Value* flat = builder.CreateSelect(
        result.thread->valid, address(entry_index(result, result.map->entries[e])), const_i32(0));
    out[e] =
        builder.CreateLoad(type, shared_pointer(builder.CreateAdd(
                                     const_i32(base), builder.CreateMul(flat, const_i32(bytes)))));
  }
  write_entries(result, out);
  return true;
}

void KernelEmitter::emit(const vm::Reduce& instruction) {
  const RegisterTensor& source = reg(instruction.source);
  const RegisterTensor& result = reg(instruction.result);
  const layout::Shape& from = info(instruction.source).type.shape;
  const layout::Shape& to = info(instruction.result).type.shape;
  const auto axis = static_cast<size_t>(instruction.axis);
  const int64_t extent = from[axis];
  Accumulate accumulate{*this, instruction.op, source.dtype, result.dtype};

  // Within each thread: every element of a reduced line sits in the same slot for every thread.
  std::vector<std::vector<int64_t>> permutations;
  for (int64_t k = 0; k < extent; ++k) {
    std::vector<int64_t> table(static_cast<size_t>(layout::shape_size(to)));
    for (int64_t x = 0; x < layout::shape_size(to); ++x) {
      int64_t rest = x;
      std::vector<int64_t> index(to.size());
      for (size_t d = to.size(); d-- > 0;) {
        index[d] = rest % to[d];
        rest /= to[d];
      }
      index[axis] = k;
      int64_t flat = 0;
      for (size_t d = 0; d < from.size(); ++d)
        flat = flat * from[d] + index[d];
      table[static_cast<size_t>(x)] = flat;
    }
    permutations.push_back(slot_permutation(*source.map, *result.map, table));
    if (permutations.back().empty()) break;
  }
  const bool in_thread = !permutations.empty() && !permutations.back().empty() &&
                         static_cast<int64_t>(permutations.size()) == extent;
  std::vector<llvm::Value*> out(result.map->entries.size(), nullptr);
  if (in_thread) {
    for (size_t e = 0; e < out.size(); ++e) {
      if (permutations[0][e] < 0) {
        out[e] = llvm::Constant::getNullValue(value_type(result.dtype));
        continue;
      }
      llvm::Value* accumulator = accumulate.first(read_slot(source, permutations[0][e]));
      for (int64_t k = 1; k < extent; ++k) {
        accumulator = accumulate.step(accumulator,
                                      read_slot(source, permutations[static_cast<size_t>(k)][e]));
      }
      out[e] = accumulator;
    }
    write_entries(result, out);
    return;
  }
  if (emit_shuffle_reduce(instruction, accumulate)) return;
  note(fmt::format("reduce '{}': across threads through shared memory",
                   info(instruction.source).name));
  llvm::Type* element_type = value_type(source.dtype);
  const int64_t element_bytes = element_type->getPrimitiveSizeInBits().getFixedValue() / 8;
  const int64_t base = reserve_scratch(layout::shape_size(from) * element_bytes);
  barrier();
  guarded(source.thread->primary, [&] {
    for (const SlotEntry& entry : source.map->entries) {
      if (!entry.primary) continue;
      llvm::Value* flat = builder.CreateAdd(source.thread->flat_part, const_i32(entry.flat));
      builder.CreateStore(read_slot(source, entry.slot),
                          shared_pointer(builder.CreateAdd(
                              const_i32(base), builder.CreateMul(flat, const_i32(element_bytes)))));
    }
  });
  barrier();
  int64_t axis_stride = 1;
  for (size_t d = axis + 1; d < from.size(); ++d)
    axis_stride *= from[d];
  auto address = [&](llvm::Value* line_start, llvm::Value* k) {
    llvm::Value* flat = builder.CreateAdd(line_start, builder.CreateMul(k, const_i32(axis_stride)));
    return shared_pointer(
        builder.CreateAdd(const_i32(base), builder.CreateMul(flat, const_i32(element_bytes))));
  };
  // The flat source index of each result entry's line at k = 0.
  std::vector<llvm::Value*> line_starts;
  for (const SlotEntry& entry : result.map->entries) {
    llvm::Value* flat = const_i32(0);
    for (size_t d = 0; d < from.size(); ++d) {
      llvm::Value* index =
          d == axis ? const_i32(0)
                    : builder.CreateAdd(result.thread->index_part[d], const_i32(entry.index[d]));
      flat = builder.CreateAdd(builder.CreateMul(flat, const_i32(from[d])), index);
    }
    line_starts.push_back(builder.CreateSelect(result.thread->valid, flat, const_i32(0)));
  }
  std::vector<llvm::AllocaInst*> accumulators;
  for (size_t e = 0; e < out.size(); ++e) {
    accumulators.push_back(prologue.CreateAlloca(value_type(result.dtype)));
    builder.CreateStore(
        accumulate.first(builder.CreateLoad(element_type, address(line_starts[e], const_i32(0)))),
        accumulators[e]);
  }
  // for k in [1, extent): one loop for every entry of the thread.
  if (extent > 1) {
    counted_loop("reduce_loop", 1, extent, [&](llvm::Value* k) {
      for (size_t e = 0; e < out.size(); ++e) {
        llvm::Value* value = builder.CreateLoad(element_type, address(line_starts[e], k));
        llvm::Value* accumulator = builder.CreateLoad(value_type(result.dtype), accumulators[e]);
        builder.CreateStore(accumulate.step(accumulator, value), accumulators[e]);
      }
    });
  }
  for (size_t e = 0; e < out.size(); ++e)
    out[e] = builder.CreateLoad(value_type(result.dtype), accumulators[e]);
  write_entries(result, out);
}

// ---- dot through mma.sync --------------------------------------------------------------------

namespace {

template <typename F>
void for_each_instruction(const vm::Body& body, const F& visit) {
  for (const vm::Statement& statement : body) {
    std::visit(
        [&](const auto& node) {
          using T = std::decay_t<decltype(node)>;
          if constexpr (std::is_same_v<T, vm::Instruction>) {
            visit(node);
          } else if constexpr (std::is_same_v<T, vm::ForStmt> || std::is_same_v<T, vm::WhileStmt>) {
            for_each_instruction(node.body, visit);
          } else if constexpr (std::is_same_v<T, vm::IfStmt>) {
            for_each_instruction(node.then_body, visit);
            for_each_instruction(node.else_body, visit);
          }
        },
        statement.node);
  }
}

}  // namespace

namespace {

bool is_one_of(DataType type, std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (type == DataType::parse(name)) return true;
  }
  return false;
}

// Whether mma.sync has an instruction for a · b into c on `target` (the table in
// kernel_emitter.h); the tile's shape is the tiling's business.
bool mma_has_types(DataType a, DataType b, DataType c, const Target& target) {
  if (is_one_of(a, {"f16", "bf16"})) return b == a && c == DataType::f32();
  if (is_one_of(a, {"i8", "u8"})) return is_one_of(b, {"i8", "u8"}) && c == DataType::sint(32);
  if (is_one_of(a, {"f8e4m3", "f8e5m2"})) {
    return is_one_of(b, {"f8e4m3", "f8e5m2"}) && c == DataType::f32() && target.has_fp8_mma();
  }
  return false;
}

// The PTX spelling of an mma input or accumulator type.
std::string mma_type_name(DataType type) {
  if (type == DataType::sint(8)) return "s8";
  if (type == DataType::uint(8)) return "u8";
  if (type == DataType::sint(32)) return "s32";
  if (type == DataType::parse("f8e4m3")) return "e4m3";
  if (type == DataType::parse("f8e5m2")) return "e5m2";
  return type.name();  // f16, bf16, f32
}

}  // namespace

std::optional<MmaTiling> mma_tiling(const vm::Program& program, const Target& target,
                                    const vm::Dot& dot) {
  if (!dot.b_offsets.empty()) return std::nullopt;  // a shared b: wgmma's business
  const vm::TensorType& a = program.tensor(dot.a).type;
  const vm::TensorType& b = program.tensor(dot.b).type;
  const vm::TensorType& c = program.tensor(dot.accumulator).type;
  if (!mma_has_types(a.dtype, b.dtype, c.dtype, target)) return std::nullopt;
  if (a.shape.size() != 2 || b.shape.size() != 2 || c.shape.size() != 2) return std::nullopt;
  if (dot.a == dot.b || dot.accumulator == dot.a || dot.accumulator == dot.b) return std::nullopt;
  if (b.shape[0] != a.shape[1] || c.shape[0] != a.shape[0] || c.shape[1] != b.shape[1]) {
    return std::nullopt;
  }
  return layout::choose_mma_tiling(a.shape[0], b.shape[1], a.shape[1], program.warps, a.dtype);
}

void assign_mma_layouts(vm::Program& program, const Target& target) {
  std::set<int> bitwise;  // read or written bit for bit by view or shuffle
  std::vector<std::pair<vm::Dot, MmaTiling>> dots;
  std::vector<vm::Cast> casts;
  for_each_instruction(program.body, [&](const vm::Instruction& instruction) {
    if (const auto* cast = std::get_if<vm::Cast>(&instruction)) {
      casts.push_back(*cast);
    } else if (const auto* view = std::get_if<vm::View>(&instruction)) {
      bitwise.insert(view->source.index);
      bitwise.insert(view->result.index);
    } else if (const auto* shuffle = std::get_if<vm::Shuffle>(&instruction)) {
      bitwise.insert(shuffle->source.index);
      bitwise.insert(shuffle->result.index);
    } else if (const auto* dot = std::get_if<vm::Dot>(&instruction)) {
      if (auto tiling = mma_tiling(program, target, *dot)) dots.emplace_back(*dot, *tiling);
    }
  });
  std::map<int, std::vector<layout::Layout>> wanted;
  for (const auto& [dot, tiling] : dots) {
    if (bitwise.contains(dot.a.index) || bitwise.contains(dot.b.index) ||
        bitwise.contains(dot.accumulator.index)) {
      continue;
    }
    wanted[dot.a.index].push_back(tiling.a_layout());
    wanted[dot.b.index].push_back(tiling.b_layout());
    wanted[dot.accumulator.index].push_back(tiling.c_layout());
  }
  std::map<int, std::optional<layout::Layout>>
      before;  // the layouts the passes gave the retyped tensors
  for (const auto& [index, layouts] : wanted) {
    if (std::all_of(layouts.begin(), layouts.end(),
                    [&](const layout::Layout& l) { return l == layouts.front(); })) {
      std::optional<layout::Layout>& current =
          program.tensors[static_cast<size_t>(index)].type.layout;
      if (current == layouts.front()) continue;
      before.emplace(index, current);
      current = layouts.front();
    }
  }
  // A cast of a retyped accumulator (the epilogue's f32 -> f16) whose result had the
  // accumulator's old layout (layout inference copies it: no data movement) follows it into the
  // fragment layout. Otherwise the cast would move the whole tile between threads (through
  // shared memory) only for the store after it; in fragments, each thread stores its pairs of
  // consecutive columns directly. Chains of casts follow in program order.
  bool changed = true;
  while (changed) {
    changed = false;
    for (const vm::Cast& cast : casts) {
      const auto source = before.find(cast.source.index);
      if (source == before.end() || before.contains(cast.result.index)) continue;
      if (bitwise.contains(cast.result.index) || wanted.contains(cast.result.index)) continue;
      vm::TensorType& result = program.tensors[static_cast<size_t>(cast.result.index)].type;
      const vm::TensorType& from = program.tensors[static_cast<size_t>(cast.source.index)].type;
      if (result.scope != vm::Scope::Register || result.shape != from.shape ||
          result.layout != source->second) {
        continue;
      }
      before.emplace(cast.result.index, result.layout);
      result.layout = from.layout;
      changed = true;
    }
  }
}

void KernelEmitter::collect_mma_operands() {
  for_each_instruction(program.body, [&](const vm::Instruction& instruction) {
    const auto* dot = std::get_if<vm::Dot>(&instruction);
    if (dot == nullptr) return;
    if (!dot->b_offsets.empty()) has_wgmma_dots_ = true;
    if (dot->async) async_accumulators_.insert(dot->accumulator.index);
    const std::optional<MmaTiling> tiling = mma_tiling(program, target, *dot);
    if (!tiling) return;
    if (info(dot->a).type.layout == tiling->a_layout()) mma_operands[dot->a.index] = {*tiling, 'a'};
    if (info(dot->b).type.layout == tiling->b_layout()) mma_operands[dot->b.index] = {*tiling, 'b'};
  });
}

std::vector<llvm::Value*> KernelEmitter::operand_slots(TensorId id,
                                                       const layout::Layout& fragment) {
  const RegisterMap& map = register_map(fragment, info(id).type.shape);
  const std::vector<llvm::Value*> values = values_in(id, map);
  std::vector<llvm::Value*> slots(static_cast<size_t>(map.slots), nullptr);
  for (size_t e = 0; e < map.entries.size(); ++e)
    slots[static_cast<size_t>(map.entries[e].slot)] = values[e];
  for (llvm::Value* value : slots)
    if (value == nullptr) unsupported("mma: an operand fragment slot holds no element");
  return slots;
}

llvm::Value* KernelEmitter::operand_word(const std::vector<llvm::Value*>& slots, int64_t first,
                                         int64_t per_register) {
  llvm::Type* element = slots[static_cast<size_t>(first)]->getType();
  llvm::Value* vector = llvm::PoisonValue::get(
      llvm::FixedVectorType::get(element, static_cast<unsigned>(per_register)));
  for (int64_t e = 0; e < per_register; ++e) {
    vector = builder.CreateInsertElement(vector, slots[static_cast<size_t>(first + e)],
                                         static_cast<uint64_t>(e));
  }
  return builder.CreateBitCast(vector, i32());
}

void KernelEmitter::emit_mma(const vm::Dot& instruction, const MmaTiling& tiling) {
  const RegisterTensor& c = reg(instruction.accumulator);
  const DataType a_type = info(instruction.a).type.dtype;
  const DataType b_type = info(instruction.b).type.dtype;
  const bool integer = c.dtype.is_integer();
  const std::string inputs =
      a_type == b_type ? mma_type_name(a_type)
                       : fmt::format("{}.{}", mma_type_name(a_type), mma_type_name(b_type));
  note(fmt::format("dot {}x{}x{}: mma.sync m16n8k{} {} -> {}, warps {}x{}, {}x{} atoms per warp",
                   tiling.m, tiling.n, tiling.k, tiling.atom_k(), inputs, c.dtype.name(),
                   tiling.warps_m, tiling.warps_n, tiling.tiles_m(), tiling.tiles_n()));
  if (a_type.is_float() && a_type.bits() == 8) required_ptx_version_ = 84;
  const std::vector<llvm::Value*> a = operand_slots(instruction.a, tiling.a_layout());
  const std::vector<llvm::Value*> b = operand_slots(instruction.b, tiling.b_layout());
  const int64_t per_register = tiling.per_register();
  auto word = [&](const std::vector<llvm::Value*>& slots, int64_t first) {
    return operand_word(slots, first, per_register);
  };
  llvm::Type* accumulator = integer ? i32() : builder.getFloatTy();
  const char* accumulator_constraint = integer ? "r" : "f";
  auto* result_type =
      llvm::StructType::get(context, {accumulator, accumulator, accumulator, accumulator});
  auto* asm_type = llvm::FunctionType::get(result_type,
                                           {i32(), i32(), i32(), i32(), i32(), i32(), accumulator,
                                            accumulator, accumulator, accumulator},
                                           false);
  llvm::InlineAsm* mma = llvm::InlineAsm::get(
      asm_type,
      fmt::format("mma.sync.aligned.m16n8k{}.row.col.{}.{}.{}.{} {{$0, $1, $2, $3}}, "
                  "{{$4, $5, $6, $7}}, {{$8, $9}}, {{$10, $11, $12, $13}};",
                  tiling.atom_k(), mma_type_name(c.dtype), mma_type_name(a_type),
                  mma_type_name(b_type), mma_type_name(c.dtype)),
      fmt::format("={0},={0},={0},={0},r,r,r,r,r,r,{0},{0},{0},{0}", accumulator_constraint),
      false);
  for (int64_t i = 0; i < tiling.tiles_m(); ++i) {
    for (int64_t j = 0; j < tiling.tiles_n(); ++j) {
      const int64_t c_slot = tiling.c_slot(i, j);
      std::array<llvm::Value*, 4> d{};
      for (int64_t q = 0; q < 4; ++q)
        d[static_cast<size_t>(q)] = read_slot(c, c_slot + q);
      for (int64_t s = 0; s < tiling.steps_k(); ++s) {
        std::vector<llvm::Value*> arguments;
        for (int64_t r = 0; r < 4; ++r)
          arguments.push_back(word(a, tiling.a_slot(i, s) + per_register * r));
        for (int64_t r = 0; r < 2; ++r)
          arguments.push_back(word(b, tiling.b_slot(s, j) + per_register * r));
        arguments.insert(arguments.end(), d.begin(), d.end());
        llvm::CallInst* call = builder.CreateCall(asm_type, mma, arguments);
        call->setDoesNotAccessMemory();
        call->setConvergent();
        for (unsigned q = 0; q < 4; ++q)
          d[q] = builder.CreateExtractValue(call, {q});
      }
      for (int64_t q = 0; q < 4; ++q)
        write_slot(c, c_slot + q, d[static_cast<size_t>(q)]);
    }
  }
}

// ---- dot through wgmma ------------------------------------------------------------------------

// A dot whose b is a shared tile runs on sm_90a's wgmma.mma_async with a in registers and b read
// from shared memory through a matrix descriptor. What it takes:
//   - f16·f16 or bf16·bf16 -> f32, and a block of whole warpgroups (warps % 4 == 0);
//   - a [M, K] in the A fragments and the accumulator [M, N] in the C fragments of
//     layout::MmaTiling{M, N, K, warps_m = warps, warps_n = 1}, M a multiple of 16 · warps:
//     each warp holds M / (16 · warps) m16 atoms of rows, and atom i of the four warps of a
//     warpgroup is one wgmma m64 fragment (one instruction per atom, k step and N chunk);
//   - b's tile K-major in rows of exactly the swizzle's width (32, 64 or 128 bytes): element
//     (k, n) at n * row + k (read transposed or not: the tile's dimensions are (n, k) or
//     (k, n)), the tile swizzled with the matching pattern, and the box starting at
//     a multiple of 8 rows and of 8 elements of k (the descriptor's 16-byte units). The tile's
//     base is aligned to the swizzle period (vm::shared_tile_alignment), so the pattern the layout
//     applies to tile offsets is the one wgmma applies to addresses.
// Each dot is one fenced group (wgmma.fence; the m64nNk16 steps, N up to 256 per instruction;
// commit), waited for at once (wait_group 0) or, for an async dot, at a later wait_dots. Every
// barrier in such a kernel is preceded by fence.proxy.async (KernelEmitter::barrier): the shared
// memory a thread wrote becomes visible to wgmma's reads (the async proxy).
void KernelEmitter::emit_wgmma(const vm::Dot& instruction) {
  const vm::TensorType& a_type = info(instruction.a).type;
  const vm::TensorType& c_type = info(instruction.accumulator).type;
  const SharedTile& b_tile = tile(instruction.b);
  auto fail = [&](const std::string& why) {
    unsupported(fmt::format("dot {} += {} · {}[…] (b read from shared memory, wgmma): {}",
                            info(instruction.accumulator).name, info(instruction.a).name,
                            info(instruction.b).name, why));
  };
  if (!target.has_wgmma()) {
    fail(fmt::format("wgmma needs sm_90a, not {}; load b into registers for mma.sync",
                     target.name()));
  }
  const DataType input = a_type.dtype;
  if (!is_one_of(input, {"f16", "bf16"}) || b_tile.dtype != input ||
      c_type.dtype != DataType::f32()) {
    fail(fmt::format("{} · {} -> {} (f16 · f16 or bf16 · bf16 -> f32)", input.name(),
                     b_tile.dtype.name(), c_type.dtype.name()));
  }
  const int64_t warps = program.warps;
  const int64_t m = a_type.shape[0];
  const int64_t k = a_type.shape[1];
  const int64_t n = c_type.shape[1];
  if (warps % 4 != 0 || m % (16 * warps) != 0) {
    fail(
        fmt::format("a has {} rows; wgmma wants a multiple of 16 per warp of whole warpgroups "
                    "({} warps)",
                    m, warps));
  }
  if (k % 16 != 0 || n % 8 != 0) fail(fmt::format("k {} (a multiple of 16), n {} (of 8)", k, n));
  const MmaTiling tiling{m, n, k, warps, 1, input};
  if (a_type.layout != tiling.a_layout() || c_type.layout != tiling.c_layout()) {
    fail(
        "a and the accumulator must be in the A and C fragments of MmaTiling{m, n, k, warps, 1} "
        "(m16 atoms of rows over the warps)");
  }
  // b: K-major rows of the swizzle's width.
  auto single_stride = [&](size_t dimension) -> int64_t {
    int64_t stride = 0;
    for (const layout::Iter& iter : b_tile.groups[dimension]) {
      if (iter.extent == 1 || iter.stride == 0) continue;
      if (stride != 0) return -1;
      stride = iter.stride;
    }
    return stride;
  };
  const int64_t element_bytes = input.bits() / 8;
  const size_t k_dimension = instruction.b_transposed ? 1 : 0;  // of the tile
  const size_t n_dimension = 1 - k_dimension;
  const int64_t k_stride = single_stride(k_dimension);
  const int64_t row_bytes = single_stride(n_dimension) * element_bytes;
  const layout::Swizzle& swizzle = b_tile.swizzle;
  int mode = 0;  // the descriptor's layout type: 1 = 128-byte, 2 = 64-byte, 3 = 32-byte swizzle
  using layout::Swizzle;
  for (const auto& [bytes, pattern, code] :
       {std::tuple{128, Swizzle::bytes128(), 1}, std::tuple{64, Swizzle::bytes64(), 2},
        std::tuple{32, Swizzle::bytes32(), 3}}) {
    if (row_bytes == bytes && swizzle == pattern) mode = code;
  }
  if (k_stride != 1 || mode == 0) {
    fail(
        fmt::format("the tile of {} must hold each n as one row of k (k stride 1) of 32, 64 or "
                    "128 bytes swizzled with the pattern of that width",
                    info(instruction.b).name));
  }
  if (divisor_of(instruction.b_offsets[0]) % 8 != 0 ||
      divisor_of(instruction.b_offsets[1]) % 8 != 0) {
    fail("the box of b must start at a multiple of 8 along k and along n");
  }
  note(
      fmt::format("dot {}x{}x{}: wgmma m64n{}k16 {} -> f32, b from shared memory ({}-byte swizzle)",
                  m, n, k, std::min<int64_t>(n, 256), input.name(), row_bytes));
  required_ptx_version_ = std::max(required_ptx_version_, 80);

  const RegisterTensor& c = reg(instruction.accumulator);
  const std::vector<llvm::Value*> a_slots = operand_slots(instruction.a, tiling.a_layout());

  // The descriptor: the start address in 16-byte units (bits 0-13), the leading byte offset 1
  // (bits 16-29; unused by K-major swizzled layouts), the stride byte offset 8 rows (bits 32-45),
  // the swizzle mode (bits 62-63). Its low word is computed once per dot and each instruction's
  // start added to it: shared addresses stay below 2^18 bytes, so the sum never carries out of
  // the address field.
  const uint64_t descriptor_high =
      static_cast<uint64_t>(8 * row_bytes / 16) | (static_cast<uint64_t>(mode) << 30);
  llvm::Value* box_start = builder.CreateAdd(
      const_i32(b_tile.base_bytes),
      builder.CreateAdd(
          builder.CreateMul(scalar_i32(instruction.b_offsets[k_dimension]),
                            const_i32(element_bytes)),
          builder.CreateMul(scalar_i32(instruction.b_offsets[n_dimension]), const_i32(row_bytes))));
  llvm::Value* box_address =
      builder.CreateAdd(builder.CreatePtrToInt(shared_pointer(const_i32(0)), i32()), box_start);
  llvm::Value* descriptor_low = builder.CreateOr(
      builder.CreateAnd(builder.CreateLShr(box_address, 4), const_i32(0x3FFF)), const_i32(1 << 16));

  emit_statement_asm("wgmma.fence.sync.aligned;");
  const int64_t chunk = std::min<int64_t>(n, 256);
  if (n % chunk != 0) fail(fmt::format("n {} is not a multiple of {}", n, chunk));
  const int64_t registers = chunk / 2;  // f32 accumulators per thread per instruction
  std::vector<llvm::Type*> result_types(static_cast<size_t>(registers), builder.getFloatTy());
  auto* result_type = llvm::StructType::get(context, result_types);
  std::vector<llvm::Type*> argument_types(4, i32());
  argument_types.push_back(i64());
  argument_types.insert(argument_types.end(), static_cast<size_t>(registers), builder.getFloatTy());
  auto* asm_type = llvm::FunctionType::get(result_type, argument_types, false);
  std::string text = fmt::format("wgmma.mma_async.sync.aligned.m64n{}k16.f32.{}.{} {{", chunk,
                                 input.name(), input.name());
  std::string constraints;
  for (int64_t r = 0; r < registers; ++r) {
    text += fmt::format("{}${}", r == 0 ? "" : ", ", r);
    constraints += "=f,";
  }
  text += fmt::format("}}, {{${}, ${}, ${}, ${}}}, ${}, 1, 1, 1, 0;", registers, registers + 1,
                      registers + 2, registers + 3, registers + 4);
  constraints += "r,r,r,r,l";
  for (int64_t r = 0; r < registers; ++r)
    constraints += fmt::format(",{}", r);
  llvm::InlineAsm* wgmma = llvm::InlineAsm::get(asm_type, text, constraints, true);
  // Atom i of every warp makes one m64 (the warpgroup's four warps, each its own 16 rows): the
  // rows the instruction multiplies are the rows of a that its C fragments hold, whichever rows
  // of the tile those are.
  for (int64_t i = 0; i < tiling.tiles_m(); ++i) {
    for (int64_t first = 0; first < n; first += chunk) {
      std::vector<llvm::Value*> d;
      for (int64_t j = 0; j < chunk / 8; ++j)
        for (int64_t q = 0; q < 4; ++q)
          d.push_back(read_slot(c, tiling.c_slot(i, first / 8 + j) + q));
      for (int64_t s = 0; s < tiling.steps_k(); ++s) {
        llvm::Value* low = builder.CreateAdd(
            descriptor_low, const_i32((s * 16 * element_bytes + first * row_bytes) / 16));
        llvm::Value* descriptor = builder.CreateOr(
            builder.CreateZExt(low, i64()), const_i64(static_cast<int64_t>(descriptor_high << 32)));
        std::vector<llvm::Value*> arguments;
        for (int64_t r = 0; r < 4; ++r)
          arguments.push_back(operand_word(a_slots, tiling.a_slot(i, s) + 2 * r, 2));
        arguments.push_back(descriptor);
        arguments.insert(arguments.end(), d.begin(), d.end());
        llvm::CallInst* call = builder.CreateCall(asm_type, wgmma, arguments);
        call->setConvergent();
        for (int64_t r = 0; r < registers; ++r)
          d[static_cast<size_t>(r)] = builder.CreateExtractValue(call, {static_cast<unsigned>(r)});
      }
      for (int64_t j = 0; j < chunk / 8; ++j)
        for (int64_t q = 0; q < 4; ++q)
          write_slot(c, tiling.c_slot(i, first / 8 + j) + q, d[static_cast<size_t>(j * 4 + q)]);
    }
  }
  emit_statement_asm("wgmma.commit_group.sync.aligned;");
  if (!instruction.async) emit_statement_asm("wgmma.wait_group.sync.aligned 0;");
}

// wgmma.wait_group, then every accumulator of an async dot passes through an empty asm: its
// values as later instructions read them are the asm's results, which LLVM cannot compute
// before the wait (it would otherwise be free to move arithmetic on the registers, which it
// sees as ready when the wgmma returns, above the wait). The asm emits nothing.
void KernelEmitter::emit(const vm::WaitDots& instruction) {
  emit_statement_asm(fmt::format("wgmma.wait_group.sync.aligned {};", instruction.pending));
  for (int index : async_accumulators_) {
    if (!registers_.contains(index)) continue;
    const RegisterTensor& c = registers_.at(index);
    const int64_t slots = c.map->slots;
    std::vector<llvm::Type*> types(static_cast<size_t>(slots), builder.getFloatTy());
    auto* result_type = llvm::StructType::get(context, types);
    auto* asm_type = llvm::FunctionType::get(result_type, types, false);
    std::string constraints;
    for (int64_t r = 0; r < slots; ++r)
      constraints += fmt::format("{}=f", r == 0 ? "" : ",");
    for (int64_t r = 0; r < slots; ++r)
      constraints += fmt::format(",{}", r);
    std::vector<llvm::Value*> values;
    for (int64_t r = 0; r < slots; ++r)
      values.push_back(read_slot(c, r));
    llvm::CallInst* pin =
        builder.CreateCall(asm_type, llvm::InlineAsm::get(asm_type, "", constraints, true), values);
    for (int64_t r = 0; r < slots; ++r)
      write_slot(c, r, builder.CreateExtractValue(pin, {static_cast<unsigned>(r)}));
  }
}

// ---- dot ----------------------------------------------------------------------------------------

void KernelEmitter::emit(const vm::Dot& instruction) {
  if (!instruction.b_offsets.empty()) {
    emit_wgmma(instruction);
    return;
  }
  if (const std::optional<MmaTiling> tiling = mma_tiling(program, target, instruction)) {
    if (info(instruction.accumulator).type.layout == tiling->c_layout()) {
      emit_mma(instruction, *tiling);
      return;
    }
  }
  const RegisterTensor& c = reg(instruction.accumulator);
  const RegisterTensor& a = reg(instruction.a);
  const RegisterTensor& b = reg(instruction.b);
  const layout::Shape& a_shape = info(instruction.a).type.shape;
  const layout::Shape& b_shape = info(instruction.b).type.shape;
  const int64_t m_extent = a_shape[0];
  const int64_t k_extent = a_shape[1];
  const int64_t n_extent = b_shape[1];
  const DataType ct = c.dtype;
  if (a.packed || b.packed) unsupported("dot of sub-byte operands (cast them first)");
  if (ct.is_float() != a.dtype.is_float() || ct.is_float() != b.dtype.is_float()) {
    unsupported(fmt::format("{} · {} into {}", a.dtype.name(), b.dtype.name(), ct.name()));
  }
  note(fmt::format("dot {}x{}x{}: SIMT through shared memory", m_extent, n_extent, k_extent));
  llvm::Type* a_type = value_type(a.dtype);
  llvm::Type* b_type = value_type(b.dtype);
  const int64_t a_bytes = a_type->getPrimitiveSizeInBits().getFixedValue() / 8;
  const int64_t b_bytes = b_type->getPrimitiveSizeInBits().getFixedValue() / 8;
  const int64_t a_size = (m_extent * k_extent * a_bytes + 15) / 16 * 16;
  const int64_t base = reserve_scratch(a_size + k_extent * n_extent * b_bytes);
  const int64_t b_base = base + a_size;
  barrier();
  auto stage = [&](const RegisterTensor& operand, int64_t at, int64_t bytes) {
    guarded(operand.thread->primary, [&] {
      for (const SlotEntry& entry : operand.map->entries) {
        if (!entry.primary) continue;
        llvm::Value* flat = builder.CreateAdd(operand.thread->flat_part, const_i32(entry.flat));
        builder.CreateStore(read_slot(operand, entry.slot),
                            shared_pointer(builder.CreateAdd(
                                const_i32(at), builder.CreateMul(flat, const_i32(bytes)))));
      }
    });
  };
  stage(a, base, a_bytes);
  stage(b, b_base, b_bytes);
  barrier();

  const bool f32_path = ct == DataType::f32() && exact_in_f32(a.dtype) && exact_in_f32(b.dtype);
  llvm::Type* c_type = value_type(ct);
  std::vector<llvm::Value*> rows;
  std::vector<llvm::Value*> columns;
  std::vector<llvm::AllocaInst*> accumulators;
  for (const SlotEntry& entry : c.map->entries) {
    rows.push_back(builder.CreateSelect(
        c.thread->valid, builder.CreateAdd(c.thread->index_part[0], const_i32(entry.index[0])),
        const_i32(0)));
    columns.push_back(builder.CreateSelect(
        c.thread->valid, builder.CreateAdd(c.thread->index_part[1], const_i32(entry.index[1])),
        const_i32(0)));
    llvm::AllocaInst* accumulator = prologue.CreateAlloca(c_type);
    builder.CreateStore(read_slot(c, entry.slot), accumulator);
    accumulators.push_back(accumulator);
  }
  counted_loop("dot_k", 0, k_extent, [&](llvm::Value* k) {
    for (size_t e = 0; e < accumulators.size(); ++e) {
      llvm::Value* a_offset = builder.CreateAdd(
          const_i32(base),
          builder.CreateMul(builder.CreateAdd(builder.CreateMul(rows[e], const_i32(k_extent)), k),
                            const_i32(a_bytes)));
      llvm::Value* b_offset = builder.CreateAdd(
          const_i32(b_base),
          builder.CreateMul(
              builder.CreateAdd(builder.CreateMul(k, const_i32(n_extent)), columns[e]),
              const_i32(b_bytes)));
      llvm::Value* x = builder.CreateLoad(a_type, shared_pointer(a_offset));
      llvm::Value* y = builder.CreateLoad(b_type, shared_pointer(b_offset));
      llvm::Value* sum = builder.CreateLoad(c_type, accumulators[e]);
      llvm::Value* next = nullptr;
      if (f32_path) {
        next = builder.CreateIntrinsic(llvm::Intrinsic::fma, {builder.getFloatTy()},
                                       {to_real(x, a.dtype, builder.getFloatTy()),
                                        to_real(y, b.dtype, builder.getFloatTy()), sum});
      } else if (ct.is_float()) {
        llvm::Type* d = builder.getDoubleTy();
        next = round_real(builder.CreateIntrinsic(llvm::Intrinsic::fma, {d},
                                                  {to_real(x, a.dtype, d), to_real(y, b.dtype, d),
                                                   to_real(sum, ct, d)}),
                          ct);
      } else {
        llvm::Value* product =
            builder.CreateMul(to_integer(x, a.dtype, i64()), to_integer(y, b.dtype, i64()));
        next = wrap_integer(builder.CreateAdd(to_integer(sum, ct, i64()), product), ct);
      }
      builder.CreateStore(next, accumulators[e]);
    }
  });
  for (size_t e = 0; e < accumulators.size(); ++e) {
    write_slot(c, c.map->entries[e].slot, builder.CreateLoad(c_type, accumulators[e]));
  }
}

// ---- shuffle ------------------------------------------------------------------------------------

void KernelEmitter::emit(const vm::Shuffle& instruction) {
  const RegisterTensor& source = reg(instruction.source);
  const RegisterTensor& result = reg(instruction.result);
  if (source.map->slots * source.dtype.bits() != result.map->slots * result.dtype.bits()) {
    unsupported("shuffle: the layouts give threads different numbers of bits");
  }
  llvm::Value* lane = scalar_i32(instruction.lane);
  llvm::Value* own = builder.CreateAnd(thread_index, const_i32(31));
  llvm::Value* from = lane;
  switch (instruction.mode) {
    case vm::ShuffleMode::Xor:
      from = builder.CreateXor(own, lane);
      break;
    case vm::ShuffleMode::Up:
      from = builder.CreateSub(own, lane);
      break;
    case vm::ShuffleMode::Down:
      from = builder.CreateAdd(own, lane);
      break;
    case vm::ShuffleMode::Index:
      from = lane;
      break;
  }
  llvm::Value* inside = builder.CreateICmpULT(from, const_i32(32));
  llvm::Value* source_lane = builder.CreateAnd(from, const_i32(31));
  std::vector<llvm::Value*> words = thread_words(source);
  for (llvm::Value*& word : words) {
    llvm::Value* moved = builder.CreateIntrinsic(llvm::Intrinsic::nvvm_shfl_sync_idx_i32, {},
                                                 {const_i32(-1), word, source_lane, const_i32(31)});
    word = builder.CreateSelect(inside, moved, word);
  }
  write_thread_words(result, words);
}

// ---- print --------------------------------------------------------------------------------------
//
// print goes through the CUDA runtime's vprintf(format, arguments), whose arguments are one buffer
// of fields at their natural alignment with floats promoted to double, as C varargs are. Lines
// start as the interpreter's do ("block (x, y, z) label:"). A scalar or a global view is printed
// once per block, by thread 0; a register tensor one line per element ("block (0, 0, 0) t[3, 1]:
// 2.5") by the thread that holds it (one replica), so its lines come in no particular order where
// the interpreter prints the whole tensor on one line. Floats print with %g (six significant
// digits) where the interpreter prints the shortest text that round-trips.

namespace {

// One vprintf call: `format` with its arguments (i32, i64 or double values).
void call_vprintf(KernelEmitter& e, const std::string& format,
                  const std::vector<llvm::Value*>& arguments) {
  llvm::IRBuilderBase& b = e.builder;
  llvm::FunctionCallee vprintf = e.module->getOrInsertFunction(
      "vprintf", llvm::FunctionType::get(b.getInt32Ty(), {b.getPtrTy(), b.getPtrTy()}, false));
  llvm::Constant* text = llvm::ConstantDataArray::getString(e.context, format);
  // One global per distinct format (constants are uniqued, so the initializers compare by address).
  llvm::GlobalVariable* global = nullptr;
  for (llvm::GlobalVariable& existing : e.module->globals()) {
    if (existing.hasInitializer() && existing.getInitializer() == text) global = &existing;
  }
  if (global == nullptr) {
    constexpr unsigned kGlobalAddressSpace = 1;
    global = new llvm::GlobalVariable(
        *e.module, text->getType(), true, llvm::GlobalValue::PrivateLinkage, text, "print_format",
        nullptr, llvm::GlobalValue::NotThreadLocal, kGlobalAddressSpace);
  }
  llvm::Value* format_pointer = b.CreateAddrSpaceCast(global, b.getPtrTy());
  if (!arguments.empty()) {
    std::vector<llvm::Type*> fields;
    for (llvm::Value* argument : arguments)
      fields.push_back(argument->getType());
    llvm::StructType* layout = llvm::StructType::get(e.context, fields);
    llvm::AllocaInst* storage = e.prologue.CreateAlloca(layout);
    // Lifetime markers let the buffers of different prints share one stack slot.
    b.CreateLifetimeStart(storage);
    for (size_t i = 0; i < arguments.size(); ++i) {
      b.CreateStore(arguments[i], b.CreateStructGEP(layout, storage, static_cast<unsigned>(i)));
    }
    b.CreateCall(vprintf, {format_pointer, storage});
    b.CreateLifetimeEnd(storage);
    return;
  }
  b.CreateCall(vprintf, {format_pointer, llvm::ConstantPointerNull::get(b.getPtrTy())});
}

// The "block (x, y, z) label" start of a line and its three arguments.
std::string line_start(KernelEmitter& e, const std::string& label,
                       std::vector<llvm::Value*>& arguments) {
  for (llvm::Intrinsic::ID id :
       {llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_x, llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_y,
        llvm::Intrinsic::nvvm_read_ptx_sreg_ctaid_z}) {
    arguments.push_back(e.builder.CreateIntrinsic(id, {}, {}));
  }
  // A '%' in the label must print as itself.
  std::string escaped;
  for (char c : label)
    escaped += c == '%' ? std::string("%%") : std::string(1, c);
  return "block (%d, %d, %d) " + escaped;
}

// An element or scalar as a printf argument: its integer value as i64 (%lld), or its float value
// as double (%g).
std::pair<std::string, llvm::Value*> printf_value(KernelEmitter& e, llvm::Value* value,
                                                  DataType type) {
  if (type.is_integer()) return {"%lld", e.to_integer(value, type, e.i64())};
  return {"%g", e.to_real(value, type, e.builder.getDoubleTy())};
}

}  // namespace

void KernelEmitter::emit(const vm::Print& instruction) {
  llvm::Value* thread_zero = builder.CreateICmpEQ(thread_index, const_i32(0));
  if (instruction.scalar) {
    guarded(thread_zero, [&] {
      std::vector<llvm::Value*> arguments;
      std::string format = line_start(*this, instruction.label, arguments) + ": ";
      llvm::Value* value = scalar(*instruction.scalar);
      const DataType type = instruction.scalar->type();
      if (type.is_float()) {
        format += "%g";
        arguments.push_back(builder.CreateFPExt(value, builder.getDoubleTy()));
      } else {
        format += "%lld";
        arguments.push_back(type.is_signed() ? builder.CreateSExtOrTrunc(value, i64())
                                             : builder.CreateZExtOrTrunc(value, i64()));
      }
      call_vprintf(*this, format + "\n", arguments);
    });
  }
  if (!instruction.tensor) return;
  const TensorId id = *instruction.tensor;
  const vm::TensorType& type = info(id).type;
  if (type.scope == vm::Scope::Global) {
    const GlobalViewValues& view = views.at(id.index);
    guarded(thread_zero, [&] {
      std::vector<llvm::Value*> arguments;
      std::string format = line_start(*this, instruction.label, arguments);
      format += fmt::format(": {} global view of '{}' with shape [", type.dtype.name(),
                            program.params[static_cast<size_t>(view.param)].name);
      for (size_t d = 0; d < view.shape.size(); ++d) {
        format += d == 0 ? "%lld" : ", %lld";
        arguments.push_back(view.shape[d]);
      }
      call_vprintf(*this, format + "]\n", arguments);
    });
    return;
  }
  if (type.scope != vm::Scope::Register) {
    unsupported(
        "print of a shared tensor runs on the interpreter only (load it into registers "
        "and print that)");
  }
  const RegisterTensor& tensor = reg(id);
  guarded(tensor.thread->primary, [&] {
    for (const SlotEntry& entry : tensor.map->entries) {
      if (!entry.primary) continue;
      std::vector<llvm::Value*> arguments;
      std::string format = line_start(*this, instruction.label, arguments) + "[";
      const std::vector<llvm::Value*> index = entry_index(tensor, entry);
      for (size_t d = 0; d < index.size(); ++d) {
        format += d == 0 ? "%d" : ", %d";
        arguments.push_back(index[d]);
      }
      const auto [conversion, value] =
          printf_value(*this, read_slot(tensor, entry.slot), type.dtype);
      format += "]: " + conversion + "\n";
      arguments.push_back(value);
      call_vprintf(*this, format, arguments);
    }
  });
}

}  // namespace nibble::codegen
