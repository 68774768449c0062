// A dot whose b is a shared tile read in place (plain, transposed, async) and wait_dots: what it
// computes on the interpreter, what the verifier refuses, the hazards the interpreter reports,
// and the text form.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "tests/vm/interpreter_kernel.h"
#include "vm/equality.h"
#include "vm/parser.h"
#include "vm/printer.h"
#include "vm/verifier.h"

using namespace nibble::vm;
using namespace nibble::vm::interp_test;
using Catch::Contains;

namespace {

const DataType f16 = DataType::f16();
const DataType f32 = DataType::f32();
constexpr int64_t M = 16;
constexpr int64_t N = 8;
constexpr int64_t K = 16;

// C[M, N] += A[M, K] · B[K, N] with B given as B^T [N, K] (transposed) or as B [K, N], staged
// in a shared tile at row offset 8 (a tile of 8 + rows rows). The statements after the dot are
// the caller's (`finish`): it decides when to wait and what to touch.
struct SharedDotKernel {
  Kernel k{"shared_dot"};
  TensorId gc, ra, rc, tile, rb;
  std::vector<uint16_t> a_codes, b_codes;
  std::vector<float> c_values;

  SharedDotKernel(bool transposed, bool async) {
    const int pa = k.pointer("a", f16);
    const int pb = k.pointer("b", f16);
    const int pc = k.pointer("c", f32);
    const int64_t rows = transposed ? N : K;
    const int64_t columns = transposed ? K : N;
    const TensorId ga = k.global("ga", pa, {c(M), c(K)});
    const TensorId gb = k.global("gb", pb, {c(rows), c(columns)});
    gc = k.global("gc", pc, {c(M), c(N)});
    ra = k.registers("ra", f16, {M, K});
    rb = k.registers("rb", f16, {rows, columns});
    rc = k.registers("rc", f32, {M, N});
    tile = k.shared("tile", f16, {8 + rows, columns});
    k.add(LoadGlobal{ra, ga, at({0, 0}), 0.0});
    k.add(LoadGlobal{rb, gb, at({0, 0}), 0.0});
    k.add(StoreShared{tile, at({8, 0}), rb});
    k.add(Barrier{});
    k.add(LoadGlobal{rc, gc, at({0, 0}), 0.0});
    k.add(Dot{rc, ra, tile, at({8, 0}), transposed, async});

    std::mt19937 rng(7);
    std::uniform_real_distribution<double> value(-2, 2);
    for (int64_t i = 0; i < M * K; ++i)
      a_codes.push_back(f16_bits(value(rng)));
    for (int64_t i = 0; i < rows * columns; ++i)
      b_codes.push_back(f16_bits(value(rng)));
    for (int64_t i = 0; i < M * N; ++i)
      c_values.push_back(static_cast<float>(value(rng)));
  }

  // The dot's exact result: f32 fma in k order, as the interpreter documents.
  std::vector<float> expected(bool transposed) const {
    std::vector<float> result = c_values;
    for (int64_t m = 0; m < M; ++m) {
      for (int64_t n = 0; n < N; ++n) {
        float sum = c_values[static_cast<size_t>(m * N + n)];
        for (int64_t kk = 0; kk < K; ++kk) {
          const uint16_t bv = transposed ? b_codes[static_cast<size_t>(n * K + kk)]
                                         : b_codes[static_cast<size_t>(kk * N + n)];
          sum = std::fmaf(static_cast<float>(nibble::dtypes::decode(
                              f16, a_codes[static_cast<size_t>(m * K + kk)])),
                          static_cast<float>(nibble::dtypes::decode(f16, bv)), sum);
        }
        result[static_cast<size_t>(m * N + n)] = sum;
      }
    }
    return result;
  }

  std::vector<float> run_it() {
    std::vector<uint16_t> a_copy = a_codes, b_copy = b_codes;
    std::vector<float> out = c_values;
    run(k.program, {buffer_of(a_copy), buffer_of(b_copy), buffer_of(out)});
    return out;
  }

  std::string error_of() {
    try {
      run_it();
    } catch (const std::exception& error) {
      return error.what();
    }
    return "no error";
  }
};

}  // namespace

TEST_CASE("a dot reads b in place from a shared tile, plain or transposed", "[interpreter]") {
  for (const bool transposed : {false, true}) {
    for (const bool async : {false, true}) {
      INFO("transposed " << transposed << ", async " << async);
      SharedDotKernel s(transposed, async);
      if (async) s.k.add(WaitDots{0});
      s.k.add(StoreGlobal{s.gc, at({0, 0}), s.rc});
      CHECK(verify(s.k.program).empty());
      CHECK(s.run_it() == s.expected(transposed));
    }
  }
}

TEST_CASE("async dots queue on their accumulator and complete at wait_dots", "[interpreter]") {
  SharedDotKernel s(true, true);
  // A second async dot into the same accumulator without a wait between: it queues behind the
  // first (as wgmma does); one wait_dots completes both.
  s.k.add(Dot{s.rc, s.ra, s.tile, at({8, 0}), true, true});
  s.k.add(WaitDots{0});
  s.k.add(StoreGlobal{s.gc, at({0, 0}), s.rc});
  const std::vector<float> once = s.expected(true);
  SharedDotKernel twice(true, false);
  twice.c_values = once;  // the second product added to the first result
  CHECK(s.run_it() == twice.expected(true));
}

TEST_CASE("async dot hazards are errors that name the dot", "[interpreter][errors]") {
  {  // the accumulator read before the wait
    SharedDotKernel s(true, true);
    s.k.add(StoreGlobal{s.gc, at({0, 0}), s.rc});
    s.k.add(WaitDots{0});
    CHECK_THAT(s.error_of(), Contains("'rc' is the accumulator of an async dot still in flight: "
                                      "wait_dots until it has completed before reading it"));
  }
  {  // b's bytes overwritten while the dot reads them
    SharedDotKernel s(true, true);
    s.k.add(StoreShared{s.tile, at({8, 0}), s.rb});
    s.k.add(WaitDots{0});
    CHECK_THAT(s.error_of(), Contains("while the async dot"));
  }
  {  // overwritten after the wait by other threads, with no barrier
    SharedDotKernel s(true, true);
    s.k.add(WaitDots{0});
    s.k.add(StoreShared{s.tile, at({8, 0}), s.rb});
    CHECK_THAT(s.error_of(), Contains("shared-memory race"));
  }
  {  // the same with the barrier: fine
    SharedDotKernel s(true, true);
    s.k.add(WaitDots{0});
    s.k.add(Barrier{});
    s.k.add(StoreShared{s.tile, at({8, 0}), s.rb});
    s.k.add(StoreGlobal{s.gc, at({0, 0}), s.rc});
    CHECK(s.error_of() == "no error");
  }
  {  // never waited for
    SharedDotKernel s(true, true);
    CHECK_THAT(s.error_of(), Contains("the kernel ends with this async dot in flight"));
  }
  {  // a wait that leaves it in flight does not complete it
    SharedDotKernel s(true, true);
    s.k.add(WaitDots{1});
    s.k.add(StoreGlobal{s.gc, at({0, 0}), s.rc});
    CHECK_THAT(s.error_of(), Contains("still in flight"));
  }
}

TEST_CASE("verifier: a shared b, its offsets and async", "[vm][verifier][errors]") {
  auto errors_of = [](const Program& program) {
    std::string all;
    for (const Diagnostic& d : verify(program))
      all += format_diagnostic(program, d) + "\n";
    return all;
  };
  {
    SharedDotKernel s(true, false);
    std::get<Dot>(std::get<Instruction>(s.k.program.body.back().node)).b_offsets.clear();
    CHECK_THAT(errors_of(s.k.program), Contains("%tile is a shared tile; give the offsets"));
  }
  {
    SharedDotKernel s(true, false);
    s.k.add(Dot{s.rc, s.ra, s.rb, at({0, 0}), false, false});
    CHECK_THAT(errors_of(s.k.program), Contains("offsets are given for %rb, which is a register"));
  }
  {
    SharedDotKernel s(true, false);
    s.k.add(Dot{s.rc, s.ra, s.rb, {}, false, true});
    CHECK_THAT(errors_of(s.k.program), Contains("only a shared b can be read asynchronously"));
  }
  {
    SharedDotKernel s(true, false);
    s.k.add(Dot{s.rc, s.ra, s.tile, at({9, 0}), true, false});
    CHECK_THAT(errors_of(s.k.program), Contains("dot: dimension 0 covers [9, 17) of %tile"));
  }
  {
    SharedDotKernel s(true, false);
    s.k.add(WaitDots{-1});
    CHECK_THAT(errors_of(s.k.program), Contains("wait_dots: -1 pending dots is negative"));
  }
}

TEST_CASE("text: a shared b, transposed, async, and wait_dots round-trip", "[vm][text]") {
  SharedDotKernel s(true, true);
  s.k.add(WaitDots{1});
  const std::string text = print(s.k.program);
  CHECK_THAT(text, Contains("dot %rc, %ra, %tile[8, 0] transposed async"));
  CHECK_THAT(text, Contains("wait_dots 1"));
  const Program parsed = parse_program(text);
  CHECK(print(parsed) == text);
  // The parser numbers tensors in order of definition, the hand-built kernel did not: compare the
  // dot's own fields.
  const auto& dot =
      std::get<Dot>(std::get<Instruction>(parsed.body.at(parsed.body.size() - 2).node));
  CHECK(parsed.tensor(dot.b).name == "tile");
  CHECK(dot.b_offsets == at({8, 0}));
  CHECK(dot.b_transposed);
  CHECK(dot.async);
  CHECK(std::get<WaitDots>(std::get<Instruction>(parsed.body.back().node)).pending == 1);
}
