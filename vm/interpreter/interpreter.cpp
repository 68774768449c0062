// The grid: binding, placing, running blocks on a pool of host threads, and committing what the
// blocks buffered (atomics, print output) in block order so the result is the same for any
// number of host threads.
#include "vm/interpreter.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <iostream>
#include <limits>
#include <thread>

#include "vm/interpreter/execute.h"

namespace nibble::vm {
namespace {

struct BlockOutcome {
  std::vector<interp::AtomicUpdate> atomics;
  std::string printed;
  std::exception_ptr error;
};

BlockIndex block_at(const BlockIndex& grid, int64_t linear) {
  return {linear % grid[0], linear / grid[0] % grid[1], linear / (grid[0] * grid[1])};
}

}  // namespace

BlockIndex grid_of(const Program& program, std::span<const Argument> arguments) {
  interp::Plan plan;
  plan.program = &program;
  interp::bind_arguments(plan, arguments);
  return plan.grid;
}

void interpret(const Program& program, std::span<const Argument> arguments,
               const InterpreterOptions& options) {
  interp::Plan plan;
  plan.program = &program;
  plan.options = &options;
  interp::bind_arguments(plan, arguments);
  interp::place_tensors(plan);

  std::vector<BlockIndex> blocks;
  if (options.only_block) {
    const BlockIndex& only = *options.only_block;
    for (size_t d = 0; d < 3; ++d) {
      if (only[d] < 0 || only[d] >= plan.grid[d]) {
        throw InterpreterError(fmt::format(
            "interpret '{}': block ({}, {}, {}) is outside the "
            "grid ({}, {}, {})",
            program.name, only[0], only[1], only[2], plan.grid[0], plan.grid[1], plan.grid[2]));
      }
    }
    blocks.push_back(only);
  } else {
    const int64_t count = plan.grid[0] * plan.grid[1] * plan.grid[2];
    blocks.reserve(static_cast<size_t>(count));
    for (int64_t linear = 0; linear < count; ++linear) {
      blocks.push_back(block_at(plan.grid, linear));
    }
  }

  // Blocks are taken in order; after a failure, later blocks are skipped but earlier ones still
  // run, so the reported error is that of the first failing block, as with one host thread.
  std::vector<BlockOutcome> outcomes(blocks.size());
  std::atomic<size_t> next{0};
  std::atomic<size_t> first_failure{std::numeric_limits<size_t>::max()};
  const auto worker = [&] {
    interp::SharedMemory shared;
    shared.bytes.resize(static_cast<size_t>(plan.shared_bytes));
    shared.history.resize(static_cast<size_t>(plan.shared_bytes));
    for (size_t i = next++; i < blocks.size(); i = next++) {
      if (i > first_failure.load()) continue;
      const auto record_failure = [&] {
        if (!outcomes[i].error) outcomes[i].error = std::current_exception();
        size_t failed = first_failure.load();
        while (i < failed && !first_failure.compare_exchange_weak(failed, i)) {
        }
      };
      interp::Block block(plan, blocks[i], shared);
      try {
        interp::run_block(block);
      } catch (...) {
        record_failure();
      }
      try {
        if (options.shared_memory_probe) options.shared_memory_probe(blocks[i], shared.bytes);
      } catch (...) {
        record_failure();
      }
      outcomes[i].atomics = std::move(block.atomics);
      outcomes[i].printed = std::move(block.printed);
    }
  };
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto thread_count = static_cast<size_t>(
      std::clamp<int64_t>(options.host_threads > 0 ? options.host_threads : hardware, 1,
                          std::max<int64_t>(1, static_cast<int64_t>(blocks.size()))));
  if (thread_count == 1) {
    worker();
  } else {
    std::vector<std::jthread> pool;
    for (size_t t = 0; t < thread_count; ++t)
      pool.emplace_back(worker);
  }

  // Commit in block order, up to the first failing block (whose output is still shown).
  std::ostream& out = options.print_stream != nullptr ? *options.print_stream : std::cout;
  for (BlockOutcome& outcome : outcomes) {
    out << outcome.printed;
    if (outcome.error) {
      out.flush();
      std::rethrow_exception(outcome.error);
    }
    interp::apply_atomics(plan, outcome.atomics);
  }
  out.flush();
}

}  // namespace nibble::vm
