// `nibble layout`: draw a 2-D layout as a text grid, and optionally as SVG.
//
//   nibble layout "S[(64,64):(64@smem,1@smem)]" --dtype f16 --swizzle 128B
//   nibble layout mma.m16n8k16.a                 an atom by name (its shape is known)
//   nibble layout "S[(2,64):(1@tp,1@reg)]" --mesh dp=2,tp=4 --shape 2,64
//   nibble layout --atoms                        the atoms nibble knows
// Cells show the thread and register slot of each element, or its byte address for memory
// layouts (element offsets without --dtype).
#include <fmt/format.h>

#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "dtypes/dtype.h"
#include "layout/atoms.h"
#include "layout/layout.h"
#include "layout/picture.h"

namespace nibble::cli {
namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

int64_t parse_count(const std::string& text, const char* what) {
  try {
    size_t used = 0;
    long long value = std::stoll(text, &used);
    if (used == text.size() && value > 0) return value;
  } catch (const std::exception&) {
  }
  throw UsageError{fmt::format("{} '{}' is not a positive integer", what, text)};
}

}  // namespace

int run_layout(Arguments args, std::ostream& out) {
  std::string text, svg_path, swizzle_text = "none";
  int element_bits = 0;
  layout::Shape shape;
  bool list_atoms = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError{arg + " needs a value"};
      return args[++i];
    };
    if (arg == "--shape") {
      shape.clear();
      for (const std::string& part : split(value(), ','))
        shape.push_back(parse_count(part, "extent"));
      if (shape.size() != 2) throw UsageError{"--shape takes two extents: ROWS,COLUMNS"};
    } else if (arg == "--svg") {
      svg_path = value();
    } else if (arg == "--dtype") {
      element_bits = dtypes::DataType::parse(value()).bits();
    } else if (arg == "--swizzle") {
      swizzle_text = value();
    } else if (arg == "--mesh") {
      std::vector<std::pair<std::string, int64_t>> mesh;
      for (const std::string& part : split(value(), ',')) {
        std::vector<std::string> name_size = split(part, '=');
        if (name_size.size() != 2) throw UsageError{"--mesh takes NAME=SIZE,NAME=SIZE,..."};
        mesh.push_back({name_size[0], parse_count(name_size[1], "mesh size")});
      }
      layout::Axis::define_mesh(mesh);
    } else if (arg == "--atoms") {
      list_atoms = true;
    } else if (arg.starts_with("--")) {
      throw UsageError{"unknown option " + arg};
    } else if (text.empty()) {
      text = arg;
    } else {
      throw UsageError{"one layout at a time (quote the layout text)"};
    }
  }
  if (list_atoms) {
    for (const layout::Atom& atom : layout::all_atoms()) {
      out << fmt::format("{:<22} {:>3}x{:<4} {}\n", atom.name, atom.shape[0], atom.shape[1],
                         atom.layout.to_string());
    }
    return 0;
  }
  if (text.empty()) throw UsageError{"give a layout (or an atom name, see --atoms)"};

  layout::PictureOptions options;
  options.swizzle = layout::Swizzle::parse(swizzle_text);
  options.element_bits = element_bits;
  layout::Layout drawn;
  if (std::optional<layout::Atom> atom = layout::find_atom(text)) {
    drawn = atom->layout;
    if (shape.empty()) shape = atom->shape;
    if (options.swizzle.is_identity()) options.swizzle = atom->swizzle;
    if (options.element_bits == 0 && options.swizzle != layout::Swizzle()) {
      options.element_bits = atom->element_bits;
    }
    options.title = fmt::format("{}: {}", atom->name, drawn.to_string());
  } else {
    drawn = layout::Layout::parse(text);
    options.title = drawn.to_string();
  }
  if (!options.swizzle.is_identity()) {
    if (options.element_bits == 0) throw UsageError{"--swizzle needs --dtype (it acts on bytes)"};
    options.title += " ^ " + options.swizzle.to_string();
  }
  if (shape.empty()) {
    // Without --shape: a shard written with two iters gives the two dimensions, a square size a
    // square, and a short layout one row.
    int64_t side = 1;
    while ((side + 1) * (side + 1) <= drawn.size())
      ++side;
    if (drawn.shard().size() == 2) {
      shape = {drawn.shard()[0].extent, drawn.shard()[1].extent};
    } else if (side * side == drawn.size()) {
      shape = {side, side};
    } else if (drawn.size() <= 64) {
      shape = {1, drawn.size()};
    } else {
      throw UsageError{fmt::format("give --shape ROWS,COLUMNS for the {} elements", drawn.size())};
    }
  }
  out << layout::text_grid(drawn, shape[0], shape[1], options);
  if (!svg_path.empty()) {
    std::ofstream file(svg_path);
    file << layout::svg(drawn, shape[0], shape[1], options);
    if (!file) throw std::runtime_error("cannot write " + svg_path);
    out << "wrote " << svg_path << "\n";
  }
  return 0;
}

}  // namespace nibble::cli
