// The emitter of one kernel: the state every instruction family shares (module, function,
// builder, parameters, scalars, register tensors, shared tiles and scratch, the per-thread values
// of each register layout) and the entry points of the families, one file each:
//
//   kernel_emitter.cpp   module, function, parameters, prologue, statements and control flow
//   emit_scalar.cpp      vm::Expr -> IR, with the VM's integer semantics
//   emit_values.cpp      element values: types, casts with the VM's rounding and saturation
//   emit_memory.cpp      global_view, alloc_*, load/store global and shared, copy_async,
//                        commit/wait groups, barrier, atomic_add
//   emit_data.cpp        cast (with the dtypes conversion plans), view, slice, repeat, permute,
//                        reshape, and moving values between register layouts
//   emit_compute.cpp     elementwise, reduce, dot, shuffle
//
// Internal to codegen (LLVM headers included).
#pragma once

#include <llvm/Analysis/InstSimplifyFolder.h>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "codegen/compile.h"
#include "codegen/emit/register_map.h"
#include "layout/mma_tiling.h"
#include "vm/simplify.h"

namespace nibble::codegen {

using dtypes::DataType;
using vm::Expr;
using vm::TensorId;

// The per-thread run-time values of one register layout.
struct ThreadValues {
  std::vector<llvm::Value*> index_part;  // i32 per dimension
  // The part of index_part that the warp index gives (the lane digits left out), where every
  // thread digit lies wholly in the lane bits or wholly above them; else empty.
  std::vector<llvm::Value*> warp_index_part;
  llvm::Value* flat_part = nullptr;  // i32
  llvm::Value* valid = nullptr;      // i1: the thread holds elements of this layout
  llvm::Value* primary = nullptr;    // i1: valid and every thread-replica digit is 0
};

// A register tensor: a per-thread array of slots (element values), or of 32-bit words holding
// the packed bit stream of a sub-byte tensor.
struct RegisterTensor {
  const RegisterMap* map = nullptr;
  const ThreadValues* thread = nullptr;
  DataType dtype = DataType::f32();
  bool packed = false;
  int64_t words = 0;  // packed: ceil(slots * bits / 32)
  llvm::AllocaInst* storage = nullptr;
};

struct GlobalViewValues {
  int param = -1;
  DataType dtype = DataType::f32();
  std::vector<llvm::Value*> shape;    // i64
  std::vector<llvm::Value*> strides;  // i64, elements
  std::vector<Expr> shape_exprs;
  std::vector<Expr> stride_exprs;
};

struct SharedTile {
  int64_t base_bytes = 0;
  int64_t tile_bytes = 0;
  DataType dtype = DataType::f16();
  layout::Shape shape;
  layout::Layout layout;
  layout::Swizzle swizzle;
  std::vector<std::vector<layout::Iter>> groups;  // the smem iters of each dimension
};

// ---- dot through mma.sync (emit_compute.cpp) ---------------------------------------------------
//
// A dot whose tile divides into mma.sync atoms runs on them with the tiling of
// layout/mma_tiling.h:
//   f16·f16, bf16·bf16 -> f32        m16n8k16, every target
//   {s8,u8}·{s8,u8} -> i32           m16n8k32, every target (wrapping, as the VM's dot)
//   {e4m3,e5m2}·{e4m3,e5m2} -> f32   m16n8k32, sm_89 and newer (PTX ISA 8.4)
// The operands and the accumulator take its fragment layouts before code is generated, so the
// accumulator stays in the C fragments for the whole loop and a load_shared that feeds an operand
// becomes ldmatrix where the bytes allow (x4 for A, x4/x2 .trans for 16-bit B).
using layout::MmaTiling;
// The tiling of a dot mma.sync can do on `target`, or nullopt (the SIMT path then).
std::optional<MmaTiling> mma_tiling(const vm::Program& program, const Target& target,
                                    const vm::Dot& dot);
// Gives the operands and accumulators of every such dot their fragment layouts (a tensor that two
// dots want in different layouts, or that a view or shuffle reads bit for bit, keeps its own).
void assign_mma_layouts(vm::Program& program, const Target& target);

struct Accumulate;

// The values of one operand of an elementwise instruction, per result entry (or one scalar).
struct OperandValues {
  DataType dtype = DataType::f32();
  std::vector<llvm::Value*> values;  // per result entry
  llvm::Value* scalar = nullptr;
  llvm::Value* at(size_t e) const { return scalar != nullptr ? scalar : values[e]; }
};

class KernelEmitter {
 public:
  KernelEmitter(const vm::Program& program, const Target& target, llvm::LLVMContext& context);
  // Builds the kernel function; throws CodegenError for unsupported instructions.
  std::unique_ptr<llvm::Module> emit();

  int64_t tile_bytes() const { return tiles_end_; }
  // The lowest PTX ISA version (x 10) the emitted instructions need (0: the target's own).
  int required_ptx_version() const { return required_ptx_version_; }
  int64_t scratch_bytes() const { return scratch_bytes_; }
  const std::vector<std::string>& notes() const { return notes_; }
  const std::vector<KernelParameter>& parameters() const { return parameters_; }

  // ---- shared with the family emitters ---------------------------------------------------------

  const vm::Program& program;
  const Target& target;
  llvm::LLVMContext& context;
  std::unique_ptr<llvm::Module> module;
  // The builders simplify as they go (x + 0, x * 1, known bits, ...): the emitters write index
  // arithmetic generically and LLVM's passes then work on a fraction of the IR (compile latency).
  using Builder = llvm::IRBuilder<llvm::InstSimplifyFolder>;
  Builder builder;
  Builder prologue;  // inserts at the end of the entry block (allocas, thread values)
  llvm::Function* function = nullptr;
  llvm::Value* thread_index = nullptr;  // i32 tid.x
  vm::Facts facts;

  [[noreturn]] void unsupported(const std::string& what) const;
  void note(std::string text) { notes_.push_back(std::move(text)); }
  const vm::TensorInfo& info(TensorId id) const { return program.tensor(id); }

  // Types.
  llvm::Type* i1() { return builder.getInt1Ty(); }
  llvm::Type* i8() { return builder.getInt8Ty(); }
  llvm::Type* i32() { return builder.getInt32Ty(); }
  llvm::Type* i64() { return builder.getInt64Ty(); }
  llvm::Value* const_i32(int64_t v) { return builder.getInt32(static_cast<uint32_t>(v)); }
  llvm::Value* const_i64(int64_t v) { return builder.getInt64(static_cast<uint64_t>(v)); }

  // ---- scalars (emit_scalar.cpp) ---------------------------------------------------------------
  llvm::Type* scalar_type(DataType type);
  llvm::Value* scalar(const Expr& expr);
  llvm::Value* scalar_i64(const Expr& expr);  // integer expression, sign-extended
  llvm::Value* scalar_i32(const Expr& expr);  // integer expression, truncated or extended
  llvm::Value* truth(const Expr& expr);       // i1
  int64_t divisor_of(const Expr& expr) const { return vm::known_divisor(expr, facts); }

  // ---- element values (emit_values.cpp) --------------------------------------------------------
  // The IR type of one element value: half, bfloat, float, double; iN containers for integers
  // and narrow floats (the element's code, zero-extended).
  llvm::Type* value_type(DataType type);
  // Bits of a value as an integer of the value type's width, and back.
  llvm::Value* to_bits(llvm::Value* value);
  llvm::Value* from_bits(llvm::Value* bits, DataType type);
  // The code of an element as a constant value.
  llvm::Value* constant_value(DataType type, uint64_t code);
  // Exact conversion of an element value to a float of `compute` (float or double).
  llvm::Value* to_real(llvm::Value* value, DataType type, llvm::Type* compute);
  // The signed value of an integer element, in `width` bits.
  llvm::Value* to_integer(llvm::Value* value, DataType type, llvm::Type* width);
  // cast semantics of the VM (vm/interpreter.h): encode(to, decode(from, x)).
  llvm::Value* convert(llvm::Value* value, DataType from, DataType to);
  // A float computed in float/double rounded to `to` (a float type).
  llvm::Value* round_real(llvm::Value* real, DataType to);
  // A wide integer wrapped to `to` (an integer type) as its element value.
  llvm::Value* wrap_integer(llvm::Value* wide, DataType to);
  // Whether every value of `type` is exact in f32.
  static bool exact_in_f32(DataType type);

  // ---- register tensors -------------------------------------------------------------------------
  const RegisterMap& register_map(const layout::Layout& layout, const layout::Shape& shape);
  const ThreadValues& thread_values(const RegisterMap& map);
  RegisterTensor& reg(TensorId id);
  llvm::Value* read_slot(const RegisterTensor& tensor, int64_t slot);
  void write_slot(const RegisterTensor& tensor, int64_t slot, llvm::Value* value);
  llvm::Value* read_word(const RegisterTensor& tensor, int64_t word);
  void write_word(const RegisterTensor& tensor, int64_t word, llvm::Value* value);
  // Consecutive slots of a thread as one `access_bits`-wide value for a vector store: whole
  // 32-bit words for packed sub-byte tensors, else the slots' elements bit-cast together.
  llvm::Value* gather_slots(const RegisterTensor& tensor,
                            const std::vector<const SlotEntry*>& slots, int64_t access_bits);
  // The reverse for a vector load of an unpacked tensor: `loaded` (as many bits as the slots)
  // bit-cast to their elements, one per slot.
  void scatter_slots(const RegisterTensor& tensor, const std::vector<const SlotEntry*>& slots,
                     llvm::Value* loaded);
  // The logical index of an entry's element in this thread (i32 per dimension).
  std::vector<llvm::Value*> entry_index(const RegisterTensor& tensor, const SlotEntry& entry);
  // The per-thread bit stream of a tensor as 32-bit words, and back (view, shuffle).
  std::vector<llvm::Value*> thread_words(const RegisterTensor& tensor);
  void write_thread_words(const RegisterTensor& tensor, const std::vector<llvm::Value*>& words);
  // Writes one value per entry (computed before any write, so a tensor may update itself).
  void write_entries(const RegisterTensor& tensor, const std::vector<llvm::Value*>& values);

  // ---- moving values between layouts (emit_data.cpp) ------------------------------------------
  // For each entry of `to_map`: the value of source element source_of(element), where
  // source_of maps flat indices of the target shape to flat indices of the source's shape, and
  // source_index computes the same at run time from the target's multi-index (i32 values).
  // A renaming of slots when every thread holds what it needs; else warp shuffles when every
  // element a thread needs is in its warp (of 32 bits at most); else through shared memory.
  using FlatMap = std::function<int64_t(int64_t)>;
  using IndexMap = std::function<llvm::Value*(const std::vector<llvm::Value*>& index)>;
  std::vector<llvm::Value*> gather(TensorId source, const RegisterMap& to_map,
                                   const FlatMap& source_of, const IndexMap& source_index,
                                   std::string_view why);
  // The values of `to_map`'s entries by warp shuffles (register_map.h: warp_shuffle_plan).
  std::vector<llvm::Value*> shuffled(const RegisterTensor& source,
                                     const std::vector<LaneShuffle>& shuffles,
                                     const RegisterMap& to_map, std::string_view why,
                                     std::string_view name);
  // The same with the identity map: the source's values in the layout of `to_map`.
  std::vector<llvm::Value*> values_in(TensorId source, const RegisterMap& to_map);

  // ---- shared memory
  // ------------------------------------------------------------------------------
  llvm::Value* shared_pointer(llvm::Value* byte_offset);  // ptr addrspace(3)
  // Loads `access_bits` (a multiple of 32) of whole words into the packed words of `tensor`
  // from first_word on, in pieces of piece_bits_of(access_bits) (emit_memory.cpp);
  // address_of(byte) is the address `byte` bytes into the run.
  void load_packed_words(const RegisterTensor& tensor, int64_t first_word, int64_t access_bits,
                         const std::function<llvm::Value*(int64_t)>& address_of);
  const SharedTile& tile(TensorId id) const;
  // The swizzled byte offset (in the block's shared memory) and bit offset inside the byte of a
  // tile element at a logical multi-index (i32 values).
  std::pair<llvm::Value*, llvm::Value*> tile_address(const SharedTile& tile,
                                                     const std::vector<llvm::Value*>& index);
  // The byte offset as a run-time part and a constant (see kernel_emitter.cpp), or nullopt.
  std::optional<llvm::Value*> split_tile_address(const SharedTile& tile,
                                                 const std::vector<llvm::Value*>& index);
  llvm::Value* swizzled(const layout::Swizzle& swizzle, llvm::Value* byte);
  // The byte offset of the scratch region, growing it to hold `bytes`.
  int64_t reserve_scratch(int64_t bytes);
  void barrier();

  // ---- control ----------------------------------------------------------------------------------
  // Runs `body` with the builder in a block entered only when `condition` holds.
  void guarded(llvm::Value* condition, const std::function<void()>& body);
  // A loop whose i32 counter runs from `first` to `end` - 1 (end > first): `body` emits one
  // iteration. The counter lives in an alloca (mem2reg makes it a phi): the simplifying
  // builder would fold a phi that has only its entry value yet as that constant.
  void counted_loop(const std::string& name, int64_t first, int64_t end,
                    const std::function<void(llvm::Value* counter)>& body);
  llvm::BasicBlock* new_block(const std::string& name);

  // ---- families
  // -----------------------------------------------------------------------------------
  void emit(const vm::GlobalView&);
  void emit(const vm::AllocShared&);
  void emit(const vm::AllocRegister&);
  void emit(const vm::LoadGlobal&);
  void emit(const vm::StoreGlobal&);
  void emit(const vm::LoadShared&);
  void emit(const vm::LoadPeerShared&);
  void emit(const vm::ClusterBarrier&);
  void emit(const vm::StoreShared&);
  void emit(const vm::CopyAsync&);
  void emit(const vm::CommitGroup&);
  void emit(const vm::WaitGroup&);
  void emit(const vm::Barrier&);
  void emit(const vm::AtomicAdd&);
  void emit(const vm::Cast&);
  void emit(const vm::View&);
  void emit(const vm::Slice&);
  void emit(const vm::Repeat&);
  void emit(const vm::Permute&);
  void emit(const vm::Reshape&);
  void emit(const vm::Elementwise&);
  // Elementwise f16 (bf16 on sm_90) add/sub/mul/fma on packed pairs of slots (emit_compute.cpp).
  bool paired_half_op(const vm::Elementwise& instruction, const std::vector<OperandValues>& in);
  void emit_paired_half(vm::ElementwiseOp op, DataType type, const RegisterMap& map,
                        const std::vector<OperandValues>& in, std::vector<llvm::Value*>& out);
  void emit(const vm::Reduce&);
  // reduce across the lanes of a warp through shfl.sync.bfly; false when the layouts do not
  // allow it (emit_compute.cpp).
  bool emit_shuffle_reduce(const vm::Reduce& instruction, Accumulate& accumulate);
  void emit(const vm::Dot&);
  void emit(const vm::WaitDots&);
  void emit(const vm::Shuffle&);
  void emit(const vm::Print&);

  std::unordered_map<int, GlobalViewValues> views;  // by tensor index

  // The mma operands in fragment layouts, by tensor index: the tiling and the role ('a' or 'b').
  struct MmaOperand {
    MmaTiling tiling;
    char role = 'a';
  };
  std::unordered_map<int, MmaOperand> mma_operands;
  void collect_mma_operands();
  void emit_mma(const vm::Dot& instruction, const MmaTiling& tiling);
  // A dot whose b is a shared tile read in place: wgmma.mma_async (see emit_compute.cpp).
  void emit_wgmma(const vm::Dot& instruction);
  bool has_wgmma_dots_ = false;  // set by collect_mma_operands; barriers then fence the proxies
  std::set<int> async_accumulators_;  // of async dots, by tensor index (collect_mma_operands)
  // ldmatrix for a load_shared whose result is an mma operand, when the tile allows; false when
  // it does not (the generic path then).
  bool emit_ldmatrix(const vm::LoadShared& instruction, const MmaOperand& operand);
  void emit_grid_dependency();
  // An inline-asm statement without operands (griddepcontrol, wgmma.fence/commit/wait, proxy
  // fences): a memory barrier to LLVM, and convergent (a warp's threads execute it together).
  void emit_statement_asm(const std::string& text);
  // The values of an mma/wgmma operand in the register slots of `fragment` (a renaming when the
  // tensor already has that layout), and one 32-bit operand register: `per_register`
  // consecutive slots from `first`, the first in the low bits.
  std::vector<llvm::Value*> operand_slots(TensorId id, const layout::Layout& fragment);
  llvm::Value* operand_word(const std::vector<llvm::Value*>& slots, int64_t first,
                            int64_t per_register);
  // ldmatrix.sync.aligned.m8n8.x{count}[.trans]: the `count` 32-bit words of the lane.
  std::vector<llvm::Value*> load_matrices(int count, bool transpose, llvm::Value* address);
  // ldmatrix for any other load_shared of a 16-bit tensor whose register words are the 8x8
  // matrices of the ldmatrix atom (register_map.h: match_matrix_fragments; copies in other warps
  // allowed, each warp loading its own); false when it is not (the generic path then).
  bool emit_matrix_load(const vm::LoadShared& instruction);
  // stmatrix (sm_90) for a store_shared whose value holds the ldmatrix atom's 8x8 matrices; false
  // when it does not (the generic path then).
  bool emit_stmatrix(const vm::StoreShared& instruction);
  // The shared address lane q gives for row q % 8 of matrix q / 8 of each group of `count`
  // matrices (four at a time: x4; x2, x1 for the rest) that ldmatrix/stmatrix move between
  // `tile` at `offsets` and the words of `value`; `emit_group` receives the group's first slots.
  void for_each_matrix_group(
      const RegisterTensor& value, const SharedTile& tile, const std::vector<Expr>& offsets,
      const MatrixFragments& fragments,
      const std::function<void(int count, llvm::Value* address, const std::vector<int64_t>& slots)>&
          emit_group);

 private:
  void declare_function();
  void place_tiles(const vm::Body& body);
  void emit_body(const vm::Body& body);
  void emit_statement(const vm::Statement& statement);
  void emit_for(const vm::ForStmt& loop);
  void emit_while(const vm::WhileStmt& loop);
  void emit_if(const vm::IfStmt& branch);
  void emit_fetch_add(const vm::FetchAddStmt& fetch);  // emit_memory.cpp
  void collect_assigned(const vm::Body& body);

 public:
  std::vector<llvm::Value*> param_values;  // per program parameter; nullptr: compile-time
  std::unordered_map<int, llvm::AllocaInst*> variables;  // by Var id
  std::unordered_set<int> assigned_variables;
  // The values of lets that are never assigned, while in scope: read as themselves rather than
  // through their allocas, so that the emitters' known-bits analysis sees what they are made of
  // (a ring slot's one bit, a tile index's multiples).
  std::unordered_map<int, llvm::Value*> let_values;

 private:
  const vm::Statement* current_ = nullptr;
  llvm::BasicBlock* entry_ = nullptr;
  std::vector<llvm::BasicBlock*> break_targets_;
  std::map<std::string, std::unique_ptr<RegisterMap>> maps_;
  std::map<const RegisterMap*, std::unique_ptr<ThreadValues>> thread_values_;
  std::unordered_map<int, RegisterTensor> registers_;
  std::unordered_map<int, SharedTile> tiles_;
  int64_t tiles_end_ = 0;
  int64_t scratch_bytes_ = 0;
  int required_ptx_version_ = 0;
  llvm::GlobalVariable* shared_ = nullptr;
  std::vector<std::string> notes_;
  std::vector<KernelParameter> parameters_;
};

}  // namespace nibble::codegen
