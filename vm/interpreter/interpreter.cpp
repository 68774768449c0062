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
#include "vm/verifier.h"

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

  // Kernels with clusters run a cluster's blocks at once (ClusterContext): the block list holds
  // each cluster's blocks together, in rank order, and the workers take a cluster at a time.
  const std::array<int64_t, 3>& cluster = program.cluster;
  if (std::any_of(cluster.begin(), cluster.end(), [](int64_t c) { return c < 1; }) ||
      program.cluster_blocks() > kMaxClusterBlocks) {
    throw InterpreterError(
        fmt::format("interpret '{}': cluster ({}, {}, {}): each extent at least "
                    "1, at most {} blocks in all",
                    program.name, cluster[0], cluster[1], cluster[2], kMaxClusterBlocks));
  }
  const auto unit = static_cast<size_t>(program.cluster_blocks());
  for (size_t d = 0; d < 3; ++d) {
    if (plan.grid[d] % cluster[d] != 0) {
      throw InterpreterError(fmt::format(
          "interpret '{}': the grid ({}, {}, {}) is not a whole number of clusters ({}, {}, {})",
          program.name, plan.grid[0], plan.grid[1], plan.grid[2], cluster[0], cluster[1],
          cluster[2]));
    }
  }
  const auto cluster_of = [&](const BlockIndex& first) {
    std::vector<BlockIndex> members;
    for (int64_t z = 0; z < cluster[2]; ++z)
      for (int64_t y = 0; y < cluster[1]; ++y)
        for (int64_t x = 0; x < cluster[0]; ++x)
          members.push_back({first[0] + x, first[1] + y, first[2] + z});
    return members;
  };
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
    // With clusters, the block's whole cluster, which its cluster barriers wait for.
    blocks = cluster_of({only[0] - only[0] % cluster[0], only[1] - only[1] % cluster[1],
                         only[2] - only[2] % cluster[2]});
  } else {
    const int64_t count = plan.grid[0] * plan.grid[1] * plan.grid[2];
    blocks.reserve(static_cast<size_t>(count));
    const BlockIndex clusters = {plan.grid[0] / cluster[0], plan.grid[1] / cluster[1],
                                 plan.grid[2] / cluster[2]};
    for (int64_t linear = 0; linear < count / static_cast<int64_t>(unit); ++linear) {
      const BlockIndex c = block_at(clusters, linear);
      for (const BlockIndex& member :
           cluster_of({c[0] * cluster[0], c[1] * cluster[1], c[2] * cluster[2]}))
        blocks.push_back(member);
    }
  }

  // Blocks are taken in order; after a failure, later blocks are skipped but earlier ones still
  // run, so the reported error is that of the first failing block, as with one host thread.
  std::vector<BlockOutcome> outcomes(blocks.size());
  std::atomic<size_t> next{0};
  std::atomic<size_t> first_failure{std::numeric_limits<size_t>::max()};
  const auto record_failure = [&](size_t i) {
    if (!outcomes[i].error) outcomes[i].error = std::current_exception();
    size_t failed = first_failure.load();
    while (i < failed && !first_failure.compare_exchange_weak(failed, i)) {
    }
  };
  const auto new_shared = [&] {
    interp::SharedMemory shared;
    shared.bytes.resize(static_cast<size_t>(plan.shared_bytes));
    shared.history.resize(static_cast<size_t>(plan.shared_bytes));
    return shared;
  };
  const auto run_one = [&](size_t i, interp::SharedMemory& shared, interp::ClusterContext* context,
                           int64_t rank) {
    interp::Block block(plan, blocks[i], shared);
    block.cluster = context;
    block.cluster_rank = rank;
    try {
      interp::run_block(block);
    } catch (...) {
      record_failure(i);
    }
    // A block that ends (or fails) no longer holds its peers at their cluster barriers.
    if (context != nullptr) context->barrier.arrive_and_drop();
    try {
      if (options.shared_memory_probe) options.shared_memory_probe(blocks[i], shared.bytes);
    } catch (...) {
      record_failure(i);
    }
    outcomes[i].atomics = std::move(block.atomics);
    outcomes[i].printed = std::move(block.printed);
  };
  // The blocks of one cluster, each on a thread of its own; then every block must have passed
  // the same number of cluster barriers (on the GPU a block that leaves early hangs its peers).
  const auto run_cluster = [&](size_t first) {
    interp::ClusterContext context(static_cast<int64_t>(unit));
    std::vector<interp::SharedMemory> memories(unit);
    for (size_t r = 0; r < unit; ++r) {
      memories[r] = new_shared();
      context.shared[r] = &memories[r];
    }
    {
      std::vector<std::jthread> members;
      for (size_t r = 0; r < unit; ++r)
        members.emplace_back(run_one, first + r, std::ref(memories[r]), &context,
                             static_cast<int64_t>(r));
    }
    const auto [fewest, most] =
        std::minmax_element(context.barriers_passed.begin(), context.barriers_passed.end());
    if (*fewest != *most && first_failure.load() > first + unit) {
      const auto r = static_cast<size_t>(fewest - context.barriers_passed.begin());
      try {
        throw InterpreterError(
            fmt::format("interpret '{}': block ({}, {}, {}) passed {} cluster_barrier where its "
                        "cluster's blocks passed up to {}: every block must pass each one",
                        program.name, blocks[first + r][0], blocks[first + r][1],
                        blocks[first + r][2], *fewest, *most),
            "cluster_barrier", {}, blocks[first + r]);
      } catch (...) {
        record_failure(first + r);
      }
    }
  };
  const auto worker = [&] {
    interp::SharedMemory shared = new_shared();
    for (size_t u = next++; u * unit < blocks.size(); u = next++) {
      const size_t i = u * unit;
      if (i > first_failure.load()) continue;
      if (unit == 1) {
        run_one(i, shared, nullptr, 0);
      } else {
        run_cluster(i);
      }
    }
  };
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const auto thread_count = static_cast<size_t>(
      std::clamp<int64_t>(options.host_threads > 0 ? options.host_threads : hardware, 1,
                          std::max<int64_t>(1, static_cast<int64_t>(blocks.size() / unit))));
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
