// libFuzzer entry point for the layout notation: any bytes parse or raise LayoutError, and what
// parses prints back to an equal layout.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "layout/error.h"
#include "layout/layout.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const nibble::layout::Layout layout = nibble::layout::Layout::parse(text);
    if (!(nibble::layout::Layout::parse(layout.to_string()) == layout)) std::abort();
  } catch (const nibble::layout::LayoutError&) {
  }
  return 0;
}
