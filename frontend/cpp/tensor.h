// Tensor handles of the C++ DSL and the operators on them.
//
// A Tensor is a small handle (its builder and its entry in the program's tensor table); copying
// it copies the handle, not the data. Operators build instructions: `a + b`, `a * 0.5f`, `-a`,
// `max(a, b)`, `exp2(a)`, `a < b` each append one Elementwise instruction whose result is a
// fresh register tensor. Scalar operands (C++ numbers or scalar expressions) are broadcast to
// every element; a number takes the element type of the tensor it meets. Tensor operands of
// the same rank broadcast where one has extent 1 (`x - row_max` with row_max of shape [r, 1]):
// the builder inserts the `repeat` that makes the shapes equal, as the VM requires.
//
// Compound assignments update a tensor in place (`acc += x` computes acc + x into acc itself,
// as loop-carried values need); see KernelBuilder::assign.
//
// Every operator records the source line of the expression that uses it, through the
// conversion of its tensor operand to TensorArg.
#pragma once

#include <cstdint>
#include <source_location>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "frontend/cpp/scalar.h"
#include "vm/program.h"

namespace nibble::dsl {

class KernelBuilder;

// A pointer parameter of the kernel; b.view(pointer, shape) gives a global tensor over it.
class Pointer {
 public:
  Pointer() = default;
  int index() const { return index_; }
  KernelBuilder* builder() const { return builder_; }

 private:
  friend class KernelBuilder;
  Pointer(KernelBuilder* builder, int index) : builder_(builder), index_(index) {}
  KernelBuilder* builder_ = nullptr;
  int index_ = -1;
};

class Tensor {
 public:
  // An empty handle; using it in a builder call is an error.
  Tensor() = default;

  bool valid() const { return builder_ != nullptr; }
  vm::TensorId id() const { return id_; }
  KernelBuilder* builder() const { return builder_; }

  // What the tensor table says about it (the handle must be valid and live).
  const std::string& name() const;
  const vm::TensorType& type() const;
  vm::Scope scope() const { return type().scope; }
  vm::DataType dtype() const { return type().dtype; }
  const layout::Shape& shape() const { return type().shape; }
  int rank() const { return type().rank(); }
  int64_t extent(int dimension) const;

  // Renames the tensor (made unique, as every name is) and returns it: exp2(x).named("e").
  Tensor named(std::string_view name,
               std::source_location location = std::source_location::current()) const;

 private:
  friend class KernelBuilder;
  Tensor(KernelBuilder* builder, vm::TensorId id, uint64_t serial)
      : builder_(builder), id_(id), serial_(serial) {}
  KernelBuilder* builder_ = nullptr;
  vm::TensorId id_;
  uint64_t serial_ = 0;  // tells a live handle from one whose tensor was assigned away
};

// A tensor operand of an operator, carrying the source location of the expression.
struct TensorArg {
  TensorArg(const Tensor& t,  // NOLINT: implicit by design
            std::source_location where = std::source_location::current())
      : tensor(t), location(where) {}
  Tensor tensor;
  std::source_location location;
};

// An operand of an elementwise function: a tensor or a scalar.
class Operand {
 public:
  Operand(const Tensor& tensor) : value_(tensor) {}            // NOLINT: implicit by design
  Operand(const Scalar& scalar) : value_(scalar) {}            // NOLINT: implicit by design
  Operand(vm::Expr expr) : value_(Scalar(std::move(expr))) {}  // NOLINT: implicit by design
  template <typename T>
  requires std::integral<T> || std::floating_point<T> Operand(T value)
      : value_(Scalar(value)) {}  // NOLINT: implicit by design

  const Tensor* tensor() const { return std::get_if<Tensor>(&value_); }
  const Scalar* scalar() const { return std::get_if<Scalar>(&value_); }

 private:
  std::variant<Tensor, Scalar> value_;
};

// ---- operators: one Elementwise instruction each ----------------------------------------------

Tensor operator+(TensorArg a, TensorArg b);
Tensor operator+(TensorArg a, const Scalar& b);
Tensor operator+(const Scalar& a, TensorArg b);
Tensor operator-(TensorArg a, TensorArg b);
Tensor operator-(TensorArg a, const Scalar& b);
Tensor operator-(const Scalar& a, TensorArg b);
Tensor operator*(TensorArg a, TensorArg b);
Tensor operator*(TensorArg a, const Scalar& b);
Tensor operator*(const Scalar& a, TensorArg b);
Tensor operator/(TensorArg a, TensorArg b);
Tensor operator/(TensorArg a, const Scalar& b);
Tensor operator/(const Scalar& a, TensorArg b);
Tensor operator-(TensorArg a);

// Comparisons give u1 tensors (for where()). Equality is eq()/ne(), as for scalars.
Tensor operator<(TensorArg a, TensorArg b);
Tensor operator<(TensorArg a, const Scalar& b);
Tensor operator<(const Scalar& a, TensorArg b);
Tensor operator<=(TensorArg a, TensorArg b);
Tensor operator<=(TensorArg a, const Scalar& b);
Tensor operator<=(const Scalar& a, TensorArg b);
Tensor operator>(TensorArg a, TensorArg b);
Tensor operator>(TensorArg a, const Scalar& b);
Tensor operator>(const Scalar& a, TensorArg b);
Tensor operator>=(TensorArg a, TensorArg b);
Tensor operator>=(TensorArg a, const Scalar& b);
Tensor operator>=(const Scalar& a, TensorArg b);

// In-place updates: `acc += x` is b.assign(acc, acc + x).
Tensor operator+=(TensorArg a, const Operand& b);
Tensor operator-=(TensorArg a, const Operand& b);
Tensor operator*=(TensorArg a, const Operand& b);
Tensor operator/=(TensorArg a, const Operand& b);

// ---- elementwise functions (at least one operand must be a tensor) ----------------------------

Tensor eq(const Operand& a, const Operand& b,
          std::source_location location = std::source_location::current());
Tensor ne(const Operand& a, const Operand& b,
          std::source_location location = std::source_location::current());
Tensor max(const Operand& a, const Operand& b,
           std::source_location location = std::source_location::current());
Tensor min(const Operand& a, const Operand& b,
           std::source_location location = std::source_location::current());
Tensor abs(const Tensor& a, std::source_location location = std::source_location::current());
Tensor exp2(const Tensor& a, std::source_location location = std::source_location::current());
Tensor log2(const Tensor& a, std::source_location location = std::source_location::current());
Tensor rsqrt(const Tensor& a, std::source_location location = std::source_location::current());
// a * b + c, rounded once.
Tensor fma(const Operand& a, const Operand& b, const Operand& c,
           std::source_location location = std::source_location::current());
// condition ? a : b element by element; the condition is u1.
Tensor where(const Operand& condition, const Operand& a, const Operand& b,
             std::source_location location = std::source_location::current());

}  // namespace nibble::dsl
