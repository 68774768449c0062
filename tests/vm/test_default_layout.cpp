// The default register layout: documented examples, every thread holds data, and no two
// elements share a register slot of a thread.
#include <catch2/catch.hpp>

#include <map>
#include <set>

#include "layout/algebra.h"
#include "layout/layout.h"
#include "layout/queries.h"
#include "vm/default_layout.h"

using namespace nibble;
using dtypes::DataType;

TEST_CASE("default register layouts: documented examples", "[vm][layout]") {
  CHECK(vm::default_register_layout({8, 128}, DataType::f32(), 4) ==
        layout::Layout::parse("S[(2,4,32,4):(4@reg,1@warp,1@lane,1@reg)]"));
  CHECK(vm::default_register_layout({1, 64}, DataType::f32(), 4) ==
        layout::Layout::parse(
            "S[(1,1,16,4):(4@reg,1@warp,1@lane,1@reg)] + R[(2,4):(16@lane,1@warp)]"));
}

TEST_CASE("default register layouts place every element once per thread", "[vm][layout]") {
  for (const layout::Shape& shape :
       std::vector<layout::Shape>{{1}, {3, 5}, {16, 8}, {64, 64}, {1, 4096}, {7}}) {
    for (const char* type_name : {"f32", "f16", "u4", "i8"}) {
      for (int warps : {1, 2, 4, 8}) {
        const DataType dtype = DataType::parse(type_name);
        const layout::Layout l = vm::default_register_layout(shape, dtype, warps);
        INFO(l.to_string() << " for " << layout::shape_to_string(shape) << " " << type_name);
        REQUIRE(l.size() == layout::shape_size(shape));
        std::set<int64_t> threads;
        std::map<std::pair<int64_t, int64_t>, int64_t> slot_owner;  // (thread, reg) -> element
        for (int64_t x = 0; x < l.size(); ++x) {
          for (const layout::Coord& place : l.apply(x)) {
            const int64_t thread = layout::thread_of(place);
            REQUIRE(thread < 32 * warps);
            threads.insert(thread);
            auto [it, inserted] =
                slot_owner.emplace(std::pair{thread, place.get(layout::Axis::reg())}, x);
            REQUIRE((inserted || it->second == x));
          }
        }
        CHECK(static_cast<int>(threads.size()) == 32 * warps);
      }
    }
  }
}
