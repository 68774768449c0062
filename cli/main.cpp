// `nibble SUBCOMMAND [ARGS...]`: the command-line front door.
#include <exception>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "cli/commands.h"

namespace {

struct Subcommand {
  const char* name;
  const char* usage;
  const char* summary;
  std::function<int(nibble::cli::Arguments, std::ostream&)> run;
};

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> table = {
      {"dtypes", "nibble dtypes [NAME] [--all] [--format text|tsv] [--encode VALUE...]",
       "list element types; with NAME, every value of that type", nibble::cli::run_dtypes},
      {"demo",
       "nibble demo [plans] [--m M] [--n N] [--k K] [--type u4] [--group 128] [--interpret]",
       "the main job: a u4 quantized GEMM run (GPU, else interpreter) and checked; `plans`: "
       "the conversion plans, checked exactly",
       nibble::cli::run_demo},
      {"quantize",
       "nibble quantize W.npy --type T [--group G] [--zero-points] [--scale-type f16|bf16] "
       "[--for-m M] -o DIR",
       "quantize a [K, N] weight: packed codes, scales (and the re-packing the GEMM reads for M "
       "rows)",
       nibble::cli::run_quantize},
      {"layout",
       "nibble layout \"<layout>\"|ATOM [--shape R,C] [--dtype T] [--swizzle 128B] [--mesh "
       "dp=2,tp=4] [--svg FILE] [--atoms]",
       "draw a 2-D layout: thread and register (or byte address) of every element",
       nibble::cli::run_layout},
      {"check", "nibble check FILE [--print]",
       "parse and verify a VM program; --print shows it with layouts inferred",
       nibble::cli::run_check},
      {"run",
       "nibble run FILE [--args] NAME=VALUE... [--grid X,Y,Z] [--block X,Y,Z] [--out DIR] [--seed "
       "N] "
       "[--threads N]",
       "run a VM program on the interpreter (pointers: FILE.npy, random:COUNT, zeros:COUNT)",
       nibble::cli::run_run},
      {"example", "nibble example [NAME]", "print an example kernel in the VM's text format",
       nibble::cli::run_example},
      {"compile",
       "nibble compile FILE [--target sm_80|sm_89|sm_90a] [--emit report|vm|llvm|ptx|sass|cubin] "
       "[-o OUT]",
       "compile a VM program for a GPU and show a stage (NIBBLE_DUMP=DIR keeps them all)",
       nibble::cli::run_compile},
      {"aot", "nibble aot MANIFEST -o DIR [--depfile FILE] [--quiet] | nibble aot --list",
       "generate a C kernel library (header, embedded cubins, dispatcher) from a JSON manifest",
       nibble::cli::run_aot},
  };
  return table;
}

void print_usage(std::ostream& out) {
  out << "usage: nibble SUBCOMMAND [ARGS...]\n\nsubcommands:\n";
  for (const Subcommand& command : subcommands()) {
    out << "  " << command.name << "\t" << command.summary << "\n      " << command.usage << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    print_usage(args.empty() ? std::cerr : std::cout);
    return args.empty() ? 2 : 0;
  }
  for (const Subcommand& command : subcommands()) {
    if (args[0] != command.name) continue;
    try {
      return command.run(nibble::cli::Arguments(args).subspan(1), std::cout);
    } catch (const nibble::cli::UsageError& error) {
      std::cerr << "nibble " << command.name << ": " << error.message
                << "\nusage: " << command.usage << "\n";
      return 2;
    } catch (const std::exception& error) {
      std::cerr << "nibble " << command.name << ": error: " << error.what() << "\n";
      return 1;
    }
  }
  std::cerr << "nibble: unknown subcommand '" << args[0] << "'\n";
  print_usage(std::cerr);
  return 2;
}
