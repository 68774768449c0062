// The kernel registry: the example families are registered, and configurations are read
// exactly, with errors that name the key.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "frontend/aot/registry.h"

namespace {

using nibble::aot::Config;
using nibble::aot::ConfigError;
using nlohmann::json;

}  // namespace

TEST_CASE("the example kernels are registered families", "[aot][registry]") {
  for (const char* name : {"vector_add", "softmax", "gemm", "gemv_u4"}) {
    const nibble::aot::KernelFamily* family = nibble::aot::find_family(name);
    REQUIRE(family != nullptr);
    CHECK(!family->summary.empty());
  }
  CHECK(nibble::aot::find_family("no_such_family") == nullptr);
}

TEST_CASE("a family builds its configuration and rejects unknown keys", "[aot][registry]") {
  const nibble::aot::KernelFamily* family = nibble::aot::find_family("vector_add");
  REQUIRE(family != nullptr);
  const json object = {{"dtype", "f16"}, {"block", 512}};
  const Config config(object);
  const nibble::vm::Program program = family->build(config);
  config.reject_unread_keys();
  CHECK(program.params[0].dtype == nibble::dtypes::DataType::f16());

  const json typo = {{"dtype", "f16"}, {"blok", 512}};
  const Config with_typo(typo);
  family->build(with_typo);
  CHECK_THROWS_WITH(with_typo.reject_unread_keys(),
                    Catch::Contains("unknown key 'blok'") && Catch::Contains("block"));
}

TEST_CASE("configuration values are checked exactly", "[aot][registry]") {
  const json object = {{"int", 64},    {"real", 64.0},     {"text", "64"},
                       {"flag", true}, {"type", "f7e9m9"}, {"huge", UINT64_MAX}};
  const Config config(object);
  CHECK(config.integer("int") == 64);
  CHECK(config.integer("absent", 7) == 7);
  CHECK_THROWS_WITH(config.integer("real"), Catch::Contains("key 'real': expected an integer"));
  CHECK_THROWS_WITH(config.integer("text"), Catch::Contains("got \"64\""));
  CHECK_THROWS_WITH(config.integer("huge"), Catch::Contains("too large"));
  CHECK_THROWS_WITH(config.integer("missing"),
                    Catch::Contains("key 'missing'") && Catch::Contains("required"));
  CHECK(config.boolean("flag", false));
  CHECK_THROWS_AS(config.boolean("int", false), ConfigError);
  CHECK_THROWS_WITH(config.dtype("type"), Catch::Contains("key 'type'"));
  CHECK_THROWS_WITH(config.choice("text", "a", {"a", "b"}),
                    Catch::Contains("\"64\" is not one of a, b"));
  CHECK_THROWS_AS(Config(json::array()), ConfigError);
}

TEST_CASE("a family name is registered once", "[aot][registry]") {
  const auto build = [](const Config&) { return nibble::vm::Program{}; };
  nibble::aot::register_family({"test_only_family", "for this test", build});
  CHECK(nibble::aot::find_family("test_only_family") != nullptr);
  CHECK_THROWS_AS(nibble::aot::register_family({"test_only_family", "again", build}),
                  std::logic_error);
}
