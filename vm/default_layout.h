// The layout a register tensor gets when nothing constrains it: blocked and row-major.
//
// The flat row-major index is split, innermost first, into a vector of up to 16 bytes per
// thread (consecutive elements in consecutive register slots, so loads vectorize), then lanes,
// then warps, then further register slots. When the tensor has fewer vectors than the block
// has threads, the unused lanes and warps hold replicas: every thread of the block holds some
// copy, and a thread-block reduction or broadcast needs no special case.
//   f32[8, 128], 4 warps:  S[(2,4,32,4):(4@reg,1@warp,1@lane,1@reg)]
//   f32[1, 64],  4 warps:  S[(16,4):(1@lane,1@reg)] + R[(2,4):(16@lane,1@warp)]
#pragma once

#include "dtypes/dtype.h"
#include "layout/layout.h"

namespace nibble::vm {

layout::Layout default_register_layout(const layout::Shape& shape, dtypes::DataType dtype,
                                       int warps);

}  // namespace nibble::vm
