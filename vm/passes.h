// Passes over a verified program. Each takes the program by reference, keeps it verified, and
// is idempotent. run_default_passes() is the pipeline the front ends use before the
// interpreter or codegen: simplify, eliminate dead code, infer layouts.
#pragma once

#include "vm/program.h"
#include "vm/simplify.h"

namespace nibble::vm {

// The facts a program knows about its scalars: parameter divisors and compile-time values,
// non-negative sizes are not assumed. Loop variables get their ranges inside their loops (the
// passes add those as they walk).
Facts program_facts(const Program& program);

// Simplifies every scalar expression (offsets, bounds, grid, conditions) with program_facts
// and loop ranges; compile-time parameters are replaced by their values.
void simplify_program(Program& program);

// Removes instructions whose results are never read and that have no effect (loads, casts,
// elementwise, … into tensors nobody uses), and lets whose variables are never read. Stores,
// atomics, copies, barriers, waits, prints and dot (an in-place update of a used accumulator)
// stay. Returns the number of statements removed.
int eliminate_dead_code(Program& program);

// Fills every register tensor whose layout is empty: from the tensor it is computed from when
// that one has a layout of the same shape (elementwise results, casts, shuffles: no data
// movement), else the default blocked layout (vm/default_layout.h). Then checks that every
// register tensor has a layout.
void infer_layouts(Program& program);

// simplify_program, eliminate_dead_code, infer_layouts, then verify_or_throw.
void run_default_passes(Program& program);

}  // namespace nibble::vm
