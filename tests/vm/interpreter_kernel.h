// Tiny hand-builders for the VM tests (interpreter, verifier, passes): a program with
// parameters, tensors and statements (each statement at "<file>:<line>", one line per statement,
// so messages can be checked), host buffers, and a few reference helpers. The C++ DSL in
// frontend/cpp is the real authoring interface; these give exact control over the program.
#pragma once

#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "layout/layout.h"
#include "vm/interpreter.h"
#include "vm/program.h"

namespace nibble::vm::interp_test {

using dtypes::DataType;
using layout::Layout;
using layout::Shape;

inline Expr c(int64_t value) {
  return Expr::int_constant(value);
}

inline std::vector<Expr> at(std::initializer_list<int64_t> values) {
  std::vector<Expr> exprs;
  for (int64_t v : values)
    exprs.push_back(c(v));
  return exprs;
}

struct Kernel {
  Program program;
  int next_line = 1;
  std::string file = "interp.cpp";  // the file name statement locations carry

  explicit Kernel(std::string name, int warps = 4) {
    program.name = std::move(name);
    program.warps = warps;
    program.grid = {c(1), c(1), c(1)};
  }

  void grid(int64_t x, int64_t y = 1, int64_t z = 1) { program.grid = {c(x), c(y), c(z)}; }

  int pointer(std::string name, DataType dtype, int64_t alignment_bytes = 16) {
    program.params.push_back(
        {std::move(name), Parameter::Kind::Pointer, dtype, alignment_bytes, 1, false, {}});
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

  TensorId registers(std::string name, DataType dtype, Shape shape,
                     std::optional<Layout> layout = std::nullopt) {
    TensorType type;
    type.scope = Scope::Register;
    type.dtype = dtype;
    type.shape = std::move(shape);
    type.layout = std::move(layout);
    return tensor(std::move(name), std::move(type));
  }
  TensorId registers(std::string name, DataType dtype, Shape shape, const char* layout) {
    return registers(std::move(name), dtype, std::move(shape), Layout::parse(layout));
  }

  // A shared tile, row-major unless told otherwise, allocated by an alloc_shared statement.
  TensorId shared(std::string name, DataType dtype, Shape shape, Swizzle swizzle = {},
                  std::optional<Layout> layout = std::nullopt, Body* body = nullptr) {
    TensorType type;
    type.scope = Scope::Shared;
    type.dtype = dtype;
    type.layout = layout ? *layout : Layout::row_major(shape, layout::Axis::smem());
    type.shape = std::move(shape);
    type.swizzle = swizzle;
    const TensorId id = tensor(std::move(name), std::move(type));
    add(AllocShared{id}, body);
    return id;
  }

  // A global view (row-major unless strides are given) defined by a global_view statement.
  TensorId global(std::string name, int param, std::vector<Expr> shape,
                  std::vector<Expr> strides = {}, Body* body = nullptr) {
    TensorType type;
    type.scope = Scope::Global;
    type.dtype = program.params.at(static_cast<size_t>(param)).dtype;
    if (strides.empty()) {
      strides.resize(shape.size());
      Expr stride = c(1);
      for (size_t d = shape.size(); d-- > 0;) {
        strides[d] = stride;
        stride = stride * shape[d];
      }
    }
    type.global_shape = std::move(shape);
    type.global_strides = std::move(strides);
    const TensorId id = tensor(std::move(name), std::move(type));
    add(GlobalView{id, param}, body);
    return id;
  }

  // Appends a statement; returns its line.
  int add(Statement::Node node, Body* body = nullptr) {
    const int line = next_line++;
    (body ? *body : program.body).push_back({std::move(node), {file, line, 1, ""}});
    return line;
  }
};

template <typename T>
HostBuffer buffer_of(std::vector<T>& values) {
  return HostBuffer{values.data(), values.size() * sizeof(T)};
}

inline void run(const Program& program, std::vector<Argument> arguments,
                const InterpreterOptions& options = {}) {
  interpret(program, arguments, options);
}

// f16 bits of a value (round to nearest even).
inline uint16_t f16_bits(double value) {
  return static_cast<uint16_t>(dtypes::encode(DataType::f16(), value));
}
inline double f16_value(uint16_t bits) {
  return dtypes::decode(DataType::f16(), bits);
}

inline float float_of(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}
inline uint32_t bits_of(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}

// Small integers as f32: sums of them are exact in any order.
inline std::vector<float> random_floats(size_t n, std::mt19937& rng, float low = -4,
                                        float high = 4) {
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> values(n);
  for (float& v : values)
    v = dist(rng);
  return values;
}

}  // namespace nibble::vm::interp_test
