// `nibble compile FILE [--target T] [--emit report|vm|llvm|ptx|sass|cubin] [-o OUT]`: compiles a
// VM program for a GPU and shows one stage. The report (default) gives registers, spills, shared
// memory, the time of each stage and codegen's choices (vector widths, conversion paths).
// SASS needs nvdisasm (CUDA toolkit, or the nvidia-cuda-nvdisasm wheel on PATH); a cubin needs
// ptxas and -o.
#include <fmt/format.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "codegen/compile.h"
#include "codegen/ptxas.h"
#include "codegen/target.h"
#include "vm/printer.h"

namespace nibble::cli {
namespace {

namespace fs = std::filesystem;

std::optional<std::string> find_tool(const std::string& name) {
  std::vector<fs::path> candidates;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream directories(path);
    for (std::string directory; std::getline(directories, directory, ':');) {
      if (!directory.empty()) candidates.push_back(fs::path(directory) / name);
    }
  }
  if (const char* cuda = std::getenv("CUDA_HOME"))
    candidates.push_back(fs::path(cuda) / "bin" / name);
  candidates.push_back(fs::path("/usr/local/cuda/bin") / name);
  for (const fs::path& candidate : candidates) {
    std::error_code error;
    if (fs::is_regular_file(candidate, error)) return candidate.string();
  }
  return std::nullopt;
}

std::string disassemble(const std::vector<uint8_t>& cubin) {
  const std::optional<std::string> nvdisasm = find_tool("nvdisasm");
  if (!nvdisasm) {
    throw std::runtime_error(
        "--emit sass needs nvdisasm: install the CUDA toolkit or the nvidia-cuda-nvdisasm wheel "
        "(tools/install-deps.sh does) and put it on PATH");
  }
  const fs::path file =
      fs::temp_directory_path() / fmt::format("nibble-{}.cubin", static_cast<long>(::getpid()));
  std::ofstream(file, std::ios::binary)
      .write(reinterpret_cast<const char*>(cubin.data()),
             static_cast<std::streamsize>(cubin.size()));
  const std::string command = fmt::format("'{}' -c '{}' 2>&1", *nvdisasm, file.string());
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) throw std::runtime_error("cannot run nvdisasm");
  std::string text;
  char buffer[4096];
  while (size_t n = std::fread(buffer, 1, sizeof(buffer), pipe.get()))
    text.append(buffer, n);
  const int status = pclose(pipe.release());
  fs::remove(file);
  if (status != 0) throw std::runtime_error("nvdisasm failed:\n" + text);
  return text;
}

}  // namespace

int run_compile(Arguments args, std::ostream& out) {
  std::string path;
  std::string target_name = "sm_90a";
  std::string emit = "report";
  std::optional<fs::path> output;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto next = [&]() -> const std::string& {
      if (i + 1 == args.size()) throw UsageError{fmt::format("{} needs a value", arg)};
      return args[++i];
    };
    if (arg == "--target") {
      target_name = next();
    } else if (arg == "--emit") {
      emit = next();
      if (emit != "report" && emit != "vm" && emit != "llvm" && emit != "ptx" && emit != "sass" &&
          emit != "cubin") {
        throw UsageError{
            fmt::format("--emit {}: expected report, vm, llvm, ptx, sass or cubin", emit)};
      }
    } else if (arg == "-o") {
      output = next();
    } else if (arg.starts_with("-")) {
      throw UsageError{fmt::format("unknown option '{}'", arg)};
    } else if (path.empty()) {
      path = arg;
    } else {
      throw UsageError{fmt::format("unexpected argument '{}'", arg)};
    }
  }
  if (path.empty()) throw UsageError{"a program FILE is needed"};
  if (emit == "cubin" && !output) throw UsageError{"--emit cubin writes a binary: give -o FILE"};
  const codegen::Target target = codegen::Target::parse(target_name);
  const vm::Program program = read_program_file(path);

  codegen::CompileOptions options;
  options.keep_llvm_ir = emit == "llvm";
  options.assemble = emit == "sass" || emit == "cubin" || emit == "report";
  if ((emit == "sass" || emit == "cubin") && !codegen::find_ptxas()) {
    throw std::runtime_error(
        fmt::format("--emit {} needs ptxas (CUDA toolkit, or NIBBLE_PTXAS)", emit));
  }
  const codegen::CompiledKernel kernel = codegen::compile(program, target, options);

  std::string text;
  if (emit == "report") {
    text =
        fmt::format("kernel {} for {}: {} threads per block, {} bytes of dynamic shared memory\n{}",
                    kernel.name, target.name(), kernel.block_threads, kernel.dynamic_shared_bytes,
                    to_string(kernel.report));
    if (kernel.cubin.empty()) text += "(no ptxas found: register and spill figures unknown)\n";
  } else if (emit == "vm") {
    text = vm::print(kernel.program);
  } else if (emit == "llvm") {
    text = kernel.llvm_ir;
  } else if (emit == "ptx") {
    text = kernel.ptx;
  } else if (emit == "sass") {
    text = disassemble(kernel.cubin);
  }
  if (emit == "cubin") {
    std::ofstream(*output, std::ios::binary)
        .write(reinterpret_cast<const char*>(kernel.cubin.data()),
               static_cast<std::streamsize>(kernel.cubin.size()));
    out << fmt::format("wrote {} bytes of {} cubin to {}\n", kernel.cubin.size(), target.name(),
                       output->string());
  } else if (output) {
    std::ofstream(*output) << text;
  } else {
    out << text;
  }
  return 0;
}

}  // namespace nibble::cli
