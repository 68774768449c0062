// The LLVM NVPTX backend is linked in, emits PTX in process, and ptxas accepts it.
#include <catch2/catch.hpp>

#include <string>

#include "codegen/errors.h"
#include "codegen/ptxas.h"
#include "codegen/smoke_kernel.h"
#include "codegen/target.h"

using namespace nibble::codegen;

TEST_CASE("targets parse and print", "[codegen][target]") {
  for (const Target& target : supported_targets()) {
    CHECK(Target::parse(target.name()) == target);
  }
  CHECK(Target::parse("sm_90a").has_wgmma());
  CHECK_FALSE(Target::parse("sm_80").has_wgmma());
  CHECK_THROWS_WITH(Target::parse("sm_75"), Catch::Contains("unknown target 'sm_75'") &&
                                                Catch::Contains("sm_80, sm_89, sm_90a"));
}

TEST_CASE("smoke kernel: LLVM IR -> PTX -> cubin", "[codegen][smoke]") {
  const std::string arch = GENERATE(std::string("sm_80"), std::string("sm_90a"));
  const Target target = Target::parse(arch);
  const SmokeKernel kernel = build_smoke_kernel(target);
  INFO(kernel.ptx);
  CHECK(kernel.llvm_ir.find("ptx_kernel") != std::string::npos);
  CHECK(kernel.ptx.find(".target " + arch) != std::string::npos);
  CHECK(kernel.ptx.find(".entry nibble_smoke_axpy") != std::string::npos);
  CHECK(kernel.ptx.find("ld.global.nc.f32") != std::string::npos);  // x is read-only, noalias
  CHECK(kernel.ptx.find("fma.rn.f32") != std::string::npos);

  REQUIRE(find_ptxas().has_value());
  const PtxasResult assembled = assemble_ptx(kernel.ptx, target, /*verbose=*/true);
  CHECK(assembled.cubin.size() > 64);
  // An ELF image.
  CHECK(assembled.cubin[0] == 0x7f);
  CHECK(assembled.cubin[1] == 'E');
  CHECK(assembled.log.find("nibble_smoke_axpy") != std::string::npos);
}

TEST_CASE("ptxas errors quote ptxas", "[codegen][smoke]") {
  REQUIRE(find_ptxas().has_value());
  const std::string broken =
      ".version 8.3\n.target sm_80\n.address_size 64\n"
      ".visible .entry broken() { bogus.instruction; }\n";
  CHECK_THROWS_WITH(
      assemble_ptx(broken, Target::parse("sm_80")),
      Catch::Contains("ptxas rejected the PTX for sm_80") && Catch::Contains("bogus"));
}
