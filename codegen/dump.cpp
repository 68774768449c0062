#include "codegen/dump.h"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>

#include "vm/printer.h"

namespace nibble::codegen {
namespace {

namespace fs = std::filesystem;

// The next sequence number for a kernel name in this process.
int next_index(const std::string& name) {
  static std::mutex mutex;
  static std::map<std::string, int> counts;
  std::lock_guard lock(mutex);
  return counts[name]++;
}

bool write_file(const fs::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return static_cast<bool>(out);
}

}  // namespace

std::optional<fs::path> dump_directory() {
  const char* directory = std::getenv("NIBBLE_DUMP");
  if (directory == nullptr || *directory == '\0') return std::nullopt;
  return fs::path(directory);
}

void dump_stages(const CompiledKernel& kernel, const fs::path& directory) {
  static std::atomic<bool> warned{false};
  std::error_code error;
  fs::create_directories(directory, error);
  const std::string stem = fmt::format("{}.{}", kernel.name, next_index(kernel.name));
  const std::string vm_text = vm::print(kernel.program);
  const std::string report = to_string(kernel.report) + kernel.report.ptxas_log;
  bool ok = !error;
  ok = ok && write_file(directory / (stem + ".vm"), vm_text.data(), vm_text.size());
  ok = ok && write_file(directory / (stem + ".ll"), kernel.llvm_ir.data(), kernel.llvm_ir.size());
  ok = ok && write_file(directory / (stem + ".ptx"), kernel.ptx.data(), kernel.ptx.size());
  if (!kernel.cubin.empty()) {
    ok = ok && write_file(directory / (stem + ".cubin"), kernel.cubin.data(), kernel.cubin.size());
  }
  ok = ok && write_file(directory / (stem + ".report.txt"), report.data(), report.size());
  if (!ok && !warned.exchange(true)) {
    std::fprintf(stderr, "nibble: NIBBLE_DUMP: cannot write the stages of '%s' to %s\n",
                 kernel.name.c_str(), directory.string().c_str());
  }
}

}  // namespace nibble::codegen
