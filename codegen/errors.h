// Errors raised by code generation: a failure of the compiler pipeline (LLVM, ptxas) or a
// target the program cannot run on. The message names the stage and the kernel.
#pragma once

#include <stdexcept>

namespace nibble::codegen {

class CodegenError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace nibble::codegen
