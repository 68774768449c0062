// Semantics of the compute instructions: elementwise operations, reductions, dot and shuffles.
//
// Exactness. A float result is computed in double from the exact operand values and rounded
// once to the result type (dtypes/codec.h: nearest even, saturation for types without inf).
// For + - * / on types of 24 significant bits or fewer (f32, bf16, f16, the fp8/fp6/fp4 types)
// the double intermediate never changes the result: 53 >= 2p + 2, so rounding to double first
// is innocuous. fma rounds once: f32 with fmaf, f64 with fma, the narrower types through fma in
// double (their product is exact in double). exp2, log2 and rsqrt come from the host's math
// library (within an ulp of double before the one rounding); the GPU's approximations are
// compared with a tolerance. max and min ignore a NaN operand (fmax/fmin, as PTX max/min do).
// Integer results wrap at the type's width; integer division truncates toward zero (PTX div)
// and division by zero is an error naming the element.
#include <fmt/format.h>

#include <array>
#include <cmath>

#include "vm/interpreter/execute.h"

namespace nibble::vm::interp {
namespace {

// An operand's element codes: one per element, or a single code for a broadcast scalar.
struct OperandCodes {
  DataType dtype = DataType::f32();
  std::vector<uint64_t> codes;
  bool scalar = false;
  uint64_t at(size_t x) const { return scalar ? codes[0] : codes[x]; }
  double real(size_t x) const { return real_of(dtype, at(x)); }
  int64_t integer(size_t x) const { return integer_of(dtype, at(x)); }
};

OperandCodes operand_codes(Block& block, const Operand& operand, int64_t elements) {
  OperandCodes result;
  if (const auto* tensor = std::get_if<TensorId>(&operand)) {
    result.dtype = block.info(*tensor).type.dtype;
    result.codes = read_registers(block, *tensor);
    if (static_cast<int64_t>(result.codes.size()) != elements) {
      block.fail(fmt::format("operand '{}' has {} elements, the result {}", block.name(*tensor),
                             result.codes.size(), elements));
    }
    return result;
  }
  const ScalarValue value = block.evaluate(std::get<Expr>(operand));
  result.dtype = value.type;
  result.codes = {value.type.is_float() ? code_of_real(value.type, value.real)
                                        : code_of_integer(value.type, value.integer)};
  result.scalar = true;
  return result;
}

uint64_t wrapping(uint64_t a, uint64_t b, ElementwiseOp op) {
  switch (op) {
    case ElementwiseOp::Add:
      return a + b;
    case ElementwiseOp::Sub:
      return a - b;
    default:
      return a * b;
  }
}

bool compare(ElementwiseOp op, auto a, auto b) {
  switch (op) {
    case ElementwiseOp::Eq:
      return a == b;
    case ElementwiseOp::Ne:
      return a != b;
    case ElementwiseOp::Lt:
      return a < b;
    case ElementwiseOp::Le:
      return a <= b;
    case ElementwiseOp::Gt:
      return a > b;
    default:
      return a >= b;
  }
}

bool is_comparison(ElementwiseOp op) {
  return op == ElementwiseOp::Eq || op == ElementwiseOp::Ne || op == ElementwiseOp::Lt ||
         op == ElementwiseOp::Le || op == ElementwiseOp::Gt || op == ElementwiseOp::Ge;
}

double real_operation(ElementwiseOp op, DataType result, const std::vector<OperandCodes>& in,
                      size_t x) {
  const double a = in[0].real(x);
  switch (op) {
    case ElementwiseOp::Neg:
      return -a;
    case ElementwiseOp::Abs:
      return std::fabs(a);
    case ElementwiseOp::Exp2:
      return std::exp2(a);
    case ElementwiseOp::Log2:
      return std::log2(a);
    case ElementwiseOp::Rsqrt:
      return 1.0 / std::sqrt(a);
    default:
      break;
  }
  const double b = in[1].real(x);
  switch (op) {
    case ElementwiseOp::Add:
      return a + b;
    case ElementwiseOp::Sub:
      return a - b;
    case ElementwiseOp::Mul:
      return a * b;
    case ElementwiseOp::Div:
      return a / b;
    case ElementwiseOp::Max:
      return std::fmax(a, b);
    case ElementwiseOp::Min:
      return std::fmin(a, b);
    default:
      break;
  }
  const double c = in[2].real(x);  // fma
  if (result == DataType::f32()) {
    return std::fmaf(static_cast<float>(a), static_cast<float>(b), static_cast<float>(c));
  }
  return std::fma(a, b, c);
}

int64_t integer_operation(const Block& block, ElementwiseOp op, const std::vector<OperandCodes>& in,
                          size_t x, const Shape& shape) {
  const int64_t a = in[0].integer(x);
  const auto ua = static_cast<uint64_t>(a);
  switch (op) {
    case ElementwiseOp::Neg:
      return static_cast<int64_t>(0 - ua);
    case ElementwiseOp::Abs:
      return a < 0 ? static_cast<int64_t>(0 - ua) : a;
    case ElementwiseOp::Exp2:
    case ElementwiseOp::Log2:
    case ElementwiseOp::Rsqrt:
      block.fail(fmt::format("{} is defined on floats only", to_string(op)));
    default:
      break;
  }
  const int64_t b = in[1].integer(x);
  const auto ub = static_cast<uint64_t>(b);
  switch (op) {
    case ElementwiseOp::Add:
    case ElementwiseOp::Sub:
    case ElementwiseOp::Mul:
      return static_cast<int64_t>(wrapping(ua, ub, op));
    case ElementwiseOp::Div:
      if (b == 0) {
        block.fail(fmt::format("integer division by zero at element {}",
                               index_to_string(unflatten(static_cast<int64_t>(x), shape))));
      }
      if (b == -1) return static_cast<int64_t>(0 - ua);  // INT64_MIN / -1 wraps
      return a / b;
    case ElementwiseOp::Max:
      return std::max(a, b);
    case ElementwiseOp::Min:
      return std::min(a, b);
    default:
      break;
  }
  const auto uc = static_cast<uint64_t>(in[2].integer(x));  // fma
  return static_cast<int64_t>(ua * ub + uc);
}

[[noreturn]] void fail_nan(const Block& block, size_t x, const TensorInfo& result) {
  block.fail(fmt::format("element {} is NaN, which the result type {} cannot hold",
                         index_to_string(unflatten(static_cast<int64_t>(x), result.type.shape)),
                         result.type.dtype.name()));
}

// The exact value rounded to a float type, back as a double: the accumulator of a reduction.
double round_real(const Block& block, DataType type, double value, size_t x,
                  const TensorInfo& result) {
  try {
    return real_of(type, code_of_real(type, value));
  } catch (const std::invalid_argument&) {
    fail_nan(block, x, result);
  }
}

uint64_t real_code(const Block& block, DataType type, double value, size_t x,
                   const TensorInfo& result) {
  try {
    return code_of_real(type, value);
  } catch (const std::invalid_argument&) {
    fail_nan(block, x, result);
  }
}

}  // namespace

void execute(Block& block, const Elementwise& instruction) {
  const ElementwiseOp op = instruction.op;
  const TensorInfo& result = block.info(instruction.result);
  const DataType type = result.type.dtype;
  const int64_t elements = result.type.element_count();
  if (static_cast<int>(instruction.operands.size()) != arity(op)) {
    block.fail(fmt::format("{} takes {} operands, got {}", to_string(op), arity(op),
                           instruction.operands.size()));
  }
  std::vector<OperandCodes> in;
  for (const Operand& operand : instruction.operands) {
    in.push_back(operand_codes(block, operand, elements));
  }
  std::vector<uint64_t> codes(static_cast<size_t>(elements));
  const auto one_or_zero = [&](bool value) {
    return type.is_float() ? code_of_real(type, value ? 1.0 : 0.0)
                           : code_of_integer(type, value ? 1 : 0);
  };

  if (is_comparison(op)) {
    const bool on_floats = in[0].dtype.is_float() || in[1].dtype.is_float();
    for (size_t x = 0; x < codes.size(); ++x) {
      codes[x] = one_or_zero(on_floats ? compare(op, in[0].real(x), in[1].real(x))
                                       : compare(op, in[0].integer(x), in[1].integer(x)));
    }
  } else if (op == ElementwiseOp::Where) {
    for (size_t x = 0; x < codes.size(); ++x) {
      const bool condition = in[0].dtype.is_float() ? in[0].real(x) != 0 : in[0].at(x) != 0;
      const OperandCodes& chosen = in[condition ? 1 : 2];
      try {
        codes[x] = cast_code(chosen.dtype, chosen.at(x), type);
      } catch (const std::invalid_argument&) {
        fail_nan(block, x, result);
      }
    }
  } else if (type.is_float() && (op == ElementwiseOp::Neg || op == ElementwiseOp::Abs) &&
             in[0].dtype == type) {
    // Sign-bit operations, as neg.f/abs.f are: NaN payloads and zeros keep their bits.
    const uint64_t sign = uint64_t{1} << (type.bits() - 1);
    for (size_t x = 0; x < codes.size(); ++x) {
      codes[x] = op == ElementwiseOp::Neg ? in[0].at(x) ^ sign : in[0].at(x) & ~sign;
    }
  } else if (type.is_float()) {
    for (size_t x = 0; x < codes.size(); ++x) {
      codes[x] = real_code(block, type, real_operation(op, type, in, x), x, result);
    }
  } else {
    for (const OperandCodes& operand : in) {
      if (operand.dtype.is_float()) {
        block.fail(fmt::format("a {} operand for an integer result of type {}",
                               operand.dtype.name(), type.name()));
      }
    }
    for (size_t x = 0; x < codes.size(); ++x) {
      codes[x] = code_of_integer(type, integer_operation(block, op, in, x, result.type.shape));
    }
  }
  write_registers(block, instruction.result, codes);
}

// Along the axis in index order, accumulating in the result's type and rounding after each step
// (keepdims: the result has extent 1 on the axis).
void execute(Block& block, const Reduce& instruction) {
  const TensorInfo& source = block.info(instruction.source);
  const TensorInfo& result = block.info(instruction.result);
  const Shape& from = source.type.shape;
  const auto axis = static_cast<size_t>(instruction.axis);
  if (instruction.axis < 0 || axis >= from.size()) {
    block.fail(fmt::format("axis {} of a rank-{} tensor", instruction.axis, from.size()));
  }
  Shape expected = from;
  expected[axis] = 1;
  if (result.type.shape != expected) {
    block.fail(fmt::format("the result's shape {} should be {}",
                           layout::shape_to_string(result.type.shape),
                           layout::shape_to_string(expected)));
  }
  const DataType type = result.type.dtype;
  const DataType source_type = source.type.dtype;
  if (type.is_float() != source_type.is_float()) {
    block.fail(fmt::format("reducing {} into {}", source_type.name(), type.name()));
  }
  const std::vector<uint64_t> in = read_registers(block, instruction.source);
  std::vector<uint64_t> codes(static_cast<size_t>(result.type.element_count()));
  const ReduceOp op = instruction.op;
  for (size_t o = 0; o < codes.size(); ++o) {
    std::vector<int64_t> index = unflatten(static_cast<int64_t>(o), expected);
    const auto element = [&](int64_t k) {
      index[axis] = k;
      return in[static_cast<size_t>(flatten(index, from))];
    };
    if (type.is_float()) {
      double accumulator = round_real(block, type, real_of(source_type, element(0)), o, result);
      for (int64_t k = 1; k < from[axis]; ++k) {
        const double value = real_of(source_type, element(k));
        const double next = op == ReduceOp::Sum   ? accumulator + value
                            : op == ReduceOp::Max ? std::fmax(accumulator, value)
                                                  : std::fmin(accumulator, value);
        accumulator = round_real(block, type, next, o, result);
      }
      codes[o] = real_code(block, type, accumulator, o, result);
    } else {
      const auto wrap = [&](int64_t value) {
        return integer_of(type, code_of_integer(type, value));
      };
      int64_t accumulator = wrap(integer_of(source_type, element(0)));
      for (int64_t k = 1; k < from[axis]; ++k) {
        const int64_t value = integer_of(source_type, element(k));
        accumulator = op == ReduceOp::Sum
                          ? wrap(static_cast<int64_t>(static_cast<uint64_t>(accumulator) +
                                                      static_cast<uint64_t>(value)))
                      : op == ReduceOp::Max ? std::max(accumulator, value)
                                            : std::min(accumulator, value);
      }
      codes[o] = code_of_integer(type, accumulator);
    }
  }
  write_registers(block, instruction.result, codes);
}

// The box b[b_offsets + (k, n)] (b[b_offsets + (n, k)] transposed) of a shared b, as [k, n]
// row-major. The whole block reads it (wgmma reads
// shared memory on behalf of its warpgroups): a write to it by any thread since the last barrier,
// or a copy into it not yet waited for, is a hazard.
std::vector<uint64_t> read_shared_operand(Block& block, const Dot& instruction, int64_t k_extent,
                                          int64_t n_extent, std::vector<int64_t>& elements) {
  block.defined(instruction.b, Scope::Shared);
  const std::vector<int64_t> offsets =
      block.evaluate_indices(instruction.b_offsets, 2, "the offsets of b");
  const std::vector<int64_t> readers{0, block.plan.threads - 1};
  std::vector<uint64_t> codes(static_cast<size_t>(k_extent * n_extent));
  for (int64_t k = 0; k < k_extent; ++k) {
    for (int64_t n = 0; n < n_extent; ++n) {
      const std::array<int64_t, 2> index =
          instruction.b_transposed ? std::array<int64_t, 2>{offsets[0] + n, offsets[1] + k}
                                   : std::array<int64_t, 2>{offsets[0] + k, offsets[1] + n};
      const int64_t element = shared_element(block, instruction.b, index);
      elements.push_back(element);
      codes[static_cast<size_t>(k * n_extent + n)] =
          read_shared(block, instruction.b, element, readers);
    }
  }
  return codes;
}

// accumulator[m, n] += Σ_k a[m, k] · b[k, n], k ascending, one rounding per step: each product is
// exact and each addition rounds to the accumulator's type (f32: fmaf of the exact inputs;
// integers: wrap at the accumulator's width).
void execute(Block& block, const Dot& instruction) {
  const TensorInfo& c = block.info(instruction.accumulator);
  const TensorInfo& a = block.info(instruction.a);
  const TensorInfo& b = block.info(instruction.b);
  const bool shared_b = !instruction.b_offsets.empty();
  if (c.type.rank() != 2 || a.type.rank() != 2 || b.type.rank() != 2 ||
      a.type.shape[0] != c.type.shape[0] ||
      (!shared_b && (b.type.shape[1] != c.type.shape[1] || a.type.shape[1] != b.type.shape[0]))) {
    block.fail(fmt::format(
        "shapes {} · {} do not accumulate into {}", layout::shape_to_string(a.type.shape),
        layout::shape_to_string(b.type.shape), layout::shape_to_string(c.type.shape)));
  }
  const int64_t m_extent = c.type.shape[0];
  const int64_t n_extent = c.type.shape[1];
  const int64_t k_extent = a.type.shape[1];
  const DataType ct = c.type.dtype;
  const DataType at = a.type.dtype;
  const DataType bt = b.type.dtype;
  if (ct.is_float() != at.is_float() || ct.is_float() != bt.is_float()) {
    block.fail(fmt::format("{} · {} cannot accumulate into {}", at.name(), bt.name(), ct.name()));
  }
  const std::vector<uint64_t> a_codes = read_registers(block, instruction.a);
  std::vector<int64_t> b_elements;
  const std::vector<uint64_t> b_codes =
      shared_b ? read_shared_operand(block, instruction, k_extent, n_extent, b_elements)
               : read_registers(block, instruction.b);
  // An async dot queues behind the async dots already accumulating into its accumulator.
  const auto accumulator = static_cast<size_t>(instruction.accumulator.index);
  const int32_t queued_behind = instruction.async ? block.accumulator_in_flight[accumulator] : 0;
  block.accumulator_in_flight[accumulator] -= queued_behind;
  std::vector<uint64_t> codes = read_registers(block, instruction.accumulator);
  const auto fits_f32 = [](DataType t) {
    return t.mantissa_bits() <= 23 && t.exponent_bits() <= 8;
  };
  const bool f32_path = ct == DataType::f32() && fits_f32(at) && fits_f32(bt);
  for (int64_t m = 0; m < m_extent; ++m) {
    for (int64_t n = 0; n < n_extent; ++n) {
      const auto o = static_cast<size_t>(m * n_extent + n);
      const auto a_at = [&](int64_t k) { return a_codes[static_cast<size_t>(m * k_extent + k)]; };
      const auto b_at = [&](int64_t k) { return b_codes[static_cast<size_t>(k * n_extent + n)]; };
      if (f32_path) {
        auto sum = static_cast<float>(real_of(ct, codes[o]));
        for (int64_t k = 0; k < k_extent; ++k) {
          sum = std::fmaf(static_cast<float>(real_of(at, a_at(k))),
                          static_cast<float>(real_of(bt, b_at(k))), sum);
        }
        codes[o] = code_of_real(ct, sum);
      } else if (ct.is_float()) {
        double sum = real_of(ct, codes[o]);
        for (int64_t k = 0; k < k_extent; ++k) {
          sum = round_real(block, ct, std::fma(real_of(at, a_at(k)), real_of(bt, b_at(k)), sum), o,
                           c);
        }
        codes[o] = real_code(block, ct, sum, o, c);
      } else {
        uint64_t sum = codes[o];
        for (int64_t k = 0; k < k_extent; ++k) {
          sum += static_cast<uint64_t>(integer_of(at, a_at(k))) *
                 static_cast<uint64_t>(integer_of(bt, b_at(k)));
        }
        codes[o] = sum & ct.bit_mask();  // wrapping at the accumulator's width
      }
    }
  }
  write_registers(block, instruction.accumulator, codes);
  block.accumulator_in_flight[accumulator] += queued_behind;
  if (instruction.async) {
    Block::DotInFlight dot{block.current, instruction.accumulator, instruction.b,
                           std::move(b_elements)};
    mark_dot_reads(block, dot);
    ++block.accumulator_in_flight[accumulator];
    block.dots_in_flight.push_back(std::move(dot));
  }
}

// The oldest async dots complete until at most `pending` remain.
void execute(Block& block, const WaitDots& instruction) {
  if (instruction.pending < 0) {
    block.fail(fmt::format("wait_dots {}: the count must be non-negative", instruction.pending));
  }
  while (block.dots_in_flight.size() > static_cast<size_t>(instruction.pending)) {
    const Block::DotInFlight& dot = block.dots_in_flight.front();
    complete_dot_reads(block, dot);
    --block.accumulator_in_flight[static_cast<size_t>(dot.accumulator.index)];
    block.dots_in_flight.pop_front();
  }
}

// Per register slot, lane l of each warp takes the bits lane f(l) holds; a source lane outside
// the warp leaves the lane its own bits (shfl.sync's behaviour).
void execute(Block& block, const Shuffle& instruction) {
  const TensorState& source = block.defined(instruction.source, Scope::Register);
  const TensorPlan& from = block.tensor_plan(instruction.source);
  const TensorPlan& to = block.tensor_plan(instruction.result);
  if (to.info->type.scope != Scope::Register ||
      from.registers->slots_per_thread * from.info->type.dtype.bits() !=
          to.registers->slots_per_thread * to.info->type.dtype.bits()) {
    block.fail(fmt::format("'{}' and '{}' must be register tensors with the same bits per thread",
                           from.info->name, to.info->name));
  }
  const int64_t lane = block.evaluate_integer(instruction.lane);
  const auto row = static_cast<size_t>(from.registers->bytes_per_thread);
  std::vector<uint8_t> shuffled = source.registers;
  for (int64_t thread = 0; thread < block.plan.threads; ++thread) {
    const int64_t l = thread % 32;
    int64_t source_lane = l;
    switch (instruction.mode) {
      case ShuffleMode::Xor:
        source_lane = l ^ lane;
        break;
      case ShuffleMode::Up:
        source_lane = l - lane;
        break;
      case ShuffleMode::Down:
        source_lane = l + lane;
        break;
      case ShuffleMode::Index:
        source_lane = lane;
        break;
    }
    if (source_lane < 0 || source_lane >= 32) continue;
    const auto source_thread = static_cast<size_t>(thread - l + source_lane);
    std::copy_n(source.registers.begin() + static_cast<ptrdiff_t>(source_thread * row), row,
                shuffled.begin() + static_cast<ptrdiff_t>(static_cast<size_t>(thread) * row));
  }
  TensorState& result = block.state(instruction.result);
  result.registers = std::move(shuffled);
  result.defined = true;
}

}  // namespace nibble::vm::interp
