#include "codegen/emit/kernel_emitter.h"

#include <fmt/format.h>
#include <llvm/Analysis/ValueTracking.h>
#include <llvm/IR/CallingConv.h>
#include <llvm/IR/InlineAsm.h>
#include <llvm/IR/IntrinsicsNVPTX.h>
#include <llvm/Support/KnownBits.h>

#include <bit>
#include <numeric>

#include "codegen/llvm_backend.h"
#include "dtypes/packing.h"
#include "layout/algebra.h"
#include "vm/passes.h"

namespace nibble::codegen {

KernelEmitter::KernelEmitter(const vm::Program& program_in, const Target& target_in,
                             llvm::LLVMContext& context_in)
    : program(program_in),
      target(target_in),
      context(context_in),
      module(std::make_unique<llvm::Module>(program_in.name, context_in)),
      // The module's data layout is set in emit(); the folders keep a reference to it.
      builder(context_in, llvm::InstSimplifyFolder(module->getDataLayout())),
      prologue(context_in, llvm::InstSimplifyFolder(module->getDataLayout())),
      facts(vm::program_facts(program_in)) {}

void KernelEmitter::unsupported(const std::string& what) const {
  std::string where = "the kernel";
  if (current_ != nullptr) {
    const std::string_view name = std::holds_alternative<vm::Instruction>(current_->node)
                                      ? vm::mnemonic(std::get<vm::Instruction>(current_->node))
                                      : std::string_view("statement");
    where = fmt::format("{} at {}", name, vm::to_string(current_->location));
  }
  throw CodegenError(fmt::format("codegen of kernel '{}' for {}: {}: {}", program.name,
                                 target.name(), where, what));
}

llvm::BasicBlock* KernelEmitter::new_block(const std::string& name) {
  return llvm::BasicBlock::Create(context, name, function);
}

void KernelEmitter::declare_function() {
  std::vector<llvm::Type*> types;
  for (size_t i = 0; i < program.params.size(); ++i) {
    const vm::Parameter& param = program.params[i];
    if (param.compile_time && param.value) continue;
    KernelParameter abi;
    abi.name = param.name;
    abi.dtype = param.dtype;
    abi.program_index = static_cast<int>(i);
    if (param.kind == vm::Parameter::Kind::Pointer) {
      abi.kind = KernelParameter::Kind::Pointer;
      abi.size_bytes = 8;
      abi.alignment_bytes = param.alignment_bytes;
      types.push_back(llvm::PointerType::get(context, 1));
    } else {
      abi.kind = KernelParameter::Kind::Scalar;
      abi.divisor = param.divisor;
      llvm::Type* type = scalar_type(param.dtype);
      abi.size_bytes = param.dtype.bits() == 1 ? 1 : param.dtype.bits() / 8;
      if (type->isIntegerTy(1)) type = i8();
      types.push_back(type);
    }
    parameters_.push_back(abi);
  }
  auto* signature = llvm::FunctionType::get(builder.getVoidTy(), types, false);
  function =
      llvm::Function::Create(signature, llvm::Function::ExternalLinkage, program.name, *module);
  function->setCallingConv(llvm::CallingConv::PTX_Kernel);
  // The block size is fixed: tell the backend (maxntid) so it can budget registers.
  llvm::NamedMDNode* annotations = module->getOrInsertNamedMetadata("nvvm.annotations");
  auto* i32_type = llvm::Type::getInt32Ty(context);
  annotations->addOperand(llvm::MDNode::get(
      context, {llvm::ValueAsMetadata::get(function), llvm::MDString::get(context, "maxntidx"),
                llvm::ValueAsMetadata::get(llvm::ConstantInt::get(i32_type, program.threads()))}));
  if (program.min_blocks_per_sm > 0) {
    annotations->addOperand(llvm::MDNode::get(
        context,
        {llvm::ValueAsMetadata::get(function), llvm::MDString::get(context, "minctasm"),
         llvm::ValueAsMetadata::get(llvm::ConstantInt::get(i32_type, program.min_blocks_per_sm))}));
  }

  entry_ = llvm::BasicBlock::Create(context, "entry", function);
  prologue.SetInsertPoint(entry_);
  param_values.assign(program.params.size(), nullptr);
  unsigned position = 0;
  for (const KernelParameter& abi : parameters_) {
    llvm::Argument* argument = function->getArg(position++);
    argument->setName(abi.name);
    llvm::Value* value = argument;
    if (abi.kind == KernelParameter::Kind::Pointer) {
      if (abi.alignment_bytes > 1) {
        argument->addAttr(llvm::Attribute::getWithAlignment(
            context, llvm::Align(static_cast<uint64_t>(abi.alignment_bytes))));
      }
    } else if (program.params[static_cast<size_t>(abi.program_index)].dtype.bits() == 1) {
      value = prologue.CreateICmpNE(argument, prologue.getInt8(0));
    }
    param_values[static_cast<size_t>(abi.program_index)] = value;
  }
  // The block size is fixed, so tid.x < threads: the range lets known-bits reasoning drop the
  // warp digits a one-warp-row tiling never uses and prove address bits free (tile_address).
  auto* tid = prologue.CreateIntrinsic(llvm::Intrinsic::nvvm_read_ptx_sreg_tid_x, {}, {});
  tid->addRetAttr(llvm::Attribute::get(
      context, llvm::Attribute::Range,
      llvm::ConstantRange(llvm::APInt(32, 0),
                          llvm::APInt(32, static_cast<uint64_t>(program.threads())))));
  thread_index = tid;

  shared_ = new llvm::GlobalVariable(*module, llvm::ArrayType::get(i8(), 0), false,
                                     llvm::GlobalValue::ExternalLinkage, nullptr, "nibble_smem",
                                     nullptr, llvm::GlobalValue::NotThreadLocal, 3);
  // The largest alignment a tile asks for (vm::shared_tile_alignment: a 128-byte swizzle's
  // period), so that offsets in the block's shared memory keep their alignment as addresses.
  shared_->setAlignment(llvm::Align(1024));
}

// The interpreter's placement (vm/interpreter/plan.cpp): program order, aligned as
// vm::shared_tile_alignment says, a swizzled tile rounded up to whole swizzle chunks, an alloc in
// a loop placed once.
void KernelEmitter::place_tiles(const vm::Body& body) {
  for (const vm::Statement& statement : body) {
    current_ = &statement;
    std::visit(
        [&](const auto& node) {
          using T = std::decay_t<decltype(node)>;
          if constexpr (std::is_same_v<T, vm::Instruction>) {
            const auto* alloc = std::get_if<vm::AllocShared>(&node);
            if (alloc == nullptr || tiles_.contains(alloc->result.index)) return;
            const vm::TensorInfo& tensor = info(alloc->result);
            SharedTile tile;
            tile.dtype = tensor.type.dtype;
            tile.shape = tensor.type.shape;
            tile.layout = *tensor.type.layout;
            tile.swizzle = tensor.type.swizzle;
            try {
              tile.groups = layout::group(tile.layout, tile.shape);
            } catch (const std::exception& error) {
              unsupported(fmt::format("shared tile '{}': {}", tensor.name, error.what()));
            }
            const int64_t chunk = tile.swizzle.is_identity()
                                      ? 1
                                      : int64_t{1} << (tile.swizzle.base() + tile.swizzle.bits());
            const auto span_bytes = static_cast<int64_t>(dtypes::packed_size_bytes(
                tile.dtype, static_cast<size_t>(tile.layout.span(layout::Axis::smem()))));
            tile.tile_bytes = (span_bytes + chunk - 1) / chunk * chunk;
            const int64_t alignment = vm::shared_tile_alignment(tensor.type);
            tile.base_bytes = (tiles_end_ + alignment - 1) / alignment * alignment;
            tiles_end_ = tile.base_bytes + tile.tile_bytes;
            tiles_.emplace(alloc->result.index, std::move(tile));
          } else if constexpr (std::is_same_v<T, vm::ForStmt> || std::is_same_v<T, vm::WhileStmt>) {
            place_tiles(node.body);
          } else if constexpr (std::is_same_v<T, vm::IfStmt>) {
            place_tiles(node.then_body);
            place_tiles(node.else_body);
          }
        },
        statement.node);
  }
  current_ = nullptr;
}

void KernelEmitter::collect_assigned(const vm::Body& body) {
  for (const vm::Statement& statement : body) {
    std::visit(
        [&](const auto& node) {
          using T = std::decay_t<decltype(node)>;
          if constexpr (std::is_same_v<T, vm::AssignStmt>) {
            assigned_variables.insert(node.var.index());
          } else if constexpr (std::is_same_v<T, vm::ForStmt> || std::is_same_v<T, vm::WhileStmt>) {
            collect_assigned(node.body);
          } else if constexpr (std::is_same_v<T, vm::IfStmt>) {
            collect_assigned(node.then_body);
            collect_assigned(node.else_body);
          }
        },
        statement.node);
  }
}

std::unique_ptr<llvm::Module> KernelEmitter::emit() {
  configure_module_for_target(*module, target);
  declare_function();
  place_tiles(program.body);
  collect_assigned(program.body);
  collect_mma_operands();
  llvm::BasicBlock* body = new_block("body");
  builder.SetInsertPoint(body);
  emit_grid_dependency();
  emit_body(program.body);
  builder.CreateRetVoid();
  prologue.CreateBr(body);
  return std::move(module);
}

// Programmatic dependent launch (vm::Program::early_trigger, dependent_launch), sm_90 on: the
// wait comes before anything the kernel reads or writes (the asm is a memory barrier to LLVM).
void KernelEmitter::emit_grid_dependency() {
  if (program.cluster_blocks() > 1 && target.sm < 90) {
    unsupported(fmt::format("clusters of ({}, {}, {}) blocks on sm_{} (they need sm_90)",
                            program.cluster[0], program.cluster[1], program.cluster[2], target.sm));
  }
  if (target.sm < 90 || (!program.early_trigger && !program.dependent_launch)) return;
  required_ptx_version_ = std::max(required_ptx_version_, 78);
  if (program.dependent_launch) emit_statement_asm("griddepcontrol.wait;");
  if (program.early_trigger) emit_statement_asm("griddepcontrol.launch_dependents;");
  note(fmt::format("grid dependency:{}{}",
                   program.dependent_launch ? " waits for the previous kernel" : "",
                   program.early_trigger ? " lets the next kernel launch early" : ""));
}

void KernelEmitter::emit_statement_asm(const std::string& text) {
  auto* type = llvm::FunctionType::get(builder.getVoidTy(), false);
  builder.CreateCall(type, llvm::InlineAsm::get(type, text, "~{memory}", true))->setConvergent();
}

// ---- statements -----------------------------------------------------------------------------

void KernelEmitter::emit_body(const vm::Body& body) {
  // A let's value is visible to the rest of its body only (the verifier's scoping).
  const auto outer_lets = let_values;
  for (const vm::Statement& statement : body)
    emit_statement(statement);
  let_values = outer_lets;
}

void KernelEmitter::emit_statement(const vm::Statement& statement) {
  current_ = &statement;
  std::visit(
      [&](const auto& node) {
        using T = std::decay_t<decltype(node)>;
        if constexpr (std::is_same_v<T, vm::Instruction>) {
          std::visit([&](const auto& instruction) { emit(instruction); }, node);
        } else if constexpr (std::is_same_v<T, vm::ForStmt>) {
          emit_for(node);
        } else if constexpr (std::is_same_v<T, vm::WhileStmt>) {
          emit_while(node);
        } else if constexpr (std::is_same_v<T, vm::IfStmt>) {
          emit_if(node);
        } else if constexpr (std::is_same_v<T, vm::BreakStmt>) {
          if (break_targets_.empty()) unsupported("break outside a loop");
          builder.CreateBr(break_targets_.back());
          // Whatever follows the break in this body is unreachable.
          builder.SetInsertPoint(new_block("after_break"));
        } else if constexpr (std::is_same_v<T, vm::LetStmt>) {
          llvm::Value* value = scalar(node.value);
          llvm::AllocaInst*& slot = variables[node.var.index()];
          if (slot == nullptr)
            slot = prologue.CreateAlloca(value->getType(), nullptr, node.var.name());
          builder.CreateStore(value, slot);
          if (!assigned_variables.contains(node.var.index())) let_values[node.var.index()] = value;
          if (!assigned_variables.contains(node.var.index()) && node.var.type().is_integer()) {
            facts.set_divisor(node.var, divisor_of(node.value));
            if (auto range = vm::bound(node.value, facts)) facts.set_range(node.var, *range);
          }
        } else if constexpr (std::is_same_v<T, vm::AssignStmt>) {
          auto found = variables.find(node.var.index());
          if (found == variables.end()) unsupported("assign before let");
          builder.CreateStore(scalar(node.value), found->second);
        } else {
          static_assert(std::is_same_v<T, vm::FetchAddStmt>);
          emit_fetch_add(node);
        }
      },
      statement.node);
  current_ = nullptr;
}

void KernelEmitter::emit_for(const vm::ForStmt& loop) {
  llvm::Value* start = scalar(loop.start);
  llvm::Value* stop = scalar(loop.stop);
  llvm::Value* step = scalar(loop.step);
  llvm::AllocaInst*& slot = variables[loop.var.index()];
  if (slot == nullptr) slot = prologue.CreateAlloca(start->getType(), nullptr, loop.var.name());
  builder.CreateStore(start, slot);
  llvm::BasicBlock* header = new_block("for_header");
  llvm::BasicBlock* body = new_block("for_body");
  llvm::BasicBlock* latch = new_block("for_latch");
  llvm::BasicBlock* exit = new_block("for_exit");
  builder.CreateBr(header);
  builder.SetInsertPoint(header);
  llvm::Value* value = builder.CreateLoad(start->getType(), slot);
  builder.CreateCondBr(builder.CreateICmpSLT(value, stop), body, exit);

  builder.SetInsertPoint(body);
  const vm::Facts saved = facts;
  const int64_t start_divisor = divisor_of(loop.start);
  const int64_t step_divisor = divisor_of(loop.step);
  facts.set_divisor(loop.var, std::gcd(start_divisor, step_divisor));
  if (auto lo = vm::bound(loop.start, facts)) {
    auto hi = vm::bound(loop.stop, facts);
    facts.set_range(loop.var, {lo->lo, hi ? hi->hi - 1 : INT32_MAX});
  }
  break_targets_.push_back(exit);
  emit_body(loop.body);
  break_targets_.pop_back();
  facts = saved;
  builder.CreateBr(latch);
  builder.SetInsertPoint(latch);
  llvm::Value* current = builder.CreateLoad(start->getType(), slot);
  builder.CreateStore(builder.CreateAdd(current, step), slot);
  builder.CreateBr(header);
  builder.SetInsertPoint(exit);
}

void KernelEmitter::emit_while(const vm::WhileStmt& loop) {
  llvm::BasicBlock* header = new_block("while_header");
  llvm::BasicBlock* body = new_block("while_body");
  llvm::BasicBlock* exit = new_block("while_exit");
  builder.CreateBr(header);
  builder.SetInsertPoint(header);
  builder.CreateCondBr(truth(loop.condition), body, exit);
  builder.SetInsertPoint(body);
  break_targets_.push_back(exit);
  emit_body(loop.body);
  break_targets_.pop_back();
  builder.CreateBr(header);
  builder.SetInsertPoint(exit);
}

void KernelEmitter::emit_if(const vm::IfStmt& branch) {
  llvm::BasicBlock* then_block = new_block("then");
  llvm::BasicBlock* else_block = new_block("else");
  llvm::BasicBlock* join = new_block("endif");
  builder.CreateCondBr(truth(branch.condition), then_block, else_block);
  builder.SetInsertPoint(then_block);
  emit_body(branch.then_body);
  builder.CreateBr(join);
  builder.SetInsertPoint(else_block);
  emit_body(branch.else_body);
  builder.CreateBr(join);
  builder.SetInsertPoint(join);
}

void KernelEmitter::guarded(llvm::Value* condition, const std::function<void()>& body) {
  if (auto* constant = llvm::dyn_cast<llvm::ConstantInt>(condition)) {
    if (constant->isOne()) body();
    return;
  }
  llvm::BasicBlock* then_block = new_block("guarded");
  llvm::BasicBlock* join = new_block("guard_join");
  builder.CreateCondBr(condition, then_block, join);
  builder.SetInsertPoint(then_block);
  body();
  builder.CreateBr(join);
  builder.SetInsertPoint(join);
}

void KernelEmitter::counted_loop(const std::string& name, int64_t first, int64_t end,
                                 const std::function<void(llvm::Value*)>& body) {
  llvm::AllocaInst* counter = prologue.CreateAlloca(i32(), nullptr, name + "_counter");
  builder.CreateStore(const_i32(first), counter);
  llvm::BasicBlock* loop = new_block(name);
  llvm::BasicBlock* exit = new_block(name + "_exit");
  builder.CreateBr(loop);
  builder.SetInsertPoint(loop);
  llvm::Value* k = builder.CreateLoad(i32(), counter);
  body(k);
  llvm::Value* next = builder.CreateAdd(k, const_i32(1));
  builder.CreateStore(next, counter);
  builder.CreateCondBr(builder.CreateICmpSLT(next, const_i32(end)), loop, exit);
  builder.SetInsertPoint(exit);
}

// ---- register tensors -----------------------------------------------------------------------

const RegisterMap& KernelEmitter::register_map(const layout::Layout& layout,
                                               const layout::Shape& shape) {
  std::unique_ptr<RegisterMap>& map = maps_[register_map_key(layout, shape)];
  if (!map) {
    try {
      map = std::make_unique<RegisterMap>(build_register_map(layout, shape, program.threads()));
    } catch (const CodegenError& error) {
      unsupported(error.what());
    }
  }
  return *map;
}

const ThreadValues& KernelEmitter::thread_values(const RegisterMap& map) {
  std::unique_ptr<ThreadValues>& values = thread_values_[&map];
  if (values) return *values;
  values = std::make_unique<ThreadValues>();
  llvm::IRBuilderBase& b = prologue;
  llvm::Value* local =
      b.CreateSub(thread_index, b.getInt32(static_cast<uint32_t>(map.thread_offset)));
  llvm::Value* rebuilt = b.getInt32(0);
  llvm::Value* primary = b.getTrue();
  values->index_part.assign(map.shape.size(), b.getInt32(0));
  values->flat_part = b.getInt32(0);
  bool lanes_apart = map.thread_offset % 32 == 0;
  std::vector<llvm::Value*> warp_part(map.shape.size(), b.getInt32(0));
  for (const ThreadIter& iter : map.thread_iters) {
    llvm::Value* digit =
        b.CreateURem(b.CreateUDiv(local, b.getInt32(static_cast<uint32_t>(iter.stride))),
                     b.getInt32(static_cast<uint32_t>(iter.extent)));
    rebuilt =
        b.CreateAdd(rebuilt, b.CreateMul(digit, b.getInt32(static_cast<uint32_t>(iter.stride))));
    if (iter.dimension < 0) {
      primary = b.CreateAnd(primary, b.CreateICmpEQ(digit, b.getInt32(0)));
      continue;
    }
    llvm::Value* term = b.CreateMul(digit, b.getInt32(static_cast<uint32_t>(iter.weight)));
    llvm::Value*& part = values->index_part[static_cast<size_t>(iter.dimension)];
    part = b.CreateAdd(part, term);
    if (iter.stride >= 32) {
      llvm::Value*& warp = warp_part[static_cast<size_t>(iter.dimension)];
      warp = b.CreateAdd(warp, term);
    } else if (iter.stride * iter.extent > 32) {
      lanes_apart = false;
    }
    values->flat_part = b.CreateAdd(
        values->flat_part, b.CreateMul(digit, b.getInt32(static_cast<uint32_t>(iter.flat_weight))));
  }
  if (lanes_apart) values->warp_index_part = std::move(warp_part);
  values->valid = map.every_thread_valid ? b.getTrue()
                                         : b.CreateAnd(b.CreateICmpSGE(local, b.getInt32(0)),
                                                       b.CreateICmpEQ(rebuilt, local));
  values->primary = b.CreateAnd(values->valid, primary);
  return *values;
}

RegisterTensor& KernelEmitter::reg(TensorId id) {
  auto found = registers_.find(id.index);
  if (found != registers_.end()) return found->second;
  const vm::TensorInfo& tensor = info(id);
  if (tensor.type.scope != vm::Scope::Register) {
    unsupported(fmt::format("'{}' is not a register tensor", tensor.name));
  }
  if (!tensor.type.layout) unsupported(fmt::format("'{}' has no layout", tensor.name));
  RegisterTensor result;
  result.map = &register_map(*tensor.type.layout, tensor.type.shape);
  result.thread = &thread_values(*result.map);
  result.dtype = tensor.type.dtype;
  result.packed = result.dtype.bits() < 8;
  llvm::Type* element = nullptr;
  int64_t count = result.map->slots;
  if (result.packed) {
    result.words = (result.map->slots * result.dtype.bits() + 31) / 32;
    element = i32();
    count = result.words;
  } else {
    element = value_type(result.dtype);
  }
  result.storage = prologue.CreateAlloca(
      llvm::ArrayType::get(element, static_cast<uint64_t>(count)), nullptr, tensor.name);
  return registers_.emplace(id.index, result).first->second;
}

namespace {

llvm::Value* element_pointer(llvm::IRBuilderBase& b, llvm::AllocaInst* storage, int64_t index) {
  return b.CreateConstInBoundsGEP2_32(storage->getAllocatedType(), storage, 0,
                                      static_cast<unsigned>(index));
}

}  // namespace

llvm::Value* KernelEmitter::read_word(const RegisterTensor& tensor, int64_t word) {
  return builder.CreateLoad(i32(), element_pointer(builder, tensor.storage, word));
}

void KernelEmitter::write_word(const RegisterTensor& tensor, int64_t word, llvm::Value* value) {
  builder.CreateStore(value, element_pointer(builder, tensor.storage, word));
}

llvm::Value* KernelEmitter::read_slot(const RegisterTensor& tensor, int64_t slot) {
  if (!tensor.packed) {
    return builder.CreateLoad(value_type(tensor.dtype),
                              element_pointer(builder, tensor.storage, slot));
  }
  const int bits = tensor.dtype.bits();
  const int64_t first = slot * bits;
  const int64_t word = first / 32;
  const auto offset = static_cast<uint32_t>(first % 32);
  llvm::Value* value = builder.CreateLShr(read_word(tensor, word), offset);
  if (offset + static_cast<uint32_t>(bits) > 32) {
    value = builder.CreateOr(value, builder.CreateShl(read_word(tensor, word + 1), 32 - offset));
  }
  value = builder.CreateAnd(value, (1u << bits) - 1);
  return builder.CreateTrunc(value, i8());
}

void KernelEmitter::write_slot(const RegisterTensor& tensor, int64_t slot, llvm::Value* value) {
  if (!tensor.packed) {
    builder.CreateStore(value, element_pointer(builder, tensor.storage, slot));
    return;
  }
  const int bits = tensor.dtype.bits();
  const int64_t first = slot * bits;
  const int64_t word = first / 32;
  const auto offset = static_cast<uint32_t>(first % 32);
  const uint32_t mask = (1u << bits) - 1;
  llvm::Value* code = builder.CreateAnd(builder.CreateZExt(value, i32()), mask);
  llvm::Value* old = read_word(tensor, word);
  write_word(
      tensor, word,
      builder.CreateOr(builder.CreateAnd(old, ~(mask << offset)), builder.CreateShl(code, offset)));
  if (offset + static_cast<uint32_t>(bits) > 32) {
    const uint32_t spill = offset + static_cast<uint32_t>(bits) - 32;
    llvm::Value* next = read_word(tensor, word + 1);
    write_word(tensor, word + 1,
               builder.CreateOr(builder.CreateAnd(next, ~((1u << spill) - 1)),
                                builder.CreateLShr(code, 32 - offset)));
  }
}

std::vector<llvm::Value*> KernelEmitter::entry_index(const RegisterTensor& tensor,
                                                     const SlotEntry& entry) {
  std::vector<llvm::Value*> index;
  for (size_t d = 0; d < entry.index.size(); ++d) {
    index.push_back(builder.CreateAdd(tensor.thread->index_part[d], const_i32(entry.index[d])));
  }
  return index;
}

void KernelEmitter::write_entries(const RegisterTensor& tensor,
                                  const std::vector<llvm::Value*>& values) {
  for (size_t e = 0; e < tensor.map->entries.size(); ++e) {
    write_slot(tensor, tensor.map->entries[e].slot, values[e]);
  }
}

std::vector<llvm::Value*> KernelEmitter::thread_words(const RegisterTensor& tensor) {
  if (tensor.packed) {
    std::vector<llvm::Value*> words;
    for (int64_t w = 0; w < tensor.words; ++w)
      words.push_back(read_word(tensor, w));
    return words;
  }
  const int bits = tensor.dtype.bits();
  const int64_t total = tensor.map->slots * bits;
  if ((bits == 8 || bits == 16) && total % 32 == 0) {
    // Bytes and halves go into a word as a vector (LLVM folds a vector load's elements put back
    // together this way into the loaded words; shifts and ors would stay byte permutes).
    const int per_word = 32 / bits;
    llvm::Type* parts_type = llvm::FixedVectorType::get(
        builder.getIntNTy(static_cast<unsigned>(bits)), static_cast<unsigned>(per_word));
    std::vector<llvm::Value*> words;
    for (int64_t first = 0; first < tensor.map->slots; first += per_word) {
      llvm::Value* parts = llvm::PoisonValue::get(parts_type);
      for (int i = 0; i < per_word; ++i) {
        parts = builder.CreateInsertElement(parts, to_bits(read_slot(tensor, first + i)),
                                            static_cast<uint64_t>(i));
      }
      words.push_back(builder.CreateBitCast(parts, i32()));
    }
    return words;
  }
  std::vector<llvm::Value*> words(static_cast<size_t>((total + 31) / 32), builder.getInt32(0));
  for (int64_t slot = 0; slot < tensor.map->slots; ++slot) {
    llvm::Value* code = to_bits(read_slot(tensor, slot));
    for (int piece = 0; piece < bits; piece += 32) {
      const int64_t first = slot * bits + piece;
      llvm::Value* part = code;
      if (piece > 0) part = builder.CreateLShr(part, static_cast<uint64_t>(piece));
      part = builder.CreateZExtOrTrunc(part, i32());
      const auto shift = static_cast<uint32_t>(first % 32);
      llvm::Value*& word = words[static_cast<size_t>(first / 32)];
      word = builder.CreateOr(word, builder.CreateShl(part, shift));
    }
  }
  return words;
}

void KernelEmitter::write_thread_words(const RegisterTensor& tensor,
                                       const std::vector<llvm::Value*>& words) {
  if (tensor.packed) {
    for (int64_t w = 0; w < tensor.words; ++w)
      write_word(tensor, w, words[static_cast<size_t>(w)]);
    return;
  }
  const int bits = tensor.dtype.bits();
  llvm::Type* bits_type = builder.getIntNTy(static_cast<unsigned>(bits));
  for (int64_t slot = 0; slot < tensor.map->slots; ++slot) {
    llvm::Value* code = llvm::ConstantInt::get(bits_type, 0);
    for (int piece = 0; piece < bits; piece += 32) {
      const int64_t first = slot * bits + piece;
      llvm::Value* word = words[static_cast<size_t>(first / 32)];
      word = builder.CreateLShr(word, static_cast<uint64_t>(first % 32));
      llvm::Value* part = builder.CreateZExtOrTrunc(word, bits_type);
      if (piece > 0) part = builder.CreateShl(part, static_cast<uint64_t>(piece));
      code = builder.CreateOr(code, part);
    }
    write_slot(tensor, slot, from_bits(code, tensor.dtype));
  }
}

// ---- shared memory --------------------------------------------------------------------------

llvm::Value* KernelEmitter::shared_pointer(llvm::Value* byte_offset) {
  return builder.CreateInBoundsGEP(i8(), shared_, {byte_offset});
}

const SharedTile& KernelEmitter::tile(TensorId id) const {
  auto found = tiles_.find(id.index);
  if (found == tiles_.end())
    unsupported(fmt::format("'{}' is not a placed shared tile", info(id).name));
  return found->second;
}

namespace {

// value * factor, as a shift where the factor is a power of two (LLVM's known bits of a multiply
// keep only its trailing zeros).
llvm::Value* scaled(llvm::IRBuilderBase& b, llvm::Value* value, int64_t factor) {
  if (factor > 0 && std::has_single_bit(static_cast<uint64_t>(factor))) {
    return b.CreateShl(value,
                       static_cast<uint64_t>(std::countr_zero(static_cast<uint64_t>(factor))));
  }
  return b.CreateMul(value, b.getInt32(static_cast<uint32_t>(factor)));
}

// The addends of `value` (through nested adds) that are not constants, and the sum of those
// that are.
void collect_addends(llvm::Value* value, std::vector<llvm::Value*>& addends, int64_t& constant) {
  if (auto* integer = llvm::dyn_cast<llvm::ConstantInt>(value)) {
    constant += integer->getSExtValue();
    return;
  }
  auto* add = llvm::dyn_cast<llvm::BinaryOperator>(value);
  if (add != nullptr && add->getOpcode() == llvm::Instruction::Add) {
    collect_addends(add->getOperand(0), addends, constant);
    collect_addends(add->getOperand(1), addends, constant);
    return;
  }
  addends.push_back(value);
}

// The bits of a 32-bit sum that may be one, given those of its terms: their union where no two
// terms share a bit (no carries), else every bit from the lowest shared one up as well.
uint32_t sum_may_be_one(uint32_t sum, uint32_t term) {
  const uint32_t shared = sum & term;
  if (shared == 0) return sum | term;
  return sum | term | ~((uint32_t{1} << std::countr_zero(shared)) - 1);
}

}  // namespace

std::pair<llvm::Value*, llvm::Value*> KernelEmitter::tile_address(
    const SharedTile& tile, const std::vector<llvm::Value*>& index) {
  if (auto split = split_tile_address(tile, index)) return {*split, const_i32(0)};
  llvm::Value* element = const_i32(tile.layout.offset().get(layout::Axis::smem()));
  for (size_t d = 0; d < index.size(); ++d) {
    const std::vector<layout::Iter>& iters = tile.groups[d];
    int64_t weight = 1;
    for (size_t i = iters.size(); i-- > 0;) {
      const layout::Iter& iter = iters[i];
      if (iter.extent > 1 && iter.stride != 0) {
        llvm::Value* digit = index[d];
        if (weight > 1) digit = builder.CreateUDiv(digit, const_i32(weight));
        if (i > 0) digit = builder.CreateURem(digit, const_i32(iter.extent));
        element = builder.CreateAdd(element, builder.CreateMul(digit, const_i32(iter.stride)));
      }
      weight *= iter.extent;
    }
  }
  const int bits = tile.dtype.bits();
  llvm::Value* bit = builder.CreateMul(element, const_i32(bits));
  llvm::Value* byte = builder.CreateLShr(bit, 3);
  llvm::Value* within = bits % 8 == 0 ? const_i32(0) : builder.CreateAnd(bit, 7);
  if (!tile.swizzle.is_identity()) byte = swizzled(tile.swizzle, byte);
  return {builder.CreateAdd(byte, const_i32(tile.base_bytes)), within};
}

llvm::Value* KernelEmitter::swizzled(const layout::Swizzle& swizzle, llvm::Value* byte) {
  return builder.CreateXor(
      byte, builder.CreateAnd(builder.CreateLShr(byte, static_cast<uint64_t>(swizzle.shift())),
                              const_i32(swizzle.mask())));
}

// Most tile indices are a thread's (or a loop's) part plus a constant: the entry of a register
// run, the k step of an mma operand. Where every dimension of the tile is one stride, the byte
// offset splits the same way, and where the run-time part can have no bit in common with the
// constant one, their sum is their XOR, which the swizzle (linear over XOR) maps to the XOR of
// the two swizzled parts. The run-time part is then shared by every constant, and each address
// costs one XOR, or nothing where the two swizzled parts have no bit in common either (an add
// the load folds into its immediate offset). The bits that may be one are found per addend
// (LLVM's known bits see only a few levels into an expression).
std::optional<llvm::Value*> KernelEmitter::split_tile_address(
    const SharedTile& tile, const std::vector<llvm::Value*>& index) {
  const int bits = tile.dtype.bits();
  if (bits % 8 != 0) return std::nullopt;
  const llvm::DataLayout& data_layout = module->getDataLayout();
  llvm::Value* byte = nullptr;
  std::vector<llvm::Value*> terms;
  bool disjoint = true;  // no two terms may have a bit in common: their sum is their XOR
  uint32_t may_be_one = 0;
  int64_t constant_byte = tile.layout.offset().get(layout::Axis::smem()) * (bits / 8);
  for (size_t d = 0; d < index.size(); ++d) {
    const layout::Iter* stride = nullptr;
    for (const layout::Iter& iter : tile.groups[d]) {
      if (iter.extent == 1 || iter.stride == 0) continue;
      if (stride != nullptr) return std::nullopt;
      stride = &iter;
    }
    if (stride == nullptr) continue;
    const int64_t factor = stride->stride * (bits / 8);
    const int factor_zeros = std::countr_zero(static_cast<uint64_t>(factor));
    std::vector<llvm::Value*> addends;
    int64_t constant = 0;
    collect_addends(index[d], addends, constant);
    constant_byte += constant * factor;
    for (llvm::Value* addend : addends) {
      const llvm::KnownBits known = llvm::computeKnownBits(addend, data_layout);
      uint32_t mask = static_cast<uint32_t>(~known.Zero.getZExtValue());
      if (std::has_single_bit(static_cast<uint64_t>(factor))) {
        mask <<= factor_zeros;
      } else {
        const int zeros =
            std::min(31, static_cast<int>(known.countMinTrailingZeros()) + factor_zeros);
        mask = ~((uint32_t{1} << zeros) - 1);
      }
      disjoint = disjoint && (may_be_one & mask) == 0;
      may_be_one = sum_may_be_one(may_be_one, mask);
      llvm::Value* term = scaled(builder, addend, factor);
      terms.push_back(term);
      byte = byte == nullptr ? term : builder.CreateAdd(byte, term);
    }
  }
  if (byte == nullptr || constant_byte < 0 || constant_byte > INT32_MAX) return std::nullopt;
  if (tile.swizzle.is_identity())
    return builder.CreateAdd(byte, const_i32(constant_byte + tile.base_bytes));
  if ((may_be_one & static_cast<uint32_t>(constant_byte)) != 0) return std::nullopt;
  const layout::Swizzle& swizzle = tile.swizzle;
  const uint32_t swizzled_may_be_one =
      may_be_one | ((may_be_one >> swizzle.shift()) & static_cast<uint32_t>(swizzle.mask()));
  const int64_t swizzled_constant = swizzle(constant_byte);
  // Terms with no bit in common are swizzled one by one (the swizzle is linear over XOR): the
  // loop-invariant ones (the thread's) then leave the loop, and a ring slot's term, whose bits
  // lie above the swizzle's, needs no swizzling at all.
  llvm::Value* address = nullptr;
  if (disjoint) {
    // The terms made in the entry block (the thread's) first: their XOR is then one value that
    // LICM can hoist, and a loop's terms join it last.
    std::stable_partition(terms.begin(), terms.end(), [&](llvm::Value* term) {
      auto* made = llvm::dyn_cast<llvm::Instruction>(term);
      while (made != nullptr && made->getParent() != prologue.GetInsertBlock() &&
             (made->getOpcode() == llvm::Instruction::Shl ||
              made->getOpcode() == llvm::Instruction::Mul) &&
             llvm::isa<llvm::ConstantInt>(made->getOperand(1))) {
        made = llvm::dyn_cast<llvm::Instruction>(made->getOperand(0));  // scaled(addend)
      }
      return made == nullptr || made->getParent() == prologue.GetInsertBlock();
    });
    for (llvm::Value* term : terms) {
      llvm::Value* part = swizzled(swizzle, term);
      address = address == nullptr ? part : builder.CreateXor(address, part);
    }
  } else {
    address = swizzled(swizzle, byte);
  }
  if ((swizzled_may_be_one & static_cast<uint32_t>(swizzled_constant)) != 0) {
    address = builder.CreateXor(address, const_i32(swizzled_constant));
  } else {
    address = builder.CreateAdd(address, const_i32(swizzled_constant));
  }
  return builder.CreateAdd(address, const_i32(tile.base_bytes));
}

int64_t KernelEmitter::reserve_scratch(int64_t bytes) {
  scratch_bytes_ = std::max(scratch_bytes_, bytes);
  return (tiles_end_ + 127) / 128 * 128;
}

// In a kernel whose dots read shared memory through wgmma, each thread first makes its own
// shared-memory writes (stores, completed cp.async copies: the generic proxy) visible to the async
// proxy wgmma reads through; the barrier then hands them to the other threads (the writer fences,
// then the barrier, then the wgmma: the order the PTX memory model asks for).
void KernelEmitter::barrier() {
  if (has_wgmma_dots_) emit_statement_asm("fence.proxy.async.shared::cta;");
  builder.CreateIntrinsic(llvm::Intrinsic::nvvm_barrier0, {}, {});
}

}  // namespace nibble::codegen
