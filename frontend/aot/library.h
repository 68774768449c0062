// Writing a kernel library: compiled kernels in, C source text out.
//
// A library is a list of exported functions; each function is a group of variants (one
// compiled kernel for one configuration and one target, as a cubin or as PTX) that share one
// parameter list. The generated header declares, per function F,
//
//   nbl_status F(nbl_stream stream, <one argument per parameter>);       launches
//   nbl_status F_plan(<the same arguments>, nbl_plan* plan);             chooses, launches nothing
//
// and the source holds the images, the dispatcher and the CUDA driver calls (dlopen). The C
// interface itself is documented in the header it writes (see write_header).
//
// Arguments: pointers are nbl_devptr (a CUdeviceptr), scalars their C type (int32_t, float…).
// Where variants disagree, the disagreement becomes a run-time choice: a pointer whose element
// type differs gets an `nbl_dtype NAME_dtype` argument (after the parameters); a compile-time
// parameter whose value differs becomes an argument the variants are matched against. A
// compile-time parameter that every variant fixes to the same value is not an argument.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codegen/compile.h"

namespace nibble::aot {

struct Variant {
  std::string description;  // "configs[1] {"block_m":128} for sm_90a": for messages
  codegen::CompiledKernel kernel;
  bool embed_ptx = false;  // the image is the PTX (JIT-compiled by the driver), not the cubin
};

struct Function {
  std::string name;   // the exported C function
  std::string where;  // the manifest entry, for errors
  std::vector<Variant> variants;
};

struct Library {
  std::string name;      // C identifier: NAME.h, NAME.c, NAME_explain()…
  std::string manifest;  // where it came from, for the generated comments
  std::vector<Function> functions;
};

struct LibraryFiles {
  std::string header;  // NAME.h
  std::string source;  // NAME.c (C11)
};

// Throws GenerateError (c_expr.h) naming the function for variants that cannot share one C
// signature and for programs the C dispatcher cannot serve.
LibraryFiles write_library(const Library& library);

// The stable code of an element type in the generated C (NBL_DTYPE_F16 …): kind << 16 |
// bits << 8 | exponent bits, kind 0 unsigned, 1 signed, 2 float.
int32_t dtype_code(const dtypes::DataType& dtype);

}  // namespace nibble::aot
