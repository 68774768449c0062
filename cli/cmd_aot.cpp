// `nibble aot MANIFEST -o DIR`: generate a kernel library (frontend/aot/generate.h).
#include <fmt/format.h>

#include <iostream>

#include "cli/commands.h"
#include "frontend/aot/generate.h"
#include "frontend/aot/registry.h"

namespace nibble::cli {

int run_aot(Arguments args, std::ostream& out) {
  aot::GenerateOptions options;
  bool quiet = false;
  bool list = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError{fmt::format("{} needs a value", arg)};
      return args[++i];
    };
    if (arg == "-o" || arg == "--output") {
      options.output_dir = value();
    } else if (arg == "--depfile") {
      options.depfile = value();
    } else if (arg == "--quiet" || arg == "-q") {
      quiet = true;
    } else if (arg == "--list") {
      list = true;
    } else if (arg.starts_with("-")) {
      throw UsageError{fmt::format("unknown option '{}'", arg)};
    } else if (options.manifest.empty()) {
      options.manifest = arg;
    } else {
      throw UsageError{fmt::format("unexpected argument '{}'", arg)};
    }
  }
  if (list) {
    for (const aot::KernelFamily* family : aot::families()) {
      out << fmt::format("{:<14} {}\n", family->name, family->summary);
    }
    return 0;
  }
  if (options.manifest.empty()) throw UsageError{"a MANIFEST is needed"};
  if (options.output_dir.empty()) throw UsageError{"an output directory (-o DIR) is needed"};
  const aot::GenerateResult result = aot::generate(options, quiet ? nullptr : &out);
  if (quiet) out << fmt::format("nibble aot: {}: {} variants\n", result.library, result.variants);
  return 0;
}

}  // namespace nibble::cli
