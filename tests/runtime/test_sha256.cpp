// SHA-256 against the FIPS 180-4 example vectors.
#include <catch2/catch.hpp>

#include <string>

#include "runtime/sha256.h"

using nibble::runtime::Sha256;
using nibble::runtime::sha256_hex;

TEST_CASE("sha256 known answers", "[runtime][sha256]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');
  CHECK(sha256_hex(million) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("sha256 incremental updates equal one update", "[runtime][sha256]") {
  const std::string text = "the quick brown fox jumps over the lazy dog, sixty-four bytes and more";
  for (size_t split = 0; split <= text.size(); ++split) {
    Sha256 hash;
    hash.update(std::string_view(text).substr(0, split));
    hash.update(std::string_view(text).substr(split));
    REQUIRE(hash.hex_digest() == sha256_hex(text));
  }
}
