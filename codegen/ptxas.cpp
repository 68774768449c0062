#include "codegen/ptxas.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "codegen/errors.h"

extern char** environ;

namespace nibble::codegen {
namespace {

namespace fs = std::filesystem;

bool is_executable(const fs::path& path) {
  return !path.empty() && access(path.c_str(), X_OK) == 0 && fs::is_regular_file(path);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A private scratch directory, removed with everything in it when the object dies.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = fmt::format("{}/nibble-ptxas-XXXXXX", tmp != nullptr ? tmp : "/tmp");
    if (mkdtemp(pattern.data()) == nullptr) {
      throw CodegenError(fmt::format("cannot create a scratch directory from '{}'", pattern));
    }
    path_ = pattern;
  }
  ~ScratchDirectory() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// Runs `argv` with stdout and stderr sent to `log_path`; returns the exit status.
int run_process(const std::vector<std::string>& argv, const fs::path& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  std::vector<char*> raw_argv;
  for (const std::string& arg : argv)
    raw_argv.push_back(const_cast<char*>(arg.c_str()));
  raw_argv.push_back(nullptr);
  pid_t child = 0;
  const int spawn_error =
      posix_spawn(&child, argv[0].c_str(), &actions, nullptr, raw_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (spawn_error != 0) {
    throw CodegenError(fmt::format("cannot run '{}': {}", argv[0], std::strerror(spawn_error)));
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0) {
    if (errno != EINTR) throw CodegenError(fmt::format("waiting for '{}' failed", argv[0]));
  }
  if (WIFSIGNALED(status)) {
    throw CodegenError(fmt::format("'{}' was killed by signal {}", argv[0], WTERMSIG(status)));
  }
  return WEXITSTATUS(status);
}

}  // namespace

std::optional<std::string> find_ptxas() {
  if (const char* explicit_path = std::getenv("NIBBLE_PTXAS")) {
    if (is_executable(explicit_path)) return std::string(explicit_path);
  }
  for (const char* variable : {"CUDA_HOME", "CUDA_PATH"}) {
    if (const char* root = std::getenv(variable)) {
      fs::path candidate = fs::path(root) / "bin" / "ptxas";
      if (is_executable(candidate)) return candidate.string();
    }
  }
  if (const char* path = std::getenv("PATH")) {
    std::stringstream directories(path);
    std::string directory;
    while (std::getline(directories, directory, ':')) {
      if (directory.empty()) continue;
      fs::path candidate = fs::path(directory) / "ptxas";
      if (is_executable(candidate)) return candidate.string();
    }
  }
  if (is_executable("/usr/local/cuda/bin/ptxas")) return std::string("/usr/local/cuda/bin/ptxas");
  return std::nullopt;
}

PtxasResult assemble_ptx(std::string_view ptx, const Target& target, bool verbose) {
  std::optional<std::string> ptxas = find_ptxas();
  if (!ptxas) {
    throw CodegenError(
        "ptxas not found: install the CUDA toolkit, or set NIBBLE_PTXAS to the ptxas binary");
  }
  ScratchDirectory scratch;
  const fs::path input = scratch.path() / "kernel.ptx";
  const fs::path output = scratch.path() / "kernel.cubin";
  const fs::path log = scratch.path() / "ptxas.log";
  {
    std::ofstream out(input, std::ios::binary);
    out.write(ptx.data(), static_cast<std::streamsize>(ptx.size()));
    if (!out) throw CodegenError(fmt::format("cannot write '{}'", input.string()));
  }
  std::vector<std::string> argv = {*ptxas, "-arch=" + target.name(), "-O3", "-o", output.string()};
  if (verbose) argv.push_back("-v");
  argv.push_back(input.string());

  const auto start = std::chrono::steady_clock::now();
  const int status = run_process(argv, log);
  PtxasResult result;
  result.milliseconds =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  result.log = read_file(log);
  if (status != 0) {
    throw CodegenError(fmt::format("ptxas rejected the PTX for {} (exit status {}):\n{}",
                                   target.name(), status, result.log));
  }
  const std::string cubin = read_file(output);
  if (cubin.empty()) throw CodegenError("ptxas produced an empty cubin for " + target.name());
  result.cubin.assign(cubin.begin(), cubin.end());
  return result;
}

}  // namespace nibble::codegen
