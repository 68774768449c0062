#include "frontend/cpp/cached_compile.h"

#include <dlfcn.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstring>
#include <sstream>
#include <stdexcept>

#include "vm/passes.h"
#include "vm/printer.h"

namespace nibble::dsl {
namespace {

constexpr std::string_view kFormat = "nibble-kernel 1";

void clear_locations(vm::Body& body) {
  for (vm::Statement& statement : body) {
    statement.location = {};
    if (auto* loop = std::get_if<vm::ForStmt>(&statement.node)) clear_locations(loop->body);
    if (auto* branch = std::get_if<vm::IfStmt>(&statement.node)) {
      clear_locations(branch->then_body);
      clear_locations(branch->else_body);
    }
    if (auto* loop = std::get_if<vm::WhileStmt>(&statement.node)) clear_locations(loop->body);
  }
}

// The payload: a text header (one field per line), then the PTX and the cubin bytes.
std::vector<uint8_t> serialize(const codegen::CompiledKernel& kernel) {
  std::string header = fmt::format(
      "{}\nname {}\nblock_threads {}\ndynamic_shared_bytes {}\nregisters {}\n", kFormat,
      kernel.name, kernel.block_threads, kernel.dynamic_shared_bytes, kernel.report.registers);
  for (const codegen::KernelParameter& p : kernel.parameters) {
    header += fmt::format("param {} {} {} {} {} {} {}\n", p.name,
                          p.kind == codegen::KernelParameter::Kind::Pointer ? 1 : 0, p.dtype.name(),
                          p.program_index, p.size_bytes, p.alignment_bytes, p.divisor);
  }
  header += fmt::format("ptx {}\ncubin {}\n\n", kernel.ptx.size(), kernel.cubin.size());
  std::vector<uint8_t> bytes(header.begin(), header.end());
  bytes.insert(bytes.end(), kernel.ptx.begin(), kernel.ptx.end());
  bytes.insert(bytes.end(), kernel.cubin.begin(), kernel.cubin.end());
  return bytes;
}

// Fills `kernel` from a payload; false when it does not parse (treated as a miss).
bool deserialize(std::span<const uint8_t> bytes, codegen::CompiledKernel& kernel) {
  const std::string_view all(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  const size_t end_of_header = all.find("\n\n");
  if (end_of_header == std::string_view::npos) return false;
  std::istringstream header{std::string(all.substr(0, end_of_header))};
  std::string line;
  if (!std::getline(header, line) || line != kFormat) return false;
  size_t ptx_size = 0, cubin_size = 0;
  try {
    while (std::getline(header, line)) {
      std::istringstream fields(line);
      std::string key;
      fields >> key;
      if (key == "name") {
        fields >> kernel.name;
      } else if (key == "block_threads") {
        fields >> kernel.block_threads;
      } else if (key == "dynamic_shared_bytes") {
        fields >> kernel.dynamic_shared_bytes;
      } else if (key == "registers") {
        fields >> kernel.report.registers;
      } else if (key == "param") {
        codegen::KernelParameter p;
        int pointer = 0;
        std::string dtype;
        fields >> p.name >> pointer >> dtype >> p.program_index >> p.size_bytes >>
            p.alignment_bytes >> p.divisor;
        p.kind = pointer ? codegen::KernelParameter::Kind::Pointer
                         : codegen::KernelParameter::Kind::Scalar;
        p.dtype = dtypes::DataType::parse(dtype);
        kernel.parameters.push_back(p);
      } else if (key == "ptx") {
        fields >> ptx_size;
      } else if (key == "cubin") {
        fields >> cubin_size;
      }
      if (fields.fail()) return false;
    }
  } catch (const std::exception&) {
    return false;
  }
  const size_t start = end_of_header + 2;
  if (start + ptx_size + cubin_size != all.size()) return false;
  kernel.ptx.assign(all.substr(start, ptx_size));
  kernel.cubin.assign(bytes.begin() + static_cast<std::ptrdiff_t>(start + ptx_size), bytes.end());
  return !kernel.name.empty() && !kernel.ptx.empty();
}

}  // namespace

const std::string& compiler_build_id() {
  static const std::string id = [] {
    Dl_info info{};
    struct stat status {};
    std::string library = "unknown";
    if (dladdr(reinterpret_cast<const void*>(&compiler_build_id), &info) != 0 &&
        info.dli_fname != nullptr && ::stat(info.dli_fname, &status) == 0) {
      library = fmt::format("{}:{}.{:09}", static_cast<long long>(status.st_size),
                            static_cast<long long>(status.st_mtim.tv_sec),
                            static_cast<long>(status.st_mtim.tv_nsec));
    }
    return fmt::format("{}:{}", NIBBLE_GIT_REVISION, library);
  }();
  return id;
}

runtime::CacheKey compile_cache_key(const vm::Program& program, const codegen::Target& target,
                                    const codegen::CompileOptions& options,
                                    const std::string& build_id) {
  vm::Program without_locations = program;
  clear_locations(without_locations.body);
  for (vm::TensorInfo& tensor : without_locations.tensors)
    tensor.location = {};
  const std::string flags =
      fmt::format("assemble={} verbose={} llvm={}", options.assemble, options.ptxas_verbose,
                  codegen::to_string(options.llvm_pipeline));
  return runtime::CacheKey::of({vm::print(without_locations), target.name(), flags, build_id});
}

codegen::CompiledKernel compile_cached(const vm::Program& program, const codegen::Target& target,
                                       const codegen::CompileOptions& options,
                                       runtime::KernelCache& cache) {
  const runtime::CacheKey key = compile_cache_key(program, target, options, compiler_build_id());
  if (std::optional<std::vector<uint8_t>> payload = cache.load(key)) {
    codegen::CompiledKernel kernel;
    if (deserialize(*payload, kernel)) {
      kernel.target = target;
      kernel.program = program;
      vm::run_default_passes(kernel.program);
      kernel.report.llvm_pipeline = options.llvm_pipeline;  // part of the key, not of the entry
      kernel.report.notes.push_back("loaded from the kernel cache: " + key.hex.substr(0, 16));
      return kernel;
    }
  }
  codegen::CompiledKernel kernel = codegen::compile(program, target, options);
  if (!options.keep_llvm_ir) cache.store(key, serialize(kernel));  // IR requests always compile
  return kernel;
}

}  // namespace nibble::dsl
