// The VM's data model (vm/): scalar expressions, tensor types, instructions, statements and
// programs, and the operations on programs (verify, print, parse, passes, simplification).
//
// Instructions and statements are opaque values made by one factory per kind, with TensorIds
// as plain ints: the Python front end assembles them bottom-up (a loop's statement after its
// body) and hands the finished Program to the C++ side in one piece.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "frontend/python/bindings/bindings.h"
#include "vm/equality.h"
#include "vm/parser.h"
#include "vm/passes.h"
#include "vm/printer.h"
#include "vm/program.h"
#include "vm/simplify.h"
#include "vm/verifier.h"

namespace py = pybind11;

namespace nibble::python {
namespace {

using vm::Expr;
using vm::Instruction;
using vm::SourceLocation;
using vm::Statement;
using vm::TensorId;

// vm::Instruction is a std::variant, which pybind11's STL casters would try to convert to one
// of its alternatives: Python holds it in this box instead.
struct InstructionBox {
  Instruction value;
};

std::string kind_name(Expr::Kind kind) {
  switch (kind) {
    case Expr::Kind::Constant:
      return "constant";
    case Expr::Kind::Param:
      return "param";
    case Expr::Kind::Var:
      return "var";
    case Expr::Kind::Special:
      return "special";
    case Expr::Kind::Unary:
      return "unary";
    case Expr::Kind::Binary:
      return "binary";
    case Expr::Kind::Select:
      return "select";
  }
  return "?";
}

TensorId id(int index) {
  return TensorId{index};
}

// An elementwise operand from Python: a tensor index (int) or an Expr.
vm::Operand operand(const py::handle& value) {
  if (py::isinstance<Expr>(value)) return value.cast<Expr>();
  if (py::isinstance<py::int_>(value)) return id(value.cast<int>());
  throw py::type_error("an elementwise operand is a tensor index (int) or an Expr");
}

Statement statement(Statement::Node node, SourceLocation location) {
  return Statement{std::move(node), std::move(location)};
}

vm::TensorType make_type(vm::Scope scope, dtypes::DataType dtype, layout::Shape shape,
                         std::optional<layout::Layout> layout, layout::Swizzle swizzle) {
  vm::TensorType type;
  type.scope = scope;
  type.dtype = dtype;
  type.shape = std::move(shape);
  type.layout = std::move(layout);
  type.swizzle = swizzle;
  return type;
}

void bind_expr(py::module_& module) {
  py::enum_<vm::UnaryOp>(module, "UnaryOp")
      .value("Neg", vm::UnaryOp::Neg)
      .value("Not", vm::UnaryOp::Not)
      .value("BitNot", vm::UnaryOp::BitNot);
  py::enum_<vm::BinaryOp>(module, "BinaryOp")
      .value("Add", vm::BinaryOp::Add)
      .value("Sub", vm::BinaryOp::Sub)
      .value("Mul", vm::BinaryOp::Mul)
      .value("FloorDiv", vm::BinaryOp::FloorDiv)
      .value("Mod", vm::BinaryOp::Mod)
      .value("Div", vm::BinaryOp::Div)
      .value("Min", vm::BinaryOp::Min)
      .value("Max", vm::BinaryOp::Max)
      .value("Eq", vm::BinaryOp::Eq)
      .value("Ne", vm::BinaryOp::Ne)
      .value("Lt", vm::BinaryOp::Lt)
      .value("Le", vm::BinaryOp::Le)
      .value("Gt", vm::BinaryOp::Gt)
      .value("Ge", vm::BinaryOp::Ge)
      .value("And", vm::BinaryOp::And)
      .value("Or", vm::BinaryOp::Or)
      .value("BitAnd", vm::BinaryOp::BitAnd)
      .value("BitOr", vm::BinaryOp::BitOr)
      .value("BitXor", vm::BinaryOp::BitXor)
      .value("Shl", vm::BinaryOp::Shl)
      .value("Shr", vm::BinaryOp::Shr);

  py::class_<Expr>(module, "Expr", "A scalar expression of the VM (vm/expr.h); immutable.")
      .def_static("int_constant", &Expr::int_constant, py::arg("value"), py::arg("type"))
      .def_static("float_constant", &Expr::float_constant, py::arg("value"), py::arg("type"))
      .def_static("boolean", &Expr::boolean, py::arg("value"))
      .def_static("param", &Expr::param, py::arg("name"), py::arg("index"), py::arg("type"))
      .def_static("var", &Expr::var, py::arg("name"), py::arg("id"), py::arg("type"))
      .def_static(
          "block_id",
          [](int axis) {
            return Expr::special(
                static_cast<vm::Special>(static_cast<int>(vm::Special::BlockIdX) + axis));
          },
          py::arg("axis"))
      .def_static(
          "grid_dim",
          [](int axis) {
            return Expr::special(
                static_cast<vm::Special>(static_cast<int>(vm::Special::GridDimX) + axis));
          },
          py::arg("axis"))
      .def_static("unary", &Expr::unary, py::arg("op"), py::arg("operand"))
      .def_static("cast", &Expr::cast, py::arg("operand"), py::arg("type"))
      .def_static("binary", &Expr::binary, py::arg("op"), py::arg("lhs"), py::arg("rhs"))
      .def_static("select", &Expr::select, py::arg("condition"), py::arg("if_true"),
                  py::arg("if_false"))
      .def_property_readonly("kind", [](const Expr& expr) { return kind_name(expr.kind()); })
      .def_property_readonly("type", &Expr::type)
      .def_property_readonly("as_int", &Expr::as_int)
      .def_property_readonly("as_float", &Expr::as_float)
      .def_property_readonly("name", &Expr::name)
      .def_property_readonly("index", &Expr::index)
      .def("__eq__", [](const Expr& a, const Expr& b) { return a == b; })
      .def("__eq__", [](const Expr&, const py::object&) { return false; })
      .def("__hash__", [](const Expr& expr) { return expr.hash(); })
      .def("__str__", [](const Expr& expr) { return vm::to_string(expr); })
      .def("__repr__", [](const Expr& expr) { return "Expr(" + vm::to_string(expr) + ")"; });

  py::class_<vm::Facts>(module, "Facts", "What is known about scalar leaves (vm/simplify.h).")
      .def(py::init<>())
      .def(
          "set_range",
          [](vm::Facts& facts, const Expr& leaf, int64_t lo, int64_t hi) {
            facts.set_range(leaf, vm::Range{lo, hi});
          },
          py::arg("leaf"), py::arg("lo"), py::arg("hi"))
      .def("set_divisor", &vm::Facts::set_divisor, py::arg("leaf"), py::arg("divisor"));
  module.def("simplify", &vm::simplify, py::arg("expr"), py::arg("facts") = vm::Facts());
  module.def("prove", &vm::prove, py::arg("condition"), py::arg("facts") = vm::Facts());
  module.def("known_divisor", &vm::known_divisor, py::arg("expr"), py::arg("facts") = vm::Facts());
}

void bind_types(py::module_& module) {
  py::enum_<vm::Scope>(module, "Scope")
      .value("Global", vm::Scope::Global)
      .value("Shared", vm::Scope::Shared)
      .value("Register", vm::Scope::Register);

  py::class_<vm::TensorType>(module, "TensorType",
                             "Where a tensor lives, its elements, shape, layout.")
      .def_static(
          "register_tile",
          [](dtypes::DataType dtype, layout::Shape shape, std::optional<layout::Layout> layout) {
            return make_type(vm::Scope::Register, dtype, std::move(shape), std::move(layout), {});
          },
          py::arg("dtype"), py::arg("shape"), py::arg("layout") = py::none())
      .def_static(
          "shared_tile",
          [](dtypes::DataType dtype, layout::Shape shape, layout::Layout layout,
             layout::Swizzle swizzle) {
            return make_type(vm::Scope::Shared, dtype, std::move(shape), std::move(layout),
                             swizzle);
          },
          py::arg("dtype"), py::arg("shape"), py::arg("layout"),
          py::arg("swizzle") = layout::Swizzle())
      .def_static(
          "global_view",
          [](dtypes::DataType dtype, std::vector<Expr> shape, std::vector<Expr> strides) {
            vm::TensorType type;
            type.scope = vm::Scope::Global;
            type.dtype = dtype;
            type.global_shape = std::move(shape);
            type.global_strides = std::move(strides);
            return type;
          },
          py::arg("dtype"), py::arg("shape"), py::arg("strides"))
      .def_readonly("scope", &vm::TensorType::scope)
      .def_readonly("dtype", &vm::TensorType::dtype)
      .def_readonly("shape", &vm::TensorType::shape)
      .def_readonly("layout", &vm::TensorType::layout)
      .def_readonly("swizzle", &vm::TensorType::swizzle)
      .def_readonly("global_shape", &vm::TensorType::global_shape)
      .def_readonly("global_strides", &vm::TensorType::global_strides)
      .def_property_readonly("rank", &vm::TensorType::rank)
      .def("__str__", [](const vm::TensorType& type) { return vm::to_string(type); });
}

void bind_instructions(py::module_& module) {
  py::enum_<vm::ElementwiseOp>(module, "ElementwiseOp")
      .value("Neg", vm::ElementwiseOp::Neg)
      .value("Abs", vm::ElementwiseOp::Abs)
      .value("Exp2", vm::ElementwiseOp::Exp2)
      .value("Log2", vm::ElementwiseOp::Log2)
      .value("Rsqrt", vm::ElementwiseOp::Rsqrt)
      .value("Add", vm::ElementwiseOp::Add)
      .value("Sub", vm::ElementwiseOp::Sub)
      .value("Mul", vm::ElementwiseOp::Mul)
      .value("Div", vm::ElementwiseOp::Div)
      .value("Max", vm::ElementwiseOp::Max)
      .value("Min", vm::ElementwiseOp::Min)
      .value("Eq", vm::ElementwiseOp::Eq)
      .value("Ne", vm::ElementwiseOp::Ne)
      .value("Lt", vm::ElementwiseOp::Lt)
      .value("Le", vm::ElementwiseOp::Le)
      .value("Gt", vm::ElementwiseOp::Gt)
      .value("Ge", vm::ElementwiseOp::Ge)
      .value("Fma", vm::ElementwiseOp::Fma)
      .value("Where", vm::ElementwiseOp::Where);
  py::enum_<vm::ReduceOp>(module, "ReduceOp")
      .value("Sum", vm::ReduceOp::Sum)
      .value("Max", vm::ReduceOp::Max)
      .value("Min", vm::ReduceOp::Min);
  py::enum_<vm::ShuffleMode>(module, "ShuffleMode")
      .value("Xor", vm::ShuffleMode::Xor)
      .value("Up", vm::ShuffleMode::Up)
      .value("Down", vm::ShuffleMode::Down)
      .value("Index", vm::ShuffleMode::Index);

  using Offsets = std::vector<Expr>;
  py::class_<InstructionBox>(module, "Instruction", "One VM instruction (vm/program.h).")
      .def_static("global_view",
                  [](int result, int param) {
                    return InstructionBox{vm::GlobalView{id(result), param}};
                  })
      .def_static("alloc_shared",
                  [](int result) { return InstructionBox{vm::AllocShared{id(result)}}; })
      .def_static("alloc_register",
                  [](int result, std::optional<double> fill) {
                    return InstructionBox{vm::AllocRegister{id(result), fill}};
                  })
      .def_static("load_global",
                  [](int result, int source, Offsets offsets, double other) {
                    return InstructionBox{
                        vm::LoadGlobal{id(result), id(source), std::move(offsets), other}};
                  })
      .def_static(
          "store_global",
          [](int destination, Offsets offsets, int value) {
            return InstructionBox{vm::StoreGlobal{id(destination), std::move(offsets), id(value)}};
          })
      .def_static(
          "load_shared",
          [](int result, int source, Offsets offsets) {
            return InstructionBox{vm::LoadShared{id(result), id(source), std::move(offsets)}};
          })
      .def_static(
          "store_shared",
          [](int destination, Offsets offsets, int value) {
            return InstructionBox{vm::StoreShared{id(destination), std::move(offsets), id(value)}};
          })
      .def_static(
          "copy_async",
          [](int destination, Offsets destination_offsets, int source, Offsets source_offsets,
             layout::Shape shape, std::optional<layout::Layout> threads,
             std::vector<int> in_bounds) {
            return InstructionBox{vm::CopyAsync{id(destination), std::move(destination_offsets),
                                                id(source), std::move(source_offsets),
                                                std::move(shape), std::move(threads),
                                                std::move(in_bounds)}};
          },
          py::arg("destination"), py::arg("destination_offsets"), py::arg("source"),
          py::arg("source_offsets"), py::arg("shape"), py::arg("threads") = std::nullopt,
          py::arg("in_bounds") = std::vector<int>{})
      .def_static("commit_group", [] { return InstructionBox{vm::CommitGroup{}}; })
      .def_static("wait_group", [](int pending) { return InstructionBox{vm::WaitGroup{pending}}; })
      .def_static("barrier", [] { return InstructionBox{vm::Barrier{}}; })
      .def_static("cluster_barrier", [] { return InstructionBox{vm::ClusterBarrier{}}; })
      .def_static("load_peer_shared",
                  [](int result, int source, vm::Expr block, Offsets offsets) {
                    return InstructionBox{vm::LoadPeerShared{id(result), id(source),
                                                             std::move(block), std::move(offsets)}};
                  })
      .def_static("cast",
                  [](int result, int source) {
                    return InstructionBox{vm::Cast{id(result), id(source)}};
                  })
      .def_static("view",
                  [](int result, int source) {
                    return InstructionBox{vm::View{id(result), id(source)}};
                  })
      .def_static("slice",
                  [](int result, int source, std::vector<int64_t> offsets) {
                    return InstructionBox{vm::Slice{id(result), id(source), std::move(offsets)}};
                  })
      .def_static("repeat",
                  [](int result, int source, int axis, int64_t count) {
                    return InstructionBox{vm::Repeat{id(result), id(source), axis, count}};
                  })
      .def_static("permute",
                  [](int result, int source, std::vector<int> dims) {
                    return InstructionBox{vm::Permute{id(result), id(source), std::move(dims)}};
                  })
      .def_static("reshape",
                  [](int result, int source) {
                    return InstructionBox{vm::Reshape{id(result), id(source)}};
                  })
      .def_static("elementwise",
                  [](int result, vm::ElementwiseOp op, const py::list& operands) {
                    std::vector<vm::Operand> list;
                    for (const py::handle& value : operands)
                      list.push_back(operand(value));
                    return InstructionBox{vm::Elementwise{id(result), op, std::move(list)}};
                  })
      .def_static("reduce",
                  [](int result, int source, vm::ReduceOp op, int axis) {
                    return InstructionBox{vm::Reduce{id(result), id(source), op, axis}};
                  })
      .def_static(
          "dot",
          [](int accumulator, int a, int b, Offsets b_offsets, bool b_transposed,
             bool asynchronous) {
            return InstructionBox{vm::Dot{id(accumulator), id(a), id(b), std::move(b_offsets),
                                          b_transposed, asynchronous}};
          },
          py::arg("accumulator"), py::arg("a"), py::arg("b"), py::arg("b_offsets") = Offsets{},
          py::arg("b_transposed") = false, py::arg("asynchronous") = false)
      .def_static("wait_dots", [](int pending) { return InstructionBox{vm::WaitDots{pending}}; })
      .def_static(
          "shuffle",
          [](int result, int source, vm::ShuffleMode mode, Expr lane) {
            return InstructionBox{vm::Shuffle{id(result), id(source), mode, std::move(lane)}};
          })
      .def_static(
          "atomic_add",
          [](int destination, Offsets offsets, int value) {
            return InstructionBox{vm::AtomicAdd{id(destination), std::move(offsets), id(value)}};
          })
      .def_static(
          "print",
          [](std::string label, std::optional<int> tensor, std::optional<Expr> scalar) {
            std::optional<TensorId> tensor_id;
            if (tensor) tensor_id = id(*tensor);
            return InstructionBox{vm::Print{std::move(label), tensor_id, std::move(scalar)}};
          })
      .def_property_readonly("mnemonic", [](const InstructionBox& instruction) {
        return std::string(vm::mnemonic(instruction.value));
      });
}

void bind_statements(py::module_& module) {
  py::class_<SourceLocation>(module, "SourceLocation")
      .def(py::init([](std::string file, int line, int column, std::string function) {
             return SourceLocation{std::move(file), line, column, std::move(function)};
           }),
           py::arg("file") = "", py::arg("line") = 0, py::arg("column") = 0,
           py::arg("function") = "")
      .def_readonly("file", &SourceLocation::file)
      .def_readonly("line", &SourceLocation::line)
      .def_readonly("column", &SourceLocation::column)
      .def_readonly("function", &SourceLocation::function)
      .def("__str__", [](const SourceLocation& location) { return vm::to_string(location); });

  py::class_<Statement>(module, "Statement", "One statement of a program body.")
      .def_static("instruction",
                  [](InstructionBox instruction, SourceLocation location) {
                    return statement(std::move(instruction.value), std::move(location));
                  })
      .def_static("for_loop",
                  [](Expr var, Expr start, Expr stop, Expr step, vm::Body body, int unroll,
                     SourceLocation location) {
                    return statement(vm::ForStmt{std::move(var), std::move(start), std::move(stop),
                                                 std::move(step), std::move(body), unroll},
                                     std::move(location));
                  })
      .def_static(
          "if_else",
          [](Expr condition, vm::Body then_body, vm::Body else_body, SourceLocation location) {
            return statement(
                vm::IfStmt{std::move(condition), std::move(then_body), std::move(else_body)},
                std::move(location));
          })
      .def_static("while_loop",
                  [](Expr condition, vm::Body body, SourceLocation location) {
                    return statement(vm::WhileStmt{std::move(condition), std::move(body)},
                                     std::move(location));
                  })
      .def_static(
          "break_loop",
          [](SourceLocation location) { return statement(vm::BreakStmt{}, std::move(location)); })
      .def_static(
          "let",
          [](Expr var, Expr value, SourceLocation location) {
            return statement(vm::LetStmt{std::move(var), std::move(value)}, std::move(location));
          })
      .def_static(
          "assign",
          [](Expr var, Expr value, SourceLocation location) {
            return statement(vm::AssignStmt{std::move(var), std::move(value)}, std::move(location));
          })
      .def_static("fetch_add",
                  [](Expr var, int counter, std::vector<Expr> offsets, Expr value,
                     SourceLocation location) {
                    return statement(vm::FetchAddStmt{std::move(var), vm::TensorId{counter},
                                                      std::move(offsets), std::move(value)},
                                     std::move(location));
                  })
      .def_readonly("location", &Statement::location);
}

void bind_program(py::module_& module) {
  py::enum_<vm::Parameter::Kind>(module, "ParameterKind")
      .value("Pointer", vm::Parameter::Kind::Pointer)
      .value("Scalar", vm::Parameter::Kind::Scalar);
  py::class_<vm::Parameter>(module, "Parameter")
      .def(py::init([](std::string name, vm::Parameter::Kind kind, dtypes::DataType dtype,
                       int64_t alignment_bytes, int64_t divisor, bool compile_time,
                       std::optional<int64_t> value) {
             vm::Parameter param;
             param.name = std::move(name);
             param.kind = kind;
             param.dtype = dtype;
             param.alignment_bytes = alignment_bytes;
             param.divisor = divisor;
             param.compile_time = compile_time;
             param.value = value;
             return param;
           }),
           py::arg("name"), py::arg("kind"), py::arg("dtype"), py::arg("alignment_bytes") = 0,
           py::arg("divisor") = 1, py::arg("compile_time") = false, py::arg("value") = py::none())
      .def_readwrite("name", &vm::Parameter::name)
      .def_readwrite("kind", &vm::Parameter::kind)
      .def_readwrite("dtype", &vm::Parameter::dtype)
      .def_readwrite("alignment_bytes", &vm::Parameter::alignment_bytes)
      .def_readwrite("divisor", &vm::Parameter::divisor)
      .def_readwrite("compile_time", &vm::Parameter::compile_time)
      .def_readwrite("value", &vm::Parameter::value);

  py::class_<vm::TensorInfo>(module, "TensorInfo")
      .def(py::init([](std::string name, vm::TensorType type, SourceLocation location) {
             return vm::TensorInfo{std::move(name), std::move(type), std::move(location)};
           }),
           py::arg("name"), py::arg("type"), py::arg("location"))
      .def_readonly("name", &vm::TensorInfo::name)
      .def_readonly("type", &vm::TensorInfo::type)
      .def_readonly("location", &vm::TensorInfo::location);

  py::class_<vm::Program>(module, "Program", "One kernel of the VM (vm/program.h).")
      .def(py::init<>())
      .def_readwrite("name", &vm::Program::name)
      .def_readwrite("params", &vm::Program::params)
      .def_readwrite("grid", &vm::Program::grid)
      .def_readwrite("warps", &vm::Program::warps)
      .def_readwrite("shared_memory_bytes", &vm::Program::shared_memory_bytes)
      .def_readwrite("cluster", &vm::Program::cluster)
      .def_readwrite("tensors", &vm::Program::tensors)
      .def_readwrite("body", &vm::Program::body)
      .def_readwrite("next_var_id", &vm::Program::next_var_id)
      .def("__eq__", [](const vm::Program& a, const vm::Program& b) { return a == b; })
      .def("__str__", [](const vm::Program& program) { return vm::print(program); })
      .def("copy", [](const vm::Program& program) { return program; });

  // Every problem as (location, message, formatted line).
  module.def("verify", [](const vm::Program& program) {
    std::vector<std::tuple<SourceLocation, std::string, std::string>> result;
    for (const vm::Diagnostic& diagnostic : vm::verify(program)) {
      result.emplace_back(diagnostic.location, diagnostic.message,
                          vm::format_diagnostic(program, diagnostic));
    }
    return result;
  });
  module.def("print_program", [](const vm::Program& program) { return vm::print(program); });
  module.def(
      "parse_program",
      [](const std::string& text, const std::string& file_name) {
        return vm::parse_program(text, file_name, vm::TextLocations::Text);
      },
      py::arg("text"), py::arg("file_name") = "<input>");
  // A copy with the default pipeline applied (simplify, dead code, layout inference, verify).
  module.def("run_default_passes", [](vm::Program program) {
    vm::run_default_passes(program);
    return program;
  });
  module.def("is_identifier", &vm::is_identifier);
  module.def("is_reserved_word", &vm::is_reserved_word);
}

}  // namespace

void bind_vm(py::module_& module) {
  bind_expr(module);
  bind_types(module);
  bind_instructions(module);
  bind_statements(module);
  bind_program(module);
}

}  // namespace nibble::python
