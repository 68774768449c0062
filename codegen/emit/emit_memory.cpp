// The memory instructions: global views, allocation, loads and stores between global memory,
// shared memory and registers, asynchronous copies with their groups, barriers and atomics.
//
// Vectorization. A thread's slots are grouped into runs: consecutive slots holding elements
// consecutive along the last dimension. A run of k elements moves as one access of k * bits
// (up to 128) when the memory side is contiguous and aligned: for shared tiles this is proven at
// compile time from the tile layout and the divisibility facts of the offsets; for global memory
// it is proven when the facts allow (pointer alignment, parameter divisors, vm::known_divisor) and
// otherwise checked at run time, with an element-wise path for misaligned and partial runs (the
// bounds mask). Sub-byte data moves as whole 32-bit words.
#include <fmt/format.h>
#include <llvm/IR/InlineAsm.h>
#include <llvm/IR/IntrinsicsNVPTX.h>

#include <algorithm>
#include <bit>
#include <map>
#include <numeric>

#include "codegen/emit/kernel_emitter.h"
#include "dtypes/codec.h"
#include "vm/default_layout.h"

namespace nibble::codegen {
namespace {

using Run = std::vector<const SlotEntry*>;

// Runs of entries (sorted by slot) whose elements are consecutive along the last dimension, split
// into power-of-two pieces of at most max_bits; sub-byte pieces are whole, word-aligned words.
std::vector<Run> runs_of(const RegisterMap& map, int bits, int64_t max_bits, bool require_primary,
                         bool wide_odd_packed = false) {
  std::vector<const SlotEntry*> entries;
  for (const SlotEntry& entry : map.entries)
    entries.push_back(&entry);
  std::sort(entries.begin(), entries.end(),
            [](const SlotEntry* a, const SlotEntry* b) { return a->slot < b->slot; });
  const size_t rank = map.shape.size();
  std::vector<Run> maximal;
  for (const SlotEntry* entry : entries) {
    bool extends = false;
    if (!maximal.empty() && rank > 0) {
      const SlotEntry* last = maximal.back().back();
      extends = entry->slot == last->slot + 1 && entry->primary == last->primary;
      for (size_t d = 0; extends && d < rank; ++d) {
        extends = entry->index[d] == last->index[d] + (d + 1 == rank ? 1 : 0);
      }
    }
    if (extends) {
      maximal.back().push_back(entry);
    } else {
      maximal.push_back({entry});
    }
  }
  // With wide_odd_packed, packed widths that do not divide 128 (3, 5, 6, 7 bits) move in runs
  // of up to 128 elements, a whole number of 128-bit words (the caller splits the access).
  const bool odd_packed = wide_odd_packed && bits < 8 && 128 % bits != 0;
  const int64_t max_elements =
      odd_packed ? std::max<int64_t>(1, max_bits) : std::max<int64_t>(1, max_bits / bits);
  std::vector<Run> pieces;
  for (const Run& run : maximal) {
    size_t at = 0;
    while (at < run.size()) {
      int64_t k = 1;
      const int64_t left = static_cast<int64_t>(run.size() - at);
      while (k * 2 <= std::min(left, max_elements))
        k *= 2;
      if (bits < 8) {
        // Whole words only, starting on a word boundary of the thread's bit stream.
        while (k > 1 && ((run[at]->slot * bits) % 32 != 0 || (k * bits) % 32 != 0))
          k /= 2;
        if ((k * bits) % 32 != 0) k = 1;
      }
      if (require_primary && !run[at]->primary) k = 1;
      pieces.emplace_back(run.begin() + static_cast<ptrdiff_t>(at),
                          run.begin() + static_cast<ptrdiff_t>(at + static_cast<size_t>(k)));
      at += static_cast<size_t>(k);
    }
  }
  return pieces;
}

int64_t gcd_all(std::initializer_list<int64_t> values) {
  int64_t g = 0;
  for (int64_t v : values)
    g = std::gcd(g, v);
  return g == 0 ? int64_t{1} << 20 : g;
}

// The widest piece a run of `access_bits` (a multiple of 32) moves in: the largest power of two
// dividing it, at most 128 bits (a 16-byte access). Runs of odd widths (96, 384 bits…) move in
// several pieces, each aligned to its size when the run's start is.
int64_t piece_bits_of(int64_t access_bits) {
  return std::min<int64_t>(128, access_bits & -access_bits);
}

// The IR type of an access of `bits` bits: iN up to 32, <n x i32> above.
llvm::Type* access_type(llvm::LLVMContext& context, int64_t bits) {
  if (bits <= 32) return llvm::IntegerType::get(context, static_cast<unsigned>(bits));
  return llvm::FixedVectorType::get(llvm::Type::getInt32Ty(context),
                                    static_cast<unsigned>(bits / 32));
}

}  // namespace

void KernelEmitter::scatter_slots(const RegisterTensor& tensor,
                                  const std::vector<const SlotEntry*>& slots, llvm::Value* loaded) {
  llvm::Value* elements = builder.CreateBitCast(
      loaded,
      llvm::FixedVectorType::get(value_type(tensor.dtype), static_cast<unsigned>(slots.size())));
  for (size_t i = 0; i < slots.size(); ++i) {
    write_slot(tensor, slots[i]->slot,
               builder.CreateExtractElement(elements, static_cast<uint64_t>(i)));
  }
}

llvm::Value* KernelEmitter::gather_slots(const RegisterTensor& tensor,
                                         const std::vector<const SlotEntry*>& slots,
                                         int64_t access_bits) {
  llvm::Type* type = access_type(context, access_bits);
  if (tensor.packed) {
    const int64_t first_word = slots.front()->slot * tensor.dtype.bits() / 32;
    if (access_bits == 32) return read_word(tensor, first_word);
    llvm::Value* data = llvm::PoisonValue::get(type);
    for (int64_t w = 0; w < access_bits / 32; ++w) {
      data = builder.CreateInsertElement(data, read_word(tensor, first_word + w),
                                         static_cast<uint64_t>(w));
    }
    return data;
  }
  llvm::Type* vector =
      llvm::FixedVectorType::get(value_type(tensor.dtype), static_cast<unsigned>(slots.size()));
  llvm::Value* data = llvm::PoisonValue::get(vector);
  for (size_t i = 0; i < slots.size(); ++i) {
    data = builder.CreateInsertElement(data, read_slot(tensor, slots[i]->slot),
                                       static_cast<uint64_t>(i));
  }
  return builder.CreateBitCast(data, type);
}

// ---- helpers shared by the memory emitters ------------------------------------------------------

namespace {

// Whether index (i64) lies inside dimension d of the view.
llvm::Value* index_inside(KernelEmitter& e, const GlobalViewValues& view, llvm::Value* index,
                          size_t d) {
  return e.builder.CreateAnd(e.builder.CreateICmpSGE(index, e.const_i64(0)),
                             e.builder.CreateICmpSLT(index, view.shape[d]));
}

struct GlobalAccess {
  KernelEmitter& e;
  const GlobalViewValues& view;
  std::vector<llvm::Value*> offsets;  // i64
  std::vector<int64_t> offset_divisors;
  const RegisterMap& map;
  const ThreadValues& thread;
  int bits;
  // Dimensions the program promises the access stays inside (copy_async's in_bounds, checked by
  // the interpreter): the bounds tests below skip them. Empty: none.
  std::vector<bool> assumed_inside = {};

  // Whether index (i64) of dimension d lies inside the view; true when d is assumed inside.
  llvm::Value* dimension_inside(llvm::Value* index, size_t d) {
    if (d < assumed_inside.size() && assumed_inside[d]) return e.builder.getTrue();
    return index_inside(e, view, index, d);
  }

  // Element offset (i64) of the element at entry's index + delta along the last dimension.
  llvm::Value* element_offset(const SlotEntry& entry) {
    llvm::IRBuilderBase& b = e.builder;
    llvm::Value* sum = e.const_i64(0);
    for (size_t d = 0; d < offsets.size(); ++d) {
      llvm::Value* index = b.CreateAdd(
          offsets[d],
          b.CreateSExt(b.CreateAdd(thread.index_part[d], e.const_i32(entry.index[d])), e.i64()));
      sum = b.CreateAdd(sum, b.CreateMul(index, view.strides[d]));
    }
    return sum;
  }
  llvm::Value* index_i64(const SlotEntry& entry, size_t d) {
    return e.builder.CreateAdd(
        offsets[d],
        e.builder.CreateSExt(e.builder.CreateAdd(thread.index_part[d], e.const_i32(entry.index[d])),
                             e.i64()));
  }
  // Whether the element at entry lies inside the view.
  llvm::Value* inside(const SlotEntry& entry) {
    llvm::Value* result = e.builder.getTrue();
    for (size_t d = 0; d < offsets.size(); ++d)
      result = e.builder.CreateAnd(result, dimension_inside(index_i64(entry, d), d));
    return result;
  }
  // Every element of the run inside the view (the run is consecutive along the last dimension).
  llvm::Value* run_inside(const Run& run) {
    llvm::IRBuilderBase& b = e.builder;
    llvm::Value* result = b.getTrue();
    const size_t last = offsets.size() - 1;
    for (size_t d = 0; d < offsets.size(); ++d) {
      llvm::Value* first = index_i64(*run.front(), d);
      llvm::Value* end = d == last ? index_i64(*run.back(), d) : first;
      result = b.CreateAnd(result, b.CreateAnd(b.CreateICmpSGE(first, e.const_i64(0)),
                                               b.CreateICmpSLT(end, view.shape[d])));
    }
    return result;
  }
  // The element-wise fallbacks of vector runs (ragged tile edges, misaligned addresses) test the
  // dimensions other than the last once per run (a run lies along the last dimension) and only
  // the last one per element. The last index is computed as run_inside computes the run's ends,
  // so LLVM sees which elements the failed vector test rules out and drops them.
  llvm::Value* others_inside(const Run& run) {
    llvm::Value* result = e.builder.getTrue();
    for (size_t d = 0; d + 1 < offsets.size(); ++d)
      result = e.builder.CreateAnd(result, dimension_inside(index_i64(*run.front(), d), d));
    return result;
  }
  llvm::Value* last_inside(const SlotEntry& entry) {
    const size_t last = offsets.size() - 1;
    return dimension_inside(index_i64(entry, last), last);
  }
  // A power of two known to divide the entry's index along d: the offset's, the thread part's
  // and the slot part's divisors.
  int64_t index_divisor(const SlotEntry& entry, size_t d) const {
    return gcd_all({offset_divisors[d], map.thread_part_divisor(static_cast<int>(d)),
                    entry.index[d] == 0 ? int64_t{1} << 20 : entry.index[d]});
  }
  // Along the last dimension the run of k elements is wholly inside the view or wholly outside
  // it: its first index and the view's extent are provably multiples of k. Then the run's first
  // index alone decides, and no element-wise fallback is needed for ragged edges.
  bool whole_or_none(const Run& run) {
    const size_t last = offsets.size() - 1;
    const auto k = static_cast<int64_t>(run.size());
    if (assumed_inside.size() > last && assumed_inside[last]) return true;
    return index_divisor(*run.front(), last) % k == 0 &&
           e.divisor_of(view.shape_exprs[last]) % k == 0;
  }
  // The address of the run's first element is provably a multiple of access_bits, or nullptr
  // and `check` set to the run-time test.
  bool provably_aligned(const Run& run, int64_t access_bits, int64_t pointer_alignment_bytes) {
    if (pointer_alignment_bytes <= 0 || (pointer_alignment_bytes * 8) % access_bits != 0)
      return false;
    int64_t divisor = 0;
    for (size_t d = 0; d < offsets.size(); ++d) {
      const int64_t stride_divisor = e.divisor_of(view.stride_exprs[d]);
      divisor = std::gcd(divisor, index_divisor(*run.front(), d) * stride_divisor);
    }
    if (divisor == 0) divisor = int64_t{1} << 20;
    return (divisor * bits) % access_bits == 0;
  }
  // The address of the entry's element, built from three parts that LLVM keeps apart: what the
  // thread's and the entry's indices add (loop-invariant, so LICM hoists it), what the offsets
  // add (the loop's part, often uniform across the block), and a constant (the access's
  // immediate offset). Wrapping arithmetic distributes, so the sum is the element offset's
  // exactly. Each term index[d] * stride[d] must be a whole number of bytes: the stride is, or
  // else the index provably is (sub-byte elements); otherwise, or for a dimension whose index
  // is only whole in bytes as a sum, as pointer(element_offset(entry)).
  llvm::Value* entry_pointer(const SlotEntry& entry) {
    llvm::IRBuilderBase& b = e.builder;
    // Per dimension: the stride is a whole number of bytes, or else the index is.
    std::vector<bool> whole_byte_stride(offsets.size());
    for (size_t d = 0; d < offsets.size(); ++d) {
      whole_byte_stride[d] = (e.divisor_of(view.stride_exprs[d]) * bits) % 8 == 0;
      if (!whole_byte_stride[d] && (index_divisor(entry, d) * bits) % 8 != 0) {
        return pointer(element_offset(entry));
      }
    }
    llvm::Value* invariant = e.const_i64(0);
    llvm::Value* varying = e.const_i64(0);
    int64_t constant = 0;
    for (size_t d = 0; d < offsets.size(); ++d) {
      if (!whole_byte_stride[d]) {
        varying = b.CreateAdd(
            varying, b.CreateMul(b.CreateLShr(b.CreateMul(index_i64(entry, d), e.const_i64(bits)),
                                              3, "", true),
                                 view.strides[d]));
        continue;
      }
      llvm::Value* byte_stride =
          b.CreateLShr(b.CreateMul(view.strides[d], e.const_i64(bits)), 3, "", /*isExact=*/true);
      varying = b.CreateAdd(varying, b.CreateMul(offsets[d], byte_stride));
      invariant = b.CreateAdd(
          invariant, b.CreateMul(b.CreateSExt(thread.index_part[d], e.i64()), byte_stride));
      if (auto* known = llvm::dyn_cast<llvm::ConstantInt>(byte_stride)) {
        constant += entry.index[d] * known->getSExtValue();
      } else if (entry.index[d] != 0) {
        invariant = b.CreateAdd(invariant, b.CreateMul(e.const_i64(entry.index[d]), byte_stride));
      }
    }
    llvm::Value* base = e.param_values[static_cast<size_t>(view.param)];
    llvm::Value* thread_base = b.CreateGEP(e.i8(), base, {invariant});
    llvm::Value* moved = b.CreateGEP(e.i8(), thread_base, {varying});
    return b.CreateGEP(e.i8(), moved, {e.const_i64(constant)});
  }
  llvm::Value* pointer(llvm::Value* element_offset) {
    llvm::IRBuilderBase& b = e.builder;
    llvm::Value* base = e.param_values[static_cast<size_t>(view.param)];
    llvm::Value* byte = bits >= 8 ? b.CreateMul(element_offset, e.const_i64(bits / 8))
                                  : b.CreateLShr(b.CreateMul(element_offset, e.const_i64(bits)), 3);
    return b.CreateInBoundsGEP(e.i8(), base, {byte});
  }
};

}  // namespace

void KernelEmitter::load_packed_words(const RegisterTensor& tensor, int64_t first_word,
                                      int64_t access_bits,
                                      const std::function<llvm::Value*(int64_t)>& address_of) {
  const int64_t piece_bits = piece_bits_of(access_bits);
  for (int64_t at = 0; at < access_bits; at += piece_bits) {
    auto* load = builder.CreateLoad(access_type(context, piece_bits), address_of(at / 8));
    load->setAlignment(llvm::Align(static_cast<uint64_t>(piece_bits / 8)));
    for (int64_t w = 0; w < piece_bits / 32; ++w) {
      llvm::Value* word = piece_bits == 32
                              ? static_cast<llvm::Value*>(load)
                              : builder.CreateExtractElement(load, static_cast<uint64_t>(w));
      write_word(tensor, first_word + at / 32 + w, word);
    }
  }
}

// ---- views and allocation ---------------------------------------------------------------------

void KernelEmitter::emit(const vm::GlobalView& instruction) {
  const vm::TensorInfo& tensor = info(instruction.result);
  GlobalViewValues view;
  view.param = instruction.param;
  view.dtype = tensor.type.dtype;
  view.shape_exprs = tensor.type.global_shape;
  view.stride_exprs = tensor.type.global_strides;
  for (const Expr& extent : view.shape_exprs)
    view.shape.push_back(scalar_i64(extent));
  for (const Expr& stride : view.stride_exprs)
    view.strides.push_back(scalar_i64(stride));
  views[instruction.result.index] = std::move(view);
}

void KernelEmitter::emit(const vm::AllocShared&) {}

void KernelEmitter::emit(const vm::AllocRegister& instruction) {
  const RegisterTensor& tensor = reg(instruction.result);
  if (!instruction.fill) return;
  uint64_t code = 0;
  try {
    code = dtypes::encode(tensor.dtype, *instruction.fill);
  } catch (const std::exception& error) {
    unsupported(fmt::format("fill value: {}", error.what()));
  }
  if (tensor.packed) {
    uint32_t word = 0;
    for (int bit = 0; bit + tensor.dtype.bits() <= 32; bit += tensor.dtype.bits())
      word |= static_cast<uint32_t>(code) << bit;
    if (32 % tensor.dtype.bits() != 0) {
      for (const SlotEntry& entry : tensor.map->entries)
        write_slot(tensor, entry.slot, builder.getInt8(static_cast<uint8_t>(code)));
      return;
    }
    for (int64_t w = 0; w < tensor.words; ++w)
      write_word(tensor, w, builder.getInt32(word));
    return;
  }
  llvm::Value* value = constant_value(tensor.dtype, code);
  for (const SlotEntry& entry : tensor.map->entries)
    write_slot(tensor, entry.slot, value);
}

// ---- global memory ------------------------------------------------------------------------------

void KernelEmitter::emit(const vm::LoadGlobal& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const GlobalViewValues& view = views.at(instruction.source.index);
  const vm::Parameter& param = program.params[static_cast<size_t>(view.param)];
  GlobalAccess access{*this, view, {}, {}, *result.map, *result.thread, result.dtype.bits()};
  for (const Expr& offset : instruction.offsets) {
    access.offsets.push_back(scalar_i64(offset));
    access.offset_divisors.push_back(divisor_of(offset));
  }
  const int bits = result.dtype.bits();
  uint64_t other_code = 0;
  try {
    other_code = dtypes::encode(result.dtype, instruction.other);
  } catch (const std::exception& error) {
    unsupported(fmt::format("other: {}", error.what()));
  }
  llvm::Value* other = result.packed ? nullptr : constant_value(result.dtype, other_code);
  const bool unit_stride = view.stride_exprs.back().as_int() == 1;
  int vector_runs = 0;
  int widest = 0;

  auto element_wise = [&](const Run& run) {
    for (const SlotEntry* entry : run) {
      if (result.packed) {
        write_slot(result, entry->slot, builder.getInt8(static_cast<uint8_t>(other_code)));
      } else {
        write_slot(result, entry->slot, other);
      }
      guarded(access.inside(*entry), [&] {
        llvm::Value* offset = access.element_offset(*entry);
        llvm::Value* pointer = access.pointer(offset);
        if (result.packed && 8 % bits == 0) {
          llvm::Value* byte = builder.CreateLoad(i8(), pointer);
          llvm::Value* shift = builder.CreateTrunc(
              builder.CreateAnd(builder.CreateMul(offset, const_i64(bits)), 7), i8());
          write_slot(result, entry->slot, builder.CreateLShr(byte, shift));
        } else if (result.packed) {
          // An element of 3, 5, 6 or 7 bits may straddle two bytes; the second is read only
          // when it does (it may lie past the end of the buffer otherwise).
          llvm::Value* shift = builder.CreateAnd(builder.CreateMul(offset, const_i64(bits)), 7);
          llvm::Value* low = builder.CreateZExt(builder.CreateLoad(i8(), pointer), i32());
          llvm::Value* straddles =
              builder.CreateICmpUGT(builder.CreateAdd(shift, const_i64(bits)), const_i64(8));
          llvm::Value* code = builder.CreateLShr(low, builder.CreateTrunc(shift, i32()));
          llvm::BasicBlock* before = builder.GetInsertBlock();
          llvm::BasicBlock* second = new_block("load_second_byte");
          llvm::BasicBlock* done = new_block("load_element_done");
          builder.CreateCondBr(straddles, second, done);
          builder.SetInsertPoint(second);
          llvm::Value* high = builder.CreateZExt(
              builder.CreateLoad(i8(), builder.CreateInBoundsGEP(i8(), pointer, {const_i64(1)})),
              i32());
          llvm::Value* joined = builder.CreateOr(
              code, builder.CreateShl(
                        high, builder.CreateTrunc(builder.CreateSub(const_i64(8), shift), i32())));
          builder.CreateBr(done);
          llvm::BasicBlock* second_end = builder.GetInsertBlock();
          builder.SetInsertPoint(done);
          llvm::PHINode* value = builder.CreatePHI(i32(), 2);
          value->addIncoming(code, before);
          value->addIncoming(joined, second_end);
          write_slot(result, entry->slot, builder.CreateTrunc(value, i8()));
        } else {
          auto* load = builder.CreateLoad(value_type(result.dtype), pointer);
          load->setAlignment(llvm::Align(static_cast<uint64_t>(bits / 8)));
          write_slot(result, entry->slot, load);
        }
      });
    }
  };

  for (const Run& run : runs_of(*result.map, bits, 128, false, /*wide_odd_packed=*/true)) {
    const auto k = static_cast<int64_t>(run.size());
    const int64_t access_bits = k * bits;
    const bool vectorizable = unit_stride && (result.packed ? access_bits % 32 == 0 : k > 1);
    if (!vectorizable) {
      element_wise(run);
      continue;
    }
    ++vector_runs;
    widest = std::max(widest, static_cast<int>(access_bits));
    // The alignment each access needs: the run in pieces of at most 128 bits.
    const int64_t chunk_bits = piece_bits_of(access_bits);
    const bool aligned = access.provably_aligned(run, chunk_bits, param.alignment_bytes);
    llvm::Value* start = access.element_offset(*run.front());
    llvm::Value* fast = access.run_inside(run);
    if (!aligned) {
      llvm::Value* address = builder.CreatePtrToInt(access.pointer(start), i64());
      llvm::Value* bit_offset = builder.CreateMul(start, const_i64(bits));
      llvm::Value* misaligned =
          builder.CreateOr(builder.CreateAnd(address, const_i64(chunk_bits / 8 - 1)),
                           builder.CreateAnd(bit_offset, const_i64(7)));
      fast = builder.CreateAnd(fast, builder.CreateICmpEQ(misaligned, const_i64(0)));
    }
    // Aligned and whole or none: a run that fails the test lies wholly outside and reads
    // `other`, with no element-wise fallback.
    const bool fallback = !aligned || !access.whole_or_none(run);
    llvm::BasicBlock* vector_block = new_block("load_vector");
    llvm::BasicBlock* scalar_block = new_block(fallback ? "load_elements" : "load_outside");
    llvm::BasicBlock* join = new_block("load_join");
    builder.CreateCondBr(fast, vector_block, scalar_block);
    builder.SetInsertPoint(vector_block);
    if (result.packed) {
      llvm::Value* base = access.entry_pointer(*run.front());
      load_packed_words(result, run.front()->slot * bits / 32, access_bits, [&](int64_t byte) {
        return builder.CreateInBoundsGEP(i8(), base, {const_i64(byte)});
      });
    } else {
      llvm::Type* type = access_type(context, access_bits);
      auto* load = builder.CreateLoad(type, access.entry_pointer(*run.front()));
      load->setAlignment(llvm::Align(static_cast<uint64_t>(std::max<int64_t>(1, access_bits / 8))));
      scatter_slots(result, run, load);
    }
    builder.CreateBr(join);
    builder.SetInsertPoint(scalar_block);
    if (!fallback) {
      for (const SlotEntry* entry : run) {
        write_slot(result, entry->slot,
                   result.packed ? builder.getInt8(static_cast<uint8_t>(other_code)) : other);
      }
    } else if (result.packed) {
      element_wise(run);
    } else {
      // Unit stride: element i of the run is at start + i.
      llvm::Value* others = access.others_inside(run);
      for (size_t i = 0; i < run.size(); ++i) {
        write_slot(result, run[i]->slot, other);
        guarded(builder.CreateAnd(others, access.last_inside(*run[i])), [&] {
          auto* load = builder.CreateLoad(
              value_type(result.dtype),
              access.pointer(builder.CreateAdd(start, const_i64(static_cast<int64_t>(i)))));
          load->setAlignment(llvm::Align(static_cast<uint64_t>(bits / 8)));
          write_slot(result, run[i]->slot, load);
        });
      }
    }
    builder.CreateBr(join);
    builder.SetInsertPoint(join);
  }
  if (vector_runs > 0) {
    note(fmt::format("load_global '{}': {} vector accesses of up to {} bits per thread",
                     info(instruction.result).name, vector_runs, widest));
  }
}

void KernelEmitter::emit(const vm::StoreGlobal& instruction) {
  const RegisterTensor& value = reg(instruction.value);
  const GlobalViewValues& view = views.at(instruction.destination.index);
  const vm::Parameter& param = program.params[static_cast<size_t>(view.param)];
  GlobalAccess access{*this, view, {}, {}, *value.map, *value.thread, value.dtype.bits()};
  for (const Expr& offset : instruction.offsets) {
    access.offsets.push_back(scalar_i64(offset));
    access.offset_divisors.push_back(divisor_of(offset));
  }
  const int bits = value.dtype.bits();
  const bool unit_stride = view.stride_exprs.back().as_int() == 1;
  int vector_runs = 0;
  int widest = 0;
  // Sub-byte elements share bytes with their neighbours (of other threads and blocks): each is
  // written into its aligned 32-bit word with two atomics that touch only its own bits; a 3-, 5-,
  // 6- or 7-bit element that crosses into the next word writes its high bits there the same way.
  auto element_wise = [&](const Run& run) {
    for (const SlotEntry* entry : run) {
      if (!entry->primary) continue;
      llvm::Value* element = read_slot(value, entry->slot);
      guarded(access.inside(*entry), [&] {
        llvm::Value* offset = access.element_offset(*entry);
        if (!value.packed) {
          auto* store = builder.CreateStore(element, access.pointer(offset));
          store->setAlignment(llvm::Align(static_cast<uint64_t>(bits / 8)));
          return;
        }
        llvm::Value* bit = builder.CreateMul(offset, const_i64(bits));
        llvm::Value* word_byte = builder.CreateShl(builder.CreateLShr(bit, 5), 2);
        llvm::Value* base = param_values[static_cast<size_t>(view.param)];
        // The element's bits and mask across two words (a 64-bit window from its first word).
        llvm::Value* shift = builder.CreateAnd(bit, 31);
        llvm::Value* mask = builder.CreateShl(const_i64((int64_t{1} << bits) - 1), shift);
        llvm::Value* code = builder.CreateShl(builder.CreateZExt(element, i64()), shift);
        auto write_part = [&](int part) {
          llvm::Value* word = builder.CreateInBoundsGEP(
              i8(), base, {builder.CreateAdd(word_byte, const_i64(4 * part))});
          const auto down = static_cast<uint64_t>(32 * part);
          llvm::Value* part_mask = builder.CreateTrunc(builder.CreateLShr(mask, down), i32());
          llvm::Value* part_code = builder.CreateTrunc(builder.CreateLShr(code, down), i32());
          builder.CreateAtomicRMW(llvm::AtomicRMWInst::And, word, builder.CreateNot(part_mask),
                                  llvm::MaybeAlign(4), llvm::AtomicOrdering::Monotonic);
          builder.CreateAtomicRMW(llvm::AtomicRMWInst::Or, word, part_code, llvm::MaybeAlign(4),
                                  llvm::AtomicOrdering::Monotonic);
        };
        write_part(0);
        if (32 % bits != 0) {
          guarded(builder.CreateICmpUGT(builder.CreateAdd(shift, const_i64(bits)), const_i64(32)),
                  [&] { write_part(1); });
        }
      });
    }
  };
  guarded(value.thread->primary, [&] {
    for (const Run& run : runs_of(*value.map, bits, 128, true)) {
      const auto k = static_cast<int64_t>(run.size());
      const int64_t access_bits = k * bits;
      const bool vectorizable =
          unit_stride && run.front()->primary && (value.packed ? access_bits % 32 == 0 : k > 1);
      if (!vectorizable) {
        element_wise(run);
        continue;
      }
      ++vector_runs;
      widest = std::max(widest, static_cast<int>(access_bits));
      const bool aligned = access.provably_aligned(run, access_bits, param.alignment_bytes);
      llvm::Value* start = access.element_offset(*run.front());
      llvm::Value* fast = access.run_inside(run);
      if (!aligned) {
        llvm::Value* address = builder.CreatePtrToInt(access.pointer(start), i64());
        llvm::Value* bit_offset = builder.CreateMul(start, const_i64(bits));
        llvm::Value* misaligned =
            builder.CreateOr(builder.CreateAnd(address, const_i64(access_bits / 8 - 1)),
                             builder.CreateAnd(bit_offset, const_i64(7)));
        fast = builder.CreateAnd(fast, builder.CreateICmpEQ(misaligned, const_i64(0)));
      }
      llvm::Value* data = gather_slots(value, run, access_bits);
      if (aligned && access.whole_or_none(run)) {
        // A run that fails the test lies wholly outside: nothing to store.
        guarded(fast, [&] {
          auto* store = builder.CreateStore(data, access.entry_pointer(*run.front()));
          store->setAlignment(
              llvm::Align(static_cast<uint64_t>(std::max<int64_t>(1, access_bits / 8))));
        });
        continue;
      }
      llvm::BasicBlock* vector_block = new_block("store_vector");
      llvm::BasicBlock* scalar_block = new_block("store_elements");
      llvm::BasicBlock* join = new_block("store_join");
      builder.CreateCondBr(fast, vector_block, scalar_block);
      builder.SetInsertPoint(vector_block);
      auto* store = builder.CreateStore(data, access.entry_pointer(*run.front()));
      store->setAlignment(
          llvm::Align(static_cast<uint64_t>(std::max<int64_t>(1, access_bits / 8))));
      builder.CreateBr(join);
      builder.SetInsertPoint(scalar_block);
      if (value.packed) {
        element_wise(run);
      } else {
        // Unit stride: element i of the run is at start + i.
        llvm::Value* others = access.others_inside(run);
        for (size_t i = 0; i < run.size(); ++i) {
          llvm::Value* element = read_slot(value, run[i]->slot);
          guarded(builder.CreateAnd(others, access.last_inside(*run[i])), [&] {
            auto* element_store = builder.CreateStore(
                element,
                access.pointer(builder.CreateAdd(start, const_i64(static_cast<int64_t>(i)))));
            element_store->setAlignment(llvm::Align(static_cast<uint64_t>(bits / 8)));
          });
        }
      }
      builder.CreateBr(join);
      builder.SetInsertPoint(join);
    }
  });
  if (vector_runs > 0) {
    note(fmt::format("store_global '{}': {} vector accesses of up to {} bits per thread",
                     info(instruction.value).name, vector_runs, widest));
  }
}

// atomic_add returns nothing, so every add is a `red`: an `atom` (what LLVM's atomicrmw becomes)
// returns the old value, which the warp waits for before it retires or passes a fence (the
// quantized GEMM's fused split-K finish: 1.3 us faster at M=16 on an H200). bf16 below sm_90 has
// no red: LLVM expands the atomicrmw into a loop of 32-bit compare-and-swaps on the word that
// holds the element. Its sum rounds once from f32, which holds the sum of two bf16 values exactly
// enough (24 >= 2 * 8 + 2): the interpreter's one rounding of the exact sum.
void KernelEmitter::emit(const vm::AtomicAdd& instruction) {
  const RegisterTensor& value = reg(instruction.value);
  const GlobalViewValues& view = views.at(instruction.destination.index);
  const DataType type = value.dtype;
  // The red's type suffix and register constraint; none (bf16 below sm_90): the atomicrmw.
  std::string suffix, constraint;
  if (type == DataType::f32()) {
    suffix = "f32", constraint = "f";
  } else if (type == DataType::f64()) {
    suffix = "f64", constraint = "d";
  } else if (type == DataType::f16()) {
    suffix = "noftz.f16", constraint = "h";
  } else if (type == DataType::bf16()) {
    if (target.sm >= 90) suffix = "noftz.bf16", constraint = "h";
  } else if (type.is_integer() && (type.bits() == 32 || type.bits() == 64)) {
    suffix = type.bits() == 32 ? "u32" : "u64", constraint = type.bits() == 32 ? "r" : "l";
  } else {
    unsupported(fmt::format("atomic_add of {}", type.name()));
  }
  GlobalAccess access{*this, view, {}, {}, *value.map, *value.thread, type.bits()};
  for (const Expr& offset : instruction.offsets) {
    access.offsets.push_back(scalar_i64(offset));
    access.offset_divisors.push_back(divisor_of(offset));
  }
  auto add = [&](llvm::Value* pointer, llvm::Value* element) {
    if (suffix.empty()) {
      builder.CreateAtomicRMW(
          type.is_float() ? llvm::AtomicRMWInst::FAdd : llvm::AtomicRMWInst::Add, pointer, element,
          llvm::MaybeAlign(type.bits() / 8), llvm::AtomicOrdering::Monotonic);
      return;
    }
    if (constraint == "h") element = builder.CreateBitCast(element, builder.getInt16Ty());
    auto* asm_type = llvm::FunctionType::get(builder.getVoidTy(),
                                             {pointer->getType(), element->getType()}, false);
    builder.CreateCall(
        asm_type,
        llvm::InlineAsm::get(asm_type, fmt::format("red.global.add.{} [$0], $1;", suffix),
                             "l," + constraint + ",~{memory}", true),
        {pointer, element});
  };
  guarded(value.thread->primary, [&] {
    for (const SlotEntry& entry : value.map->entries) {
      if (!entry.primary) continue;
      llvm::Value* element = read_slot(value, entry.slot);
      guarded(access.inside(entry),
              [&] { add(access.pointer(access.element_offset(entry)), element); });
    }
  });
}

// fetch_add: every thread arrives (bar.sync orders the block's stores before what thread 0 does
// next); thread 0 releases them at GPU scope (fence.acq_rel.gpu, cumulative), adds to the
// counter, acquires (a second fence) and passes the old value on through a shared word; the
// second barrier orders the other threads' later loads after that acquire. This is the
// semaphore of split-K reductions; one fence per block instead of one per thread. A counter
// element outside the view is not touched and reads as 0.
void KernelEmitter::emit_fetch_add(const vm::FetchAddStmt& fetch) {
  const GlobalViewValues& view = views.at(fetch.counter.index);
  llvm::Value* offset = const_i64(0);
  llvm::Value* inside = builder.getTrue();
  for (size_t d = 0; d < fetch.offsets.size(); ++d) {
    llvm::Value* index = scalar_i64(fetch.offsets[d]);
    offset = builder.CreateAdd(offset, builder.CreateMul(index, view.strides[d]));
    inside = builder.CreateAnd(inside, index_inside(*this, view, index, d));
  }
  llvm::Value* counter =
      builder.CreateInBoundsGEP(i32(), param_values[static_cast<size_t>(view.param)], {offset});
  llvm::Value* increment = builder.CreateSExtOrTrunc(scalar(fetch.value), i32());
  const int64_t scratch = reserve_scratch(4);
  llvm::Value* word = shared_pointer(const_i32(scratch));
  auto fence = [&] {
    auto* type = llvm::FunctionType::get(builder.getVoidTy(), false);
    builder.CreateCall(type, llvm::InlineAsm::get(type, "fence.acq_rel.gpu;", "~{memory}", true));
  };
  barrier();
  guarded(builder.CreateICmpEQ(thread_index, const_i32(0)), [&] {
    llvm::Value* old = prologue.CreateAlloca(i32());
    builder.CreateStore(const_i32(0), old);
    guarded(inside, [&] {
      fence();
      builder.CreateStore(
          builder.CreateAtomicRMW(llvm::AtomicRMWInst::Add, counter, increment, llvm::MaybeAlign(4),
                                  llvm::AtomicOrdering::Monotonic),
          old);
      fence();
    });
    builder.CreateStore(builder.CreateLoad(i32(), old), word);
  });
  barrier();
  llvm::Value* value = builder.CreateLoad(i32(), word);
  barrier();  // the shared word may be scratch for what follows
  llvm::AllocaInst*& slot = variables[fetch.var.index()];
  if (slot == nullptr) slot = prologue.CreateAlloca(i32(), nullptr, fetch.var.name());
  builder.CreateStore(value, slot);
  note(fmt::format("fetch_add on '{}': barrier, fence.acq_rel.gpu and atom.add by thread 0",
                   info(fetch.counter).name));
}

// ---- shared memory ------------------------------------------------------------------------------

namespace {

// The code of one element of a packed (sub-byte) tile at `byte`, bit `within`: one byte, or two
// where a 3-, 5-, 6- or 7-bit element crosses into the next (read only then: the next byte may
// lie past the end of shared memory). Unswizzled tiles only: a swizzle may move the next byte.
llvm::Value* load_packed_shared_element(KernelEmitter& e, llvm::Value* byte, llvm::Value* within,
                                        int bits) {
  llvm::IRBuilderBase& b = e.builder;
  llvm::Value* low = b.CreateLoad(e.i8(), e.shared_pointer(byte));
  if (8 % bits == 0) return b.CreateLShr(low, b.CreateTrunc(within, e.i8()));
  llvm::Value* crosses = b.CreateICmpUGT(b.CreateAdd(within, e.const_i32(bits)), e.const_i32(8));
  llvm::BasicBlock* before = b.GetInsertBlock();
  llvm::BasicBlock* next_byte = e.new_block("load_next_byte");
  llvm::BasicBlock* join = e.new_block("load_element_join");
  b.CreateCondBr(crosses, next_byte, join);
  b.SetInsertPoint(next_byte);
  llvm::Value* next = b.CreateLoad(e.i8(), e.shared_pointer(b.CreateAdd(byte, e.const_i32(1))));
  llvm::Value* high = b.CreateShl(b.CreateZExt(next, e.i32()), 8);
  b.CreateBr(join);
  b.SetInsertPoint(join);
  llvm::PHINode* high_bits = b.CreatePHI(e.i32(), 2);
  high_bits->addIncoming(e.const_i32(0), before);
  high_bits->addIncoming(high, next_byte);
  llvm::Value* both = b.CreateOr(b.CreateZExt(low, e.i32()), high_bits);
  return b.CreateTrunc(b.CreateLShr(both, within), e.i8());
}

// Whether k elements starting at a run's first element are contiguous and k-aligned in the tile.
bool tile_run_contiguous(const SharedTile& tile, int64_t k, int64_t last_index_divisor) {
  if (k == 1) return true;
  const size_t rank = tile.groups.size();
  if (tile.layout.offset().get(layout::Axis::smem()) % k != 0) return false;
  for (size_t d = 0; d < rank; ++d) {
    const std::vector<layout::Iter>& iters = tile.groups[d];
    for (size_t i = 0; i < iters.size(); ++i) {
      const layout::Iter& iter = iters[i];
      if (iter.extent == 1) continue;
      const bool innermost_of_last = d + 1 == rank && i + 1 == iters.size();
      if (innermost_of_last) {
        if (iter.stride != 1 || iter.extent % k != 0) return false;
      } else if (iter.stride % k != 0) {
        return false;
      }
    }
  }
  if (tile.groups.empty() || tile.groups.back().empty()) return false;
  return last_index_divisor % k == 0;
}

// A register tensor placed on a shared tile at `offsets` (load_shared, store_shared,
// load_peer_shared): the offsets as run-time values (computed once, here), the runs of its slots
// in pieces of at most one 128-bit access (or swizzle unit), whether a run lies contiguous and
// aligned in the tile, and each slot's element address.
class SharedPlacement {
 public:
  SharedPlacement(KernelEmitter& emitter, const RegisterTensor& registers, const SharedTile& tile,
                  const std::vector<Expr>& offsets)
      : e_(emitter), registers_(registers), tile_(tile) {
    for (const Expr& offset : offsets) {
      offsets_.push_back(e_.scalar_i32(offset));
      divisors_.push_back(e_.divisor_of(offset));
    }
  }

  std::vector<Run> runs(bool require_primary, bool wide_odd_packed = false) const {
    const int64_t unit_bits = tile_.swizzle.is_identity() ? 128 : tile_.swizzle.unit_bytes() * 8;
    return runs_of(*registers_.map, registers_.dtype.bits(), std::min<int64_t>(128, unit_bits),
                   require_primary, wide_odd_packed);
  }

  bool contiguous(const Run& run) const {
    const size_t last = offsets_.size() - 1;
    const int64_t last_divisor =
        gcd_all({divisors_.back(), registers_.map->thread_part_divisor(static_cast<int>(last)),
                 run.front()->index.back() == 0 ? int64_t{1} << 20 : run.front()->index.back()});
    return tile_run_contiguous(tile_, static_cast<int64_t>(run.size()), last_divisor);
  }

  // The byte of the slot's element in the tile, and its bit within the byte.
  std::pair<llvm::Value*, llvm::Value*> address(const SlotEntry& entry) const {
    std::vector<llvm::Value*> index;
    for (size_t d = 0; d < offsets_.size(); ++d) {
      index.push_back(e_.builder.CreateAdd(
          offsets_[d],
          e_.builder.CreateAdd(registers_.thread->index_part[d], e_.const_i32(entry.index[d]))));
    }
    return e_.tile_address(tile_, index);
  }

 private:
  KernelEmitter& e_;
  const RegisterTensor& registers_;
  const SharedTile& tile_;
  std::vector<llvm::Value*> offsets_;
  std::vector<int64_t> divisors_;
};

// Whether ldmatrix/stmatrix can address `tile` (column offsets dividing by column_divisor) for a
// tensor of `dtype`: 16-bit elements, rows of 8 elements contiguous and 16-byte aligned.
bool matrix_addressable(const SharedTile& tile, DataType dtype, int64_t column_divisor) {
  if (dtype.bits() != 16 || tile.dtype.bits() != 16 || tile.shape.size() != 2) return false;
  if (!tile.swizzle.is_identity() && tile.swizzle.unit_bytes() < 16) return false;
  return tile.base_bytes % 16 == 0 && tile_run_contiguous(tile, 8, column_divisor);
}

}  // namespace

// ldmatrix: each lane gives the address of one 16-byte row of an 8x8 matrix of 16-bit elements
// (8 x 16 bytes); lanes 8j..8j+7 the rows of matrix j, which lands in destination register j, lane
// l receiving bytes 4(l % 4)..4(l % 4)+3 of row l / 4. With r = lane % 8 and e elements to a
// 16-byte row (8 of 16 bits, 16 of 8 bits):
//   A (m x k, k contiguous), x4: rows r + 8 * (lane / 8 % 2), columns e * (lane / 16) of an
//     m16 x k(2e) atom give its four registers (matrices: rows 0-7 / 8-15 by the two column
//     halves), for 16- and 8-bit inputs alike: a lane's 4 bytes of a row are its A register.
//   B (k x n, n contiguous, 16-bit), x4.trans: the same walk over k rows and two 8-column groups
//     gives b0, b1 of two neighbouring atoms (x2.trans for a last odd one): .trans hands lane l
//     the column l / 4, rows 2(l % 4) and 2(l % 4) + 1 of each matrix, which is the B fragment.
//     8-bit B would need a byte transpose, which ldmatrix does not do: the generic path then.
std::vector<llvm::Value*> KernelEmitter::load_matrices(int count, bool transpose,
                                                       llvm::Value* address) {
  std::vector<llvm::Type*> outputs(static_cast<size_t>(count), i32());
  auto* asm_type = llvm::FunctionType::get(llvm::StructType::get(context, outputs), {i32()}, false);
  std::string registers;
  std::string constraints;
  for (int i = 0; i < count; ++i) {
    registers += fmt::format("{}${}", i == 0 ? "" : ", ", i);
    constraints += "=r,";
  }
  llvm::InlineAsm* code =
      llvm::InlineAsm::get(asm_type,
                           fmt::format("ldmatrix.sync.aligned.m8n8.x{}{}.shared.b16 {{{}}}, [${}];",
                                       count, transpose ? ".trans" : "", registers, count),
                           constraints + "r", true);
  llvm::CallInst* call = builder.CreateCall(asm_type, code, {address});
  call->setOnlyReadsMemory();
  call->setConvergent();
  std::vector<llvm::Value*> words;
  for (unsigned i = 0; i < static_cast<unsigned>(count); ++i)
    words.push_back(builder.CreateExtractValue(call, {i}));
  return words;
}

bool KernelEmitter::emit_ldmatrix(const vm::LoadShared& instruction, const MmaOperand& operand) {
  const RegisterTensor& result = reg(instruction.result);
  const SharedTile& source = tile(instruction.source);
  const int bits = result.dtype.bits();
  if (result.packed || (bits != 16 && bits != 8) || source.dtype.bits() != bits ||
      source.shape.size() != 2 || instruction.offsets.size() != 2) {
    return false;
  }
  if (bits == 8 && operand.role == 'b') return false;
  const int64_t row_elements = 128 / bits;
  if (!source.swizzle.is_identity() && source.swizzle.unit_bytes() < 16) return false;
  if (source.base_bytes % 16 != 0) return false;
  if (!tile_run_contiguous(source, row_elements, divisor_of(instruction.offsets[1]))) return false;
  const MmaTiling& t = operand.tiling;
  llvm::Value* row0 = scalar_i32(instruction.offsets[0]);
  llvm::Value* col0 = scalar_i32(instruction.offsets[1]);
  llvm::Value* lane = builder.CreateAnd(thread_index, const_i32(31));
  llvm::Value* warp = builder.CreateLShr(thread_index, 5);
  llvm::Value* warp_m = builder.CreateUDiv(warp, const_i32(t.warps_n));
  llvm::Value* warp_n = builder.CreateURem(warp, const_i32(t.warps_n));
  llvm::Value* lane_row = builder.CreateAdd(
      builder.CreateAnd(lane, const_i32(7)),
      builder.CreateShl(builder.CreateAnd(builder.CreateLShr(lane, 3), const_i32(1)), 3));
  llvm::Value* lane_col = builder.CreateShl(builder.CreateLShr(lane, 4),
                                            std::countr_zero(static_cast<uint64_t>(row_elements)));

  auto ldmatrix = [&](int count, bool transpose, llvm::Value* row, llvm::Value* col) {
    auto [byte, within] = tile_address(source, {row, col});
    (void)within;
    return load_matrices(count, transpose, builder.CreatePtrToInt(shared_pointer(byte), i32()));
  };
  const int64_t per_register = t.per_register();
  llvm::Type* elements =
      llvm::FixedVectorType::get(value_type(result.dtype), static_cast<unsigned>(per_register));
  auto write_register = [&](int64_t slot, llvm::Value* word) {
    llvm::Value* parts = builder.CreateBitCast(word, elements);
    for (int64_t e = 0; e < per_register; ++e) {
      write_slot(result, slot + e, builder.CreateExtractElement(parts, static_cast<uint64_t>(e)));
    }
  };
  int instructions = 0;
  if (operand.role == 'a') {
    for (int64_t i = 0; i < t.tiles_m(); ++i) {
      llvm::Value* row = builder.CreateAdd(
          builder.CreateAdd(row0, lane_row),
          builder.CreateMul(
              builder.CreateAdd(builder.CreateMul(warp_m, const_i32(t.tiles_m())), const_i32(i)),
              const_i32(16)));
      for (int64_t s = 0; s < t.steps_k(); ++s) {
        llvm::Value* col =
            builder.CreateAdd(builder.CreateAdd(col0, lane_col), const_i32(t.atom_k() * s));
        const std::vector<llvm::Value*> words = ldmatrix(4, false, row, col);
        for (int64_t r = 0; r < 4; ++r)
          write_register(t.a_slot(i, s) + per_register * r, words[static_cast<size_t>(r)]);
        ++instructions;
      }
    }
  } else {
    for (int64_t s = 0; s < t.steps_k(); ++s) {
      llvm::Value* row = builder.CreateAdd(builder.CreateAdd(row0, lane_row), const_i32(16 * s));
      for (int64_t j = 0; j < t.tiles_n(); j += 2) {
        const bool both = j + 1 < t.tiles_n();
        llvm::Value* col = builder.CreateAdd(
            col0,
            builder.CreateMul(
                builder.CreateAdd(builder.CreateMul(warp_n, const_i32(t.tiles_n())), const_i32(j)),
                const_i32(8)));
        if (both) col = builder.CreateAdd(col, lane_col);
        const std::vector<llvm::Value*> words = ldmatrix(both ? 4 : 2, true, row, col);
        for (int64_t r = 0; r < (both ? 4 : 2); ++r) {
          write_register(t.b_slot(s, j + r / 2) + 2 * (r % 2), words[static_cast<size_t>(r)]);
        }
        ++instructions;
      }
    }
  }
  note(fmt::format("load_shared '{}': {} ldmatrix{} per warp (mma operand {})",
                   info(instruction.result).name, instructions, operand.role == 'b' ? ".trans" : "",
                   operand.role));
  return true;
}

void KernelEmitter::emit(const vm::LoadShared& instruction) {
  if (auto found = mma_operands.find(instruction.result.index); found != mma_operands.end()) {
    if (emit_ldmatrix(instruction, found->second)) return;
  }
  if (emit_matrix_load(instruction)) return;
  const RegisterTensor& result = reg(instruction.result);
  const SharedTile& source = tile(instruction.source);
  const int bits = result.dtype.bits();
  const SharedPlacement placement(*this, result, source, instruction.offsets);
  int vector_runs = 0;
  for (const Run& run : placement.runs(false, /*wide_odd_packed=*/source.swizzle.is_identity())) {
    auto k = static_cast<int64_t>(run.size());
    if (k > 1 && placement.contiguous(run) && (!result.packed || (k * bits) % 32 == 0)) {
      ++vector_runs;
      const int64_t access_bits = k * bits;
      llvm::Value* byte = placement.address(*run.front()).first;
      if (result.packed) {
        load_packed_words(result, run.front()->slot * bits / 32, access_bits, [&](int64_t at) {
          return shared_pointer(builder.CreateAdd(byte, const_i32(static_cast<int32_t>(at))));
        });
      } else {
        auto* load = builder.CreateLoad(access_type(context, access_bits), shared_pointer(byte));
        load->setAlignment(llvm::Align(static_cast<uint64_t>(access_bits / 8)));
        scatter_slots(result, run, load);
      }
      continue;
    }
    for (const SlotEntry* entry : run) {
      auto [byte, within] = placement.address(*entry);
      if (result.packed) {
        if (8 % bits != 0 && !source.swizzle.is_identity()) {
          unsupported(fmt::format("element-wise shared loads of {} from a swizzled tile",
                                  result.dtype.name()));
        }
        write_slot(result, entry->slot, load_packed_shared_element(*this, byte, within, bits));
      } else {
        auto* load = builder.CreateLoad(value_type(result.dtype), shared_pointer(byte));
        load->setAlignment(llvm::Align(static_cast<uint64_t>(bits / 8)));
        write_slot(result, entry->slot, load);
      }
    }
  }
  if (vector_runs > 0) {
    note(fmt::format("load_shared '{}': {} vector accesses per thread",
                     info(instruction.result).name, vector_runs));
  }
}

// A lane finds a matrix's top-left element from its own share of it: its index minus its place
// in the atom, the same in every lane of the warp (checked when matching).
void KernelEmitter::for_each_matrix_group(
    const RegisterTensor& value, const SharedTile& tile, const std::vector<Expr>& offsets,
    const MatrixFragments& fragments,
    const std::function<void(int count, llvm::Value* address, const std::vector<int64_t>& slots)>&
        emit_group) {
  const bool transpose = fragments.transpose;
  llvm::Value* lane = builder.CreateAnd(thread_index, const_i32(31));
  llvm::Value* group = builder.CreateLShr(lane, 2);
  llvm::Value* in_group = builder.CreateAnd(lane, const_i32(3));
  // The lane's place in each matrix it holds: (row, column) of its first element.
  llvm::Value* place_row = transpose ? builder.CreateShl(in_group, 1) : group;
  llvm::Value* place_col = transpose ? group : builder.CreateShl(in_group, 1);
  // The warp's part of the thread's index where the layout keeps it apart (its bits are then
  // plain to tile_address), else the index less the lane's place.
  const std::vector<llvm::Value*>& warp_part = value.thread->warp_index_part;
  llvm::Value* row0 = builder.CreateAdd(
      scalar_i32(offsets[0]),
      warp_part.empty() ? builder.CreateSub(value.thread->index_part[0], place_row) : warp_part[0]);
  llvm::Value* col0 = builder.CreateAdd(
      scalar_i32(offsets[1]),
      warp_part.empty() ? builder.CreateSub(value.thread->index_part[1], place_col) : warp_part[1]);
  llvm::Value* matrix_row = builder.CreateAnd(lane, const_i32(7));
  llvm::Value* matrix_of_lane = builder.CreateLShr(lane, 3);
  const std::vector<int64_t>& words = fragments.words;
  // A group's lane picks the top-left of matrix q / 8 % count: the first matrix's (a constant)
  // plus that matrix's offset from it. The offsets repeat from group to group (the k steps of a
  // fragment), so their selects are made once, and the constant stays an addend that
  // tile_address can fold into the access's immediate offset.
  std::map<std::vector<int64_t>, llvm::Value*> offset_selects;
  auto lane_offset = [&](llvm::Value* which, const std::vector<int64_t>& deltas) -> llvm::Value* {
    if (std::all_of(deltas.begin(), deltas.end(), [](int64_t v) { return v == 0; })) return nullptr;
    auto [found, inserted] = offset_selects.try_emplace(deltas, nullptr);
    if (inserted) {
      llvm::Value* picked = const_i32(deltas[0]);
      for (size_t j = 1; j < deltas.size(); ++j) {
        picked =
            builder.CreateSelect(builder.CreateICmpEQ(which, const_i32(static_cast<int64_t>(j))),
                                 const_i32(deltas[j]), picked);
      }
      found->second = picked;
    }
    return found->second;
  };
  for (size_t first = 0; first < words.size();) {
    const size_t remaining = words.size() - first;
    const int count = remaining >= 4 ? 4 : remaining >= 2 ? 2 : 1;
    llvm::Value* which = builder.CreateAnd(matrix_of_lane, const_i32(count - 1));
    std::vector<int64_t> slots;
    std::vector<int64_t> row_offsets;
    std::vector<int64_t> col_offsets;
    for (int j = 0; j < count; ++j) {
      const int64_t slot = 2 * words[first + static_cast<size_t>(j)];
      const SlotEntry* entry = value.map->entry_of_slot(slot);
      row_offsets.push_back(entry->index[0]);
      col_offsets.push_back(entry->index[1]);
      slots.push_back(slot);
    }
    const int64_t top_row = row_offsets[0];
    const int64_t top_col = col_offsets[0];
    for (int j = 0; j < count; ++j) {
      row_offsets[static_cast<size_t>(j)] -= top_row;
      col_offsets[static_cast<size_t>(j)] -= top_col;
    }
    llvm::Value* row = builder.CreateAdd(row0, matrix_row);
    if (llvm::Value* offset = lane_offset(which, row_offsets)) row = builder.CreateAdd(row, offset);
    row = builder.CreateAdd(row, const_i32(top_row));
    llvm::Value* col = col0;
    if (llvm::Value* offset = lane_offset(which, col_offsets)) col = builder.CreateAdd(col, offset);
    col = builder.CreateAdd(col, const_i32(top_col));
    auto [byte, within] = tile_address(tile, {row, col});
    (void)within;
    emit_group(count, builder.CreatePtrToInt(shared_pointer(byte), i32()), slots);
    first += static_cast<size_t>(count);
  }
}

bool KernelEmitter::emit_matrix_load(const vm::LoadShared& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const SharedTile& source = tile(instruction.source);
  if (result.packed || instruction.offsets.size() != 2 ||
      !matrix_addressable(source, result.dtype, divisor_of(instruction.offsets[1]))) {
    return false;
  }
  const std::optional<MatrixFragments> fragments =
      match_matrix_fragments(*result.map, /*replicas_allowed=*/true);
  if (!fragments) return false;
  llvm::Type* pair = llvm::FixedVectorType::get(value_type(result.dtype), 2);
  int instructions = 0;
  for_each_matrix_group(
      result, source, instruction.offsets, *fragments,
      [&](int count, llvm::Value* address, const std::vector<int64_t>& slots) {
        const std::vector<llvm::Value*> words = load_matrices(count, fragments->transpose, address);
        for (int j = 0; j < count; ++j) {
          llvm::Value* halves = builder.CreateBitCast(words[static_cast<size_t>(j)], pair);
          const int64_t slot = slots[static_cast<size_t>(j)];
          write_slot(result, slot, builder.CreateExtractElement(halves, uint64_t{0}));
          write_slot(result, slot + 1, builder.CreateExtractElement(halves, uint64_t{1}));
        }
        ++instructions;
      });
  note(fmt::format("load_shared '{}': {} ldmatrix{} per warp", info(instruction.result).name,
                   instructions, fragments->transpose ? ".trans" : ""));
  return true;
}

// stmatrix (sm_90): the register words of a 16-bit tensor that are the 8x8 matrices of the
// ldmatrix atom go to shared memory (for_each_matrix_group).
bool KernelEmitter::emit_stmatrix(const vm::StoreShared& instruction) {
  if (target.sm < 90) return false;
  const RegisterTensor& value = reg(instruction.value);
  const SharedTile& destination = tile(instruction.destination);
  if (value.packed || instruction.offsets.size() != 2 ||
      !matrix_addressable(destination, value.dtype, divisor_of(instruction.offsets[1]))) {
    return false;
  }
  const std::optional<MatrixFragments> fragments =
      match_matrix_fragments(*value.map, /*replicas_allowed=*/false);
  if (!fragments) return false;
  llvm::Type* pair = llvm::FixedVectorType::get(value_type(value.dtype), 2);
  int instructions = 0;
  for_each_matrix_group(
      value, destination, instruction.offsets, *fragments,
      [&](int count, llvm::Value* address, const std::vector<int64_t>& slots) {
        std::vector<llvm::Value*> arguments = {address};
        for (int64_t slot : slots) {
          llvm::Value* halves = llvm::PoisonValue::get(pair);
          halves = builder.CreateInsertElement(halves, read_slot(value, slot), uint64_t{0});
          halves = builder.CreateInsertElement(halves, read_slot(value, slot + 1), uint64_t{1});
          arguments.push_back(builder.CreateBitCast(halves, i32()));
        }
        std::vector<llvm::Type*> types(arguments.size(), i32());
        std::string operands;
        for (int j = 1; j <= count; ++j)
          operands += fmt::format("{}${}", j == 1 ? "" : ", ", j);
        auto* asm_type = llvm::FunctionType::get(builder.getVoidTy(), types, false);
        std::string constraints = "r";
        for (int j = 0; j < count; ++j)
          constraints += ",r";
        llvm::InlineAsm* code = llvm::InlineAsm::get(
            asm_type,
            fmt::format("stmatrix.sync.aligned.m8n8.x{}{}.shared.b16 [$0], {{{}}};", count,
                        fragments->transpose ? ".trans" : "", operands),
            constraints + ",~{memory}", true);
        builder.CreateCall(asm_type, code, arguments)->setConvergent();
        ++instructions;
      });
  note(fmt::format("store_shared '{}': {} stmatrix{} per warp", info(instruction.value).name,
                   instructions, fragments->transpose ? ".trans" : ""));
  return true;
}

void KernelEmitter::emit(const vm::StoreShared& instruction) {
  if (emit_stmatrix(instruction)) return;
  const RegisterTensor& value = reg(instruction.value);
  const SharedTile& destination = tile(instruction.destination);
  const int bits = value.dtype.bits();
  const SharedPlacement placement(*this, value, destination, instruction.offsets);
  guarded(value.thread->primary, [&] {
    for (const Run& run : placement.runs(true)) {
      auto k = static_cast<int64_t>(run.size());
      if (k > 1 && run.front()->primary && placement.contiguous(run) &&
          (!value.packed || (k * bits) % 32 == 0)) {
        const int64_t access_bits = k * bits;
        llvm::Value* data = gather_slots(value, run, access_bits);
        llvm::Value* byte = placement.address(*run.front()).first;
        auto* store = builder.CreateStore(data, shared_pointer(byte));
        store->setAlignment(llvm::Align(static_cast<uint64_t>(access_bits / 8)));
        continue;
      }
      for (const SlotEntry* entry : run) {
        if (!entry->primary) continue;
        if (value.packed) {
          unsupported(
              fmt::format("element-wise stores of {} to shared memory (threads would share bytes)",
                          value.dtype.name()));
        }
        llvm::Value* byte = placement.address(*entry).first;
        auto* store = builder.CreateStore(read_slot(value, entry->slot), shared_pointer(byte));
        store->setAlignment(llvm::Align(static_cast<uint64_t>(bits / 8)));
      }
    }
  });
}

// ---- asynchronous copies
// --------------------------------------------------------------------------

void KernelEmitter::emit(const vm::CopyAsync& instruction) {
  if (!target.has_cp_async()) unsupported("copy_async needs sm_80 or newer");
  const SharedTile& destination = tile(instruction.destination);
  const GlobalViewValues& view = views.at(instruction.source.index);
  const vm::Parameter& param = program.params[static_cast<size_t>(view.param)];
  const DataType dtype = view.dtype;
  const int bits = dtype.bits();
  const layout::Layout threads =
      instruction.threads ? *instruction.threads
                          : vm::default_register_layout(instruction.shape, dtype, program.warps);
  const RegisterMap& map = register_map(threads, instruction.shape);
  const ThreadValues& thread = thread_values(map);
  GlobalAccess access{*this, view, {}, {}, map, thread, bits};
  for (const Expr& offset : instruction.source_offsets) {
    access.offsets.push_back(scalar_i64(offset));
    access.offset_divisors.push_back(divisor_of(offset));
  }
  std::vector<llvm::Value*> tile_offsets;
  std::vector<int64_t> tile_divisors;
  for (const Expr& offset : instruction.destination_offsets) {
    tile_offsets.push_back(scalar_i32(offset));
    tile_divisors.push_back(divisor_of(offset));
  }
  const size_t rank = tile_offsets.size();
  // Dimensions the program promises the box stays inside (checked by the interpreter): no
  // bounds test, no zero fill, no element-wise fallback along them.
  std::vector<bool>& assumed_inside = access.assumed_inside;
  assumed_inside.assign(rank, false);
  for (int dim : instruction.in_bounds)
    assumed_inside[static_cast<size_t>(dim)] = true;
  // cp.async of `bytes` (4, 8, 16) from `global` to shared byte `shared_byte`, reading
  // `source_bytes` and zero-filling the rest (the plain form when nothing is zero-filled). In
  // inline PTX, so that the constant parts of both addresses become the instruction's immediate
  // offsets: the intrinsics take bare registers, and each constant then costs a 64-bit add per
  // copy in the loop.
  auto cp_async = [&](int64_t bytes, llvm::Value* shared_byte, llvm::Value* global,
                      llvm::Value* source_bytes) {
    int64_t shared_offset = 0;
    while (auto* add = llvm::dyn_cast<llvm::BinaryOperator>(shared_byte)) {
      auto* constant = llvm::dyn_cast<llvm::ConstantInt>(add->getOperand(1));
      if (add->getOpcode() != llvm::Instruction::Add || constant == nullptr) break;
      shared_offset += constant->getSExtValue();
      shared_byte = add->getOperand(0);
    }
    int64_t global_offset = 0;
    while (auto* gep = llvm::dyn_cast<llvm::GetElementPtrInst>(global)) {
      auto* constant = gep->getNumIndices() == 1
                           ? llvm::dyn_cast<llvm::ConstantInt>(gep->getOperand(1))
                           : nullptr;
      if (constant == nullptr || !gep->getSourceElementType()->isIntegerTy(8)) break;
      global_offset += constant->getSExtValue();
      global = gep->getPointerOperand();
    }
    if (shared_offset < INT32_MIN || shared_offset > INT32_MAX || global_offset < INT32_MIN ||
        global_offset > INT32_MAX) {
      unsupported("a cp.async offset beyond 32 bits");
    }
    auto* whole = llvm::dyn_cast<llvm::ConstantInt>(source_bytes);
    const bool fills = whole == nullptr || whole->getSExtValue() != bytes;
    std::vector<llvm::Value*> operands = {
        builder.CreatePtrToInt(shared_pointer(shared_byte), i32()), global};
    if (fills) operands.push_back(source_bytes);
    std::vector<llvm::Type*> types;
    for (llvm::Value* operand : operands)
      types.push_back(operand->getType());
    auto* asm_type = llvm::FunctionType::get(builder.getVoidTy(), types, false);
    const std::string text =
        fmt::format("cp.async.{}.shared.global [$0+{}], [$1+{}], {}{};", bytes == 16 ? "cg" : "ca",
                    shared_offset, global_offset, bytes, fills ? ", $2" : "");
    const std::string constraints = fills ? "r,l,r,~{memory}" : "r,l,~{memory}";
    builder.CreateCall(asm_type, llvm::InlineAsm::get(asm_type, text, constraints, true), operands);
  };
  const bool unit_stride = view.stride_exprs.back().as_int() == 1;
  const int64_t unit_bits =
      destination.swizzle.is_identity() ? 128 : destination.swizzle.unit_bytes() * 8;
  auto tile_index = [&](const SlotEntry& entry) {
    std::vector<llvm::Value*> index;
    for (size_t d = 0; d < rank; ++d) {
      index.push_back(builder.CreateAdd(
          tile_offsets[d], builder.CreateAdd(thread.index_part[d], const_i32(entry.index[d]))));
    }
    return index;
  };
  int copies = 0;
  int widest = 0;
  auto synchronous = [&](const Run& run) {
    for (const SlotEntry* entry : run) {
      if (!entry->primary) continue;
      if (bits < 8) {
        unsupported(fmt::format("copy_async of {} elements that are not whole aligned words",
                                dtype.name()));
      }
      llvm::Value* slot = prologue.CreateAlloca(value_type(dtype));
      builder.CreateStore(llvm::Constant::getNullValue(value_type(dtype)), slot);
      guarded(access.inside(*entry), [&] {
        auto* load =
            builder.CreateLoad(value_type(dtype), access.pointer(access.element_offset(*entry)));
        load->setAlignment(llvm::Align(static_cast<uint64_t>(bits / 8)));
        builder.CreateStore(load, slot);
      });
      auto [byte, within] = tile_address(destination, tile_index(*entry));
      (void)within;
      builder.CreateStore(builder.CreateLoad(value_type(dtype), slot), shared_pointer(byte));
    }
  };
  // Sub-byte elements move as whole words only: a piece of a thread's bit stream whose start
  // is provably aligned (there is no element-wise fallback: elements share bytes), whole
  // pieces of 4, 8 or 16 bytes (odd widths give runs of up to 48 bytes, copied in pieces).
  const bool packed = bits < 8;
  guarded(thread.primary, [&] {
    for (const Run& run : runs_of(map, bits, std::min<int64_t>(128, unit_bits), true, packed)) {
      auto k = static_cast<int64_t>(run.size());
      int64_t bytes = k * bits / 8;
      // Pieces of 4, 8 or 16 bytes only.
      const int64_t last_divisor =
          gcd_all({tile_divisors.back(), map.thread_part_divisor(static_cast<int>(rank - 1)),
                   run.front()->index.back() == 0 ? int64_t{1} << 20 : run.front()->index.back()});
      const bool usable = unit_stride && run.front()->primary && (k * bits) % 32 == 0 &&
                          bytes >= 4 && tile_run_contiguous(destination, k, last_divisor);
      if (!usable) {
        synchronous(run);
        continue;
      }
      ++copies;
      const int64_t piece_bytes = piece_bits_of(bytes * 8) / 8;
      widest = std::max(widest, static_cast<int>(piece_bytes));
      const bool aligned = access.provably_aligned(run, piece_bytes * 8, param.alignment_bytes);
      if (packed) {
        if (!aligned) {
          unsupported(
              fmt::format("copy_async of {} elements whose address is not provably a "
                          "multiple of {} bytes (declare the pointer's alignment and "
                          "the divisors of the offsets)",
                          dtype.name(), piece_bytes));
        }
        // The whole run is inside the view or outside it (zero-filled); a run cut by the end
        // of the last dimension cannot be zero-filled element by element, and traps.
        llvm::Value* others_inside = access.others_inside(run);
        llvm::Value* inside = others_inside;
        if (!assumed_inside[rank - 1]) {
          llvm::Value* first = access.index_i64(*run.front(), rank - 1);
          llvm::Value* last_inside = builder.CreateAnd(
              builder.CreateICmpSGE(first, const_i64(0)),
              builder.CreateICmpSLE(builder.CreateAdd(first, const_i64(k)), view.shape[rank - 1]));
          llvm::Value* last_outside = builder.CreateOr(
              builder.CreateICmpSGE(first, view.shape[rank - 1]),
              builder.CreateICmpSLE(builder.CreateAdd(first, const_i64(k)), const_i64(0)));
          inside = builder.CreateAnd(others_inside, last_inside);
          llvm::Value* cut = builder.CreateAnd(
              others_inside, builder.CreateNot(builder.CreateOr(last_inside, last_outside)));
          guarded(cut, [&] { builder.CreateIntrinsic(llvm::Intrinsic::trap, {}, {}); });
        }
        llvm::Value* source_bytes = builder.CreateSelect(
            inside, const_i32(static_cast<int32_t>(piece_bytes)), const_i32(0));
        llvm::Value* global = access.entry_pointer(*run.front());
        auto [byte, within] = tile_address(destination, tile_index(*run.front()));
        (void)within;
        for (int64_t at = 0; at < bytes; at += piece_bytes) {
          cp_async(piece_bytes, builder.CreateAdd(byte, const_i32(static_cast<int32_t>(at))),
                   builder.CreateInBoundsGEP(i8(), global, {const_i64(at)}), source_bytes);
        }
        continue;
      }
      llvm::Value* start = access.element_offset(*run.front());
      llvm::Value* first_last = access.index_i64(*run.front(), rank - 1);
      // A run starting before the view (negative index) or misaligned copies element-wise,
      // unless it is whole or none: then its first index alone decides.
      const bool whole_or_none = access.whole_or_none(run);
      llvm::Value* fast =
          whole_or_none ? builder.getTrue() : builder.CreateICmpSGE(first_last, const_i64(0));
      if (!aligned) {
        llvm::Value* address = builder.CreatePtrToInt(access.pointer(start), i64());
        llvm::Value* bit_offset = builder.CreateMul(start, const_i64(bits));
        llvm::Value* misaligned =
            builder.CreateOr(builder.CreateAnd(address, const_i64(piece_bytes - 1)),
                             builder.CreateAnd(bit_offset, const_i64(7)));
        fast = builder.CreateAnd(fast, builder.CreateICmpEQ(misaligned, const_i64(0)));
      }
      if (bytes != piece_bytes) unsupported(fmt::format("a cp.async of {} bytes", bytes));
      auto asynchronous = [&] {
        // Bytes inside the view: the rest of the piece is zero-filled by cp.async.
        llvm::Value* inside_bytes = const_i32(static_cast<int32_t>(bytes));
        if (whole_or_none && !assumed_inside[rank - 1]) {
          inside_bytes = builder.CreateSelect(access.dimension_inside(first_last, rank - 1),
                                              inside_bytes, const_i32(0));
        } else if (!assumed_inside[rank - 1]) {
          llvm::Value* left = builder.CreateSub(view.shape[rank - 1], first_last);
          left = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smax, left, const_i64(0));
          left = builder.CreateBinaryIntrinsic(llvm::Intrinsic::smin, left, const_i64(k));
          inside_bytes = builder.CreateTrunc(
              builder.CreateUDiv(builder.CreateMul(left, const_i64(bits)), const_i64(8)), i32());
        }
        llvm::Value* source_bytes =
            builder.CreateSelect(access.others_inside(run), inside_bytes, const_i32(0));
        auto [byte, within] = tile_address(destination, tile_index(*run.front()));
        (void)within;
        cp_async(bytes, byte, access.entry_pointer(*run.front()), source_bytes);
      };
      if (auto* always = llvm::dyn_cast<llvm::ConstantInt>(fast); always && always->isOne()) {
        asynchronous();
        continue;
      }
      llvm::BasicBlock* async_block = new_block("cp_async");
      llvm::BasicBlock* sync_block = new_block("copy_elements");
      llvm::BasicBlock* join = new_block("copy_join");
      builder.CreateCondBr(fast, async_block, sync_block);
      builder.SetInsertPoint(async_block);
      asynchronous();
      builder.CreateBr(join);
      builder.SetInsertPoint(sync_block);
      synchronous(run);
      builder.CreateBr(join);
      builder.SetInsertPoint(join);
    }
  });
  if (copies > 0) {
    note(fmt::format("copy_async into '{}': {} cp.async of up to {} bytes per thread",
                     info(instruction.destination).name, copies, widest));
  }
}

void KernelEmitter::emit(const vm::CommitGroup&) {
  builder.CreateIntrinsic(llvm::Intrinsic::nvvm_cp_async_commit_group, {}, {});
}

void KernelEmitter::emit(const vm::WaitGroup& instruction) {
  builder.CreateIntrinsic(llvm::Intrinsic::nvvm_cp_async_wait_group, {},
                          {builder.getInt32(static_cast<uint32_t>(instruction.pending))});
}

void KernelEmitter::emit(const vm::Barrier&) {
  barrier();
}

// Arrive with release, wait with acquire: the cluster's shared-memory writes before it are
// visible to its load_peer_shared after it (every thread of every block passes it).
void KernelEmitter::emit(const vm::ClusterBarrier&) {
  required_ptx_version_ = std::max(required_ptx_version_, 78);
  emit_statement_asm(
      "barrier.cluster.arrive.release.aligned;\n\tbarrier.cluster.wait.acquire.aligned;");
}

// Each access maps the element's shared address into the peer's window (mapa) and reads it
// with ld.shared::cluster: 32-bit words, as vectors of 2 or 4 where the run is contiguous in
// the tile. The loads are asm with side effects, so that they stay after the cluster barrier.
void KernelEmitter::emit(const vm::LoadPeerShared& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const SharedTile& source = tile(instruction.source);
  const int bits = result.dtype.bits();
  if (result.packed || (bits != 16 && bits != 32)) {
    unsupported(
        fmt::format("load_peer_shared of {} (16- and 32-bit elements only)", result.dtype.name()));
  }
  required_ptx_version_ = std::max(required_ptx_version_, 78);
  llvm::Value* peer = scalar_i32(instruction.block);
  const SharedPlacement placement(*this, result, source, instruction.offsets);
  auto peer_address = [&](llvm::Value* byte) {
    auto* type = llvm::FunctionType::get(i32(), {i32(), i32()}, false);
    llvm::Value* local = builder.CreatePtrToInt(shared_pointer(byte), i32());
    return builder.CreateCall(
        type, llvm::InlineAsm::get(type, "mapa.shared::cluster.u32 $0, $1, $2;", "=r,r,r", false),
        {local, peer});
  };
  // `words` 32-bit words (or one 16-bit element) from the peer's `byte`.
  auto load_words = [&](llvm::Value* byte, int words,
                        int element_bits) -> std::vector<llvm::Value*> {
    llvm::Value* address = peer_address(byte);
    if (element_bits == 16) {
      auto* type = llvm::FunctionType::get(builder.getInt16Ty(), {i32()}, false);
      return {builder.CreateCall(
          type, llvm::InlineAsm::get(type, "ld.shared::cluster.b16 $0, [$1];", "=h,r", true),
          {address})};
    }
    std::vector<llvm::Type*> fields(static_cast<size_t>(words), i32());
    llvm::Type* returned =
        words == 1 ? static_cast<llvm::Type*>(i32()) : llvm::StructType::get(context, fields);
    auto* type = llvm::FunctionType::get(returned, {i32()}, false);
    std::string text = words == 1 ? "ld.shared::cluster.b32 $0, [$1];"
                                  : fmt::format("ld.shared::cluster.v{}.b32 {{", words);
    std::string constraints;
    if (words > 1) {
      for (int w = 0; w < words; ++w)
        text += fmt::format("{}${}", w > 0 ? ", " : "", w);
      text += fmt::format("}}, [${}];", words);
    }
    for (int w = 0; w < words; ++w)
      constraints += "=r,";
    constraints += "r";
    llvm::Value* loaded =
        builder.CreateCall(type, llvm::InlineAsm::get(type, text, constraints, true), {address});
    if (words == 1) return {loaded};
    std::vector<llvm::Value*> parts;
    for (int w = 0; w < words; ++w)
      parts.push_back(builder.CreateExtractValue(loaded, {static_cast<unsigned>(w)}));
    return parts;
  };
  for (const Run& run : placement.runs(false, source.swizzle.is_identity())) {
    const auto k = static_cast<int64_t>(run.size());
    const int64_t access_bits = k * bits;
    if (k > 1 && placement.contiguous(run) &&
        (access_bits == 64 || access_bits == 128 || (access_bits == 32 && bits == 16))) {
      llvm::Value* byte = placement.address(*run.front()).first;
      const std::vector<llvm::Value*> words =
          load_words(byte, static_cast<int>(access_bits / 32), 32);
      llvm::Value* packed = words.size() == 1 ? words[0] : nullptr;
      if (packed == nullptr) {
        llvm::Value* vector = llvm::PoisonValue::get(
            llvm::FixedVectorType::get(i32(), static_cast<unsigned>(words.size())));
        for (size_t w = 0; w < words.size(); ++w)
          vector = builder.CreateInsertElement(vector, words[w], static_cast<uint64_t>(w));
        packed = vector;
      }
      scatter_slots(result, run, packed);
      continue;
    }
    for (const SlotEntry* entry : run) {
      llvm::Value* word = load_words(placement.address(*entry).first, 1, bits)[0];
      write_slot(result, entry->slot, builder.CreateBitCast(word, value_type(result.dtype)));
    }
  }
}

}  // namespace nibble::codegen
