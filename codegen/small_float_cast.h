// The GPU's cast into a small float (at most 8 bits), evaluated on the CPU: the same LLVM IR the
// kernels run (codegen/emit/emit_values.cpp), built on constant operands so that LLVM's constant
// folder computes it. The tests compare it with dtypes::encode over every code of the narrow
// sources and many of the wide ones, which is how the bit-exactness of the GPU casts is checked
// on a machine without a GPU.
//
// No LLVM type appears here.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dtypes/dtype.h"

namespace nibble::codegen {

// The codes of cast(to, x) for the elements of type `from` whose codes are given; `to` is a float
// of at most 8 bits. Throws CodegenError if the IR did not fold to a constant.
std::vector<uint64_t> fold_cast_into_small_float(dtypes::DataType from,
                                                 std::span<const uint64_t> codes,
                                                 dtypes::DataType to);

}  // namespace nibble::codegen
