// Semantics of the data instructions: cast, view, slice, repeat, permute, reshape. All but view
// are logical (element by element, written through the result's layout); view moves each
// thread's bits unchanged, as the GPU does.
#include <fmt/format.h>

#include <algorithm>

#include "vm/interpreter/execute.h"

namespace nibble::vm::interp {
namespace {

const Shape& shape_of(const Block& block, TensorId id) {
  return block.info(id).type.shape;
}

void require_element_count(const Block& block, TensorId a, TensorId b) {
  const TensorType& x = block.info(a).type;
  const TensorType& y = block.info(b).type;
  if (x.element_count() != y.element_count()) {
    block.fail(fmt::format("'{}' has {} elements but '{}' has {}", block.name(a), x.element_count(),
                           block.name(b), y.element_count()));
  }
}

void require_same_dtype(const Block& block, TensorId a, TensorId b) {
  if (block.info(a).type.dtype != block.info(b).type.dtype) {
    block.fail(fmt::format("'{}' is {} but '{}' is {}", block.name(a),
                           block.info(a).type.dtype.name(), block.name(b),
                           block.info(b).type.dtype.name()));
  }
}

// result[i] = source[source_index(i)] for every element of the result.
template <typename SourceIndex>
void gather(Block& block, TensorId result, TensorId source, SourceIndex source_index) {
  require_same_dtype(block, result, source);
  const std::vector<uint64_t> codes = read_registers(block, source);
  const Shape& result_shape = shape_of(block, result);
  const Shape& source_shape = shape_of(block, source);
  std::vector<uint64_t> gathered(static_cast<size_t>(layout::shape_size(result_shape)));
  for (size_t x = 0; x < gathered.size(); ++x) {
    const std::vector<int64_t> from =
        source_index(unflatten(static_cast<int64_t>(x), result_shape));
    gathered[x] = codes[static_cast<size_t>(flatten(from, source_shape))];
  }
  write_registers(block, result, gathered);
}

}  // namespace

void execute(Block& block, const Cast& instruction) {
  require_element_count(block, instruction.result, instruction.source);
  const DataType from = block.info(instruction.source).type.dtype;
  const DataType to = block.info(instruction.result).type.dtype;
  std::vector<uint64_t> codes = read_registers(block, instruction.source);
  for (size_t x = 0; x < codes.size(); ++x) {
    try {
      codes[x] = cast_code(from, codes[x], to);
    } catch (const std::invalid_argument&) {
      block.fail(fmt::format(
          "element {} of '{}' is NaN, which {} cannot hold (it has no NaN encoding)",
          index_to_string(unflatten(static_cast<int64_t>(x), shape_of(block, instruction.source))),
          block.name(instruction.source), to.name()));
    }
  }
  write_registers(block, instruction.result, codes);
}

// Each thread's bits, unchanged: the layouts must give every thread the same number of bits.
void execute(Block& block, const View& instruction) {
  const TensorState& source = block.defined(instruction.source, Scope::Register);
  const TensorPlan& from = block.tensor_plan(instruction.source);
  const TensorPlan& to = block.tensor_plan(instruction.result);
  if (to.info->type.scope != Scope::Register) {
    block.fail(fmt::format("the result '{}' is not a register tensor", to.info->name));
  }
  const int64_t from_bits = from.registers->slots_per_thread * from.info->type.dtype.bits();
  const int64_t to_bits = to.registers->slots_per_thread * to.info->type.dtype.bits();
  if (from_bits != to_bits) {
    block.fail(fmt::format(
        "each thread holds {} bits of '{}' ({} register slots of {}) but {} bits of '{}' ({} "
        "slots of {}); a view keeps every thread's bits",
        from_bits, from.info->name, from.registers->slots_per_thread, from.info->type.dtype.name(),
        to_bits, to.info->name, to.registers->slots_per_thread, to.info->type.dtype.name()));
  }
  std::vector<uint8_t> bits = source.registers;  // a copy: the result may be the source
  TensorState& result = block.state(instruction.result);
  result.registers = std::move(bits);
  result.defined = true;
}

void execute(Block& block, const Slice& instruction) {
  const Shape& source = shape_of(block, instruction.source);
  const Shape& result = shape_of(block, instruction.result);
  if (instruction.offsets.size() != source.size() || result.size() != source.size()) {
    block.fail(fmt::format("slice of a rank-{} tensor with {} offsets into a rank-{} result",
                           source.size(), instruction.offsets.size(), result.size()));
  }
  for (size_t d = 0; d < source.size(); ++d) {
    if (instruction.offsets[d] < 0 || instruction.offsets[d] + result[d] > source[d]) {
      block.fail(fmt::format("dimension {}: [{}, {}) is outside the extent {} of '{}'", d,
                             instruction.offsets[d], instruction.offsets[d] + result[d], source[d],
                             block.name(instruction.source)));
    }
  }
  gather(block, instruction.result, instruction.source, [&](std::vector<int64_t> index) {
    for (size_t d = 0; d < index.size(); ++d)
      index[d] += instruction.offsets[d];
    return index;
  });
}

void execute(Block& block, const Repeat& instruction) {
  const Shape& source = shape_of(block, instruction.source);
  const Shape& result = shape_of(block, instruction.result);
  const auto axis = static_cast<size_t>(instruction.axis);
  if (instruction.axis < 0 || axis >= source.size() || result.size() != source.size() ||
      instruction.count < 1) {
    block.fail(fmt::format("repeat along axis {} by {} of a rank-{} tensor into a rank-{} result",
                           instruction.axis, instruction.count, source.size(), result.size()));
  }
  for (size_t d = 0; d < source.size(); ++d) {
    const int64_t expected = d == axis ? source[d] * instruction.count : source[d];
    if (result[d] != expected) {
      block.fail(fmt::format("the result's extent {} in dimension {} should be {}", result[d], d,
                             expected));
    }
  }
  gather(block, instruction.result, instruction.source, [&](std::vector<int64_t> index) {
    index[axis] /= instruction.count;
    return index;
  });
}

void execute(Block& block, const Permute& instruction) {
  const Shape& source = shape_of(block, instruction.source);
  const Shape& result = shape_of(block, instruction.result);
  std::vector<int> sorted = instruction.dims;
  std::sort(sorted.begin(), sorted.end());
  bool permutation = sorted.size() == source.size() && result.size() == source.size();
  for (size_t d = 0; permutation && d < sorted.size(); ++d) {
    permutation = sorted[d] == static_cast<int>(d) &&
                  result[d] == source[static_cast<size_t>(instruction.dims[d])];
  }
  if (!permutation) {
    block.fail(fmt::format("dims [{}] do not permute {} into {}", fmt::join(instruction.dims, ", "),
                           layout::shape_to_string(source), layout::shape_to_string(result)));
  }
  gather(block, instruction.result, instruction.source, [&](const std::vector<int64_t>& index) {
    std::vector<int64_t> from(index.size());
    for (size_t d = 0; d < index.size(); ++d) {
      from[static_cast<size_t>(instruction.dims[d])] = index[d];
    }
    return from;
  });
}

void execute(Block& block, const Reshape& instruction) {
  require_element_count(block, instruction.result, instruction.source);
  require_same_dtype(block, instruction.result, instruction.source);
  write_registers(block, instruction.result, read_registers(block, instruction.source));
}

}  // namespace nibble::vm::interp
