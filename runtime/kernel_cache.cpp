#include "runtime/kernel_cache.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

#include "runtime/sha256.h"

namespace nibble::runtime {
namespace {

namespace fs = std::filesystem;

constexpr char kMagic[8] = {'N', 'I', 'B', 'B', 'L', 'E', 'K', '1'};
constexpr size_t kHeaderBytes = sizeof(kMagic) + 8 + 32 + 64;

std::vector<uint8_t> read_whole_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::array<uint8_t, 32> checksum(std::span<const uint8_t> bytes) {
  return Sha256().update(bytes).digest();
}

// Writes all of `bytes` to `fd`; false on any error.
bool write_all(int fd, std::span<const uint8_t> bytes) {
  size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    written += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

CacheKey CacheKey::of(std::initializer_list<std::string_view> parts) {
  Sha256 hash;
  for (std::string_view part : parts) {
    hash.update(fmt::format("{}:", part.size()));
    hash.update(part);
  }
  return CacheKey{hash.hex_digest()};
}

KernelCache::KernelCache(fs::path directory) : directory_(std::move(directory)) {}

KernelCache& KernelCache::process_cache() {
  static KernelCache cache = [] {
    const char* configured = std::getenv("NIBBLE_CACHE_DIR");
    if (configured != nullptr) {
      return KernelCache(std::string_view(configured) == "off" ? fs::path() : fs::path(configured));
    }
    const char* home = std::getenv("HOME");
    return KernelCache(home != nullptr ? fs::path(home) / ".cache" / "nibble" : fs::path());
  }();
  return cache;
}

fs::path KernelCache::entry_path(const CacheKey& key) const {
  return directory_ / key.hex.substr(0, 2) / (key.hex + ".nbk");
}

std::optional<std::vector<uint8_t>> KernelCache::load(const CacheKey& key) {
  {
    std::lock_guard lock(mutex_);
    auto found = memory_.find(key.hex);
    if (found != memory_.end()) {
      ++stats_.memory_hits;
      return found->second;
    }
  }
  std::optional<std::vector<uint8_t>> from_disk = load_from_disk(key);
  std::lock_guard lock(mutex_);
  if (!from_disk) {
    ++stats_.misses;
    return std::nullopt;
  }
  ++stats_.disk_hits;
  memory_[key.hex] = *from_disk;
  return from_disk;
}

std::optional<std::vector<uint8_t>> KernelCache::load_from_disk(const CacheKey& key) {
  if (directory_.empty()) return std::nullopt;
  const fs::path path = entry_path(key);
  std::error_code error;
  if (!fs::exists(path, error)) return std::nullopt;
  const std::vector<uint8_t> file = read_whole_file(path);
  auto reject = [&]() -> std::optional<std::vector<uint8_t>> {
    {
      std::lock_guard lock(mutex_);
      ++stats_.corrupt_entries;
    }
    std::error_code ignored;
    fs::remove(path, ignored);
    return std::nullopt;
  };
  if (file.size() < kHeaderBytes || std::memcmp(file.data(), kMagic, sizeof(kMagic)) != 0)
    return reject();
  uint64_t size = 0;
  for (int i = 0; i < 8; ++i)
    size |= uint64_t{file[sizeof(kMagic) + static_cast<size_t>(i)]} << (8 * i);
  if (size != file.size() - kHeaderBytes) return reject();
  const uint8_t* stored_sum = file.data() + sizeof(kMagic) + 8;
  const uint8_t* stored_key = stored_sum + 32;
  if (std::memcmp(stored_key, key.hex.data(), 64) != 0) return reject();
  std::vector<uint8_t> payload(file.begin() + static_cast<std::ptrdiff_t>(kHeaderBytes),
                               file.end());
  if (std::memcmp(checksum(payload).data(), stored_sum, 32) != 0) return reject();
  return payload;
}

void KernelCache::store(const CacheKey& key, std::span<const uint8_t> bytes) {
  {
    std::lock_guard lock(mutex_);
    memory_[key.hex] = std::vector<uint8_t>(bytes.begin(), bytes.end());
  }
  store_on_disk(key, bytes);
}

void KernelCache::store_on_disk(const CacheKey& key, std::span<const uint8_t> bytes) {
  if (directory_.empty()) return;
  static std::atomic<uint64_t> counter{0};
  const fs::path path = entry_path(key);
  const fs::path temporary =
      path.string() +
      fmt::format(".tmp.{}.{}", static_cast<long>(::getpid()), counter.fetch_add(1));
  auto fail = [&] {
    std::lock_guard lock(mutex_);
    ++stats_.write_failures;
    std::error_code ignored;
    fs::remove(temporary, ignored);
  };
  std::error_code error;
  fs::create_directories(path.parent_path(), error);
  if (error) return fail();

  std::vector<uint8_t> header(kHeaderBytes);
  std::memcpy(header.data(), kMagic, sizeof(kMagic));
  for (int i = 0; i < 8; ++i)
    header[sizeof(kMagic) + static_cast<size_t>(i)] = static_cast<uint8_t>(bytes.size() >> (8 * i));
  const std::array<uint8_t, 32> sum = checksum(bytes);
  std::memcpy(header.data() + sizeof(kMagic) + 8, sum.data(), 32);
  std::memcpy(header.data() + sizeof(kMagic) + 8 + 32, key.hex.data(), 64);

  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return fail();
  const bool written = write_all(fd, header) && write_all(fd, bytes) && ::fsync(fd) == 0;
  const bool closed = ::close(fd) == 0;
  if (!written || !closed) return fail();
  fs::rename(temporary, path, error);  // atomic: readers see the old entry or the new one
  if (error) fail();
}

std::vector<uint8_t> KernelCache::get_or_build(const CacheKey& key,
                                               const std::function<std::vector<uint8_t>()>& build) {
  if (std::optional<std::vector<uint8_t>> cached = load(key)) return std::move(*cached);
  std::vector<uint8_t> built = build();
  store(key, built);
  return built;
}

KernelCache::Stats KernelCache::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void KernelCache::clear_memory() {
  std::lock_guard lock(mutex_);
  memory_.clear();
}

}  // namespace nibble::runtime
