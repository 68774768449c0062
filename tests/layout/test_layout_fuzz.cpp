// Fuzzing the layout notation and the algebra with a seeded mutator (replayed in CI, bounded in
// time): every input either works or throws LayoutError — never a crash, a hang, or another
// exception — and whatever parses prints back to text that parses to the same layout.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "layout/algebra.h"
#include "layout/error.h"
#include "layout/layout.h"
#include "layout/swizzle.h"
#include "tests/layout/random_layouts.h"

using namespace nibble::layout;
using nibble::layout::testing::Random;

namespace {

const std::vector<std::string> kSeeds = {
    "S[(8,4,2):(4@lane,1@lane,1@reg)] + R[4:1@warp] + 16@smem",
    "S[(64,64):(64@smem,1@smem)]",
    "S[():()]",
    "S[32:1@lane]",
    "S[(2,8,2,4,2):(2@reg,4@lane,4@reg,1@lane,1@reg)]",
    "S[(4,8):(0@idx,1@lane)] + R[(2,2):(1@warp,2@warp)] + 3@reg",
};
const std::string kAlphabet = "S[]()R,:@+0123456789 lanewarpregsmemidx-*";

std::string mutate(std::string text, Random& random) {
  const int edits = 1 + static_cast<int>(random.below(4));
  for (int e = 0; e < edits; ++e) {
    const auto position =
        text.empty() ? 0 : static_cast<size_t>(random.below(static_cast<int64_t>(text.size())));
    switch (random.below(6)) {
      case 0:
        if (!text.empty()) text.erase(position, 1 + static_cast<size_t>(random.below(3)));
        break;
      case 1:
        text.insert(
            position, 1,
            kAlphabet[static_cast<size_t>(random.below(static_cast<int64_t>(kAlphabet.size())))]);
        break;
      case 2:
        text.insert(position, std::to_string(random.below(1000000000)));
        break;
      case 3:
        if (!text.empty())
          std::swap(text[position],
                    text[static_cast<size_t>(random.below(static_cast<int64_t>(text.size())))]);
        break;
      case 4:
        text = text.substr(0, position);
        break;
      default:
        text.insert(position, text.substr(position, static_cast<size_t>(random.below(8))));
    }
  }
  return text;
}

}  // namespace

TEST_CASE("fuzz: mutated layout text parses or fails cleanly", "[layout][fuzz]") {
  Random random(20261121);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  int parsed = 0, rejected = 0;
  for (int trial = 0; trial < 200000 && std::chrono::steady_clock::now() < deadline; ++trial) {
    const std::string text = mutate(kSeeds[static_cast<size_t>(trial) % kSeeds.size()], random);
    try {
      const Layout layout = Layout::parse(text);
      ++parsed;
      INFO(text << " -> " << layout.to_string());
      REQUIRE(Layout::parse(layout.to_string()) == layout);
    } catch (const LayoutError&) {
      ++rejected;
    }
  }
  CHECK(parsed > 0);
  CHECK(rejected > 0);
}

TEST_CASE("fuzz: random operation chains only throw LayoutError", "[layout][fuzz]") {
  Random random(7);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  int succeeded = 0;
  for (int trial = 0; trial < 50000 && std::chrono::steady_clock::now() < deadline; ++trial) {
    Layout a = nibble::layout::testing::random_layout(random);
    const Layout b = nibble::layout::testing::random_layout(random);
    try {
      for (int step = 0; step < 4; ++step) {
        switch (random.below(9)) {
          case 0:
            a = canonicalize(a);
            break;
          case 1:
            a = tile(a, b);
            break;
          case 2:
            a = divide(a, b);
            break;
          case 3:
            a = divide_outer(a, b);
            break;
          case 4:
            a = compose(a, b);
            break;
          case 5:
            a = complement(a);
            break;
          case 6:
            a = storage(a);
            break;
          case 7:
            a = pack(a, 1 + random.below(4), Axis::reg());
            break;
          default:
            a = unpack(a, 1 + random.below(4), Axis::smem());
            break;
        }
        if (a.size() > (1 << 16)) break;  // keep each trial small
      }
      ++succeeded;
    } catch (const LayoutError&) {
    }
  }
  CHECK(succeeded > 0);
}
