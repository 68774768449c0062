// What print, bf16 atomics and the element-wise accesses of odd widths become in PTX, and the
// clear errors of what the GPU still leaves to the interpreter. (The GPU cases of cases.cpp run
// them against the interpreter; test_compile.cpp assembles every case for sm_80 and sm_90a.)
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "codegen/compile.h"
#include "dtypes/codec.h"
#include "dtypes/packing.h"
#include "frontend/cpp/kernel_builder.h"
#include "tests/codegen/cases.h"
#include "vm/interpreter.h"

namespace nibble {
namespace {

vm::Program case_program(const std::string& name) {
  for (const testing::CodegenCase& c : testing::codegen_cases()) {
    if (c.name == name) return c.program;
  }
  FAIL("no codegen case " << name);
  return {};
}

std::string ptx_of(const vm::Program& program, const char* target) {
  codegen::CompileOptions options;
  options.assemble = false;
  return codegen::compile(program, codegen::Target::parse(target), options).ptx;
}

// The GPU cases of these lowerings (and the older casts), run on the interpreter with random inputs
// the way the GPU test makes them (their GPU side runs in test_codegen_gpu).
TEST_CASE("the cases of casts into small floats, print, bf16 atomics and odd widths interpret",
          "[codegen][interpreter]") {
  std::mt19937_64 rng(7);
  int ran = 0;
  for (const testing::CodegenCase& c : testing::codegen_cases()) {
    const bool new_case = c.name.starts_with("cast_") || c.name.starts_with("store_tail_") ||
                          c.name.starts_with("shared_elements_") || c.name == "print_tile" ||
                          c.name.starts_with("atomic_add_") || c.name.starts_with("ew_add_f8") ||
                          c.name.starts_with("ew_mul_f8");
    if (!new_case) continue;
    INFO(c.name);
    std::vector<std::vector<uint8_t>> buffers;
    buffers.reserve(c.arguments.size());
    std::vector<vm::Argument> arguments;
    for (const testing::CaseArgument& argument : c.arguments) {
      if (const auto* spec = std::get_if<testing::BufferArgument>(&argument)) {
        std::vector<uint64_t> codes(static_cast<size_t>(spec->elements), spec->dtype.bit_mask());
        std::uniform_real_distribution<double> real(spec->lo, spec->hi);
        if (!spec->output) {
          for (uint64_t& code : codes) {
            code = spec->dtype.is_float()
                       ? dtypes::encode(spec->dtype, real(rng))
                       : static_cast<uint64_t>(static_cast<int64_t>(std::floor(real(rng)))) &
                             spec->dtype.bit_mask();
          }
        }
        buffers.push_back(dtypes::pack(spec->dtype, codes));
        arguments.push_back(vm::HostBuffer{buffers.back().data(), buffers.back().size()});
      } else {
        buffers.emplace_back();
        if (const auto* integer = std::get_if<int64_t>(&argument)) {
          arguments.push_back(*integer);
        } else {
          arguments.push_back(std::get<double>(argument));
        }
      }
    }
    std::ostringstream printed;
    vm::InterpreterOptions options;
    options.print_stream = &printed;
    CHECK_NOTHROW(vm::interpret(c.program, arguments, options));
    if (c.name == "print_tile") {
      CHECK(printed.str().find("block (1, 0, 0) tile: f32[1,8] [[") != std::string::npos);
    }
    ++ran;
  }
  CHECK(ran >= 20);
}

TEST_CASE("print calls vprintf with the interpreter's line start", "[codegen][print]") {
  for (const char* target : {"sm_80", "sm_90a"}) {
    INFO(target);
    const std::string ptx = ptx_of(case_program("print_tile"), target);
    CHECK(ptx.find(".extern .func  (.param .b32 func_retval0) vprintf") != std::string::npos);
    CHECK(ptx.find("call.uni (retval0)") != std::string::npos);
    CHECK(ptx.find("vprintf,") != std::string::npos);
    // The format strings, as bytes: "block (%d, %d, %d) tile[%d]: %g\n".
    CHECK(ptx.find("98, 108, 111, 99, 107, 32, 40, 37, 100") != std::string::npos);
  }
}

TEST_CASE("atomic_add is a red (no returned value to wait for); bf16 on sm_80 compare-and-swap",
          "[codegen][atomics]") {
  for (const char* target : {"sm_80", "sm_90a"}) {
    INFO(target);
    CHECK(ptx_of(case_program("atomic_add_f32"), target).find("red.global.add.f32") !=
          std::string::npos);
    CHECK(ptx_of(case_program("atomic_add_f16"), target).find("red.global.add.noftz.f16") !=
          std::string::npos);
    const std::string rows = ptx_of(case_program("atomic_add_rows"), target);
    CHECK(rows.find("red.global.add.u32") != std::string::npos);
    CHECK(rows.find("atom.global") == std::string::npos);
  }
  const vm::Program program = case_program("atomic_add_bf16");
  const std::string hopper = ptx_of(program, "sm_90a");
  CHECK(hopper.find("red.global.add.noftz.bf16") != std::string::npos);
  const std::string ampere = ptx_of(program, "sm_80");
  // A 32-bit compare-and-swap on the word that holds the element; the sum rounds from f32.
  CHECK(ampere.find("atom.global.cas.b32") != std::string::npos);
  CHECK(ampere.find("cvt.rn.bf16.f32") != std::string::npos);
  CHECK(ampere.find("noftz.bf16") == std::string::npos);
}

TEST_CASE("element-wise shared loads of odd widths from a swizzled tile are refused clearly",
          "[codegen]") {
  dsl::KernelBuilder b("swizzled_odd_width");
  const dtypes::DataType f6 = dtypes::DataType::parse("f6e3m2");
  dsl::Pointer x = b.pointer("x", f6);
  dsl::Pointer y = b.pointer("y", dsl::f32);
  b.launch({1}, 4);
  dsl::Tensor tile = b.alloc_shared({16, 64}, f6, "tile", layout::Swizzle::bytes128());
  b.copy_async(tile, {0, 0}, b.view(x, {16, 64}), {0, 0}, {16, 64}, "S[(16,64):(1@lane,1@reg)]");
  b.commit();
  b.wait(0);
  b.barrier();
  dsl::Tensor part = b.load_shared(tile, {0, 3}, {16, 32}, "part");
  b.store(b.view(y, {16, 32}), {0, 0}, b.cast(part, dsl::f32));
  const vm::Program program = b.finish();
  try {
    codegen::compile(program, codegen::Target::parse("sm_80"));
    FAIL("compiled");
  } catch (const codegen::CodegenError& error) {
    CHECK(std::string(error.what())
              .find("element-wise shared loads of f6e3m2 from a swizzled tile") !=
          std::string::npos);
  }
}

}  // namespace
}  // namespace nibble
