// `nibble aot`: from a manifest to a kernel library on disk.
//
//   read the manifest -> build each configuration (registered family, or VM program file)
//   -> verify -> compile for each target (cubin; PTX of the newest portable target)
//   -> write NAME.h and NAME.c into a temporary directory beside DIR -> move them into DIR
//
// Nothing is written to DIR until every kernel has compiled, so a failure (a bad manifest, an
// unknown family, a configuration the verifier rejects, an unwritable directory) leaves DIR as
// it was. Errors are AotError (or ManifestError, manifest.h) naming the manifest entry.
#pragma once

#include <ostream>
#include <stdexcept>
#include <string>
#include <vector>

namespace nibble::aot {

class AotError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct GenerateOptions {
  std::string manifest;    // path of the JSON manifest
  std::string output_dir;  // DIR: receives NAME.h and NAME.c
  std::string depfile;     // optional: a Makefile-style list of the inputs, for build systems
};

struct GenerateResult {
  std::string library;
  std::vector<std::string> files;   // written, in DIR
  std::vector<std::string> inputs;  // the manifest and every VM file it names
  int variants = 0;
};

// Generates the library; progress lines go to `log` when it is not null.
GenerateResult generate(const GenerateOptions& options, std::ostream* log = nullptr);

}  // namespace nibble::aot
