// Where the repository's sources are, for tests that read them: $NIBBLE_SOURCE_DIR when set (the
// GPU machine runs test binaries built elsewhere), else the directory they were built from.
#pragma once

#include <cstdlib>
#include <filesystem>

namespace nibble::testing {

inline std::filesystem::path source_dir() {
  if (const char* overridden = std::getenv("NIBBLE_SOURCE_DIR")) return overridden;
  return NIBBLE_SOURCE_DIR;
}

}  // namespace nibble::testing
