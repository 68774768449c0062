// Assembling PTX into a cubin with NVIDIA's `ptxas`, in a child process.
//
// ptxas is looked up in this order: $NIBBLE_PTXAS, $CUDA_HOME/bin, $CUDA_PATH/bin, PATH,
// /usr/local/cuda/bin. It is needed only to build cubins ahead of time and to check PTX on a
// machine without a GPU; on a GPU machine the driver's JIT can do the same.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "codegen/target.h"

namespace nibble::codegen {

struct PtxasResult {
  std::vector<uint8_t> cubin;
  std::string log;  // ptxas's own output (register and spill report with verbose = true)
  double milliseconds = 0;
};

// The path of ptxas, or nullopt when none is installed.
std::optional<std::string> find_ptxas();

// Assembles `ptx` for `target`. Throws CodegenError with ptxas's messages when it rejects the
// PTX, and a clear error when ptxas cannot be found or run.
PtxasResult assemble_ptx(std::string_view ptx, const Target& target, bool verbose = false);

}  // namespace nibble::codegen
