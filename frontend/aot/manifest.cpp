#include "frontend/aot/manifest.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <set>

#include "codegen/errors.h"

namespace nibble::aot {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

const std::set<std::string, std::less<>>& reserved_words() {
  static const std::set<std::string, std::less<>> words = {
      "auto",     "break",   "case",     "char",    "const",    "continue", "default",
      "do",       "double",  "else",     "enum",    "extern",   "float",    "for",
      "goto",     "if",      "inline",   "int",     "long",     "register", "restrict",
      "return",   "short",   "signed",   "sizeof",  "static",   "struct",   "switch",
      "typedef",  "union",   "unsigned", "void",    "volatile", "while",    "bool",
      "class",    "delete",  "new",      "this",    "template", "typename", "namespace",
      "operator", "private", "public",   "virtual", "friend",   "throw",    "try",
      "catch",    "true",    "false",    "using",   "export",   "module",   "import"};
  return words;
}

std::string type_name(const Json& value) {
  switch (value.type()) {
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "a list";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::null:
      return "null";
    default:
      return "a number";
  }
}

// Reports errors as "MANIFEST: WHERE: message".
struct Checker {
  const std::string& path;

  [[noreturn]] void fail(const std::string& where, const std::string& message) const {
    throw ManifestError(where.empty() ? fmt::format("{}: {}", path, message)
                                      : fmt::format("{}: {}: {}", path, where, message));
  }

  void only_keys(const Json& object, const std::set<std::string>& allowed,
                 const std::string& where) const {
    for (const auto& [key, value] : object.items()) {
      if (!allowed.contains(key)) {
        fail(where,
             fmt::format("unknown key '{}' (expected one of: {})", key, fmt::join(allowed, ", ")));
      }
    }
  }

  const Json& required(const Json& object, const std::string& key, Json::value_t type,
                       const std::string& where) const {
    const auto found = object.find(key);
    if (found == object.end()) fail(where, fmt::format("key '{}' is required", key));
    if (found->type() != type && !(type == Json::value_t::number_integer &&
                                   found->type() == Json::value_t::number_unsigned)) {
      fail(where, fmt::format("key '{}' must be {}, not {}", key, type_name(Json(type)),
                              type_name(*found)));
    }
    return *found;
  }

  std::vector<codegen::Target> targets(const Json& list, const std::string& where) const {
    if (!list.is_array() || list.empty()) {
      fail(where, "'targets' must be a non-empty list of names such as \"sm_80\", \"sm_90a\"");
    }
    std::vector<codegen::Target> parsed;
    for (const Json& name : list) {
      if (!name.is_string()) fail(where, "'targets' must list strings such as \"sm_90a\"");
      try {
        const codegen::Target target = codegen::Target::parse(name.get<std::string>());
        if (std::find(parsed.begin(), parsed.end(), target) != parsed.end()) {
          fail(where, fmt::format("target {} is listed twice", target.name()));
        }
        parsed.push_back(target);
      } catch (const codegen::CodegenError& error) {
        fail(where,
             fmt::format("unknown target \"{}\": {}", name.get<std::string>(), error.what()));
      }
    }
    return parsed;
  }
};

}  // namespace

bool is_c_identifier(const std::string& name) {
  if (name.empty()) return false;
  const auto letter = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  };
  if (!letter(name[0])) return false;
  for (char c : name) {
    if (!letter(c) && !(c >= '0' && c <= '9')) return false;
  }
  return !reserved_words().contains(name);
}

std::string KernelEntry::where() const {
  return function.empty() ? fmt::format("kernels[{}]", index)
                          : fmt::format("kernels[{}] ('{}')", index, function);
}

Manifest parse_manifest(const std::string& text, const std::string& path) {
  const Checker check{path};
  Json root;
  try {
    root = Json::parse(text);
  } catch (const Json::parse_error& error) {
    // nlohmann's message carries the line and column.
    check.fail("", fmt::format("not valid JSON: {}", error.what()));
  }
  if (!root.is_object()) check.fail("", "the manifest must be a JSON object");
  check.only_keys(root, {"library", "targets", "ptx", "kernels"}, "");

  Manifest manifest;
  manifest.path = path;
  manifest.library = check.required(root, "library", Json::value_t::string, "").get<std::string>();
  if (!is_c_identifier(manifest.library)) {
    check.fail("", fmt::format("library name '{}' must be a C identifier (letters, digits, _)",
                               manifest.library));
  }
  if (root.contains("ptx")) {
    if (!root["ptx"].is_boolean()) check.fail("", "'ptx' must be true or false");
    manifest.embed_ptx = root["ptx"].get<bool>();
  }
  std::vector<codegen::Target> default_targets;
  if (root.contains("targets")) default_targets = check.targets(root["targets"], "");

  const Json& kernels = check.required(root, "kernels", Json::value_t::array, "");
  if (kernels.empty()) check.fail("", "'kernels' is empty: a library needs at least one kernel");
  const fs::path base = fs::path(path).parent_path();
  std::set<std::string> functions;
  for (size_t i = 0; i < kernels.size(); ++i) {
    const Json& object = kernels[i];
    KernelEntry entry;
    entry.index = static_cast<int>(i);
    if (!object.is_object()) check.fail(entry.where(), "an entry of 'kernels' must be an object");
    if (object.contains("function") && object["function"].is_string()) {
      entry.function = object["function"].get<std::string>();
    }
    const std::string where = entry.where();
    check.only_keys(object, {"function", "family", "configs", "vm", "targets"}, where);
    check.required(object, "function", Json::value_t::string, where);
    if (!is_c_identifier(entry.function)) {
      check.fail(where, fmt::format("function name '{}' must be a C identifier", entry.function));
    }
    if (!functions.insert(entry.function).second) {
      check.fail(where, fmt::format("function '{}' is defined twice", entry.function));
    }
    const bool has_family = object.contains("family");
    const bool has_vm = object.contains("vm");
    if (has_family == has_vm) {
      check.fail(where, "give either 'family' (with 'configs') or 'vm' (program files)");
    }
    if (has_family) {
      entry.family =
          check.required(object, "family", Json::value_t::string, where).get<std::string>();
      if (!object.contains("configs")) {
        entry.configs.push_back("{}");  // the family's defaults
      } else {
        const Json& configs = object["configs"];
        if (!configs.is_array() || configs.empty()) {
          check.fail(where, "'configs' must be a non-empty list of objects");
        }
        for (size_t c = 0; c < configs.size(); ++c) {
          if (!configs[c].is_object()) {
            check.fail(where, fmt::format("configs[{}] must be an object, not {}", c,
                                          type_name(configs[c])));
          }
          entry.configs.push_back(configs[c].dump());
        }
      }
    } else {
      if (object.contains("configs"))
        check.fail(where, "'configs' belongs with 'family', not 'vm'");
      const Json& vm = object["vm"];
      std::vector<std::string> files;
      if (vm.is_string()) {
        files.push_back(vm.get<std::string>());
      } else if (vm.is_array() && !vm.empty()) {
        for (const Json& file : vm) {
          if (!file.is_string()) check.fail(where, "'vm' must list file paths (strings)");
          files.push_back(file.get<std::string>());
        }
      } else {
        check.fail(where, "'vm' must be a file path or a non-empty list of them");
      }
      for (const std::string& file : files) {
        const fs::path resolved = fs::path(file).is_absolute() ? fs::path(file) : base / file;
        entry.vm_files.push_back(resolved.lexically_normal().string());
      }
    }
    if (object.contains("targets")) {
      entry.targets = check.targets(object["targets"], where);
    } else if (!default_targets.empty()) {
      entry.targets = default_targets;
    } else {
      check.fail(where, "no 'targets': list them here or at the top of the manifest");
    }
    manifest.kernels.push_back(std::move(entry));
  }
  return manifest;
}

Manifest read_manifest(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ManifestError(fmt::format("{}: cannot read the manifest", path));
  const std::string text(std::istreambuf_iterator<char>(in), {});
  return parse_manifest(text, path);
}

}  // namespace nibble::aot
