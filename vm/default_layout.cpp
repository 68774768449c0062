#include "vm/default_layout.h"

#include <numeric>
#include <vector>

namespace nibble::vm {

layout::Layout default_register_layout(const layout::Shape& shape, dtypes::DataType dtype,
                                       int warps) {
  using layout::Axis;
  using layout::Iter;
  const int64_t size = layout::shape_size(shape);
  const int64_t vector = std::gcd(size, std::max<int64_t>(1, 128 / dtype.bits()));
  int64_t remaining = size / vector;
  const int64_t lanes = std::gcd(remaining, int64_t{32});
  remaining /= lanes;
  const int64_t warps_used = std::gcd(remaining, static_cast<int64_t>(warps));
  remaining /= warps_used;

  std::vector<Iter> shard = {{remaining, vector, Axis::reg()},
                             {warps_used, 1, Axis::warp()},
                             {lanes, 1, Axis::lane()},
                             {vector, 1, Axis::reg()}};
  std::vector<Iter> replica;
  if (lanes < 32) replica.push_back({32 / lanes, lanes, Axis::lane()});
  if (warps_used < warps) replica.push_back({warps / warps_used, warps_used, Axis::warp()});
  return layout::Layout(std::move(shard), std::move(replica));
}

}  // namespace nibble::vm
