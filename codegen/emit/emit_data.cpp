// The data instructions: cast (through the dtypes conversion plans where they apply), view,
// slice, repeat, permute, reshape, and moving values between register layouts. A value moves as
// a register renaming when every thread already holds what it needs in the same slot for every
// thread (layout queries on the compile-time map), and through the shared scratch region with
// barriers otherwise.
#include <fmt/format.h>
#include <llvm/IR/InlineAsm.h>
#include <llvm/IR/IntrinsicsNVPTX.h>

#include <numeric>

#include "codegen/emit/kernel_emitter.h"
#include "dtypes/conversion_plan.h"

namespace nibble::codegen {
namespace {

std::vector<int64_t> unflatten(int64_t flat, const layout::Shape& shape) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

int64_t flatten(const std::vector<int64_t>& index, const layout::Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + index[d];
  return flat;
}

}  // namespace

std::vector<llvm::Value*> KernelEmitter::gather(TensorId source_id, const RegisterMap& to_map,
                                                const FlatMap& source_of,
                                                const IndexMap& source_index,
                                                std::string_view why) {
  const RegisterTensor& source = reg(source_id);
  const int64_t to_size = layout::shape_size(to_map.shape);
  std::vector<int64_t> table(static_cast<size_t>(to_size));
  for (int64_t x = 0; x < to_size; ++x)
    table[static_cast<size_t>(x)] = source_of(x);
  const std::vector<int64_t> permutation = slot_permutation(*source.map, to_map, table);
  std::vector<llvm::Value*> values;
  if (!permutation.empty() || to_map.entries.empty()) {
    for (int64_t slot : permutation) {
      values.push_back(slot >= 0 ? read_slot(source, slot)
                                 : llvm::Constant::getNullValue(value_type(source.dtype)));
    }
    return values;
  }
  if (value_type(source.dtype)->getPrimitiveSizeInBits().getFixedValue() <= 32) {
    if (const auto shuffles = warp_shuffle_plan(*source.map, to_map, table)) {
      return shuffled(source, *shuffles, to_map, why, info(source_id).name);
    }
  }
  // Through shared memory: every element once (by its primary replica) at its row-major index.
  note(fmt::format("{}: '{}' crosses threads through shared memory", why, info(source_id).name));
  llvm::Type* element_type = value_type(source.dtype);
  const int64_t element_bytes = element_type->getPrimitiveSizeInBits().getFixedValue() / 8;
  const int64_t base = reserve_scratch(layout::shape_size(source.map->shape) * element_bytes);
  barrier();
  guarded(source.thread->primary, [&] {
    for (const SlotEntry& entry : source.map->entries) {
      if (!entry.primary) continue;
      llvm::Value* flat = builder.CreateAdd(source.thread->flat_part, const_i32(entry.flat));
      llvm::Value* offset =
          builder.CreateAdd(const_i32(base), builder.CreateMul(flat, const_i32(element_bytes)));
      builder.CreateStore(read_slot(source, entry.slot), shared_pointer(offset));
    }
  });
  barrier();
  const ThreadValues& to_thread = thread_values(to_map);
  for (const SlotEntry& entry : to_map.entries) {
    std::vector<llvm::Value*> index;
    for (size_t d = 0; d < entry.index.size(); ++d) {
      index.push_back(builder.CreateAdd(to_thread.index_part[d], const_i32(entry.index[d])));
    }
    llvm::Value* flat = builder.CreateSelect(to_thread.valid, source_index(index), const_i32(0));
    llvm::Value* offset =
        builder.CreateAdd(const_i32(base), builder.CreateMul(flat, const_i32(element_bytes)));
    values.push_back(builder.CreateLoad(element_type, shared_pointer(offset)));
  }
  return values;
}

std::vector<llvm::Value*> KernelEmitter::shuffled(const RegisterTensor& source,
                                                  const std::vector<LaneShuffle>& shuffles,
                                                  const RegisterMap& to_map, std::string_view why,
                                                  std::string_view name) {
  auto thread_bit = [&](int bit) {
    return builder.CreateAnd(builder.CreateLShr(thread_index, static_cast<uint64_t>(bit)), 1);
  };
  // The pattern of a table's bits in this thread's index, and whether it is `pattern`.
  auto pattern_of = [&](const ThreadBitTable& table) {
    llvm::Value* pattern = const_i32(0);
    for (size_t b = 0; b < table.bits.size(); ++b)
      pattern = builder.CreateOr(pattern, builder.CreateShl(thread_bit(table.bits[b]), b));
    return pattern;
  };
  auto is_pattern = [&](llvm::Value* pattern, size_t p) {
    return builder.CreateICmpEQ(pattern, const_i32(static_cast<int64_t>(p)));
  };
  std::vector<llvm::Value*> values(to_map.entries.size(),
                                   llvm::Constant::getNullValue(value_type(source.dtype)));
  int moves = 0;
  for (const LaneShuffle& shuffle : shuffles) {
    // What this thread sends: its slot chosen by the table's bits of its index.
    llvm::Value* send_pattern = pattern_of(shuffle.send_slot);
    llvm::Value* sent = read_slot(source, shuffle.send_slot.values[0]);
    for (size_t p = 1; p < shuffle.send_slot.values.size(); ++p) {
      sent = builder.CreateSelect(is_pattern(send_pattern, p),
                                  read_slot(source, shuffle.send_slot.values[p]), sent);
    }
    llvm::Value* received = sent;
    if (!shuffle.stays_in_thread()) {
      llvm::Value* lane = const_i32(shuffle.lane_constant);
      for (size_t i = 0; i < shuffle.lane_columns.size(); ++i) {
        if (shuffle.lane_columns[i] == 0) continue;
        lane = builder.CreateXor(lane, builder.CreateMul(thread_bit(static_cast<int>(i)),
                                                         const_i32(shuffle.lane_columns[i])));
      }
      llvm::Value* word = builder.CreateZExt(to_bits(sent), i32());
      received = from_bits(builder.CreateIntrinsic(llvm::Intrinsic::nvvm_shfl_sync_idx_i32, {},
                                                   {const_i32(-1), word, lane, const_i32(31)}),
                           source.dtype);
      ++moves;
    }
    // Where this thread keeps it.
    llvm::Value* receive_pattern = pattern_of(shuffle.receive_entry);
    for (size_t p = 0; p < shuffle.receive_entry.values.size(); ++p) {
      const auto entry = static_cast<size_t>(shuffle.receive_entry.values[p]);
      if (entry >= values.size()) continue;
      values[entry] =
          shuffle.receive_entry.values.size() == 1
              ? received
              : builder.CreateSelect(is_pattern(receive_pattern, p), received, values[entry]);
    }
  }
  if (moves == 0) {
    note(fmt::format("{}: '{}' stays in its threads (slots chosen per thread, no shuffle)", why,
                     name));
  } else {
    note(fmt::format("{}: '{}' moves between lanes by {} warp shuffles", why, name, moves));
  }
  return values;
}

std::vector<llvm::Value*> KernelEmitter::values_in(TensorId source, const RegisterMap& to_map) {
  const layout::Shape& shape = info(source).type.shape;
  return gather(
      source, to_map, [](int64_t x) { return x; },
      [&](const std::vector<llvm::Value*>& index) {
        llvm::Value* flat = const_i32(0);
        for (size_t d = 0; d < shape.size(); ++d) {
          flat = builder.CreateAdd(builder.CreateMul(flat, const_i32(shape[d])), index[d]);
        }
        return flat;
      },
      "layout conversion");
}

// ---- cast -----------------------------------------------------------------------------------

namespace {

std::string plan_asm(const dtypes::PlanOp& op) {
  using dtypes::Opcode;
  const int sources = dtypes::source_count(op.op);
  std::string operands = "$0";
  for (int i = 1; i <= sources; ++i)
    operands += fmt::format(", ${}", i);
  switch (op.op) {
    case Opcode::Lop3:
      return fmt::format("lop3.b32 {}, {};", operands, op.imm);
    case Opcode::CvtF16x2E4m3x2:
      return fmt::format(
          "{{ .reg .b16 lo, hi; mov.b32 {{lo, hi}}, $1; cvt.rn.f16x2.e4m3x2 $0, {}; }}",
          op.imm == 0 ? "lo" : "hi");
    default:
      return fmt::format("{} {};", dtypes::ptx_name(op.op), operands);
  }
}

}  // namespace

void KernelEmitter::emit(const vm::Cast& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const RegisterTensor& source = reg(instruction.source);
  const DataType from = source.dtype;
  const DataType to = result.dtype;
  std::vector<llvm::Value*> converted(result.map->entries.size(), nullptr);

  // The conversion plans: whole words of narrow elements to packed f16x2 / bf16x2.
  std::optional<dtypes::ConversionPlan> plan;
  if (from.bits() <= 8 && (to == DataType::f16() || to == DataType::bf16()) &&
      source.map == result.map) {
    plan = dtypes::find_conversion_plan(from, to, target.sm);
  }
  std::vector<bool> done(static_cast<size_t>(result.map->slots), false);
  if (plan) {
    const int64_t group = plan->element_count();
    const int64_t groups = result.map->slots / group;
    note(fmt::format("cast {} -> {}: conversion plan ({} ops per {} elements): {}", from.name(),
                     to.name(), plan->ops.size(), group, plan->description));
    for (int64_t g = 0; g < groups; ++g) {
      // The input words: the bit stream of slots [g * group, (g + 1) * group).
      std::vector<llvm::Value*> registers(static_cast<size_t>(plan->register_count), nullptr);
      for (int w = 0; w < plan->input_words; ++w) {
        const int64_t first_bit = (g * group) * from.bits() + int64_t{32} * w;
        if (source.packed) {
          registers[static_cast<size_t>(w)] = read_word(source, first_bit / 32);
        } else {
          llvm::Value* word = const_i32(0);
          for (int i = 0; i < 4; ++i) {
            llvm::Value* code =
                builder.CreateZExt(to_bits(read_slot(source, first_bit / 8 + i)), i32());
            word = builder.CreateOr(word, builder.CreateShl(code, static_cast<uint64_t>(8 * i)));
          }
          registers[static_cast<size_t>(w)] = word;
        }
      }
      for (const dtypes::PlanOp& op : plan->ops) {
        const int sources = dtypes::source_count(op.op);
        std::vector<llvm::Value*> arguments;
        std::vector<llvm::Type*> types;
        std::string constraints = "=r";
        for (int i = 0; i < sources; ++i) {
          const dtypes::Operand& operand = op.src[static_cast<size_t>(i)];
          arguments.push_back(operand.is_register() ? registers[operand.value]
                                                    : const_i32(operand.value));
          types.push_back(i32());
          constraints += ",r";
        }
        auto* asm_type = llvm::FunctionType::get(i32(), types, false);
        llvm::InlineAsm* code = llvm::InlineAsm::get(asm_type, plan_asm(op), constraints, false);
        registers[static_cast<size_t>(op.dst)] = builder.CreateCall(asm_type, code, arguments);
      }
      for (int w = 0; w < plan->output_words; ++w) {
        llvm::Value* word =
            registers[static_cast<size_t>(plan->output_registers[static_cast<size_t>(w)])];
        for (int half = 0; half < 2; ++half) {
          const int64_t slot = g * group + plan->output_element[static_cast<size_t>(2 * w + half)];
          llvm::Value* bits = builder.CreateTrunc(
              builder.CreateLShr(word, static_cast<uint64_t>(16 * half)), builder.getInt16Ty());
          write_slot(result, slot, builder.CreateBitCast(bits, value_type(to)));
          done[static_cast<size_t>(slot)] = true;
        }
      }
    }
  }
  bool any_left = false;
  for (const SlotEntry& entry : result.map->entries)
    any_left = any_left || !done[static_cast<size_t>(entry.slot)];
  if (!any_left) return;
  const std::vector<llvm::Value*> values = values_in(instruction.source, *result.map);
  for (size_t e = 0; e < result.map->entries.size(); ++e) {
    converted[e] = convert(values[e], from, to);
  }
  for (size_t e = 0; e < result.map->entries.size(); ++e) {
    const int64_t slot = result.map->entries[e].slot;
    if (!done[static_cast<size_t>(slot)]) write_slot(result, slot, converted[e]);
  }
}

// ---- view -----------------------------------------------------------------------------------

void KernelEmitter::emit(const vm::View& instruction) {
  const RegisterTensor& source = reg(instruction.source);
  const RegisterTensor& result = reg(instruction.result);
  if (source.map->slots * source.dtype.bits() != result.map->slots * result.dtype.bits()) {
    unsupported("view: the layouts give threads different numbers of bits");
  }
  write_thread_words(result, thread_words(source));
}

// ---- slice, repeat, permute, reshape --------------------------------------------------------

void KernelEmitter::emit(const vm::Slice& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const layout::Shape& from = info(instruction.source).type.shape;
  const layout::Shape& to = info(instruction.result).type.shape;
  const std::vector<int64_t>& offsets = instruction.offsets;
  const std::vector<llvm::Value*> values = gather(
      instruction.source, *result.map,
      [&](int64_t x) {
        std::vector<int64_t> index = unflatten(x, to);
        for (size_t d = 0; d < index.size(); ++d)
          index[d] += offsets[d];
        return flatten(index, from);
      },
      [&](const std::vector<llvm::Value*>& index) {
        llvm::Value* flat = const_i32(0);
        for (size_t d = 0; d < from.size(); ++d) {
          flat = builder.CreateAdd(builder.CreateMul(flat, const_i32(from[d])),
                                   builder.CreateAdd(index[d], const_i32(offsets[d])));
        }
        return flat;
      },
      "slice");
  write_entries(result, values);
}

void KernelEmitter::emit(const vm::Repeat& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const layout::Shape& from = info(instruction.source).type.shape;
  const layout::Shape& to = info(instruction.result).type.shape;
  const auto axis = static_cast<size_t>(instruction.axis);
  const int64_t count = instruction.count;
  const std::vector<llvm::Value*> values = gather(
      instruction.source, *result.map,
      [&](int64_t x) {
        std::vector<int64_t> index = unflatten(x, to);
        index[axis] /= count;
        return flatten(index, from);
      },
      [&](const std::vector<llvm::Value*>& index) {
        llvm::Value* flat = const_i32(0);
        for (size_t d = 0; d < from.size(); ++d) {
          llvm::Value* i = d == axis ? builder.CreateUDiv(index[d], const_i32(count)) : index[d];
          flat = builder.CreateAdd(builder.CreateMul(flat, const_i32(from[d])), i);
        }
        return flat;
      },
      "repeat");
  write_entries(result, values);
}

void KernelEmitter::emit(const vm::Permute& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const layout::Shape& from = info(instruction.source).type.shape;
  const layout::Shape& to = info(instruction.result).type.shape;
  const std::vector<int>& dims = instruction.dims;
  const std::vector<llvm::Value*> values = gather(
      instruction.source, *result.map,
      [&](int64_t x) {
        const std::vector<int64_t> index = unflatten(x, to);
        std::vector<int64_t> source_index(index.size());
        for (size_t d = 0; d < index.size(); ++d)
          source_index[static_cast<size_t>(dims[d])] = index[d];
        return flatten(source_index, from);
      },
      [&](const std::vector<llvm::Value*>& index) {
        std::vector<llvm::Value*> source_index(index.size());
        for (size_t d = 0; d < index.size(); ++d)
          source_index[static_cast<size_t>(dims[d])] = index[d];
        llvm::Value* flat = const_i32(0);
        for (size_t d = 0; d < from.size(); ++d) {
          flat = builder.CreateAdd(builder.CreateMul(flat, const_i32(from[d])), source_index[d]);
        }
        return flat;
      },
      "permute");
  write_entries(result, values);
}

void KernelEmitter::emit(const vm::Reshape& instruction) {
  const RegisterTensor& result = reg(instruction.result);
  const layout::Shape& to = info(instruction.result).type.shape;
  const std::vector<llvm::Value*> values = gather(
      instruction.source, *result.map, [](int64_t x) { return x; },
      [&](const std::vector<llvm::Value*>& index) {
        llvm::Value* flat = const_i32(0);
        for (size_t d = 0; d < to.size(); ++d) {
          flat = builder.CreateAdd(builder.CreateMul(flat, const_i32(to[d])), index[d]);
        }
        return flat;
      },
      "reshape");
  write_entries(result, values);
}

}  // namespace nibble::codegen
