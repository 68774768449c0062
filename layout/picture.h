// Pictures of 2-D layouts: the way people check a layout.
//
// Cell (r, c) shows where element r * columns + c lives:
//   - a layout with thread axes: "T{thread}:r{slot}" (thread fused as in queries.h, then the
//     register slot), e.g. "T5:r2"; other non-thread axes follow as "{axis}{value}";
//   - a memory layout: the byte address on its memory axis when element_bits is given (after
//     the swizzle), else the element offset;
//   - device and grid axes prefix the label ("dp1:tp3:..."), so a mesh layout draws too.
// A replicated element shows its first place followed by "+{n}" for the n other places.
// The SVG colours cells by thread (threads of one warp share a hue family) or, for memory
// layouts, by shared-memory bank (byte address / 4 % 32).
#pragma once

#include <cstdint>
#include <string>

#include "layout/layout.h"
#include "layout/swizzle.h"

namespace nibble::layout {

struct PictureOptions {
  int element_bits = 0;  // 0: show element offsets rather than byte addresses
  Swizzle swizzle;       // applied to smem coordinates
  std::string title;     // first line of the text grid, caption of the SVG
};

// The label of one element, as drawn in a cell.
std::string cell_label(const Layout& layout, int64_t index, const PictureOptions& options = {});
// A text grid with row and column numbers. Throws LayoutError unless rows * columns == size.
std::string text_grid(const Layout& layout, int64_t rows, int64_t columns,
                      const PictureOptions& options = {});
// A standalone SVG document of the same grid.
std::string svg(const Layout& layout, int64_t rows, int64_t columns,
                const PictureOptions& options = {});

}  // namespace nibble::layout
