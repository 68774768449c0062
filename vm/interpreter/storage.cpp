// Element codes and the three kinds of storage: register tensors (per-thread bits), global
// buffers (shared with the other blocks' host threads) and shared memory (with the hazard
// checks that make a missing wait_group or barrier visible).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "dtypes/codec.h"
#include "vm/interpreter/block.h"

namespace nibble::vm::interp {

// ---- Element codes ----------------------------------------------------------------------------

double real_of(DataType type, uint64_t code) {
  if (type.is_integer()) return static_cast<double>(integer_of(type, code));
  if (type.bits() == 32) return std::bit_cast<float>(static_cast<uint32_t>(code));
  if (type.bits() == 64) return std::bit_cast<double>(code);
  return dtypes::decode(type, code);
}

int64_t integer_of(DataType type, uint64_t code) {
  if (!type.is_signed() || type.bits() == 64) return static_cast<int64_t>(code);
  const uint64_t sign = uint64_t{1} << (type.bits() - 1);
  return static_cast<int64_t>((code & sign) != 0 ? code | ~type.bit_mask() : code);
}

uint64_t code_of_integer(DataType type, int64_t value) {
  return static_cast<uint64_t>(value) & type.bit_mask();
}

uint64_t code_of_real(DataType type, double value) {
  // The hardware conversion for the common case; the codec for everything else (NaN's
  // canonical encoding, overflow, the narrow types).
  if (type.bits() == 32 && type.is_float() && std::isfinite(value) &&
      std::fabs(value) <= std::numeric_limits<float>::max()) {
    return std::bit_cast<uint32_t>(static_cast<float>(value));
  }
  return dtypes::encode(type, value);
}

uint64_t cast_code(DataType from, uint64_t code, DataType to) {
  if (from == to) return code;
  if (from.is_integer() && to.is_integer()) {
    const int64_t value = integer_of(from, code);
    const int64_t highest =
        to.is_signed() ? (to.bits() == 64 ? INT64_MAX : (int64_t{1} << (to.bits() - 1)) - 1)
                       : static_cast<int64_t>(to.bit_mask());
    const int64_t lowest = to.is_signed() ? -highest - 1 : 0;
    // An unsigned source never compares as negative: its codes are below 2^32.
    return code_of_integer(to, std::clamp(value, lowest, highest));
  }
  const double value = real_of(from, code);
  if (to.is_integer() && std::isnan(value)) return 0;
  return code_of_real(to, value);
}

std::vector<int64_t> unflatten(int64_t flat, std::span<const int64_t> shape) {
  std::vector<int64_t> index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

int64_t flatten(std::span<const int64_t> index, std::span<const int64_t> shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + index[d];
  return flat;
}

std::string index_to_string(std::span<const int64_t> index) {
  return fmt::format("[{}]", fmt::join(index, ", "));
}

// ---- Bits at any bit offset -------------------------------------------------------------------

namespace {

uint64_t read_bits(const uint8_t* bytes, int64_t first_bit, int width) {
  if (first_bit % 8 == 0 && width % 8 == 0) {
    uint64_t code = 0;
    std::memcpy(&code, bytes + first_bit / 8, static_cast<size_t>(width / 8));  // little-endian
    return code;
  }
  uint64_t code = 0;
  for (int taken = 0; taken < width;) {
    const int64_t bit = first_bit + taken;
    const int offset = static_cast<int>(bit % 8);
    const int take = std::min(8 - offset, width - taken);
    const uint64_t piece = (uint64_t{bytes[bit / 8]} >> offset) & ((uint64_t{1} << take) - 1);
    code |= piece << taken;
    taken += take;
  }
  return code;
}

void write_bits(uint8_t* bytes, int64_t first_bit, int width, uint64_t code) {
  if (first_bit % 8 == 0 && width % 8 == 0) {
    std::memcpy(bytes + first_bit / 8, &code, static_cast<size_t>(width / 8));
    return;
  }
  for (int written = 0; written < width;) {
    const int64_t bit = first_bit + written;
    const int offset = static_cast<int>(bit % 8);
    const int take = std::min(8 - offset, width - written);
    const auto mask = static_cast<uint8_t>(((1u << take) - 1) << offset);
    const auto piece = static_cast<uint8_t>(((code >> written) << offset) & mask);
    uint8_t& byte = bytes[bit / 8];
    byte = static_cast<uint8_t>((byte & ~mask) | piece);
    written += take;
  }
}

}  // namespace

// ---- Register tensors -------------------------------------------------------------------------

std::vector<uint64_t> read_registers(const Block& block, TensorId id) {
  const TensorState& state = block.defined(id, Scope::Register);
  if (block.accumulator_in_flight[static_cast<size_t>(id.index)] > 0) {
    block.fail(
        fmt::format("'{}' is the accumulator of an async dot still in flight: wait_dots "
                    "until it has completed before reading it",
                    block.name(id)));
  }
  const RegisterPlacement& placement = *block.tensor_plan(id).registers;
  const int bits = block.info(id).type.dtype.bits();
  std::vector<uint64_t> codes(placement.first.size());
  for (size_t x = 0; x < codes.size(); ++x) {
    codes[x] = read_bits(state.registers.data(), placement.first[x], bits);
  }
  return codes;
}

void write_registers(Block& block, TensorId id, std::span<const uint64_t> codes) {
  const TensorPlan& plan = block.tensor_plan(id);
  if (plan.info->type.scope != Scope::Register) {
    block.fail(fmt::format("the result '{}' is a {} tensor, not a register tensor", plan.info->name,
                           to_string(plan.info->type.scope)));
  }
  if (block.accumulator_in_flight[static_cast<size_t>(id.index)] > 0) {
    block.fail(
        fmt::format("'{}' is the accumulator of an async dot still in flight: wait_dots "
                    "until it has completed before writing it",
                    plan.info->name));
  }
  const RegisterPlacement& placement = *plan.registers;
  const DataType dtype = plan.info->type.dtype;
  if (codes.size() != placement.first.size()) {
    block.fail(fmt::format("'{}' has {} elements; the instruction produced {}", plan.info->name,
                           placement.first.size(), codes.size()));
  }
  // Fresh storage, so an instruction may read the tensor it redefines (acc = acc + x).
  std::vector<uint8_t> storage(static_cast<size_t>(block.plan.threads * placement.bytes_per_thread),
                               0);
  for (size_t x = 0; x < codes.size(); ++x) {
    const uint64_t code = codes[x] & dtype.bit_mask();
    for (int64_t p = placement.begin[x]; p < placement.begin[x + 1]; ++p) {
      write_bits(storage.data(), placement.places[static_cast<size_t>(p)], dtype.bits(), code);
    }
  }
  TensorState& state = block.state(id);
  state.registers = std::move(storage);
  state.defined = true;
}

// ---- Global memory ----------------------------------------------------------------------------

bool inside_view(const GlobalViewState& view, std::span<const int64_t> index) {
  for (size_t d = 0; d < view.shape.size(); ++d) {
    if (index[d] < 0 || index[d] >= view.shape[d]) return false;
  }
  return true;
}

int64_t global_element(const Block& block, TensorId view_id, std::span<const int64_t> index) {
  const GlobalViewState& view = block.defined(view_id, Scope::Global).global;
  const HostBuffer& buffer = block.plan.arguments[static_cast<size_t>(view.param)].buffer;
  const DataType dtype = block.info(view_id).type.dtype;
  int64_t element = 0;
  bool overflow = false;
  for (size_t d = 0; d < view.shape.size(); ++d) {
    int64_t step = 0;
    overflow = overflow || __builtin_mul_overflow(index[d], view.strides[d], &step) ||
               __builtin_add_overflow(element, step, &element);
  }
  const std::string& param = block.program.params[static_cast<size_t>(view.param)].name;
  if (overflow) {
    block.fail(fmt::format("element {} of '{}' (parameter '{}'): its offset overflows 64 bits",
                           index_to_string(index), block.name(view_id), param));
  }
  const int64_t bits = dtype.bits();
  const int64_t buffer_bits = static_cast<int64_t>(buffer.bytes) * 8;
  if (element < 0 || element > (buffer_bits - bits) / bits) {
    const int64_t first_byte = element * bits / 8;  // may be negative: floor division not needed
    block.fail(fmt::format(
        "element {} of '{}' is at element offset {} (bytes [{}, {})), outside the {}-byte buffer "
        "of parameter '{}'",
        index_to_string(index), block.name(view_id), element, first_byte,
        (element * bits + bits + 7) / 8, buffer.bytes, param));
  }
  return element;
}

// Other blocks run on other host threads and may touch the neighbouring elements of the same
// byte (two u4 tiles meeting mid-byte), so every byte goes through an atomic reference and a
// partial byte is updated with compare-and-swap.
uint64_t read_global(const HostBuffer& buffer, DataType type, int64_t element) {
  auto* bytes = static_cast<uint8_t*>(buffer.data);
  const int width = type.bits();
  const int64_t first_bit = element * width;
  uint64_t code = 0;
  for (int taken = 0; taken < width;) {
    const int64_t bit = first_bit + taken;
    const int offset = static_cast<int>(bit % 8);
    const int take = std::min(8 - offset, width - taken);
    const uint8_t byte = std::atomic_ref<uint8_t>(bytes[bit / 8]).load(std::memory_order_relaxed);
    code |= ((uint64_t{byte} >> offset) & ((uint64_t{1} << take) - 1)) << taken;
    taken += take;
  }
  return code;
}

void write_global(const HostBuffer& buffer, DataType type, int64_t element, uint64_t code) {
  auto* bytes = static_cast<uint8_t*>(buffer.data);
  const int width = type.bits();
  const int64_t first_bit = element * width;
  for (int written = 0; written < width;) {
    const int64_t bit = first_bit + written;
    const int offset = static_cast<int>(bit % 8);
    const int take = std::min(8 - offset, width - written);
    const auto mask = static_cast<uint8_t>(((1u << take) - 1) << offset);
    const auto piece = static_cast<uint8_t>(((code >> written) << offset) & mask);
    std::atomic_ref<uint8_t> byte(bytes[bit / 8]);
    if (mask == 0xff) {
      byte.store(piece, std::memory_order_relaxed);
    } else {
      uint8_t old = byte.load(std::memory_order_relaxed);
      while (!byte.compare_exchange_weak(old, static_cast<uint8_t>((old & ~mask) | piece),
                                         std::memory_order_relaxed)) {
      }
    }
    written += take;
  }
}

// ---- Shared memory ----------------------------------------------------------------------------

int64_t shared_element(const Block& block, TensorId tile, std::span<const int64_t> index) {
  block.defined(tile, Scope::Shared);
  const TensorPlan& plan = block.tensor_plan(tile);
  const Shape& shape = plan.info->type.shape;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (index[d] < 0 || index[d] >= shape[d]) {
      block.fail(fmt::format("index {} is outside the shared tile '{}' of shape {}",
                             index_to_string(index), plan.info->name,
                             layout::shape_to_string(shape)));
    }
  }
  return plan.shared->element[static_cast<size_t>(flatten(index, shape))];
}

namespace {

struct ByteRange {
  int64_t first_bit;  // in the block's shared memory
  int64_t begin;      // bytes touched, [begin, end)
  int64_t end;
};

ByteRange bytes_of(const Block& block, TensorId tile, int64_t element) {
  const int bits = block.info(tile).type.dtype.bits();
  const int64_t first_bit = block.tensor_plan(tile).shared->base_bytes * 8 + element * bits;
  return {first_bit, first_bit / 8, (first_bit + bits + 7) / 8};
}

// "element [1, 2] of 'a' (byte 36 of the tile)": the tile's layout is a bijection onto its
// elements, so the logical index is recovered by search (only when reporting).
std::string describe_byte(const Block& block, TensorId tile, int64_t byte) {
  const TensorPlan& plan = block.tensor_plan(tile);
  const int bits = plan.info->type.dtype.bits();
  const int64_t tile_bit = (byte - plan.shared->base_bytes) * 8;
  for (size_t x = 0; x < plan.shared->element.size(); ++x) {
    const int64_t first = plan.shared->element[x] * bits;
    if (first + bits > tile_bit && first < tile_bit + 8) {
      return fmt::format("element {} of '{}' (byte {} of the tile)",
                         index_to_string(unflatten(static_cast<int64_t>(x), plan.info->type.shape)),
                         plan.info->name, byte - plan.shared->base_bytes);
    }
  }
  return fmt::format("byte {} of tile '{}'", byte - plan.shared->base_bytes, plan.info->name);
}

std::string thread_name(int64_t thread) {
  return fmt::format("thread {} (warp {}, lane {})", thread, thread / 32, thread % 32);
}

[[noreturn]] void fail_pending(const Block& block, TensorId tile, int64_t byte,
                               const SharedByteHistory& history, std::string_view access) {
  block.fail(fmt::format(
      "{} is {} before wait_group: the {} that writes it has not completed (commit its group "
      "and wait_group until it is done, then barrier)",
      describe_byte(block, tile, byte), access, block.statement_name(history.pending_statement)));
}

[[noreturn]] void fail_race(const Block& block, TensorId tile, int64_t byte, int64_t thread,
                            std::string_view access, int64_t other_thread,
                            const Statement* other_statement, std::string_view other_access) {
  const std::string other =
      other_thread == kManyReaders ? std::string("other threads") : thread_name(other_thread);
  block.fail(fmt::format(
      "shared-memory race on {}: {} {} it here, but {} {} it in {} with no barrier between",
      describe_byte(block, tile, byte), thread_name(thread), access, other, other_access,
      block.statement_name(other_statement)));
}

void check_read(Block& block, TensorId tile, const ByteRange& range, int64_t thread) {
  const int64_t epoch = block.shared.epoch;
  for (int64_t byte = range.begin; byte < range.end; ++byte) {
    SharedByteHistory& history = block.shared.history[static_cast<size_t>(byte)];
    if (history.pending_copies > 0) fail_pending(block, tile, byte, history, "read");
    if (history.write_epoch == epoch && history.writer != thread) {
      fail_race(block, tile, byte, thread, "reads", history.writer, history.write_statement,
                "wrote");
    }
    if (history.read_epoch != epoch) {
      history.reader = thread;
      history.read_epoch = epoch;
      history.read_statement = block.current;
    } else if (history.reader != thread) {
      history.reader = kManyReaders;
    }
  }
}

// `issue`: the copy_async execution writing, or -1 for a plain write. The elements one thread
// copies in one copy_async may share bytes (sub-byte types); those are not hazards.
void check_write(const Block& block, TensorId tile, const ByteRange& range, int64_t thread,
                 int64_t issue = -1) {
  const int64_t epoch = block.shared.epoch;
  for (int64_t byte = range.begin; byte < range.end; ++byte) {
    const SharedByteHistory& history = block.shared.history[static_cast<size_t>(byte)];
    const bool same_copy =
        issue >= 0 && history.pending_issue == issue && history.pending_thread == thread;
    if (history.pending_copies > 0 && !same_copy) {
      fail_pending(block, tile, byte, history, "overwritten");
    }
    if (history.pending_dot_reads > 0) {
      block.fail(
          fmt::format("{} is overwritten while the async {} still reads it (wait_dots until it has "
                      "completed, then barrier)",
                      describe_byte(block, tile, byte), block.statement_name(history.pending_dot)));
    }
    if (history.write_epoch == epoch && history.writer != thread) {
      fail_race(block, tile, byte, thread, "writes", history.writer, history.write_statement,
                "wrote");
    }
    if (history.read_epoch == epoch && history.reader != thread) {
      fail_race(block, tile, byte, thread, "writes", history.reader, history.read_statement,
                "read");
    }
  }
}

void record_write(Block& block, const ByteRange& range, int64_t thread,
                  const Statement* statement) {
  for (int64_t byte = range.begin; byte < range.end; ++byte) {
    SharedByteHistory& history = block.shared.history[static_cast<size_t>(byte)];
    history.writer = thread;
    history.write_epoch = block.shared.epoch;
    history.write_statement = statement;
  }
}

}  // namespace

uint64_t read_shared(Block& block, TensorId tile, int64_t element, int64_t thread) {
  const ByteRange range = bytes_of(block, tile, element);
  check_read(block, tile, range, thread);
  return read_bits(block.shared.bytes.data(), range.first_bit, block.info(tile).type.dtype.bits());
}

uint64_t read_shared(Block& block, TensorId tile, int64_t element,
                     std::span<const int64_t> threads) {
  const ByteRange range = bytes_of(block, tile, element);
  for (int64_t thread : threads)
    check_read(block, tile, range, thread);
  return read_bits(block.shared.bytes.data(), range.first_bit, block.info(tile).type.dtype.bits());
}

uint64_t read_peer_shared(const Block& block, TensorId tile, int64_t element,
                          const SharedMemory& peer) {
  const ByteRange range = bytes_of(block, tile, element);
  return read_bits(peer.bytes.data(), range.first_bit, block.info(tile).type.dtype.bits());
}

void write_shared(Block& block, TensorId tile, int64_t element, uint64_t code, int64_t thread,
                  const Statement* statement) {
  const ByteRange range = bytes_of(block, tile, element);
  check_write(block, tile, range, thread);
  record_write(block, range, thread, statement);
  write_bits(block.shared.bytes.data(), range.first_bit, block.info(tile).type.dtype.bits(), code);
}

void queue_shared_write(Block& block, const AsyncWrite& write) {
  const ByteRange range = bytes_of(block, write.tile, write.element);
  // The copy may land at any moment from now on: it races with what other threads do to these
  // bytes in this epoch, before and after.
  check_write(block, write.tile, range, write.thread, write.issue);
  for (int64_t byte = range.begin; byte < range.end; ++byte) {
    SharedByteHistory& history = block.shared.history[static_cast<size_t>(byte)];
    ++history.pending_copies;
    history.pending_statement = write.statement;
    history.pending_issue = write.issue;
    history.pending_thread = write.thread;
  }
  block.open_group.push_back(write);
}

void complete_shared_write(Block& block, const AsyncWrite& write) {
  const ByteRange range = bytes_of(block, write.tile, write.element);
  for (int64_t byte = range.begin; byte < range.end; ++byte) {
    --block.shared.history[static_cast<size_t>(byte)].pending_copies;
  }
  record_write(block, range, write.thread, write.statement);
  write_bits(block.shared.bytes.data(), range.first_bit, block.info(write.tile).type.dtype.bits(),
             write.code);
}

void mark_dot_reads(Block& block, const Block::DotInFlight& dot) {
  for (int64_t element : dot.elements) {
    const ByteRange range = bytes_of(block, dot.tile, element);
    for (int64_t byte = range.begin; byte < range.end; ++byte) {
      SharedByteHistory& history = block.shared.history[static_cast<size_t>(byte)];
      ++history.pending_dot_reads;
      history.pending_dot = dot.statement;
    }
  }
}

void complete_dot_reads(Block& block, const Block::DotInFlight& dot) {
  for (int64_t element : dot.elements) {
    const ByteRange range = bytes_of(block, dot.tile, element);
    for (int64_t byte = range.begin; byte < range.end; ++byte) {
      SharedByteHistory& history = block.shared.history[static_cast<size_t>(byte)];
      --history.pending_dot_reads;
      history.reader = kManyReaders;
      history.read_epoch = block.shared.epoch;
      history.read_statement = dot.statement;
    }
  }
}

void forget_dot_reads(Block& block, const Block::DotInFlight& dot) {
  for (int64_t element : dot.elements) {
    const ByteRange range = bytes_of(block, dot.tile, element);
    for (int64_t byte = range.begin; byte < range.end; ++byte)
      --block.shared.history[static_cast<size_t>(byte)].pending_dot_reads;
  }
}

void forget_shared_write(Block& block, const AsyncWrite& write) {
  const ByteRange range = bytes_of(block, write.tile, write.element);
  for (int64_t byte = range.begin; byte < range.end; ++byte) {
    --block.shared.history[static_cast<size_t>(byte)].pending_copies;
  }
}

}  // namespace nibble::vm::interp
