// Packing into the little-endian bit stream: layout facts and random round trips.
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "dtypes/dtype.h"
#include "dtypes/packing.h"

using namespace nibble::dtypes;

TEST_CASE("bit-stream order", "[dtypes][packing]") {
  const std::vector<uint64_t> nibbles = {0x1, 0x2, 0x3, 0xf, 0x5};
  const std::vector<uint8_t> bytes = pack(DataType::uint(4), nibbles);
  REQUIRE(bytes.size() == 3);
  CHECK(bytes[0] == 0x21);  // element 0 in the low bits of byte 0
  CHECK(bytes[1] == 0xf3);
  CHECK(bytes[2] == 0x05);  // unused high bits are zero
  const std::vector<uint64_t> triples = {0b101, 0b011, 0b111};
  const std::vector<uint8_t> packed3 = pack(DataType::uint(3), triples);
  REQUIRE(packed3.size() == 2);
  CHECK(packed3[0] == 0b11011101);  // 101 | 011<<3 | (low 2 bits of 111)<<6
  CHECK(packed3[1] == 0b1);         // the straddling element's top bit
}

TEST_CASE("pack/unpack round-trip random tensors, widths 1..8, odd lengths", "[dtypes][packing]") {
  std::mt19937_64 random(20261121);
  for (int bits = 1; bits <= 8; ++bits) {
    for (const DataType& type : {DataType::uint(bits), DataType::sint(bits)}) {
      for (size_t length : {1u, 3u, 7u, 31u, 33u, 127u, 1001u}) {
        std::vector<uint64_t> codes(length);
        for (uint64_t& code : codes)
          code = random() & type.bit_mask();
        const std::vector<uint8_t> bytes = pack(type, codes);
        REQUIRE(bytes.size() == (length * static_cast<size_t>(bits) + 7) / 8);
        REQUIRE(unpack(type, bytes, length) == codes);
        // Element-wise access agrees with the bulk form.
        for (size_t i = 0; i < length; ++i)
          REQUIRE(read_packed(type, bytes.data(), i) == codes[i]);
      }
    }
  }
}

TEST_CASE("write_packed leaves the neighbours alone", "[dtypes][packing]") {
  const DataType u5 = DataType::uint(5);
  std::vector<uint8_t> bytes(packed_size_bytes(u5, 8), 0xff);
  write_packed(u5, bytes.data(), 3, 0);
  for (size_t i = 0; i < 8; ++i)
    CHECK(read_packed(u5, bytes.data(), i) == (i == 3 ? 0u : 31u));
}

TEST_CASE("packing rejects what does not fit", "[dtypes][packing][errors]") {
  const std::vector<uint64_t> too_wide = {1, 2, 16};
  CHECK_THROWS_WITH(pack(DataType::uint(4), too_wide),
                    Catch::Contains("element 2") && Catch::Contains("wider than u4"));
  const std::vector<uint8_t> short_buffer(2);
  CHECK_THROWS_WITH(unpack(DataType::uint(4), short_buffer, 5),
                    Catch::Contains("5 elements of u4 need 3 bytes, got 2"));
}
