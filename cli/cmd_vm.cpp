// `nibble check FILE` and `nibble run FILE …`: the VM's text format from the command line.
//
//   nibble check FILE [--print]
//       parses and verifies a program; --print shows it after the default passes (layouts
//       inferred). Exit status 1 with every diagnostic when the program is ill formed.
//   nibble run FILE [--args] NAME=VALUE… [--grid X,Y,Z] [--block X,Y,Z] [--out DIR] [--seed N]
//              [--threads N]
//       runs it on the interpreter. Scalars: NAME=42 or NAME=0.5. Pointers: NAME=FILE.npy,
//       NAME=random:COUNT or NAME=zeros:COUNT (COUNT elements of the pointee type). Every
//       pointer's buffer is written to DIR/NAME.npy afterwards, and its first values printed.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <sstream>

#include "cli/commands.h"
#include "cli/npy.h"
#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "vm/interpreter.h"
#include "vm/parser.h"
#include "vm/passes.h"
#include "vm/printer.h"
#include "vm/verifier.h"

namespace nibble::cli {
namespace {

namespace fs = std::filesystem;
using dtypes::DataType;

// Prints every diagnostic; true when the program is well formed.
bool report(const vm::Program& program, std::ostream& out) {
  const std::vector<vm::Diagnostic> diagnostics = vm::verify(program);
  for (const vm::Diagnostic& diagnostic : diagnostics) {
    out << vm::format_diagnostic(program, diagnostic) << "\n";
  }
  return diagnostics.empty();
}

int64_t count_statements(const vm::Body& body) {
  int64_t count = 0;
  for (const vm::Statement& statement : body) {
    ++count;
    if (const auto* loop = std::get_if<vm::ForStmt>(&statement.node))
      count += count_statements(loop->body);
    if (const auto* branch = std::get_if<vm::IfStmt>(&statement.node)) {
      count += count_statements(branch->then_body) + count_statements(branch->else_body);
    }
    if (const auto* loop = std::get_if<vm::WhileStmt>(&statement.node))
      count += count_statements(loop->body);
  }
  return count;
}

std::array<int64_t, 3> parse_triple(const std::string& text, std::string_view option) {
  std::array<int64_t, 3> values = {1, 1, 1};
  std::stringstream stream(text);
  std::string part;
  size_t i = 0;
  while (std::getline(stream, part, ',')) {
    if (i == 3) throw UsageError{fmt::format("{} takes at most three values", option)};
    try {
      size_t used = 0;
      values[i++] = std::stoll(part, &used);
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      throw UsageError{fmt::format("{}: '{}' is not an integer", option, part)};
    }
  }
  return values;
}

int64_t parse_count(const std::string& text, const std::string& argument) {
  try {
    size_t used = 0;
    const int64_t value = std::stoll(text, &used);
    if (used == text.size() && value >= 0) return value;
  } catch (const std::exception&) {
  }
  throw UsageError{fmt::format("'{}': '{}' is not an element count", argument, text)};
}

// A pointer argument's buffer: read, generated or zero.
std::vector<uint8_t> pointer_buffer(const vm::Parameter& param, const std::string& value,
                                    std::mt19937_64& random) {
  const DataType type = param.dtype;
  if (value.starts_with("zeros:") || value.starts_with("random:")) {
    const bool zeros = value.starts_with("zeros:");
    const int64_t count = parse_count(value.substr(zeros ? 6 : 7), param.name + "=" + value);
    std::vector<uint64_t> codes(static_cast<size_t>(count), 0);
    if (!zeros) {
      std::uniform_real_distribution<double> uniform(-1.0, 1.0);
      for (uint64_t& code : codes) {
        code =
            type.is_float() ? dtypes::encode(type, uniform(random)) : (random() & type.bit_mask());
      }
    }
    return dtypes::pack(type, codes);
  }
  if (!value.ends_with(".npy")) {
    throw UsageError{fmt::format(
        "pointer '{}' takes FILE.npy, random:COUNT or zeros:COUNT, not '{}'", param.name, value)};
  }
  NpyArray array = read_npy(value);
  const std::optional<std::string> descr = numpy_descr(type);
  if (array.descr != descr.value_or("|u1")) {
    throw std::runtime_error(
        fmt::format("'{}' holds '{}' elements; parameter '{}' points to {}, stored as '{}'", value,
                    array.descr, param.name, type.name(), descr.value_or("|u1")));
  }
  return std::move(array.bytes);
}

std::string preview(DataType type, const std::vector<uint8_t>& bytes) {
  const size_t count = bytes.size() * 8 / static_cast<size_t>(type.bits());
  std::string text;
  for (size_t i = 0; i < std::min<size_t>(count, 8); ++i) {
    text += fmt::format("{}{:.6g}", i ? ", " : "",
                        dtypes::decode(type, dtypes::read_packed(type, bytes.data(), i)));
  }
  return fmt::format("{}[{}] = [{}{}]", type.name(), count, text, count > 8 ? ", …" : "");
}

}  // namespace

vm::Program read_program_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("cannot open '{}'", path));
  const std::string text(std::istreambuf_iterator<char>(in), {});
  return vm::parse_program(text, path, vm::TextLocations::Text);
}

int run_check(Arguments args, std::ostream& out) {
  std::string path;
  bool print = false;
  for (const std::string& arg : args) {
    if (arg == "--print") {
      print = true;
    } else if (arg.starts_with("--")) {
      throw UsageError{fmt::format("unknown option '{}'", arg)};
    } else if (path.empty()) {
      path = arg;
    } else {
      throw UsageError{fmt::format("unexpected argument '{}'", arg)};
    }
  }
  if (path.empty()) throw UsageError{"a program FILE is needed"};
  vm::Program program = read_program_file(path);
  if (!report(program, out)) return 1;
  out << fmt::format("{}: kernel '{}' is well formed: {} parameters, {} tensors, {} statements\n",
                     path, program.name, program.params.size(), program.tensors.size(),
                     count_statements(program.body));
  if (print) {
    vm::run_default_passes(program);
    out << vm::print(program);
  }
  return 0;
}

int run_run(Arguments args, std::ostream& out) {
  std::string path;
  std::map<std::string, std::string> values;
  std::optional<std::array<int64_t, 3>> grid;
  std::optional<std::array<int64_t, 3>> block;
  std::optional<fs::path> out_directory;
  uint64_t seed = 0;
  int threads = 0;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto next = [&]() -> const std::string& {
      if (i + 1 == args.size()) throw UsageError{fmt::format("{} needs a value", arg)};
      return args[++i];
    };
    if (arg == "--args") {
      continue;  // optional: marks where the NAME=VALUE arguments begin
    } else if (arg == "--grid") {
      grid = parse_triple(next(), arg);
    } else if (arg == "--block") {
      block = parse_triple(next(), arg);
    } else if (arg == "--out") {
      out_directory = next();
    } else if (arg == "--seed") {
      seed = static_cast<uint64_t>(parse_count(next(), arg));
    } else if (arg == "--threads") {
      threads = static_cast<int>(parse_count(next(), arg));
    } else if (arg.starts_with("--")) {
      throw UsageError{fmt::format("unknown option '{}'", arg)};
    } else if (path.empty()) {
      path = arg;
    } else if (const size_t equals = arg.find('='); equals != std::string::npos && equals > 0) {
      values[arg.substr(0, equals)] = arg.substr(equals + 1);
    } else {
      throw UsageError{fmt::format("'{}' is not NAME=VALUE", arg)};
    }
  }
  if (path.empty()) throw UsageError{"a program FILE is needed"};
  vm::Program program = read_program_file(path);
  if (!report(program, out)) return 1;
  vm::run_default_passes(program);
  if (grid) {
    for (size_t axis = 0; axis < 3; ++axis)
      program.grid[axis] = vm::Expr::int_constant((*grid)[axis]);
  }

  std::mt19937_64 random(seed);
  std::vector<std::vector<uint8_t>> buffers(program.params.size());
  std::vector<vm::Argument> arguments;
  for (size_t i = 0; i < program.params.size(); ++i) {
    const vm::Parameter& param = program.params[i];
    auto found = values.find(param.name);
    if (found == values.end()) {
      if (param.compile_time && param.value) {
        arguments.emplace_back(*param.value);
        continue;
      }
      throw UsageError{
          fmt::format("parameter '{}' has no value: add {}=…", param.name, param.name)};
    }
    const std::string value = found->second;
    values.erase(found);
    if (param.kind == vm::Parameter::Kind::Pointer) {
      buffers[i] = pointer_buffer(param, value, random);
      arguments.emplace_back(vm::HostBuffer{buffers[i].data(), buffers[i].size()});
    } else if (param.dtype.is_float()) {
      arguments.emplace_back(std::stod(value));
    } else {
      arguments.emplace_back(static_cast<int64_t>(std::stoll(value)));
    }
  }
  if (!values.empty()) {
    throw UsageError{
        fmt::format("kernel '{}' has no parameter '{}'", program.name, values.begin()->first)};
  }

  vm::InterpreterOptions options;
  options.host_threads = threads;
  options.print_stream = &out;
  if (block) options.only_block = *block;
  vm::interpret(program, arguments, options);

  if (out_directory) fs::create_directories(*out_directory);
  for (size_t i = 0; i < program.params.size(); ++i) {
    const vm::Parameter& param = program.params[i];
    if (param.kind != vm::Parameter::Kind::Pointer) continue;
    out << fmt::format("{}: {}\n", param.name, preview(param.dtype, buffers[i]));
    if (!out_directory) continue;
    NpyArray array;
    array.descr = numpy_descr(param.dtype).value_or("|u1");
    const int64_t item_bytes = std::stoll(array.descr.substr(2));
    array.shape = {static_cast<int64_t>(buffers[i].size()) / item_bytes};
    array.bytes = buffers[i];
    write_npy(*out_directory / (param.name + ".npy"), array);
  }
  return 0;
}

}  // namespace nibble::cli
