// GPU targets that nibble compiles for.
//
// A Target names an NVIDIA architecture the way ptxas does (sm_80, sm_89, sm_90a) and carries
// the facts codegen needs about it: the PTX ISA version to emit and which instruction families
// exist there. "a" targets (sm_90a) enable architecture-specific features (wgmma, setmaxnreg)
// and produce code that runs only on that exact architecture.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nibble::codegen {

struct Target {
  int sm = 80;                 // compute capability x 10
  bool arch_specific = false;  // the "a" suffix
  int ptx_version = 83;        // PTX ISA version x 10

  // "sm_80", "sm_89", "sm_90a"; throws CodegenError for other spellings or unsupported archs.
  static Target parse(std::string_view name);
  std::string name() const;

  bool has_cp_async() const { return sm >= 80; }
  bool has_fp8_mma() const { return sm >= 89; }
  bool has_wgmma() const { return sm == 90 && arch_specific; }
  bool has_tma() const { return sm >= 90; }

  friend bool operator==(const Target&, const Target&) = default;
};

// The targets nibble supports, oldest first.
std::vector<Target> supported_targets();

}  // namespace nibble::codegen
