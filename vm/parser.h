// The parser of the VM's text format (the format is specified in vm/printer.h).
//
// parse_program builds the Program directly: the tensor table (a tensor per first definition,
// in order), Var ids (from program.next_var_id, in order of definition), parameter references
// in expressions (Expr::param with the parameter's index and type). It resolves every name —
// an unknown or out-of-scope tensor, variable or parameter is an error naming it — and checks
// what expressions check on construction (operand types), but no other semantics: that is the
// verifier's job (vm/verifier.h).
//
// Scoping follows the program: a `for` variable is visible in its body, a `let` variable to the
// end of its body, a tensor from its definition to the end of the body that defines it. A name
// may be defined again in a disjoint scope, never while the first is visible.
//
// Every input either parses or throws ParseError: no other exception, no crash, no unbounded
// recursion (expressions and blocks nest at most kMaxNesting deep).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "vm/program.h"

namespace nibble::vm {

// "kernel.nbl:12:7: error: expected ']', found ','" followed by the offending line and a caret
// under the column. Lines and columns count from 1; columns count bytes.
class ParseError : public std::invalid_argument {
 public:
  ParseError(const std::string& message, int line, int column)
      : std::invalid_argument(message), line_(line), column_(column) {}
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  int line_;
  int column_;
};

inline constexpr int kMaxNesting = 256;

// Where statements without a location comment come from.
enum class TextLocations : uint8_t {
  Unknown,  // stay unknown: parse(print(p)) == p
  Text,     // the statement's own line and column in `file_name` (for hand-written files,
            // so that the verifier points into them)
};

Program parse_program(std::string_view text, std::string_view file_name = "<input>",
                      TextLocations text_locations = TextLocations::Unknown);

}  // namespace nibble::vm
