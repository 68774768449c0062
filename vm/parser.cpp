#include "vm/parser.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <optional>
#include <unordered_map>

#include "layout/error.h"
#include "vm/printer.h"

namespace nibble::vm {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}
bool is_identifier_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_identifier_char(char c) {
  return is_identifier_start(c) || is_digit(c);
}
bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r';
}
int hex_value(char c) {
  if (is_digit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Reads the STRING that starts at text[pos] (a '"'), leaving pos after it; nullopt when it is
// malformed or does not end on its line.
std::optional<std::string> read_string(std::string_view text, size_t& pos) {
  if (pos >= text.size() || text[pos] != '"') return std::nullopt;
  ++pos;
  std::string out;
  while (pos < text.size()) {
    const char c = text[pos++];
    if (c == '"') return out;
    if (c == '\n') return std::nullopt;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (pos >= text.size()) return std::nullopt;
    const char escape = text[pos++];
    switch (escape) {
      case '"':
      case '\\':
        out += escape;
        break;
      case 'n':
        out += '\n';
        break;
      case 't':
        out += '\t';
        break;
      case 'x': {
        if (pos + 1 >= text.size()) return std::nullopt;
        const int high = hex_value(text[pos]);
        const int low = hex_value(text[pos + 1]);
        if (high < 0 || low < 0) return std::nullopt;
        out += static_cast<char>(high * 16 + low);
        pos += 2;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return std::nullopt;
}

// A positive decimal int at text[pos], leaving pos after it.
std::optional<int> read_count(std::string_view text, size_t& pos) {
  size_t end = pos;
  while (end < text.size() && is_digit(text[end]))
    ++end;
  int value = 0;
  auto [ptr, error] = std::from_chars(text.data() + pos, text.data() + end, value);
  if (end == pos || error != std::errc()) return std::nullopt;
  pos = end;
  return value;
}

// `:LINE[:COLUMN][ in FUNCTION]` to the end of `text`, from text[pos] == ':'.
bool read_location_tail(std::string_view text, size_t pos, SourceLocation& location) {
  ++pos;
  std::optional<int> line = read_count(text, pos);
  if (!line || *line <= 0) return false;
  location.line = *line;
  if (pos < text.size() && text[pos] == ':') {
    ++pos;
    std::optional<int> column = read_count(text, pos);
    if (!column) return false;
    location.column = *column;
  }
  if (pos == text.size()) return true;
  constexpr std::string_view kIn = " in ";
  if (text.substr(pos, kIn.size()) != kIn) return false;
  pos += kIn.size();
  if (pos < text.size() && text[pos] == '"') {
    std::optional<std::string> function = read_string(text, pos);
    if (!function || pos != text.size()) return false;
    location.function = *function;
    return true;
  }
  location.function = std::string(text.substr(pos));
  return !location.function.empty();
}

// The location comment `FILE:LINE[:COLUMN][ in FUNCTION]` (vm/printer.h), or nullopt for any
// other comment.
std::optional<SourceLocation> read_location(std::string_view text) {
  if (!text.empty() && text.front() == '"') {
    size_t pos = 0;
    std::optional<std::string> file = read_string(text, pos);
    if (!file || pos >= text.size() || text[pos] != ':') return std::nullopt;
    SourceLocation location;
    location.file = *file;
    if (read_location_tail(text, pos, location)) return location;
    return std::nullopt;
  }
  // The file ends at the first ':' followed by a line number that reads to the end.
  for (size_t i = 0; i + 1 < text.size(); ++i) {
    if (text[i] != ':' || !is_digit(text[i + 1])) continue;
    SourceLocation location;
    location.file = std::string(text.substr(0, i));
    if (read_location_tail(text, i, location)) return location;
  }
  return std::nullopt;
}

struct BinaryToken {
  std::string_view text;
  BinaryOp op;
  int precedence;  // C's: higher binds tighter
};
// Longer tokens first, so that `<=` is not read as `<`.
constexpr BinaryToken kBinaryTokens[] = {
    {"||", BinaryOp::Or, 1},    {"&&", BinaryOp::And, 2},   {"==", BinaryOp::Eq, 6},
    {"!=", BinaryOp::Ne, 6},    {"<=", BinaryOp::Le, 7},    {">=", BinaryOp::Ge, 7},
    {"<<", BinaryOp::Shl, 8},   {">>", BinaryOp::Shr, 8},   {"|", BinaryOp::BitOr, 3},
    {"^", BinaryOp::BitXor, 4}, {"&", BinaryOp::BitAnd, 5}, {"<", BinaryOp::Lt, 7},
    {">", BinaryOp::Gt, 7},     {"+", BinaryOp::Add, 9},    {"-", BinaryOp::Sub, 9},
    {"*", BinaryOp::Mul, 10},   {"/", BinaryOp::Div, 10},
};

// A name and where it was written.
struct Located {
  std::string name;
  size_t at = 0;
};

class Parser {
 public:
  Parser(std::string_view text, std::string_view file_name, TextLocations text_locations)
      : text_(text), file_name_(file_name), text_locations_(text_locations) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\n') line_starts_.push_back(i + 1);
    }
  }

  Program program() {
    skip_empty_lines();
    expect_word("kernel");
    skip_blanks();
    if (peek() == '"') {
      program_.name = string_literal("a kernel name");
    } else {
      std::string_view name = word();
      if (name.empty()) fail_expected("a kernel name");
      program_.name = std::string(name);
    }
    expect('{');
    end_plain_line();
    scopes_.emplace_back();
    header();
    statements(program_.body, "'}' closing the kernel");
    end_plain_line();
    skip_empty_lines();
    if (!at_end()) fail_expected("the end of the input");
    return std::move(program_);
  }

 private:
  // ---- scanning ------------------------------------------------------------------------------

  bool at_end() const { return pos_ >= text_.size(); }
  // The character `ahead` places on; '\0' past the end (never confused with the end: a NUL byte
  // in the text is accepted by no rule).
  char peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }
  std::string_view rest() const { return text_.substr(pos_); }

  void skip_blanks() {
    while (!at_end() && is_blank(peek()))
      ++pos_;
  }
  void skip_to_line_end() {
    while (!at_end() && peek() != '\n')
      ++pos_;
  }
  void skip_empty_lines() {
    for (;;) {
      skip_blanks();
      if (!at_end() && peek() == '#') skip_to_line_end();
      if (at_end() || peek() != '\n') return;
      ++pos_;
    }
  }
  // The end of a line that carries nothing more (a comment is allowed and ignored).
  void end_plain_line() {
    skip_blanks();
    if (!at_end() && peek() == '#') skip_to_line_end();
    if (at_end()) return;
    if (peek() != '\n') fail_expected("the end of the line");
    ++pos_;
  }

  bool accept(char c) {
    skip_blanks();
    if (at_end() || peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) fail_expected(fmt::format("'{}'", c));
  }
  bool peek_word(std::string_view keyword) {
    skip_blanks();
    return rest().starts_with(keyword) && !is_identifier_char(peek(keyword.size()));
  }
  bool accept_word(std::string_view keyword) {
    if (!peek_word(keyword)) return false;
    pos_ += keyword.size();
    return true;
  }
  void expect_word(std::string_view keyword) {
    if (!accept_word(keyword)) fail_expected(fmt::format("'{}'", keyword));
  }

  // An identifier (possibly empty) at the current position.
  std::string_view word() {
    skip_blanks();
    const size_t start = pos_;
    if (!at_end() && is_identifier_start(peek())) {
      while (!at_end() && is_identifier_char(peek()))
        ++pos_;
    }
    return text_.substr(start, pos_ - start);
  }
  // A parameter or variable name: an identifier, not a reserved word.
  Located name(std::string_view what) {
    skip_blanks();
    const size_t at = pos_;
    std::string_view found = word();
    if (found.empty()) fail_expected(what);
    if (is_reserved_word(found)) {
      fail(at, fmt::format("expected {}, found the reserved word '{}'", what, found));
    }
    return {std::string(found), at};
  }

  int64_t integer(std::string_view what) {
    skip_blanks();
    const size_t start = pos_;
    size_t end = start;
    if (end < text_.size() && text_[end] == '-') ++end;
    const size_t digits = end;
    while (end < text_.size() && is_digit(text_[end]))
      ++end;
    if (end == digits) fail_expected(what);
    int64_t value = 0;
    auto [ptr, error] = std::from_chars(text_.data() + start, text_.data() + end, value);
    if (error != std::errc()) {
      fail(start,
           fmt::format("{} {} does not fit in 64 bits", what, text_.substr(start, end - start)));
    }
    pos_ = end;
    return value;
  }
  int small_integer(std::string_view what) {
    skip_blanks();
    const size_t start = pos_;
    const int64_t value = integer(what);
    if (value < INT_MIN || value > INT_MAX) {
      fail(start, fmt::format("{} {} does not fit in 32 bits", what, value));
    }
    return static_cast<int>(value);
  }
  // A double as fmt writes it: `0`, `-1.5`, `1e-05`, `inf`, `-nan`.
  double number(std::string_view what) {
    skip_blanks();
    const size_t start = pos_;
    size_t end = start;
    if (end < text_.size() && text_[end] == '-') ++end;
    while (end < text_.size()) {
      const char c = text_[end];
      const bool exponent_sign =
          (c == '+' || c == '-') && end > start && (text_[end - 1] == 'e' || text_[end - 1] == 'E');
      if (!is_identifier_char(c) && c != '.' && !exponent_sign) break;
      ++end;
    }
    std::string_view token = text_.substr(start, end - start);
    if (token.empty() || token == "-") fail_expected(what);
    double value = 0;
    auto [ptr, error] = std::from_chars(token.data(), token.data() + token.size(), value);
    if (error == std::errc::result_out_of_range) {
      fail(start, fmt::format("{} {} is out of the range of f64", what, token));
    }
    if (error != std::errc() || ptr != token.data() + token.size()) {
      fail(start, fmt::format("expected {}, found '{}'", what, token));
    }
    pos_ = end;
    return value;
  }
  std::string string_literal(std::string_view what) {
    skip_blanks();
    const size_t start = pos_;
    if (peek() != '"') fail_expected(what);
    std::optional<std::string> value = read_string(text_, pos_);
    if (!value) {
      fail(start,
           "malformed string: it must end with '\"' on the same line, and its escapes are \\\" "
           "\\\\ \\n \\t \\xHH");
    }
    return *value;
  }
  DataType dtype() {
    skip_blanks();
    const size_t start = pos_;
    while (!at_end() && is_identifier_char(peek()))
      ++pos_;
    std::string_view token = text_.substr(start, pos_ - start);
    if (token.empty()) fail_expected("an element type such as f16 or u4");
    try {
      return DataType::parse(token);
    } catch (const dtypes::DTypeError& error) {
      fail(start, fmt::format("expected an element type such as f16 or u4, found '{}' ({})", token,
                              error.what()));
    }
  }

  template <class ReadItem>
  void list(char close, ReadItem&& read_item) {
    if (accept(close)) return;
    do
      read_item();
    while (accept(','));
    if (!accept(close)) fail_expected(fmt::format("',' or '{}'", close));
  }
  template <class Integer>
  std::vector<Integer> integer_list(std::string_view what) {
    expect('[');
    std::vector<Integer> values;
    list(']', [&] {
      if constexpr (sizeof(Integer) == sizeof(int)) {
        values.push_back(small_integer(what));
      } else {
        values.push_back(integer(what));
      }
    });
    return values;
  }

  // ---- errors --------------------------------------------------------------------------------

  [[noreturn]] void fail(size_t at, const std::string& message) const {
    at = std::min(at, text_.size());
    const size_t line_index =
        static_cast<size_t>(std::upper_bound(line_starts_.begin(), line_starts_.end(), at) -
                            line_starts_.begin()) -
        1;
    const size_t line_start = line_starts_[line_index];
    size_t line_end = text_.find('\n', line_start);
    if (line_end == std::string_view::npos) line_end = text_.size();
    std::string_view line = text_.substr(line_start, line_end - line_start);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    // The caret lines up under tabs too.
    std::string caret;
    for (size_t i = line_start; i < at; ++i)
      caret += text_[i] == '\t' ? '\t' : ' ';
    const int line_number = static_cast<int>(line_index + 1);
    const int column = static_cast<int>(at - line_start + 1);
    throw ParseError(fmt::format("{}:{}:{}: error: {}\n{}\n{}^", file_name_, line_number, column,
                                 message, line, caret),
                     line_number, column);
  }
  [[noreturn]] void fail_expected(std::string_view what) {
    skip_blanks();
    fail(pos_, fmt::format("expected {}, found {}", what, describe(pos_)));
  }
  // What the text holds at `at`, for "found …".
  std::string describe(size_t at) const {
    if (at >= text_.size()) return "the end of the input";
    const char c = text_[at];
    if (c == '\n' || c == '\r') return "the end of the line";
    if (c == '#') return "a comment";
    size_t end = at;
    if (c == '%') ++end;
    while (end < text_.size() && end - at < 32 && is_identifier_char(text_[end]))
      ++end;
    if (end > at + 1 || (end == at + 1 && c != '%')) {
      return fmt::format("'{}'", text_.substr(at, end - at));
    }
    const auto byte = static_cast<unsigned char>(c);
    if (byte > 0x20 && byte < 0x7f) return fmt::format("'{}'", c);
    return fmt::format("the byte 0x{:02x}", byte);
  }

  SourceLocation text_location(size_t at) const {
    const size_t line_index =
        static_cast<size_t>(std::upper_bound(line_starts_.begin(), line_starts_.end(), at) -
                            line_starts_.begin()) -
        1;
    return SourceLocation{std::string(file_name_), static_cast<int>(line_index + 1),
                          static_cast<int>(at - line_starts_[line_index] + 1), ""};
  }

  // Counts one level of nesting for as long as it lives; too deep is an error, not a crash.
  class Nesting {
   public:
    Nesting(const Parser& parser, int& depth, size_t at) : depth_(depth) {
      if (depth_ >= kMaxNesting) {
        parser.fail(at, fmt::format("nested deeper than {} levels", kMaxNesting));
      }
      ++depth_;
    }
    ~Nesting() { --depth_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;

   private:
    int& depth_;
  };

  // ---- names and scopes ----------------------------------------------------------------------

  struct NameScope {
    std::unordered_map<std::string, Expr> vars;
    std::unordered_map<std::string, TensorId> tensors;
  };

  const Expr* find_var(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope) {
      auto found = scope->vars.find(name);
      if (found != scope->vars.end()) return &found->second;
    }
    return nullptr;
  }
  std::optional<TensorId> find_tensor(const std::string& name) const {
    for (auto scope = scopes_.rbegin(); scope != scopes_.rend(); ++scope) {
      auto found = scope->tensors.find(name);
      if (found != scope->tensors.end()) return found->second;
    }
    return std::nullopt;
  }
  std::optional<int> find_param(std::string_view name) const {
    for (size_t i = 0; i < program_.params.size(); ++i) {
      if (program_.params[i].name == name) return static_cast<int>(i);
    }
    return std::nullopt;
  }

  // A fresh Var for a `for` or `let`; visible once declare() puts it in scope.
  Expr new_var(const Located& var, DataType type) {
    if (find_var(var.name)) fail(var.at, fmt::format("variable {} is already defined", var.name));
    if (find_param(var.name)) fail(var.at, fmt::format("{} is already a parameter", var.name));
    try {
      return Expr::var(var.name, program_.next_var_id++, type);
    } catch (const ExprError& error) {
      fail(var.at, error.what());
    }
  }
  void declare(const Expr& var) { scopes_.back().vars.emplace(var.name(), var); }

  // ---- expressions ---------------------------------------------------------------------------

  // Expressions come with their height, bounded so that no later walk over them runs deep.
  struct Parsed {
    Expr expr;
    int height = 1;
  };

  template <class Build>
  Parsed node(size_t at, int height, Build&& build) {
    if (height > kMaxNesting) {
      fail(at, fmt::format("expression nested deeper than {} levels", kMaxNesting));
    }
    try {
      return {build(), height};
    } catch (const ExprError& error) {
      fail(at, error.what());
    }
  }

  // An expression, or `?` for an empty one.
  Expr slot() {
    skip_blanks();
    if (peek() == '?') {
      ++pos_;
      return Expr();
    }
    return expression();
  }
  Expr expression() { return binary(1).expr; }

  const BinaryToken* peek_binary() {
    skip_blanks();
    for (const BinaryToken& token : kBinaryTokens) {
      if (rest().starts_with(token.text)) return &token;
    }
    return nullptr;
  }

  Parsed binary(int min_precedence) {
    Parsed lhs = unary();
    for (;;) {
      const BinaryToken* token = peek_binary();
      if (token == nullptr || token->precedence < min_precedence) return lhs;
      const size_t at = pos_;
      pos_ += token->text.size();
      Parsed rhs = binary(token->precedence + 1);
      lhs = node(at, std::max(lhs.height, rhs.height) + 1,
                 [&] { return Expr::binary(token->op, lhs.expr, rhs.expr); });
    }
  }

  // `inf:` or `nan:` at `at`: a float literal, not a name.
  bool special_float_at(size_t at) const {
    std::string_view text = text_.substr(std::min(at, text_.size()));
    return text.starts_with("inf:") || text.starts_with("nan:");
  }

  Parsed unary() {
    skip_blanks();
    const size_t at = pos_;
    const char c = peek();
    if (c == '-' && (is_digit(peek(1)) || special_float_at(pos_ + 1))) return literal();
    if (c != '-' && c != '!' && c != '~') return primary();
    ++pos_;
    Nesting nesting(*this, expression_depth_, at);
    Parsed operand = unary();
    const UnaryOp op = c == '-' ? UnaryOp::Neg : c == '!' ? UnaryOp::Not : UnaryOp::BitNot;
    return node(at, operand.height + 1, [&] { return Expr::unary(op, operand.expr); });
  }

  Parsed primary() {
    skip_blanks();
    const size_t at = pos_;
    const char c = peek();
    if (at_end()) fail_expected("an expression");
    if (c == '(') {
      Nesting nesting(*this, expression_depth_, at);
      ++pos_;
      Parsed inner = binary(1);
      expect(')');
      return inner;
    }
    if (c == '%') return special_register();
    if (is_digit(c)) return literal();
    if (!is_identifier_start(c)) fail_expected("an expression");
    if (special_float_at(pos_)) return literal();
    const std::string name(word());
    if (name == "true" || name == "false") return {Expr::boolean(name == "true"), 1};
    if (name == "floordiv") return call(at, BinaryOp::FloorDiv);
    if (name == "mod") return call(at, BinaryOp::Mod);
    if (name == "min") return call(at, BinaryOp::Min);
    if (name == "max") return call(at, BinaryOp::Max);
    if (name == "select") {
      Nesting nesting(*this, expression_depth_, at);
      expect('(');
      Parsed condition = binary(1);
      expect(',');
      Parsed if_true = binary(1);
      expect(',');
      Parsed if_false = binary(1);
      expect(')');
      const int height = std::max({condition.height, if_true.height, if_false.height}) + 1;
      return node(at, height,
                  [&] { return Expr::select(condition.expr, if_true.expr, if_false.expr); });
    }
    if (name == "cast") {
      Nesting nesting(*this, expression_depth_, at);
      expect('<');
      const DataType type = dtype();
      expect('>');
      expect('(');
      Parsed operand = binary(1);
      expect(')');
      return node(at, operand.height + 1, [&] { return Expr::cast(operand.expr, type); });
    }
    if (is_reserved_word(name)) {
      fail(at, fmt::format("expected an expression, found the reserved word '{}'", name));
    }
    return {scalar_named(name, at), 1};
  }

  // floordiv(a, b), mod, min, max.
  Parsed call(size_t at, BinaryOp op) {
    Nesting nesting(*this, expression_depth_, at);
    expect('(');
    Parsed lhs = binary(1);
    expect(',');
    Parsed rhs = binary(1);
    expect(')');
    return node(at, std::max(lhs.height, rhs.height) + 1,
                [&] { return Expr::binary(op, lhs.expr, rhs.expr); });
  }

  Expr scalar_named(const std::string& name, size_t at) {
    if (const Expr* var = find_var(name)) return *var;
    if (std::optional<int> index = find_param(name)) {
      const Parameter& param = program_.params[static_cast<size_t>(*index)];
      if (param.kind == Parameter::Kind::Pointer) {
        fail(at, fmt::format("parameter {} is a pointer; expressions read scalar parameters "
                             "(a pointer is read through global_view)",
                             name));
      }
      try {
        return Expr::param(name, *index, param.dtype);
      } catch (const ExprError& error) {
        fail(at, error.what());
      }
    }
    fail(at, fmt::format("unknown name '{}': no variable of that name is in scope, and no "
                         "parameter has it",
                         name));
  }

  Parsed special_register() {
    const size_t at = pos_;
    ++pos_;  // '%'
    const std::string name(word());
    if ((name == "blockIdx" || name == "gridDim") && peek() == '.' &&
        !is_identifier_char(peek(2))) {
      const char axis = peek(1);
      const int offset = axis == 'x' ? 0 : axis == 'y' ? 1 : axis == 'z' ? 2 : -1;
      if (offset >= 0) {
        pos_ += 2;
        const int first =
            static_cast<int>(name == "blockIdx" ? Special::BlockIdX : Special::GridDimX);
        return {Expr::special(static_cast<Special>(first + offset)), 1};
      }
    }
    if (find_tensor(name)) {
      fail(at, fmt::format("%{} is a tensor; a scalar expression is expected here", name));
    }
    pos_ = at;
    fail_expected("a scalar expression (%blockIdx.x … %gridDim.z are the special registers)");
  }

  // 42, -7, 4:i64, 0.5:f32, 1:f16, -inf:f32, nan:f64.
  Parsed literal() {
    skip_blanks();
    const size_t start = pos_;
    size_t end = start;
    if (end < text_.size() && text_[end] == '-') ++end;
    bool looks_float = false;
    if (special_float_at(end)) {
      end += 3;
      looks_float = true;
    } else {
      const size_t digits = end;
      while (end < text_.size() && is_digit(text_[end]))
        ++end;
      if (end == digits) fail_expected("a number");
      if (end < text_.size() && text_[end] == '.') {
        looks_float = true;
        ++end;
        while (end < text_.size() && is_digit(text_[end]))
          ++end;
      }
      if (end < text_.size() && (text_[end] == 'e' || text_[end] == 'E')) {
        size_t exponent = end + 1;
        if (exponent < text_.size() && (text_[exponent] == '+' || text_[exponent] == '-')) {
          ++exponent;
        }
        if (exponent < text_.size() && is_digit(text_[exponent])) {
          looks_float = true;
          end = exponent;
          while (end < text_.size() && is_digit(text_[end]))
            ++end;
        }
      }
    }
    const std::string_view number = text_.substr(start, end - start);
    pos_ = end;
    std::optional<DataType> suffix;
    if (peek() == ':' && is_identifier_start(peek(1))) {
      ++pos_;
      suffix = dtype();
    }
    if (suffix && suffix->is_float()) {
      double value = 0;
      auto [ptr, error] = std::from_chars(number.data(), number.data() + number.size(), value);
      if (error != std::errc() || ptr != number.data() + number.size()) {
        fail(start, fmt::format("float constant {} is out of the range of f64", number));
      }
      return node(start, 1, [&] { return Expr::float_constant(value, *suffix); });
    }
    if (looks_float) {
      fail(start, suffix ? fmt::format("{} is not an integer but its type {} is an integer type",
                                       number, suffix->name())
                         : fmt::format("a float constant needs its type: {}:f32", number));
    }
    const DataType type = suffix.value_or(DataType::sint(32));
    int64_t value = 0;
    auto [ptr, error] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (error != std::errc())
      fail(start, fmt::format("integer {} does not fit in 64 bits", number));
    if (wrap_to_type(value, type) != value) {
      fail(start, fmt::format("integer {} does not fit in {}", number, type.name()));
    }
    return node(start, 1, [&] { return Expr::int_constant(value, type); });
  }

  // ---- types and layouts ---------------------------------------------------------------------

  TensorType tensor_type() {
    TensorType type;
    type.dtype = dtype();
    if (accept_word("global")) {
      type.scope = Scope::Global;
      expect('[');
      list(']', [&] { type.global_shape.push_back(slot()); });
      expect_word("strides");
      expect('[');
      list(']', [&] { type.global_strides.push_back(slot()); });
      return type;
    }
    if (accept_word("shared")) {
      type.scope = Scope::Shared;
    } else if (accept_word("register")) {
      type.scope = Scope::Register;
    } else {
      fail_expected("a scope: global, shared or register");
    }
    type.shape = integer_list<int64_t>("an extent");
    expect('@');
    if (!accept('?')) type.layout = layout();
    if (accept_word("swizzle")) type.swizzle = swizzle();
    return type;
  }

  // The notation of layout/layout.h: S[…] and R[…] groups and value@axis offsets joined by '+'.
  // The text is delimited here and read by Layout::parse.
  Layout layout() {
    skip_blanks();
    const size_t start = pos_;
    size_t end = pos_;
    for (;;) {
      skip_blanks();
      if ((peek() == 'S' || peek() == 'R') && peek(1) == '[') {
        pos_ += 2;
        while (!at_end() && peek() != ']' && peek() != '\n')
          ++pos_;
        if (peek() != ']') fail_expected("']' closing the layout's iters");
        ++pos_;
      } else if (is_digit(peek())) {
        while (!at_end() && is_digit(peek()))
          ++pos_;
        if (peek() != '@') fail_expected("'@' and an axis, as in 16@smem");
        ++pos_;
        while (!at_end() && is_identifier_char(peek()))
          ++pos_;
      } else {
        fail_expected("a layout such as S[(8,4):(4@lane,1@reg)]");
      }
      end = pos_;
      skip_blanks();
      if (peek() != '+') break;
      ++pos_;
    }
    pos_ = end;
    const std::string_view notation = text_.substr(start, end - start);
    try {
      return Layout::parse(notation);
    } catch (const layout::LayoutError& error) {
      std::string_view message = error.what();
      message = message.substr(0, message.find('\n'));
      fail(start, fmt::format("invalid layout {}: {}", notation, message));
    }
  }

  Swizzle swizzle() {
    skip_blanks();
    const size_t start = pos_;
    while (!at_end() &&
           (is_identifier_char(peek()) || peek() == '<' || peek() == '>' || peek() == ',')) {
      ++pos_;
    }
    const std::string_view notation = text_.substr(start, pos_ - start);
    if (notation.empty()) fail_expected("a swizzle such as Sw<3,4,3> or 128B");
    try {
      return Swizzle::parse(notation);
    } catch (const layout::LayoutError& error) {
      fail(start, error.what());
    }
  }

  // ---- the header ----------------------------------------------------------------------------

  void header() {
    bool seen_grid = false;
    bool seen_warps = false;
    bool seen_shared = false;
    bool seen_min_blocks = false;
    bool seen_cluster = false;
    auto once = [&](bool& seen, size_t at, std::string_view what) {
      if (seen) fail(at, fmt::format("a second '{}' line", what));
      seen = true;
    };
    for (;;) {
      skip_empty_lines();
      skip_blanks();
      const size_t at = pos_;
      if (accept_word("param")) {
        parameter();
      } else if (accept_word("grid")) {
        once(seen_grid, at, "grid");
        expect('(');
        for (size_t i = 0; i < 3; ++i) {
          if (i > 0) expect(',');
          program_.grid[i] = slot();
        }
        expect(')');
      } else if (accept_word("warps")) {
        once(seen_warps, at, "warps");
        program_.warps = small_integer("a number of warps");
      } else if (accept_word("shared_memory_bytes")) {
        once(seen_shared, at, "shared_memory_bytes");
        program_.shared_memory_bytes = integer("a number of bytes");
      } else if (accept_word("min_blocks_per_sm")) {
        once(seen_min_blocks, at, "min_blocks_per_sm");
        program_.min_blocks_per_sm = small_integer("a number of blocks");
      } else if (accept_word("early_trigger")) {
        once(program_.early_trigger, at, "early_trigger");  // sets it
      } else if (accept_word("dependent_launch")) {
        once(program_.dependent_launch, at, "dependent_launch");  // sets it
      } else if (accept_word("cluster")) {
        once(seen_cluster, at, "cluster");
        expect('(');
        for (size_t i = 0; i < 3; ++i) {
          if (i > 0) expect(',');
          program_.cluster[i] = small_integer("a number of blocks");
        }
        expect(')');
      } else {
        return;
      }
      end_plain_line();
    }
  }

  void parameter() {
    const Located declared = name("a parameter name");
    if (find_param(declared.name)) {
      fail(declared.at, fmt::format("parameter {} is already defined", declared.name));
    }
    Parameter param;
    param.name = declared.name;
    expect(':');
    if (accept_word("ptr")) {
      param.kind = Parameter::Kind::Pointer;
      expect('<');
      param.dtype = dtype();
      expect('>');
    } else {
      param.kind = Parameter::Kind::Scalar;
      param.dtype = dtype();
    }
    if (accept_word("align")) param.alignment_bytes = integer("an alignment in bytes");
    if (accept_word("divisor")) param.divisor = integer("a divisor");
    if (accept_word("const")) param.compile_time = true;
    if (accept('=')) param.value = integer("the parameter's value");
    program_.params.push_back(std::move(param));
  }

  // ---- statements ----------------------------------------------------------------------------

  // Statements up to the closing '}' (consumed).
  void statements(Body& body, std::string_view closing) {
    for (;;) {
      skip_empty_lines();
      if (at_end()) fail_expected(closing);
      if (peek() == '}') {
        ++pos_;
        return;
      }
      statement(body);
    }
  }

  // A nested block: '{' was read and its line ended; statements in a scope of their own.
  void block(Body& body, size_t at, const Expr& var = Expr()) {
    Nesting nesting(*this, block_depth_, at);
    scopes_.emplace_back();
    if (!var.empty()) declare(var);
    statements(body, "'}' closing the block");
    scopes_.pop_back();
  }

  // The end of a statement's (first) line: a location comment, and the newline.
  void end_statement_line(Statement& statement, size_t start) {
    skip_blanks();
    std::optional<SourceLocation> location;
    if (!at_end() && peek() == '#') {
      ++pos_;
      const size_t comment = pos_;
      skip_to_line_end();
      std::string_view text = text_.substr(comment, pos_ - comment);
      while (!text.empty() && is_blank(text.front()))
        text.remove_prefix(1);
      while (!text.empty() && is_blank(text.back()))
        text.remove_suffix(1);
      location = read_location(text);
    }
    if (!at_end()) {
      if (peek() != '\n') fail_expected("the end of the line");
      ++pos_;
    }
    if (location) {
      statement.location = std::move(*location);
    } else if (text_locations_ == TextLocations::Text) {
      statement.location = text_location(start);
    }
    if (new_tensor_) {
      program_.tensors[static_cast<size_t>(*new_tensor_)].location = statement.location;
      new_tensor_.reset();
    }
  }

  void statement(Body& body) {
    skip_blanks();
    const size_t start = pos_;
    Statement statement;
    if (accept_word("for")) {
      for_statement(statement, start);
    } else if (accept_word("if")) {
      if_statement(statement, start);
    } else if (accept_word("while")) {
      WhileStmt loop;
      loop.condition = slot();
      expect('{');
      end_statement_line(statement, start);
      block(loop.body, start);
      end_plain_line();
      statement.node = std::move(loop);
    } else if (accept_word("break")) {
      statement.node = BreakStmt{};
      end_statement_line(statement, start);
    } else if (accept_word("let")) {
      let_statement(statement, start);
    } else if (peek_word("else")) {
      fail(start, "'else' without an 'if': it follows the if's closing brace, as in '} else {'");
    } else if (peek() == '%') {
      instruction_statement(statement, start);
    } else if (is_identifier_start(peek())) {
      word();
      skip_blanks();
      const bool assignment = peek() == '=' && peek(1) != '=';
      pos_ = start;
      if (assignment) {
        assign_statement(statement, start);
      } else {
        instruction_statement(statement, start);
      }
    } else {
      fail_expected("a statement");
    }
    body.push_back(std::move(statement));
  }

  void for_statement(Statement& statement, size_t start) {
    ForStmt loop;
    const Located var = name("a loop variable name");
    std::optional<DataType> type;
    if (accept(':')) type = dtype();
    expect_word("in");
    expect_word("range");
    expect('(');
    loop.start = slot();
    expect(',');
    loop.stop = slot();
    expect(',');
    loop.step = slot();
    expect(')');
    if (accept_word("unroll")) loop.unroll = small_integer("an unroll factor");
    expect('{');
    if (!type && loop.start.empty()) {
      fail(var.at, fmt::format("loop variable {} needs a type when its start is '?' "
                               "(for {}: i32 in …)",
                               var.name, var.name));
    }
    loop.var = new_var(var, type ? *type : loop.start.type());
    end_statement_line(statement, start);
    block(loop.body, start, loop.var);
    end_plain_line();
    statement.node = std::move(loop);
  }

  void if_statement(Statement& statement, size_t start) {
    IfStmt branch;
    branch.condition = slot();
    expect('{');
    end_statement_line(statement, start);
    block(branch.then_body, start);
    if (accept_word("else")) {
      expect('{');
      end_plain_line();
      block(branch.else_body, start);
    }
    end_plain_line();
    statement.node = std::move(branch);
  }

  void let_statement(Statement& statement, size_t start) {
    LetStmt let;
    const Located var = name("a variable name");
    std::optional<DataType> type;
    if (accept(':')) type = dtype();
    expect('=');
    if (accept_word("fetch_add")) {
      // let NAME = fetch_add %counter[offsets], value: the variable takes the counter's type.
      FetchAddStmt fetch;
      access(fetch.counter, fetch.offsets);
      expect(',');
      fetch.value = slot();
      const TensorInfo& counter = program_.tensor(fetch.counter);
      fetch.var = new_var(var, type ? *type : counter.type.dtype);
      end_statement_line(statement, start);
      declare(fetch.var);
      statement.node = std::move(fetch);
      return;
    }
    let.value = slot();
    if (!type && let.value.empty()) {
      fail(var.at, fmt::format("variable {} needs a type when its value is '?' (let {}: i32 = ?)",
                               var.name, var.name));
    }
    let.var = new_var(var, type ? *type : let.value.type());
    end_statement_line(statement, start);
    declare(let.var);
    statement.node = std::move(let);
  }

  void assign_statement(Statement& statement, size_t start) {
    AssignStmt assign;
    const Located var = name("a variable name");
    const Expr* existing = find_var(var.name);
    if (existing == nullptr) {
      fail(var.at, find_param(var.name)
                       ? fmt::format("cannot assign to parameter {}", var.name)
                       : fmt::format("unknown variable {}: define it with let", var.name));
    }
    assign.var = *existing;
    expect('=');
    assign.value = slot();
    end_statement_line(statement, start);
    statement.node = std::move(assign);
  }

  // ---- instructions --------------------------------------------------------------------------

  // `%name`, where a tensor name is expected.
  Located tensor_name() {
    skip_blanks();
    const size_t at = pos_;
    if (peek() != '%' || !is_identifier_start(peek(1))) {
      fail_expected("a tensor such as %acc");
    }
    ++pos_;
    std::string name(word());
    if (is_reserved_word(name)) {
      fail(at, fmt::format("expected a tensor, found %{} (a reserved word)", name));
    }
    return {std::move(name), at};
  }
  TensorId tensor() {
    const Located name = tensor_name();
    std::optional<TensorId> id = find_tensor(name.name);
    if (!id) fail(name.at, fmt::format("unknown tensor %{}", name.name));
    return *id;
  }
  // %t[offset, …]
  void access(TensorId& id, std::vector<Expr>& offsets) {
    id = tensor();
    if (peek() != '[') fail_expected("'[' and offsets after the tensor");
    ++pos_;
    list(']', [&] { offsets.push_back(slot()); });
  }
  // A tensor operand is `%name`; `%blockIdx.x` and the like are scalars.
  bool tensor_ahead() {
    skip_blanks();
    return peek() == '%' && !rest().starts_with("%blockIdx.") && !rest().starts_with("%gridDim.");
  }

  // The result of an instruction that defines one: the named tensor, created here when the
  // line gives its type (its first definition), else the visible tensor it updates in place.
  TensorId result(const std::optional<Located>& name, std::string_view mnemonic, size_t at) {
    if (!name) {
      fail(at, fmt::format("{} defines a tensor: write %name = {} …", mnemonic, mnemonic));
    }
    if (!accept(':')) {
      std::optional<TensorId> existing = find_tensor(name->name);
      if (!existing) {
        fail(name->at, fmt::format("unknown tensor %{}: its first definition needs its type "
                                   "(%{} = {} … : f32 register[16,16] @ ?)",
                                   name->name, name->name, mnemonic));
      }
      return *existing;
    }
    TensorType type = tensor_type();
    if (find_tensor(name->name)) {
      fail(name->at, fmt::format("tensor %{} is already defined; only its first definition "
                                 "has a type",
                                 name->name));
    }
    const TensorId id{static_cast<int>(program_.tensors.size())};
    program_.tensors.push_back(TensorInfo{name->name, std::move(type), SourceLocation{}});
    scopes_.back().tensors.emplace(name->name, id);
    new_tensor_ = id.index;
    return id;
  }
  void no_result(const std::optional<Located>& name, std::string_view mnemonic) {
    if (name) {
      fail(name->at,
           fmt::format("{} has no result: write it without '%{} ='", mnemonic, name->name));
    }
  }

  void instruction_statement(Statement& statement, size_t start) {
    std::optional<Located> result_name;
    if (peek() == '%') {
      result_name = tensor_name();
      expect('=');
    }
    skip_blanks();
    const size_t at = pos_;
    const std::string mnemonic(word());
    if (mnemonic.empty()) fail_expected("an instruction");
    statement.node = instruction(mnemonic, at, result_name);
    end_statement_line(statement, start);
  }

  Instruction instruction(const std::string& m, size_t at, const std::optional<Located>& r) {
    if (m == "global_view") {
      GlobalView i;
      const Located param = name("a pointer parameter");
      std::optional<int> index = find_param(param.name);
      if (!index) fail(param.at, fmt::format("unknown parameter {}", param.name));
      i.param = *index;
      i.result = result(r, m, at);
      return i;
    }
    if (m == "alloc_shared") {
      AllocShared i;
      i.result = result(r, m, at);
      return i;
    }
    if (m == "alloc_register") {
      AllocRegister i;
      if (accept_word("fill")) i.fill = number("a fill value");
      i.result = result(r, m, at);
      return i;
    }
    if (m == "load_global") {
      LoadGlobal i;
      access(i.source, i.offsets);
      if (accept_word("other")) i.other = number("the value of masked elements");
      i.result = result(r, m, at);
      return i;
    }
    if (m == "store_global") {
      no_result(r, m);
      StoreGlobal i;
      access(i.destination, i.offsets);
      expect(',');
      i.value = tensor();
      return i;
    }
    if (m == "load_shared") {
      LoadShared i;
      access(i.source, i.offsets);
      i.result = result(r, m, at);
      return i;
    }
    if (m == "load_peer_shared") {
      LoadPeerShared i;
      access(i.source, i.offsets);
      expect_word("block");
      i.block = slot();
      i.result = result(r, m, at);
      return i;
    }
    if (m == "cluster_barrier") {
      no_result(r, m);
      return ClusterBarrier{};
    }
    if (m == "store_shared") {
      no_result(r, m);
      StoreShared i;
      access(i.destination, i.offsets);
      expect(',');
      i.value = tensor();
      return i;
    }
    if (m == "copy_async") {
      no_result(r, m);
      CopyAsync i;
      access(i.destination, i.destination_offsets);
      expect(',');
      access(i.source, i.source_offsets);
      expect_word("shape");
      i.shape = integer_list<int64_t>("an extent");
      if (accept_word("in_bounds")) i.in_bounds = integer_list<int>("a dimension");
      if (accept_word("threads")) i.threads = layout();
      return i;
    }
    if (m == "commit_group") {
      no_result(r, m);
      return CommitGroup{};
    }
    if (m == "wait_group") {
      no_result(r, m);
      return WaitGroup{small_integer("a number of pending groups")};
    }
    if (m == "barrier") {
      no_result(r, m);
      return Barrier{};
    }
    if (m == "cast") {
      Cast i;
      i.source = tensor();
      i.result = result(r, m, at);
      return i;
    }
    if (m == "view") {
      View i;
      i.source = tensor();
      i.result = result(r, m, at);
      return i;
    }
    if (m == "slice") {
      Slice i;
      i.source = tensor();
      if (peek() != '[') fail_expected("'[' and offsets after the tensor");
      i.offsets = integer_list<int64_t>("an offset");
      i.result = result(r, m, at);
      return i;
    }
    if (m == "repeat") {
      Repeat i;
      i.source = tensor();
      expect_word("axis");
      i.axis = small_integer("an axis");
      expect_word("count");
      i.count = integer("a count");
      i.result = result(r, m, at);
      return i;
    }
    if (m == "permute") {
      Permute i;
      i.source = tensor();
      expect_word("dims");
      i.dims = integer_list<int>("a dimension");
      i.result = result(r, m, at);
      return i;
    }
    if (m == "reshape") {
      Reshape i;
      i.source = tensor();
      i.result = result(r, m, at);
      return i;
    }
    if (m == "reduce") {
      Reduce i;
      skip_blanks();
      const size_t op_at = pos_;
      const std::string_view op = word();
      if (op == "sum") {
        i.op = ReduceOp::Sum;
      } else if (op == "max") {
        i.op = ReduceOp::Max;
      } else if (op == "min") {
        i.op = ReduceOp::Min;
      } else {
        pos_ = op_at;
        fail_expected("a reduction: sum, max or min");
      }
      i.source = tensor();
      expect_word("axis");
      i.axis = small_integer("an axis");
      i.result = result(r, m, at);
      return i;
    }
    if (m == "dot") {
      no_result(r, m);
      Dot i;
      i.accumulator = tensor();
      expect(',');
      i.a = tensor();
      expect(',');
      i.b = tensor();
      if (peek() == '[') {  // a shared tile read in place
        ++pos_;
        list(']', [&] { i.b_offsets.push_back(slot()); });
        i.b_transposed = accept_word("transposed");
        i.async = accept_word("async");
      }
      return i;
    }
    if (m == "wait_dots") {
      no_result(r, m);
      return WaitDots{small_integer("a number of pending dots")};
    }
    if (m == "shuffle") {
      Shuffle i;
      skip_blanks();
      const size_t mode_at = pos_;
      const std::string_view mode = word();
      if (mode == "xor") {
        i.mode = ShuffleMode::Xor;
      } else if (mode == "up") {
        i.mode = ShuffleMode::Up;
      } else if (mode == "down") {
        i.mode = ShuffleMode::Down;
      } else if (mode == "index") {
        i.mode = ShuffleMode::Index;
      } else {
        pos_ = mode_at;
        fail_expected("a shuffle mode: xor, up, down or index");
      }
      i.source = tensor();
      expect_word("lane");
      i.lane = slot();
      i.result = result(r, m, at);
      return i;
    }
    if (m == "atomic_add") {
      no_result(r, m);
      AtomicAdd i;
      access(i.destination, i.offsets);
      expect(',');
      i.value = tensor();
      return i;
    }
    if (m == "print") {
      no_result(r, m);
      Print i;
      i.label = string_literal("a label in double quotes");
      while (accept(',')) {
        skip_blanks();
        const size_t operand_at = pos_;
        if (tensor_ahead()) {
          if (i.tensor) fail(operand_at, "print takes one tensor");
          i.tensor = tensor();
        } else {
          if (i.scalar) fail(operand_at, "print takes one scalar");
          i.scalar = slot();
        }
      }
      return i;
    }
    for (int code = 0; code <= static_cast<int>(ElementwiseOp::Where); ++code) {
      const auto op = static_cast<ElementwiseOp>(code);
      if (m == to_string(op)) return elementwise(op, m, at, r);
    }
    if (m == "param" || m == "grid" || m == "warps" || m == "shared_memory_bytes" ||
        m == "min_blocks_per_sm" || m == "early_trigger" || m == "dependent_launch" ||
        m == "cluster") {
      fail(at, fmt::format("'{}' belongs to the header, before the first statement", m));
    }
    fail(at, fmt::format("expected an instruction, found '{}'", m));
  }

  Instruction elementwise(ElementwiseOp op, std::string_view m, size_t at,
                          const std::optional<Located>& r) {
    Elementwise i;
    i.op = op;
    skip_blanks();
    if (!at_end() && peek() != ':' && peek() != '\n' && peek() != '#') {
      do {
        if (tensor_ahead()) {
          i.operands.emplace_back(tensor());
        } else {
          i.operands.emplace_back(slot());
        }
      } while (accept(','));
    }
    i.result = result(r, m, at);
    return i;
  }

  std::string_view text_;
  std::string_view file_name_;
  TextLocations text_locations_;
  std::vector<size_t> line_starts_;
  size_t pos_ = 0;
  int expression_depth_ = 0;
  int block_depth_ = 0;
  std::vector<NameScope> scopes_;
  std::optional<int> new_tensor_;  // defined by the statement being read
  Program program_;
};

}  // namespace

Program parse_program(std::string_view text, std::string_view file_name,
                      TextLocations text_locations) {
  return Parser(text, file_name, text_locations).program();
}

}  // namespace nibble::vm
