// What print, bf16 atomics and the element-wise accesses of odd widths become in PTX, and the
// clear errors of what the GPU still leaves to the interpreter. (The GPU cases of cases.cpp run
// them against the interpreter; test_compile.cpp assembles every case for sm_80 and sm_90a.)
#include <catch2/catch.hpp>

#include <string>

#include "codegen/compile.h"
#include "frontend/cpp/kernel_builder.h"
#include "tests/codegen/cases.h"

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

TEST_CASE("atomic_add of bf16: atom.add.noftz.bf16 on sm_90a, compare-and-swap on sm_80",
          "[codegen][atomics]") {
  const vm::Program program = case_program("atomic_add_bf16");
  const std::string hopper = ptx_of(program, "sm_90a");
  CHECK(hopper.find("atom.global.add.noftz.bf16") != std::string::npos);
  const std::string ampere = ptx_of(program, "sm_80");
  CHECK(ampere.find("atom.global.cas") != std::string::npos);
  CHECK(ampere.find(".bf16") == std::string::npos);
}

TEST_CASE("element-wise shared loads of odd widths from a swizzled tile are refused clearly",
          "[codegen]") {
  dsl::KernelBuilder b("swizzled_odd_width");
  dsl::Pointer x = b.pointer("x", dsl::f32);
  dsl::Pointer y = b.pointer("y", dsl::f32);
  b.launch({1}, 4);
  const dtypes::DataType f6 = dtypes::DataType::parse("f6e3m2");
  dsl::Tensor tile = b.alloc_shared({16, 64}, f6, "tile", layout::Swizzle::bytes128());
  b.store_shared(tile, {0, 0}, b.cast(b.load(b.view(x, {16, 64}), {0, 0}, {16, 64}), f6));
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
