// Names of element types: every valid name round-trips, every invalid one says why.
#include <catch2/catch.hpp>

#include <string>

#include "dtypes/dtype.h"

using nibble::dtypes::DataType;
using nibble::dtypes::DTypeError;
using nibble::dtypes::Kind;

TEST_CASE("named types parse and print round-trip", "[dtypes][names]") {
  for (const DataType& type : nibble::dtypes::named_types()) {
    INFO(type.name());
    CHECK(DataType::parse(type.name()) == type);
  }
}

TEST_CASE("every small float split round-trips", "[dtypes][names]") {
  int count = 0;
  for (int exponent = 1; exponent <= 7; ++exponent) {
    for (int mantissa = 0; 1 + exponent + mantissa <= 8; ++mantissa) {
      if (1 + exponent + mantissa < 3) continue;
      const DataType type = DataType::floating(exponent, mantissa);
      INFO(type.name());
      CHECK(DataType::parse(type.name()) == type);
      CHECK(type.bits() == 1 + exponent + mantissa);
      ++count;
    }
  }
  CHECK(count == 27);
}

TEST_CASE("type facts", "[dtypes][names]") {
  const DataType e4m3 = DataType::parse("f8e4m3");
  CHECK(e4m3.is_float());
  CHECK(e4m3.bits() == 8);
  CHECK(e4m3.exponent_bias() == 7);
  CHECK(e4m3.has_nan());
  CHECK_FALSE(e4m3.has_inf());
  const DataType e5m2 = DataType::parse("f8e5m2");
  CHECK(e5m2.has_inf());
  CHECK(e5m2.has_nan());
  for (const char* finite_only : {"f4e2m1", "f6e3m2", "f6e2m3", "f8e3m4", "f3e1m1"}) {
    const DataType type = DataType::parse(finite_only);
    CHECK_FALSE(type.has_nan());
    CHECK_FALSE(type.has_inf());
  }
  CHECK(DataType::parse("bf16") == DataType::bf16());
  CHECK(DataType::parse("f16").mantissa_bits() == 10);
  CHECK(DataType::parse("i1").kind() == Kind::Int);
  CHECK(DataType::parse("u7").is_sub_byte());
  CHECK(DataType::parse("i64").bit_mask() == ~uint64_t{0});
}

TEST_CASE("bad names give a clear error", "[dtypes][names][errors]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(DataType::parse("f9e9m9"), Contains("'f9e9m9'") && Contains("3 to 8 bits"));
  CHECK_THROWS_WITH(DataType::parse("u0"), Contains("'u0'") && Contains("1..8, 16, 32"));
  CHECK_THROWS_WITH(DataType::parse("i65"), Contains("'i65'") && Contains("1..8, 16, 32, 64"));
  CHECK_THROWS_WITH(DataType::parse("u64"), Contains("'u64'"));
  CHECK_THROWS_WITH(DataType::parse("f6e3m3"),
                    Contains("'f6e3m3'") && Contains("1 sign + 3 exponent + 3 mantissa bits = 7"));
  CHECK_THROWS_WITH(DataType::parse("f8"), Contains("split"));
  CHECK_THROWS_WITH(DataType::parse("f4e0m3"), Contains("at least one exponent bit"));
  CHECK_THROWS_WITH(DataType::parse("x4"), Contains("starts with u, i, f or bf"));
  CHECK_THROWS_WITH(DataType::parse(""), Contains("empty"));
  CHECK_THROWS_WITH(DataType::parse("u4x"), Contains("'u4x'"));
  CHECK_THROWS_WITH(DataType::parse("f6e3m"), Contains("fNeXmY"));
  CHECK_THROWS_AS(DataType::parse("f2e1m0"), DTypeError);
}
