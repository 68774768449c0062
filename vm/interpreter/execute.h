// One execute function per instruction: the semantics of the VM, one place per instruction.
//
//   memory.cpp          global_view, alloc_shared, alloc_register, load_global, store_global,
//                       load_shared, store_shared, copy_async, commit_group, wait_group,
//                       barrier, atomic_add, load_peer_shared, cluster_barrier
//   data_movement.cpp   cast, view, slice, repeat, permute, reshape
//   compute.cpp         elementwise, reduce, dot, shuffle
//   control_flow.cpp    for, if, while, break, let, assign, print, and the dispatch
#pragma once

#include "vm/interpreter/block.h"

namespace nibble::vm::interp {

// memory
void execute(Block& block, const GlobalView& instruction);
void execute(Block& block, const AllocShared& instruction);
void execute(Block& block, const AllocRegister& instruction);
void execute(Block& block, const LoadGlobal& instruction);
void execute(Block& block, const StoreGlobal& instruction);
void execute(Block& block, const LoadShared& instruction);
void execute(Block& block, const LoadPeerShared& instruction);
void execute(Block& block, const ClusterBarrier& instruction);
void execute(Block& block, const StoreShared& instruction);
void execute(Block& block, const CopyAsync& instruction);
void execute(Block& block, const CommitGroup& instruction);
void execute(Block& block, const WaitGroup& instruction);
void execute(Block& block, const Barrier& instruction);
void execute(Block& block, const AtomicAdd& instruction);

// data movement
void execute(Block& block, const Cast& instruction);
void execute(Block& block, const View& instruction);
void execute(Block& block, const Slice& instruction);
void execute(Block& block, const Repeat& instruction);
void execute(Block& block, const Permute& instruction);
void execute(Block& block, const Reshape& instruction);

// compute
void execute(Block& block, const Elementwise& instruction);
void execute(Block& block, const Reduce& instruction);
void execute(Block& block, const Dot& instruction);
void execute(Block& block, const WaitDots& instruction);
void execute(Block& block, const Shuffle& instruction);

// debug
void execute(Block& block, const Print& instruction);

// Runs the program's body for one block.
void run_block(Block& block);

// Applies the buffered atomic updates of one block to the host buffers.
void apply_atomics(const Plan& plan, const std::vector<AtomicUpdate>& updates);

}  // namespace nibble::vm::interp
