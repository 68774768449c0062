// The kernel cache: compiled kernels (cubin or PTX bytes) kept in memory and on disk.
//
// A key is the SHA-256 of everything that determines the compiled bytes: the program text, the
// target, the compile options and the compiler's build id (so a rebuilt compiler never reuses
// another build's kernels). Entries live under $NIBBLE_CACHE_DIR (default ~/.cache/nibble) as
// <dir>/<first two hex digits>/<key>.nbk:
//
//   "NIBBLEK1"  payload size (u64, little-endian)  SHA-256 of the payload  key (64 hex)  payload
//
// Writes go to a temporary file in the same directory, are flushed, and renamed over the entry
// atomically, so concurrent processes compiling the same kernel both succeed and a reader never
// sees half an entry. A truncated or corrupt entry (wrong magic, size, checksum or key) counts
// as a miss: it is removed and the caller rebuilds it. Failing to write the cache (read-only
// directory, full disk) never fails a compile: the kernel is still returned.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace nibble::runtime {

struct CacheKey {
  std::string hex;  // 64 lowercase hex digits
  // The key of an ordered list of parts (each length-prefixed, so parts cannot run together).
  static CacheKey of(std::initializer_list<std::string_view> parts);
  bool operator==(const CacheKey&) const = default;
};

class KernelCache {
 public:
  struct Stats {
    int64_t memory_hits = 0;
    int64_t disk_hits = 0;
    int64_t misses = 0;
    int64_t corrupt_entries = 0;
    int64_t write_failures = 0;
  };

  // An empty directory disables the disk level.
  explicit KernelCache(std::filesystem::path directory);
  // The process-wide cache at $NIBBLE_CACHE_DIR or ~/.cache/nibble ($NIBBLE_CACHE_DIR=off: memory
  // only).
  static KernelCache& process_cache();

  std::optional<std::vector<uint8_t>> load(const CacheKey& key);
  void store(const CacheKey& key, std::span<const uint8_t> bytes);
  // load(), or build() and store() on a miss.
  std::vector<uint8_t> get_or_build(const CacheKey& key,
                                    const std::function<std::vector<uint8_t>()>& build);

  std::filesystem::path entry_path(const CacheKey& key) const;
  const std::filesystem::path& directory() const { return directory_; }
  Stats stats() const;
  void clear_memory();

 private:
  std::optional<std::vector<uint8_t>> load_from_disk(const CacheKey& key);
  void store_on_disk(const CacheKey& key, std::span<const uint8_t> bytes);

  std::filesystem::path directory_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::vector<uint8_t>> memory_;
  Stats stats_;
};

}  // namespace nibble::runtime
