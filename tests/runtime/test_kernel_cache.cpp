// The kernel cache: hits, misses, a changed build id, corrupt and truncated entries, an
// unwritable directory, and two processes storing the same kernel at once.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "runtime/kernel_cache.h"

using namespace nibble::runtime;
namespace fs = std::filesystem;

namespace {

// A fresh directory under the build tree, removed at the end of the test.
struct TemporaryDirectory {
  fs::path path;
  TemporaryDirectory() {
    std::random_device random;
    path = fs::temp_directory_path() / ("nibble-cache-test-" + std::to_string(random()));
    fs::create_directories(path);
  }
  ~TemporaryDirectory() {
    std::error_code ignored;
    fs::permissions(path, fs::perms::owner_all, ignored);
    fs::remove_all(path, ignored);
  }
};

std::vector<uint8_t> bytes_of(std::string_view text) {
  return {text.begin(), text.end()};
}

}  // namespace

TEST_CASE("cache keys separate their parts and include the build id", "[runtime][cache]") {
  CHECK(CacheKey::of({"ab", "c"}) != CacheKey::of({"a", "bc"}));
  CHECK(CacheKey::of({"program", "sm_90a", "O3", "build-1"}) !=
        CacheKey::of({"program", "sm_90a", "O3", "build-2"}));
  CHECK(CacheKey::of({"x"}).hex.size() == 64);
}

TEST_CASE("store, load from memory and from disk", "[runtime][cache]") {
  TemporaryDirectory directory;
  const CacheKey key = CacheKey::of({"kernel text", "sm_80"});
  {
    KernelCache cache(directory.path);
    CHECK_FALSE(cache.load(key).has_value());
    cache.store(key, bytes_of("cubin bytes"));
    CHECK(cache.load(key) == bytes_of("cubin bytes"));
    CHECK(cache.stats().memory_hits == 1);
    CHECK(cache.stats().misses == 1);
  }
  KernelCache fresh(directory.path);  // a new process: only the disk remembers
  CHECK(fresh.load(key) == bytes_of("cubin bytes"));
  CHECK(fresh.stats().disk_hits == 1);
  // A different build id is a different key: a miss.
  CHECK_FALSE(fresh.load(CacheKey::of({"kernel text", "sm_80", "another build"})).has_value());
  // No temporary files are left behind.
  for (const auto& entry : fs::recursive_directory_iterator(directory.path)) {
    CHECK(entry.path().string().find(".tmp.") == std::string::npos);
  }
}

TEST_CASE("corrupt and truncated entries are detected and rebuilt", "[runtime][cache]") {
  TemporaryDirectory directory;
  const CacheKey key = CacheKey::of({"kernel"});
  const std::vector<uint8_t> payload = bytes_of("a compiled kernel of some length");
  KernelCache writer(directory.path);
  writer.store(key, payload);
  const fs::path entry = writer.entry_path(key);
  REQUIRE(fs::exists(entry));

  SECTION("a flipped payload byte") {
    std::fstream file(entry, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-3, std::ios::end);
    file.put('X');
  }
  SECTION("a truncated file") {
    fs::resize_file(entry, fs::file_size(entry) - 5);
  }
  SECTION("a header only") {
    fs::resize_file(entry, 20);
  }
  SECTION("an entry renamed to another key") {
    const CacheKey other = CacheKey::of({"another kernel"});
    KernelCache(directory.path).store(other, payload);
    fs::copy_file(writer.entry_path(other), entry, fs::copy_options::overwrite_existing);
  }

  KernelCache reader(directory.path);
  CHECK_FALSE(reader.load(key).has_value());
  CHECK(reader.stats().corrupt_entries == 1);
  CHECK_FALSE(fs::exists(entry));
  int builds = 0;
  const std::vector<uint8_t> rebuilt = reader.get_or_build(key, [&] {
    ++builds;
    return payload;
  });
  CHECK(builds == 1);
  CHECK(rebuilt == payload);
  KernelCache again(directory.path);
  CHECK(again.load(key) == payload);
}

TEST_CASE("an unwritable cache directory does not fail the build", "[runtime][cache]") {
  if (::geteuid() == 0) {
    // root ignores permissions; use a path under a regular file instead.
    TemporaryDirectory directory;
    const fs::path blocker = directory.path / "file";
    std::ofstream(blocker) << "not a directory";
    KernelCache cache(blocker / "cache");
    const CacheKey key = CacheKey::of({"k"});
    CHECK(cache.get_or_build(key, [] { return bytes_of("built"); }) == bytes_of("built"));
    CHECK(cache.stats().write_failures == 1);
    return;
  }
  TemporaryDirectory directory;
  fs::permissions(directory.path, fs::perms::owner_read | fs::perms::owner_exec);
  KernelCache cache(directory.path / "sub");
  CHECK(cache.get_or_build(CacheKey::of({"k"}), [] { return bytes_of("built"); }) ==
        bytes_of("built"));
  CHECK(cache.stats().write_failures == 1);
}

TEST_CASE("two processes storing the same kernel both succeed", "[runtime][cache]") {
  TemporaryDirectory directory;
  const CacheKey key = CacheKey::of({"shared kernel"});
  std::vector<uint8_t> payload(1 << 20);
  for (size_t i = 0; i < payload.size(); ++i)
    payload[i] = static_cast<uint8_t>(i * 7);
  std::vector<pid_t> children;
  for (int child = 0; child < 4; ++child) {
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // Each process builds and stores the kernel 20 times, reading it back each time.
      for (int round = 0; round < 20; ++round) {
        KernelCache cache(directory.path);
        const auto loaded = cache.get_or_build(key, [&] { return payload; });
        if (loaded != payload) _exit(1);
        cache.store(key, payload);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  KernelCache reader(directory.path);
  CHECK(reader.load(key) == payload);
  CHECK(reader.stats().corrupt_entries == 0);
}
