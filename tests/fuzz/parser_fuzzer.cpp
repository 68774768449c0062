// libFuzzer entry point for the VM's text parser: any input must parse or throw ParseError.
// When it parses, printing is a fixed point from there on (the round trip of vm/printer.h);
// anything else — a crash, another exception, a differing reprint — is a finding.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "vm/parser.h"
#include "vm/printer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const nibble::vm::Program program = nibble::vm::parse_program(text);
    const std::string printed = nibble::vm::print(program);
    if (nibble::vm::print(nibble::vm::parse_program(printed)) != printed) std::abort();
  } catch (const nibble::vm::ParseError&) {
    // Rejected with a message: what the parser is for.
  }
  return 0;
}
