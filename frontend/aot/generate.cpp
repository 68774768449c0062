#include "frontend/aot/generate.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>

#include "codegen/compile.h"
#include "codegen/errors.h"
#include "frontend/aot/c_expr.h"
#include "frontend/aot/library.h"
#include "frontend/aot/manifest.h"
#include "frontend/aot/registry.h"
#include "vm/parser.h"
#include "vm/verifier.h"

namespace nibble::aot {

namespace fs = std::filesystem;

namespace {

// One program to compile, with how messages name it.
struct Source {
  std::string where;        // "MANIFEST: kernels[0] ('gemm_f16'), configs[1]"
  std::string description;  // "gemm_f16 configs[1] {"block_m":128}"
  vm::Program program;
};

std::vector<std::string> family_names() {
  std::vector<std::string> names;
  for (const KernelFamily* family : families())
    names.push_back(family->name);
  return names;
}

void verify(const vm::Program& program, const std::string& where) {
  const std::vector<vm::Diagnostic> diagnostics = vm::verify(program);
  if (diagnostics.empty()) return;
  std::string message = fmt::format("{}: the verifier rejects kernel '{}':", where, program.name);
  for (const vm::Diagnostic& diagnostic : diagnostics) {
    message += "\n  " + vm::format_diagnostic(program, diagnostic);
  }
  throw AotError(message);
}

std::vector<Source> family_sources(const Manifest& manifest, const KernelEntry& entry) {
  const KernelFamily* family = find_family(entry.family);
  const std::string where = fmt::format("{}: {}", manifest.path, entry.where());
  if (family == nullptr) {
    throw AotError(fmt::format("{}: unknown kernel family '{}' (registered: {})", where,
                               entry.family, fmt::join(family_names(), ", ")));
  }
  std::vector<Source> sources;
  for (size_t c = 0; c < entry.configs.size(); ++c) {
    const nlohmann::json object = nlohmann::json::parse(entry.configs[c]);
    Source source;
    source.where = fmt::format("{}, configs[{}]", where, c);
    source.description = fmt::format("{} configs[{}] {}", entry.function, c, entry.configs[c]);
    const Config config(object);
    try {
      source.program = family->build(config);
      config.reject_unread_keys();
    } catch (const vm::VerifyError& error) {
      throw AotError(fmt::format("{}: the verifier rejects this configuration of '{}':\n{}",
                                 source.where, family->name, error.what()));
    } catch (const std::exception& error) {
      throw AotError(fmt::format("{}: {}", source.where, error.what()));
    }
    verify(source.program, source.where);
    sources.push_back(std::move(source));
  }
  return sources;
}

std::vector<Source> vm_sources(const Manifest& manifest, const KernelEntry& entry) {
  std::vector<Source> sources;
  for (size_t i = 0; i < entry.vm_files.size(); ++i) {
    const std::string& path = entry.vm_files[i];
    Source source;
    source.where = fmt::format("{}: {}, vm[{}]", manifest.path, entry.where(), i);
    source.description =
        fmt::format("{} vm[{}] {}", entry.function, i, fs::path(path).filename().string());
    std::ifstream in(path, std::ios::binary);
    if (!in) throw AotError(fmt::format("{}: cannot read the VM program '{}'", source.where, path));
    const std::string text(std::istreambuf_iterator<char>(in), {});
    try {
      source.program = vm::parse_program(text, path, vm::TextLocations::Text);
    } catch (const vm::ParseError& error) {
      throw AotError(fmt::format("{}:\n{}", source.where, error.what()));
    }
    verify(source.program, source.where);
    sources.push_back(std::move(source));
  }
  return sources;
}

Function build_function(const Manifest& manifest, const KernelEntry& entry, std::ostream* log) {
  Function function;
  function.name = entry.function;
  function.where = fmt::format("{}: {}", manifest.path, entry.where());
  const std::vector<Source> sources =
      entry.family.empty() ? vm_sources(manifest, entry) : family_sources(manifest, entry);

  // PTX goes with the newest target that is not architecture-specific: it is the one that can
  // be JIT-compiled on GPUs newer than every cubin.
  const codegen::Target* ptx_target = nullptr;
  for (const codegen::Target& target : entry.targets) {
    if (!target.arch_specific && (ptx_target == nullptr || target.sm > ptx_target->sm)) {
      ptx_target = &target;
    }
  }
  for (const Source& source : sources) {
    // Clusters of blocks exist from sm_90 on: such a kernel is built for those targets only, and
    // the dispatcher runs another variant (or names the device) on older GPUs.
    const bool clustered = source.program.cluster_blocks() > 1;
    if (clustered && std::none_of(entry.targets.begin(), entry.targets.end(),
                                  [](const codegen::Target& t) { return t.sm >= 90; })) {
      throw AotError(
          fmt::format("{}: the kernel runs in clusters of {} blocks, which need an "
                      "sm_90 target or newer; the entry lists none",
                      source.where, source.program.cluster_blocks()));
    }
    for (const codegen::Target& target : entry.targets) {
      if (clustered && target.sm < 90) {
        if (log)
          *log << fmt::format("  {} {}: skipped (clusters need sm_90)\n", source.description,
                              target.name());
        continue;
      }
      const auto start = std::chrono::steady_clock::now();
      Variant variant;
      variant.description = fmt::format("{} {}", source.description, target.name());
      try {
        variant.kernel = codegen::compile(source.program, target);
      } catch (const std::exception& error) {
        throw AotError(fmt::format("{}, target {}: {}", source.where, target.name(), error.what()));
      }
      if (variant.kernel.cubin.empty()) {
        throw AotError(
            fmt::format("{}, target {}: no cubin: nibble aot needs ptxas (set "
                        "NIBBLE_PTXAS or CUDA_HOME, or put it on PATH)",
                        source.where, target.name()));
      }
      if (log) {
        const double seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const codegen::CompileReport& report = variant.kernel.report;
        *log << fmt::format("  {}: {} registers, {} + {} bytes shared, {:.2f} s\n",
                            variant.description, report.registers, report.shared_tile_bytes,
                            report.shared_scratch_bytes, seconds);
      }
      const bool with_ptx = manifest.embed_ptx && ptx_target != nullptr && target == *ptx_target;
      function.variants.push_back(variant);
      if (with_ptx) {
        Variant ptx = variant;
        ptx.embed_ptx = true;
        ptx.description =
            fmt::format("{} compute_{} PTX", source.description, target.name().substr(3));
        function.variants.push_back(std::move(ptx));
      }
    }
  }
  return function;
}

void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) throw AotError(fmt::format("cannot write '{}'", path.string()));
}

std::string depfile_escape(const std::string& path) {
  std::string escaped;
  for (const char c : path) {
    if (c == ' ' || c == '#' || c == '\\') escaped += '\\';
    if (c == '$') escaped += '$';
    escaped += c;
  }
  return escaped;
}

// Writes the files into a fresh directory beside `directory`, then moves them in: DIR never
// holds a half-written library.
std::vector<std::string> install(const fs::path& directory,
                                 const std::vector<std::pair<std::string, std::string>>& files) {
  const fs::path target = fs::absolute(directory).lexically_normal();
  const fs::path name =
      target.filename().empty() ? target.parent_path().filename() : target.filename();
  const fs::path parent =
      target.filename().empty() ? target.parent_path().parent_path() : target.parent_path();
  std::error_code error;
  if (fs::exists(target, error) && !fs::is_directory(target, error)) {
    throw AotError(fmt::format("output '{}' exists and is not a directory", target.string()));
  }
  fs::create_directories(parent, error);
  if (error) {
    throw AotError(fmt::format("cannot create the output directory's parent '{}': {}",
                               parent.string(), error.message()));
  }
  std::random_device random;
  const fs::path staging =
      parent / fmt::format(".{}.nibble-aot-{}-{:08x}", name.string(), getpid(), random());
  fs::create_directory(staging, error);
  if (error) {
    throw AotError(fmt::format("cannot write to '{}' (for the output directory '{}'): {}",
                               parent.string(), target.string(), error.message()));
  }
  std::vector<std::string> written;
  try {
    for (const auto& [file, text] : files)
      write_file(staging / file, text);
    if (!fs::exists(target)) {
      fs::rename(staging, target);
    } else {
      for (const auto& [file, text] : files)
        fs::rename(staging / file, target / file);
      fs::remove_all(staging);
    }
  } catch (const fs::filesystem_error& failure) {
    fs::remove_all(staging, error);
    throw AotError(fmt::format("cannot write the library into '{}': {}", target.string(),
                               failure.code().message()));
  } catch (...) {
    fs::remove_all(staging, error);
    throw;
  }
  for (const auto& [file, text] : files)
    written.push_back((target / file).string());
  return written;
}

}  // namespace

GenerateResult generate(const GenerateOptions& options, std::ostream* log) {
  const Manifest manifest = read_manifest(options.manifest);
  GenerateResult result;
  result.library = manifest.library;
  result.inputs.push_back(fs::absolute(options.manifest).lexically_normal().string());

  Library library;
  library.name = manifest.library;
  library.manifest = fs::path(options.manifest).filename().string();
  for (const KernelEntry& entry : manifest.kernels) {
    if (log)
      *log << fmt::format("{} ({}):\n", entry.function, entry.family.empty() ? "vm" : entry.family);
    library.functions.push_back(build_function(manifest, entry, log));
    result.variants += static_cast<int>(library.functions.back().variants.size());
    for (const std::string& file : entry.vm_files) {
      result.inputs.push_back(fs::absolute(file).lexically_normal().string());
    }
  }
  LibraryFiles files;
  try {
    files = write_library(library);
  } catch (const GenerateError& error) {
    throw AotError(error.what());
  }
  result.files = install(options.output_dir, {{library.name + ".h", files.header},
                                              {library.name + ".c", files.source}});
  if (!options.depfile.empty()) {
    std::string text = depfile_escape(result.files.front()) + ":";
    for (const std::string& input : result.inputs)
      text += " " + depfile_escape(input);
    const fs::path depfile = fs::absolute(options.depfile);
    const fs::path staging = depfile.string() + ".tmp";
    std::error_code error;
    fs::create_directories(depfile.parent_path(), error);
    write_file(staging, text + "\n");
    fs::rename(staging, depfile);
  }
  if (log) {
    *log << fmt::format("wrote {} ({} variants)\n", fmt::join(result.files, ", "), result.variants);
  }
  return result;
}

}  // namespace nibble::aot
