// A small hand-builder of vm::Program for tests that need exact control over the program (the
// DSL in frontend/cpp is the real authoring interface).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "layout/layout.h"
#include "vm/program.h"

namespace nibble::vm::testing {

struct ProgramSketch {
  Program program;
  int next_line = 1;

  explicit ProgramSketch(std::string name, int warps = 4) {
    program.name = std::move(name);
    program.warps = warps;
    program.grid = {Expr::int_constant(1), Expr::int_constant(1), Expr::int_constant(1)};
  }

  int pointer(std::string name, DataType dtype, int64_t alignment = 16) {
    program.params.push_back(
        {std::move(name), Parameter::Kind::Pointer, dtype, alignment, 1, false, {}});
    return static_cast<int>(program.params.size()) - 1;
  }

  Expr scalar(std::string name, DataType dtype = DataType::sint(32), int64_t divisor = 1) {
    program.params.push_back({name, Parameter::Kind::Scalar, dtype, 0, divisor, false, {}});
    return program.params.back().expr(static_cast<int>(program.params.size()) - 1);
  }

  Expr var(std::string name, DataType dtype = DataType::sint(32)) {
    return Expr::var(std::move(name), program.next_var_id++, dtype);
  }

  TensorId tensor(std::string name, TensorType type) {
    program.tensors.push_back({std::move(name), std::move(type), {}});
    return TensorId{static_cast<int>(program.tensors.size()) - 1};
  }

  TensorId registers(std::string name, DataType dtype, layout::Shape shape,
                     std::optional<layout::Layout> layout = std::nullopt) {
    TensorType type;
    type.scope = Scope::Register;
    type.dtype = dtype;
    type.shape = std::move(shape);
    type.layout = std::move(layout);
    return tensor(std::move(name), std::move(type));
  }

  TensorId shared(std::string name, DataType dtype, layout::Shape shape) {
    TensorType type;
    type.scope = Scope::Shared;
    type.dtype = dtype;
    type.layout = layout::Layout::row_major(shape, layout::Axis::smem());
    type.shape = std::move(shape);
    return tensor(std::move(name), std::move(type));
  }

  // A row-major global view of pointer parameter `param`, defined by a global_view statement.
  TensorId global(std::string name, int param, std::vector<Expr> shape, Body* body = nullptr) {
    TensorType type;
    type.scope = Scope::Global;
    type.dtype = program.params.at(static_cast<size_t>(param)).dtype;
    std::vector<Expr> strides(shape.size());
    Expr stride = Expr::int_constant(1);
    for (size_t d = shape.size(); d-- > 0;) {
      strides[d] = stride;
      stride = stride * shape[d];
    }
    type.global_shape = std::move(shape);
    type.global_strides = std::move(strides);
    const TensorId id = tensor(std::move(name), std::move(type));
    add(GlobalView{id, param}, body);
    return id;
  }

  // Appends a statement with location "test.cpp:<line>", one line per statement.
  int add(Statement::Node node, Body* body = nullptr) {
    const int line = next_line++;
    (body ? *body : program.body).push_back({std::move(node), {"test.cpp", line, 1, ""}});
    return line;
  }
};

}  // namespace nibble::vm::testing
