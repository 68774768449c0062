// The manifest of `nibble aot`: which kernels a library holds, in which configurations, for
// which GPUs. The schema is documented in frontend/aot/README.md; in short:
//
//   { "library": "serving_kernels",            C identifier: files serving_kernels.{h,c}
//     "targets": ["sm_80", "sm_90a"],          default targets of every kernel
//     "ptx": true,                             embed PTX for GPUs newer than every target
//     "kernels": [
//       { "function": "gemm_f16",              the exported C function of this group
//         "family": "gemm",                    a registered family (frontend/aot/registry.h)…
//         "configs": [{"block_m": 128}, {}],   …and its configurations, one variant each
//         "targets": ["sm_90a"] },             optional, replaces the default
//       { "function": "scale", "vm": ["scale.nbvm"] } ] }   or VM program files
//
// read_manifest checks the structure only (keys, types, names, targets); families and configs
// are checked when the generator builds them. Every error names the manifest and the entry.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "codegen/target.h"

namespace nibble::aot {

// A manifest that cannot be used; what() starts with "MANIFEST: kernels[i] ('name'): ".
class ManifestError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct KernelEntry {
  int index = 0;                      // position in "kernels"
  std::string function;               // exported C function
  std::string family;                 // empty for VM files
  std::vector<std::string> configs;   // JSON text of each configuration object (family)
  std::vector<std::string> vm_files;  // resolved paths of VM program files
  std::vector<codegen::Target> targets;

  // "kernels[2] ('gemm_f16')": how messages name the entry.
  std::string where() const;
};

struct Manifest {
  std::string path;
  std::string library;
  bool embed_ptx = true;
  std::vector<KernelEntry> kernels;
};

// Reads and checks a manifest file; relative VM paths are resolved against its directory.
Manifest read_manifest(const std::string& path);
// The same from text (`path` names it in messages and anchors relative paths).
Manifest parse_manifest(const std::string& text, const std::string& path);

// True for a C identifier that is not a C or C++ keyword.
bool is_c_identifier(const std::string& name);

}  // namespace nibble::aot
