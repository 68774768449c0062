// GPU tests call require_gpu() first: without a driver or a device the test process exits with
// code 77, which CTest reports as "skipped" (SKIP_RETURN_CODE), never as passed.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "runtime/driver.h"

namespace nibble::testing {

inline void require_gpu() {
  if (nibble::runtime::Driver::available()) return;
  std::printf("SKIPPED: no CUDA driver or GPU on this machine\n");
  std::fflush(stdout);
  std::_Exit(77);
}

}  // namespace nibble::testing
