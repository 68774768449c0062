// The programs the codegen tests compile (CPU) and run against the interpreter (GPU): every
// example kernel and one small program per instruction family, each with its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "dtypes/dtype.h"
#include "vm/program.h"

namespace nibble::testing {

// A buffer argument: `elements` elements of `dtype`, random inputs in [lo, hi) (floats) or random
// codes (integers, within [lo, hi) when given), or an output poisoned with 0xFF before the run.
struct BufferArgument {
  dtypes::DataType dtype = dtypes::DataType::f32();
  int64_t elements = 0;
  bool output = false;
  double lo = -4;
  double hi = 4;
};
using CaseArgument = std::variant<BufferArgument, int64_t, double>;

struct CodegenCase {
  std::string name;
  vm::Program program;
  std::vector<CaseArgument> arguments;
  // Outputs compared element-wise: |gpu - interpreter| <= atol + rtol * |interpreter|; 0 and 0:
  // bit-exact.
  double rtol = 0;
  double atol = 0;
  // The case needs sm_90a (wgmma, clusters): compiled for sm_90a only, run on sm_90 devices only.
  bool wgmma = false;
};

// Every case; `filter` (a substring of the name) selects some.
std::vector<CodegenCase> codegen_cases();

}  // namespace nibble::testing
