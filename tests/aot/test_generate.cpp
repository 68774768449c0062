// nibble aot end to end, in-process: a library is written only when everything compiled, and
// every bad input is an error naming the manifest entry that leaves the output directory as it
// was.
#include <fmt/format.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "codegen/ptxas.h"
#include "frontend/aot/generate.h"
#include "frontend/aot/manifest.h"
#include "tests/source_dir.h"

namespace {

namespace fs = std::filesystem;

// A scratch directory per test case, removed afterwards.
struct Scratch {
  fs::path root;
  Scratch() {
    static int counter = 0;
    root = fs::temp_directory_path() / fmt::format("nibble-aot-test-{}-{}", getpid(), ++counter);
    fs::remove_all(root);
    fs::create_directories(root);
  }
  ~Scratch() { fs::remove_all(root); }

  fs::path write(const std::string& name, const std::string& text) const {
    const fs::path path = root / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path) << text;
    return path;
  }
  // Whatever the generator left beside the output directory: only what the test made.
  std::vector<std::string> leftovers() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(root)) {
      const std::string name = entry.path().filename().string();
      if (name.find("nibble-aot") != std::string::npos) names.push_back(name);
    }
    return names;
  }
};

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The generator's error for `manifest`, and that it left nothing behind.
std::string failure(const Scratch& scratch, const std::string& manifest,
                    const fs::path& output = {}) {
  const fs::path path = scratch.write("kernels.json", manifest);
  const fs::path directory = output.empty() ? scratch.root / "out" : output;
  try {
    nibble::aot::generate({path.string(), directory.string(), ""});
  } catch (const std::exception& error) {
    CHECK(!fs::exists(directory / "lib.h"));
    CHECK(scratch.leftovers().empty());
    return error.what();
  }
  FAIL("nibble aot accepted " << manifest);
  return "";
}

const std::string kHead = R"({"library": "lib", "targets": ["sm_80"], "kernels": [)";

}  // namespace

TEST_CASE("nibble aot writes a header and a source that compiles", "[aot][generate]") {
  REQUIRE(nibble::codegen::find_ptxas());  // tools/install-deps.sh installs one
  Scratch scratch;
  const fs::path vm = nibble::testing::source_dir() / "tests/aot/data/add_block64.nbvm";
  const fs::path manifest =
      scratch.write("kernels.json", kHead + R"({"function": "add", "family": "vector_add",
                                  "configs": [{"dtype": "f32"}, {"dtype": "bf16"}],
                                  "targets": ["sm_80", "sm_90a"]},
                                 {"function": "add64", "vm": ")" +
                                        vm.string() + R"("}]})");
  const fs::path out = scratch.root / "nested" / "out";
  const nibble::aot::GenerateResult result =
      nibble::aot::generate({manifest.string(), out.string(), (scratch.root / "lib.d").string()});
  // vector_add: 2 configs x (sm_80, sm_90a) + PTX of sm_80 for each; add64: sm_80 + PTX.
  CHECK(result.variants == 8);
  CHECK(result.files ==
        std::vector<std::string>{(out / "lib.h").string(), (out / "lib.c").string()});
  const std::string header = read(out / "lib.h");
  CHECK_THAT(header, Catch::Contains("nbl_status add(nbl_stream stream, nbl_devptr x, nbl_devptr "
                                     "y, nbl_devptr out, int32_t n, nbl_dtype x_dtype, nbl_dtype "
                                     "y_dtype, nbl_dtype out_dtype);"));
  CHECK_THAT(header, Catch::Contains("nbl_status add64_plan(nbl_devptr x, nbl_devptr y, nbl_devptr "
                                     "out, int32_t n, nbl_plan* plan);"));
  CHECK_THAT(header, Catch::Contains("built for factor = 1"));
  CHECK_THAT(header, Catch::Contains("#define NBL_DTYPE_BF16"));
  CHECK_THAT(read(scratch.root / "lib.d"), Catch::Contains(vm.lexically_normal().string()));
  CHECK(scratch.leftovers().empty());

  // The source is strict C11; the header is also C++ (test_aot_library includes it there).
  const std::string compile = fmt::format(
      "'{}' -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wpedantic -Wconversion "
      "-Werror -c -o '{}' '{}' 2>&1",
      NIBBLE_C_COMPILER, (scratch.root / "lib.o").string(), (out / "lib.c").string());
  CHECK(std::system(compile.c_str()) == 0);

  // Regenerating into an existing directory replaces the library and keeps other files.
  std::ofstream(out / "notes.txt") << "mine";
  std::ofstream(out / "lib.h") << "stale";
  nibble::aot::generate({manifest.string(), out.string(), ""});
  CHECK(read(out / "lib.h") == header);
  CHECK(read(out / "notes.txt") == "mine");
}

TEST_CASE("bad input is an error naming the manifest entry, and nothing is written",
          "[aot][generate]") {
  Scratch scratch;
  const std::string path = (scratch.root / "kernels.json").string();
  SECTION("malformed manifest") {
    CHECK_THAT(failure(scratch, "{\"library\": \"lib\", "),
               Catch::StartsWith(path + ": not valid JSON"));
  }
  SECTION("unknown kernel family") {
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "family": "quant_gemv"}]})"),
               Catch::StartsWith(path + ": kernels[0] ('f'): unknown kernel family 'quant_gemv'") &&
                   Catch::Contains("vector_add"));
  }
  SECTION("unknown configuration key") {
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "family": "gemm",
                                            "configs": [{}, {"blok_m": 64}]}]})"),
               Catch::StartsWith(path + ": kernels[0] ('f'), configs[1]: unknown key 'blok_m'"));
  }
  SECTION("configuration value of the wrong type") {
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "family": "vector_add",
                                            "configs": [{"block": "256"}]}]})"),
               Catch::Contains("kernels[0] ('f'), configs[0]: key 'block': expected an integer"));
  }
  SECTION("a configuration the kernel rejects") {
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "family": "gemv_u4",
                                            "configs": [{"group": 96, "block_k": 256}]}]})"),
               Catch::Contains("kernels[0] ('f'), configs[0]: gemv_u4: block_k and group"));
  }
  SECTION("a configuration the verifier rejects") {
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "family": "gemm",
                                            "configs": [{"block_m": 4096}]}]})"),
               Catch::Contains("kernels[0] ('f'), configs[0]: the verifier rejects") &&
                   Catch::Contains("shared tiles need"));
  }
  SECTION("a configuration codegen rejects") {
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "family": "gemm",
                                            "configs": [{}, {"block_k": 24}]}]})"),
               Catch::Contains("kernels[0] ('f'), configs[1], target sm_80: codegen"));
  }
  SECTION("a VM program the verifier rejects") {
    std::string text = read(nibble::testing::source_dir() / "tests/aot/data/add_block64.nbvm");
    text.replace(text.find("%ys = load_global %Y[start] : f32"), 33,
                 "%ys = load_global %Y[start] : f16");
    scratch.write("bad.nbvm", text);
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "vm": "bad.nbvm"}]})"),
               Catch::Contains("kernels[0] ('f'), vm[0]: the verifier rejects kernel "
                               "'add_block64'") &&
                   Catch::Contains("bad.nbvm:"));
  }
  SECTION("a VM file that does not parse or does not exist") {
    scratch.write("broken.nbvm", "kernel k {\n  param x: ptr<f99>\n}\n");
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "vm": "broken.nbvm"}]})"),
               Catch::Contains("kernels[0] ('f'), vm[0]") && Catch::Contains("broken.nbvm:2"));
    CHECK_THAT(failure(scratch, kHead + R"({"function": "f", "vm": "missing.nbvm"}]})"),
               Catch::Contains("kernels[0] ('f'), vm[0]: cannot read the VM program"));
  }
  SECTION("variants that cannot share a C function") {
    REQUIRE(nibble::codegen::find_ptxas());
    std::string text = read(nibble::testing::source_dir() / "tests/aot/data/add_block64.nbvm");
    text.replace(text.find("param y:"), 8, "param z:");
    text.replace(text.find("global_view y "), 14, "global_view z ");
    scratch.write("renamed.nbvm", text);
    const std::string vm =
        (nibble::testing::source_dir() / "tests/aot/data/add_block64.nbvm").string();
    CHECK_THAT(
        failure(scratch, kHead + R"({"function": "f", "vm": [")" + vm + R"(", "renamed.nbvm"]}]})"),
        Catch::Contains("kernels[0] ('f'): the variants must share one parameter list") &&
            Catch::Contains("'y'") && Catch::Contains("'z'"));
  }
  SECTION("a kernel in clusters with no sm_90 target") {
    std::string text = read(nibble::testing::source_dir() / "tests/aot/data/add_block64.nbvm");
    text.replace(text.find("  warps 2"), 9, "  warps 2\n  cluster (2, 1, 1)");
    scratch.write("clustered.nbvm", text);
    const std::string head = R"({"library": "lib", "targets": ["sm_80"], "kernels": [)";
    CHECK_THAT(failure(scratch, head + R"({"function": "f", "vm": "clustered.nbvm"}]})"),
               Catch::Contains("kernels[0] ('f')") &&
                   Catch::Contains("runs in clusters of 2 blocks, which need an sm_90 target or "
                                   "newer; the entry lists none"));
  }
  SECTION("an output directory that cannot be written") {
    const fs::path file = scratch.write("file.txt", "not a directory");
    const std::string manifest =
        kHead + R"({"function": "f", "family": "vector_add", "targets": ["sm_80"]}]})";
    REQUIRE(nibble::codegen::find_ptxas());
    CHECK_THAT(failure(scratch, manifest, file / "out"), Catch::Contains("cannot"));
    CHECK_THAT(failure(scratch, manifest, file), Catch::Contains("is not a directory"));
    CHECK(read(file) == "not a directory");
  }
  SECTION("a manifest that cannot be read") {
    CHECK_THROWS_WITH(nibble::aot::generate({(scratch.root / "none.json").string(),
                                             (scratch.root / "out").string(), ""}),
                      Catch::Contains("none.json: cannot read the manifest"));
  }
}
