// The manifest reader: every structural mistake is an error naming the manifest and the entry.
#include <catch2/catch.hpp>

#include "frontend/aot/manifest.h"

namespace {

using nibble::aot::ManifestError;
using nibble::aot::parse_manifest;

std::string error_of(const std::string& text) {
  try {
    parse_manifest(text, "/m/kernels.json");
  } catch (const ManifestError& error) {
    return error.what();
  }
  FAIL("the manifest was accepted: " << text);
  return "";
}

}  // namespace

TEST_CASE("a manifest is read with its defaults and relative paths", "[aot][manifest]") {
  const nibble::aot::Manifest manifest = parse_manifest(R"({
    "library": "lib", "targets": ["sm_80", "sm_90a"],
    "kernels": [
      {"function": "f", "family": "gemm", "configs": [{"block_m": 128}, {}]},
      {"function": "g", "vm": "sub/g.nbvm", "targets": ["sm_89"]},
      {"function": "h", "family": "softmax"}]})",
                                                        "/m/kernels.json");
  CHECK(manifest.library == "lib");
  CHECK(manifest.embed_ptx);
  REQUIRE(manifest.kernels.size() == 3);
  CHECK(manifest.kernels[0].configs == std::vector<std::string>{R"({"block_m":128})", "{}"});
  CHECK(manifest.kernels[0].targets.size() == 2);
  CHECK(manifest.kernels[1].vm_files == std::vector<std::string>{"/m/sub/g.nbvm"});
  CHECK(manifest.kernels[1].targets.front().name() == "sm_89");
  CHECK(manifest.kernels[2].configs == std::vector<std::string>{"{}"});
}

TEST_CASE("malformed manifests name the entry", "[aot][manifest]") {
  CHECK_THAT(error_of("{\"library\": "), Catch::Contains("/m/kernels.json: not valid JSON"));
  CHECK_THAT(error_of("[]"), Catch::Contains("must be a JSON object"));
  CHECK_THAT(error_of(R"({"kernels": []})"), Catch::Contains("key 'library' is required"));
  CHECK_THAT(error_of(R"({"library": "a-b", "kernels": []})"),
             Catch::Contains("'a-b' must be a C identifier"));
  CHECK_THAT(error_of(R"({"library": "l", "kernels": [], "extra": 1})"),
             Catch::Contains("unknown key 'extra'"));
  CHECK_THAT(error_of(R"({"library": "l", "kernels": []})"), Catch::Contains("'kernels' is empty"));
  CHECK_THAT(error_of(R"({"library": "l", "targets": ["sm_70"],
                          "kernels": [{"function": "f", "family": "gemm"}]})"),
             Catch::Contains("unknown target \"sm_70\""));
  CHECK_THAT(error_of(R"({"library": "l", "targets": ["sm_80", "sm_80"],
                          "kernels": [{"function": "f", "family": "gemm"}]})"),
             Catch::Contains("listed twice"));
  CHECK_THAT(error_of(R"({"library": "l", "kernels": [{"function": "f", "family": "gemm"}]})"),
             Catch::Contains("kernels[0] ('f'): no 'targets'"));
  const std::string head = R"({"library": "l", "targets": ["sm_80"], "kernels": [)";
  CHECK_THAT(error_of(head + R"({"family": "gemm"}]})"),
             Catch::Contains("kernels[0]: key 'function' is required"));
  CHECK_THAT(error_of(head + R"({"function": "int", "family": "gemm"}]})"),
             Catch::Contains("function name 'int' must be a C identifier"));
  CHECK_THAT(error_of(head + R"({"function": "f", "family": "gemm"},
                                {"function": "f", "family": "gemm"}]})"),
             Catch::Contains("kernels[1] ('f'): function 'f' is defined twice"));
  CHECK_THAT(error_of(head + R"({"function": "f"}]})"),
             Catch::Contains("kernels[0] ('f'): give either 'family'"));
  CHECK_THAT(error_of(head + R"({"function": "f", "family": "gemm", "vm": "x"}]})"),
             Catch::Contains("give either 'family'"));
  CHECK_THAT(error_of(head + R"({"function": "f", "family": "gemm", "configs": [1]}]})"),
             Catch::Contains("kernels[0] ('f'): configs[0] must be an object"));
  CHECK_THAT(error_of(head + R"({"function": "f", "family": "gemm", "configs": []}]})"),
             Catch::Contains("non-empty list"));
  CHECK_THAT(error_of(head + R"({"function": "f", "vm": [3]}]})"),
             Catch::Contains("'vm' must list file paths"));
  CHECK_THAT(error_of(head + R"({"function": "f", "vm": "a", "configs": [{}]}]})"),
             Catch::Contains("'configs' belongs with 'family'"));
  CHECK_THAT(error_of(head + R"({"function": "f", "family": "gemm", "block": 1}]})"),
             Catch::Contains("kernels[0] ('f'): unknown key 'block'"));
  CHECK_THAT(error_of(head + R"({"function": "f", "family": 3}]})"),
             Catch::Contains("key 'family' must be a string"));
}

TEST_CASE("C identifiers exclude keywords", "[aot][manifest]") {
  CHECK(nibble::aot::is_c_identifier("gemm_f16"));
  CHECK(nibble::aot::is_c_identifier("_x9"));
  CHECK_FALSE(nibble::aot::is_c_identifier("9x"));
  CHECK_FALSE(nibble::aot::is_c_identifier("while"));
  CHECK_FALSE(nibble::aot::is_c_identifier("a.b"));
  CHECK_FALSE(nibble::aot::is_c_identifier(""));
}
