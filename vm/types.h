// Tensor types of the VM: where a tensor lives, what its elements are, its shape and layout.
//
//   Global    a view of a pointer parameter: shape and strides are scalar expressions known at
//             run time (element strides; the innermost stride is usually 1). No layout: the
//             address of element (i0, …, ik) is base + Σ i_d · stride_d elements.
//   Shared    a tile in the block's shared memory: static shape; the layout maps each logical
//             element to an `smem` element offset (one place per element), and an optional
//             swizzle permutes the byte addresses of the tile.
//   Register  a tile held in the threads' registers: static shape; the layout maps each logical
//             element to (warp, lane, reg) places — several places when the layout replicates
//             it. The layout may be left empty by a front end: layout inference fills it.
//
// Sub-byte elements are packed in the bit stream order of dtypes/packing.h within each
// thread's registers (register slot r of a u4 tensor holds bits [4r, 4r+4) of the thread's
// register file) and within shared and global memory.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "dtypes/dtype.h"
#include "layout/layout.h"
#include "layout/swizzle.h"
#include "vm/expr.h"

namespace nibble::vm {

using layout::Layout;
using layout::Shape;
using layout::Swizzle;

enum class Scope : uint8_t { Global, Shared, Register };
std::string_view to_string(Scope scope);

struct TensorType {
  Scope scope = Scope::Register;
  DataType dtype = DataType::f32();
  Shape shape;                       // Shared, Register: static extents
  std::optional<Layout> layout;      // Shared, Register; empty = to be inferred (Register only)
  Swizzle swizzle;                   // Shared only
  std::vector<Expr> global_shape;    // Global only
  std::vector<Expr> global_strides;  // Global only, in elements

  int rank() const {
    return static_cast<int>(scope == Scope::Global ? global_shape.size() : shape.size());
  }
  int64_t element_count() const;  // Shared, Register
  bool operator==(const TensorType&) const = default;
};

// Where a shared tile may start in the block's shared memory: 128-byte boundaries, and for a
// swizzled tile a whole swizzle period (1024 bytes for the 128-byte pattern), so that the pattern
// the layout applies to the tile's own offsets is the one the hardware applies to absolute
// addresses where it swizzles by itself (wgmma's shared operands, TMA).
int64_t shared_tile_alignment(const TensorType& type);

// "f16[64, 128] @ S[(64,128):(128@smem,1@smem)] swizzle 128B", "f32[16, 8] @ ?" (not yet laid
// out), "u4 global[k, n] strides [n, 1]".
std::string to_string(const TensorType& type);

}  // namespace nibble::vm
