// The kernel registry of the ahead-of-time generator: named families of kernels, each a
// function from a configuration (a JSON object of the manifest) to a vm::Program.
//
// A family is registered once, in the file that defines its kernel, with one macro:
//
//   NIBBLE_AOT_FAMILY(vector_add, "out[i] = x[i] + y[i]") {
//     examples::VectorAddConfig c;
//     c.dtype = config.dtype("dtype", c.dtype);
//     c.block = config.integer("block", c.block);
//     return examples::vector_add(c);
//   }
//
// The body reads its keys through `config` (typed, with defaults); a missing required key, a
// value of the wrong type or a key the family never reads is a ConfigError naming the key. The
// generator prefixes it with the manifest entry, so the user sees
//
//   kernels.json: kernel 'gemm_f16', configs[1]: key 'block_m': expected an integer, got "64"
//
// Registration runs during static initialization: the object file holding the macro must be
// linked into the `nibble` command (an OBJECT library, or a static archive linked whole, which
// is how cli/ links nibble_examples).
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "dtypes/dtype.h"
#include "vm/program.h"

namespace nibble::aot {

// A configuration the family rejects: the message names the key and what is wrong with it.
class ConfigError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

// One configuration object of the manifest, read key by key. Getters without a fallback make
// the key required. Values are checked exactly: 64.0 is not an integer, "64" is not a number.
class Config {
 public:
  explicit Config(const nlohmann::json& object);

  int64_t integer(std::string_view key) const;
  int64_t integer(std::string_view key, int64_t fallback) const;
  bool boolean(std::string_view key, bool fallback) const;
  std::string string(std::string_view key) const;
  std::string string(std::string_view key, std::string_view fallback) const;
  dtypes::DataType dtype(std::string_view key) const;
  dtypes::DataType dtype(std::string_view key, dtypes::DataType fallback) const;
  // A string that must be one of `choices`.
  std::string choice(std::string_view key, std::string_view fallback,
                     const std::vector<std::string>& choices) const;

  // Throws ConfigError for a key no getter has read (a typo: "blok_m").
  void reject_unread_keys() const;
  // The object in the manifest's spelling, for messages and generated comments.
  std::string to_string() const;

 private:
  const nlohmann::json* find(std::string_view key) const;

  const nlohmann::json& object_;
  mutable std::set<std::string, std::less<>> read_;
};

struct KernelFamily {
  std::string name;     // what a manifest entry's "family" names
  std::string summary;  // one line, for `nibble aot --list`
  std::function<vm::Program(const Config&)> build;
};

// Adds a family; throws std::logic_error when the name is taken.
void register_family(KernelFamily family);
// The family of that name, or nullptr.
const KernelFamily* find_family(std::string_view name);
// Every registered family, by name.
std::vector<const KernelFamily*> families();

// Registers during static initialization; what NIBBLE_AOT_FAMILY expands to.
struct FamilyRegistration {
  FamilyRegistration(const char* name, const char* summary, vm::Program (*build)(const Config&)) {
    register_family({name, summary, build});
  }
};

}  // namespace nibble::aot

// NIBBLE_AOT_FAMILY(name, "summary") { body reading `config`, returning a vm::Program }
#define NIBBLE_AOT_FAMILY(family_name, summary)                                         \
  static ::nibble::vm::Program nibble_aot_build_##family_name(                          \
      const ::nibble::aot::Config& config);                                             \
  static const ::nibble::aot::FamilyRegistration nibble_aot_registration_##family_name( \
      #family_name, summary, &nibble_aot_build_##family_name);                          \
  static ::nibble::vm::Program nibble_aot_build_##family_name(const ::nibble::aot::Config& config)
