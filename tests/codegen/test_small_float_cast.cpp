// Casts into floats of at most 8 bits as the GPU computes them (the emitter's IR, folded on
// constant operands: codegen/small_float_cast.h) against the interpreter's dtypes::encode: every
// code of the 8- and 16-bit sources; random, tie and near-tie codes of f32, f64 and the wide
// integers. A NaN bound for a type without NaN is an interpreter error, so those are skipped.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <optional>
#include <random>
#include <vector>

#include "codegen/small_float_cast.h"
#include "dtypes/codec.h"

namespace nibble {
namespace {

using dtypes::DataType;

const std::vector<DataType>& small_float_targets() {
  static const std::vector<DataType> targets = {
      DataType::parse("f8e4m3"), DataType::parse("f8e5m2"), DataType::parse("f6e3m2"),
      DataType::parse("f6e2m3"), DataType::parse("f4e2m1"), DataType::floating(2, 2),
      DataType::floating(7, 0),  DataType::floating(6, 1),  DataType::floating(1, 1),
      DataType::floating(3, 4),  DataType::floating(1, 6),  DataType::floating(4, 0)};
  return targets;
}

std::optional<uint64_t> interpreter_cast(DataType from, uint64_t code, DataType to) {
  const double value = dtypes::decode(from, code);
  if (std::isnan(value) && !to.has_nan()) return std::nullopt;
  return dtypes::encode(to, value);
}

void check_codes(DataType from, const std::vector<uint64_t>& codes, DataType to) {
  const std::vector<uint64_t> gpu = codegen::fold_cast_into_small_float(from, codes, to);
  REQUIRE(gpu.size() == codes.size());
  int64_t mismatches = 0;
  for (size_t i = 0; i < codes.size(); ++i) {
    const std::optional<uint64_t> want = interpreter_cast(from, codes[i], to);
    if (!want || *want == gpu[i]) continue;
    if (mismatches++ < 8) {
      UNSCOPED_INFO(fmt::format("{} {:#x} ({}) -> {}: interpreter {:#x}, gpu {:#x}", from.name(),
                                codes[i], dtypes::decode(from, codes[i]), to.name(), *want,
                                gpu[i]));
    }
  }
  INFO(from.name() << " -> " << to.name() << ": " << mismatches << " of " << codes.size()
                   << " codes differ");
  CHECK(mismatches == 0);
}

std::vector<uint64_t> every_code(DataType type) {
  std::vector<uint64_t> codes(size_t{1} << type.bits());
  for (size_t i = 0; i < codes.size(); ++i)
    codes[i] = i;
  return codes;
}

// The midpoints between neighbouring values of `to` (ties), one ulp of `from` either side, and
// the values themselves, as codes of `from` (f32 or f64), both signs.
std::vector<uint64_t> tie_codes(DataType from, DataType to) {
  std::vector<uint64_t> codes;
  auto add = [&](double value) {
    for (double signed_value : {value, -value}) {
      if (from == DataType::f32()) {
        const auto f = static_cast<float>(signed_value);
        for (float x : {f, std::nextafter(f, 0.0f), std::nextafter(f, INFINITY)})
          codes.push_back(std::bit_cast<uint32_t>(x));
      } else {
        for (double x : {signed_value, std::nextafter(signed_value, 0.0),
                         std::nextafter(signed_value, INFINITY)})
          codes.push_back(std::bit_cast<uint64_t>(x));
      }
    }
  };
  const uint64_t magnitudes = uint64_t{1} << (to.bits() - 1);
  for (uint64_t code = 0; code + 1 < magnitudes; ++code) {
    const double low = dtypes::decode(to, code);
    const double high = dtypes::decode(to, code + 1);
    if (!std::isfinite(low) || !std::isfinite(high)) continue;
    add(low);
    add((low + high) / 2);
  }
  const double largest = dtypes::largest_finite(to);
  const double ulp = largest - dtypes::decode(to, dtypes::encode(to, largest) - 1);
  add(largest + ulp / 2);  // the overflow boundary
  add(largest + ulp);
  add(dtypes::smallest_positive(to) / 2);
  add(dtypes::smallest_positive(to) / 4);
  return codes;
}

std::vector<uint64_t> random_codes(DataType from, size_t count, std::mt19937_64& rng) {
  std::vector<uint64_t> codes(count);
  for (uint64_t& code : codes)
    code = rng() & from.bit_mask();
  return codes;
}

TEST_CASE("casts into small floats: every code of the narrow and 16-bit sources",
          "[codegen][casts]") {
  const std::vector<DataType> sources = {
      DataType::f16(),           DataType::bf16(),          DataType::parse("f8e4m3"),
      DataType::parse("f8e5m2"), DataType::parse("f4e2m1"), DataType::floating(7, 0),
      DataType::uint(8),         DataType::sint(8),         DataType::sint(4),
      DataType::uint(1),         DataType::sint(16)};
  for (const DataType& to : small_float_targets()) {
    for (const DataType& from : sources) {
      if (from == to) continue;
      check_codes(from, every_code(from), to);
    }
  }
}

TEST_CASE("casts into small floats: f32, f64 and wide integers at ties, bounds and random codes",
          "[codegen][casts]") {
  std::mt19937_64 rng(20261121);
  for (const DataType& to : small_float_targets()) {
    for (const DataType& from : {DataType::f32(), DataType::f64()}) {
      check_codes(from, tie_codes(from, to), to);
      check_codes(from, random_codes(from, 20000, rng), to);
    }
    std::vector<uint64_t> specials;
    for (float x : {0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-40f, -1e-45f, 3e38f})
      specials.push_back(std::bit_cast<uint32_t>(x));
    check_codes(DataType::f32(), specials, to);
    for (const DataType& from : {DataType::sint(32), DataType::uint(32), DataType::sint(64)}) {
      std::vector<uint64_t> codes = random_codes(from, 2000, rng);
      // Small magnitudes too, where the results are not all saturated.
      for (int i = 0; i < 2000; ++i)
        codes.push_back(static_cast<uint64_t>(static_cast<int64_t>(rng() % 2001) - 1000) &
                        from.bit_mask());
      check_codes(from, codes, to);
    }
  }
}

}  // namespace
}  // namespace nibble
