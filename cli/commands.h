// Subcommands of the `nibble` command. Each takes the arguments after its name and returns the
// process exit code; user errors are thrown as exceptions and reported by main().
#pragma once

#include <ostream>
#include <span>
#include <string>

#include "vm/program.h"

namespace nibble::cli {

// Thrown for a malformed command line; main() prints it with the usage of the subcommand.
struct UsageError {
  std::string message;
};

using Arguments = std::span<const std::string>;

// The value after option args[i] (i moves to it), or a UsageError "OPTION needs a value".
const std::string& option_value(Arguments args, size_t& i);
// `text` as a whole number for `option`, or a UsageError "OPTION needs a whole number, not …".
int64_t option_number(const std::string& option, const std::string& text);

// A VM program file, parsed with statement locations pointing into it (cmd_vm.cpp).
vm::Program read_program_file(const std::string& path);

int run_dtypes(Arguments args, std::ostream& out);
int run_demo(Arguments args, std::ostream& out);
int run_quantize(Arguments args, std::ostream& out);
// The quantized GEMM part of `nibble demo` (cmd_demo_gemm.cpp).
int run_gemm_demo(Arguments args, std::ostream& out);
int run_layout(Arguments args, std::ostream& out);
int run_check(Arguments args, std::ostream& out);
int run_run(Arguments args, std::ostream& out);
int run_example(Arguments args, std::ostream& out);
int run_compile(Arguments args, std::ostream& out);
int run_aot(Arguments args, std::ostream& out);

}  // namespace nibble::cli
