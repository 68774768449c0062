#include "frontend/aot/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

namespace nibble::aot {

namespace {

using Json = nlohmann::json;

// Function-local so that registrations from other translation units' static initializers find
// it constructed, whatever the initialization order.
std::map<std::string, KernelFamily, std::less<>>& registry() {
  static std::map<std::string, KernelFamily, std::less<>> families;
  return families;
}

std::string describe(const Json& value) {
  switch (value.type()) {
    case Json::value_t::string:
      return value.dump();
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "a list";
    case Json::value_t::null:
      return "null";
    default:
      return value.dump();
  }
}

[[noreturn]] void wrong_type(std::string_view key, std::string_view expected, const Json& value) {
  throw ConfigError(fmt::format("key '{}': expected {}, got {}", key, expected, describe(value)));
}

}  // namespace

Config::Config(const Json& object) : object_(object) {
  if (!object_.is_object()) {
    throw ConfigError(fmt::format("a configuration is a JSON object, got {}", describe(object_)));
  }
}

const Json* Config::find(std::string_view key) const {
  read_.emplace(key);
  const auto found = object_.find(std::string(key));
  return found == object_.end() ? nullptr : &*found;
}

int64_t Config::integer(std::string_view key) const {
  const Json* value = find(key);
  if (!value) throw ConfigError(fmt::format("key '{}' (an integer) is required", key));
  if (!value->is_number_integer()) wrong_type(key, "an integer", *value);
  if (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t{INT64_MAX}) {
    throw ConfigError(fmt::format("key '{}': {} is too large", key, value->dump()));
  }
  return value->get<int64_t>();
}

int64_t Config::integer(std::string_view key, int64_t fallback) const {
  if (!object_.contains(std::string(key))) {
    read_.emplace(key);
    return fallback;
  }
  return integer(key);
}

bool Config::boolean(std::string_view key, bool fallback) const {
  const Json* value = find(key);
  if (!value) return fallback;
  if (!value->is_boolean()) wrong_type(key, "true or false", *value);
  return value->get<bool>();
}

std::string Config::string(std::string_view key) const {
  const Json* value = find(key);
  if (!value) throw ConfigError(fmt::format("key '{}' (a string) is required", key));
  if (!value->is_string()) wrong_type(key, "a string", *value);
  return value->get<std::string>();
}

std::string Config::string(std::string_view key, std::string_view fallback) const {
  if (!object_.contains(std::string(key))) {
    read_.emplace(key);
    return std::string(fallback);
  }
  return string(key);
}

dtypes::DataType Config::dtype(std::string_view key) const {
  const std::string name = string(key);
  try {
    return dtypes::DataType::parse(name);
  } catch (const dtypes::DTypeError& error) {
    throw ConfigError(fmt::format("key '{}': {}", key, error.what()));
  }
}

dtypes::DataType Config::dtype(std::string_view key, dtypes::DataType fallback) const {
  if (!object_.contains(std::string(key))) {
    read_.emplace(key);
    return fallback;
  }
  return dtype(key);
}

std::string Config::choice(std::string_view key, std::string_view fallback,
                           const std::vector<std::string>& choices) const {
  std::string value = string(key, fallback);
  if (std::find(choices.begin(), choices.end(), value) == choices.end()) {
    throw ConfigError(
        fmt::format("key '{}': \"{}\" is not one of {}", key, value, fmt::join(choices, ", ")));
  }
  return value;
}

void Config::reject_unread_keys() const {
  std::vector<std::string> unknown;
  for (const auto& [key, value] : object_.items()) {
    if (!read_.contains(key)) unknown.push_back(fmt::format("'{}'", key));
  }
  if (unknown.empty()) return;
  std::vector<std::string> known;
  for (const std::string& key : read_)
    known.push_back(key);
  throw ConfigError(fmt::format("unknown key{} {} (this family reads: {})",
                                unknown.size() == 1 ? "" : "s", fmt::join(unknown, ", "),
                                fmt::join(known, ", ")));
}

std::string Config::to_string() const {
  return object_.dump();
}

void register_family(KernelFamily family) {
  if (family.name.empty() || !family.build) {
    throw std::logic_error("nibble aot: a kernel family needs a name and a build function");
  }
  const std::string name = family.name;
  if (!registry().emplace(name, std::move(family)).second) {
    throw std::logic_error(fmt::format("nibble aot: kernel family '{}' is registered twice", name));
  }
}

const KernelFamily* find_family(std::string_view name) {
  const auto found = registry().find(name);
  return found == registry().end() ? nullptr : &found->second;
}

std::vector<const KernelFamily*> families() {
  std::vector<const KernelFamily*> all;
  for (const auto& [name, family] : registry())
    all.push_back(&family);
  return all;
}

}  // namespace nibble::aot
