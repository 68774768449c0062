#include "layout/picture.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "layout/error.h"
#include "layout/queries.h"

namespace nibble::layout {
namespace {

bool has_thread_axes(const Layout& layout) {
  std::vector<Axis> axes = layout.axes();
  return std::any_of(axes.begin(), axes.end(), [](Axis axis) { return axis.is_thread(); });
}

void check_grid(const Layout& layout, int64_t rows, int64_t columns) {
  if (rows < 1 || columns < 1 || rows * columns != layout.size()) {
    throw LayoutError(fmt::format("picture: a {}x{} grid does not hold the {} elements of {}", rows,
                                  columns, layout.size(), layout.to_string()));
  }
}

Coord swizzled(const Coord& point, const PictureOptions& options) {
  if (options.swizzle.is_identity()) return point;
  int bits = options.element_bits > 0 ? options.element_bits : 8;
  return options.swizzle.on_coord(point, Axis::smem(), bits);
}

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

std::string cell_label(const Layout& layout, int64_t index, const PictureOptions& options) {
  std::vector<Coord> places = layout.apply(index);
  // The first place of a replicated element: the lowest thread, then the lowest coordinate.
  Coord point =
      swizzled(*std::min_element(places.begin(), places.end(),
                                 [](const Coord& a, const Coord& b) {
                                   return std::pair(thread_of(a), a) < std::pair(thread_of(b), b);
                                 }),
               options);
  std::vector<std::string> parts;
  for (Axis axis : layout.axes()) {
    if (axis.is_device() || axis.kind() == AxisKind::Grid) {
      parts.push_back(fmt::format("{}{}", axis.name(), point.get(axis)));
    }
  }
  if (has_thread_axes(layout)) parts.push_back(fmt::format("T{}", thread_of(point)));
  for (Axis axis : layout.axes()) {
    if (axis.is_thread() || axis.is_device() || axis.kind() == AxisKind::Grid) continue;
    int64_t value = point.get(axis);
    if (axis == Axis::reg()) {
      parts.push_back(fmt::format("r{}", value));
    } else if (axis.is_memory()) {
      bool bytes = options.element_bits > 0;
      int64_t shown = bytes ? value * options.element_bits / 8 : value;
      parts.push_back(layout.axes().size() == 1 ? std::to_string(shown)
                                                : fmt::format("{}{}", axis.name(), shown));
    } else {
      parts.push_back(fmt::format("{}{}", axis.name(), value));
    }
  }
  std::string label = parts.empty() ? "0" : fmt::format("{}", fmt::join(parts, ":"));
  if (places.size() > 1) label += fmt::format("+{}", places.size() - 1);
  return label;
}

std::string text_grid(const Layout& layout, int64_t rows, int64_t columns,
                      const PictureOptions& options) {
  check_grid(layout, rows, columns);
  std::vector<std::string> labels(static_cast<size_t>(rows * columns));
  size_t width = std::to_string(columns - 1).size();
  for (int64_t i = 0; i < rows * columns; ++i) {
    labels[static_cast<size_t>(i)] = cell_label(layout, i, options);
    width = std::max(width, labels[static_cast<size_t>(i)].size());
  }
  size_t row_width = std::to_string(rows - 1).size();
  std::string out;
  if (!options.title.empty()) out += options.title + "\n";
  out += std::string(row_width, ' ') + " |";
  for (int64_t c = 0; c < columns; ++c)
    out += fmt::format(" {:>{}}", c, width);
  out += "\n" + std::string(row_width, '-') + "-+" +
         std::string(static_cast<size_t>(columns) * (width + 1), '-') + "\n";
  for (int64_t r = 0; r < rows; ++r) {
    out += fmt::format("{:>{}} |", r, row_width);
    for (int64_t c = 0; c < columns; ++c) {
      out += fmt::format(" {:>{}}", labels[static_cast<size_t>(r * columns + c)], width);
    }
    out += "\n";
  }
  return out;
}

std::string svg(const Layout& layout, int64_t rows, int64_t columns,
                const PictureOptions& options) {
  check_grid(layout, rows, columns);
  size_t longest = 1;
  for (int64_t i = 0; i < rows * columns; ++i) {
    longest = std::max(longest, cell_label(layout, i, options).size());
  }
  const int64_t cell_width = static_cast<int64_t>(std::max<size_t>(longest * 7 + 10, 28));
  const int64_t cell_height = 22, margin = 30;
  const int64_t title_height = options.title.empty() ? 0 : 24;
  const int64_t width = margin + columns * cell_width + 10;
  const int64_t height = title_height + margin + rows * cell_height + 10;
  const bool threads = has_thread_axes(layout);
  std::string out = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"monospace\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n",
      width, height);
  if (!options.title.empty()) {
    out += fmt::format("<text x=\"{}\" y=\"16\" font-size=\"14\">{}</text>\n", margin,
                       escape(options.title));
  }
  const int64_t top = title_height + margin;
  for (int64_t c = 0; c < columns; ++c) {
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#666\">{}</text>\n",
                       margin + c * cell_width + cell_width / 2, top - 8, c);
  }
  for (int64_t r = 0; r < rows; ++r) {
    out += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\" fill=\"#666\">{}</text>\n",
                       margin - 6, top + r * cell_height + 15, r);
    for (int64_t c = 0; c < columns; ++c) {
      int64_t index = r * columns + c;
      Coord point = swizzled(layout.apply(index).front(), options);
      int64_t key;
      if (threads) {
        key = thread_of(point);
      } else {
        int bits = options.element_bits > 0 ? options.element_bits : 32;
        key = point.get(Axis::smem()) * bits / 32 + point.get(Axis::gmem()) * bits / 32;
      }
      // Threads of a warp spread over the hue circle; warps shift lightness.
      int64_t hue = (key % 32) * 360 / 32;
      int64_t lightness = 78 - ((key / 32) % 4) * 8;
      int64_t x = margin + c * cell_width, y = top + r * cell_height;
      out += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"hsl({},70%,{}%)\" "
          "stroke=\"#333\" stroke-width=\"0.5\"/>\n<text x=\"{}\" y=\"{}\" "
          "text-anchor=\"middle\">{}</text>\n",
          x, y, cell_width, cell_height, hue, lightness, x + cell_width / 2, y + 15,
          escape(cell_label(layout, index, options)));
    }
  }
  return out + "</svg>\n";
}

}  // namespace nibble::layout
