#include "layout/algebra.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "layout/error.h"

namespace nibble::layout {
namespace {

std::string iter_string(const Iter& iter) {
  return fmt::format("{}:{}@{}", iter.extent, iter.stride, iter.axis.name());
}

std::vector<Iter> concat(const std::vector<Iter>& a, const std::vector<Iter>& b) {
  std::vector<Iter> result = a;
  result.insert(result.end(), b.begin(), b.end());
  return result;
}

std::vector<Iter> canonical_shard(const std::vector<Iter>& iters) {
  std::vector<Iter> result;
  for (Iter iter : iters) {
    if (iter.extent == 1) continue;
    if (iter.stride == 0) iter.axis = Axis::idx();
    if (!result.empty()) {
      Iter& outer = result.back();
      if (outer.axis == iter.axis && outer.stride == iter.stride * iter.extent) {
        outer = Iter{outer.extent * iter.extent, iter.stride, iter.axis};
        continue;
      }
    }
    result.push_back(iter);
  }
  return result;
}

std::vector<Iter> canonical_replica(const std::vector<Iter>& iters) {
  std::vector<Iter> sorted;
  for (const Iter& iter : iters) {
    if (iter.extent > 1 && iter.stride > 0) sorted.push_back(iter);
  }
  std::sort(sorted.begin(), sorted.end(), [](const Iter& a, const Iter& b) {
    if (a.axis != b.axis) return a.axis < b.axis;
    if (a.stride != b.stride) return a.stride > b.stride;
    return a.extent > b.extent;
  });
  return canonical_shard(sorted);
}

Coord subtract(const Coord& a, const Coord& b, const char* op) {
  Coord result = a;
  for (const auto& [axis, value] : b.entries()) {
    if (a.get(axis) < value) {
      throw LayoutError(fmt::format("{}: offset {}@{} of the whole is smaller than the part's {}",
                                    op, a.get(axis), axis.name(), value));
    }
    result.add(axis, -value);
  }
  return result;
}

// Splits `iters` (row-major, outermost first) into groups with the products of `shape`.
std::optional<std::vector<std::vector<Iter>>> split_by_shape(const std::vector<Iter>& input,
                                                             const Shape& shape, std::string* why) {
  std::vector<Iter> iters;
  for (const Iter& iter : input) {
    if (iter.extent > 1) iters.push_back(iter);
  }
  std::vector<std::vector<Iter>> result(shape.size());
  ptrdiff_t next = static_cast<ptrdiff_t>(iters.size()) - 1;
  for (size_t d = shape.size(); d-- > 0;) {
    int64_t need = shape[d];
    std::vector<Iter> dim;
    while (need > 1) {
      if (next < 0) {
        *why = fmt::format("the iters run out before dimension {} (extent {})", d, shape[d]);
        return std::nullopt;
      }
      Iter& iter = iters[static_cast<size_t>(next)];
      if (iter.extent <= need) {
        if (need % iter.extent != 0) {
          *why = fmt::format("dimension {} (extent {}) ends inside iter {}", d, shape[d],
                             iter_string(iter));
          return std::nullopt;
        }
        dim.push_back(iter);
        need /= iter.extent;
        --next;
      } else {
        if (iter.extent % need != 0) {
          *why = fmt::format("dimension {} (extent {}) ends inside iter {}", d, shape[d],
                             iter_string(iter));
          return std::nullopt;
        }
        dim.push_back(Iter{need, iter.stride, iter.axis});
        iter = Iter{iter.extent / need, iter.stride * need, iter.axis};
        need = 1;
      }
    }
    std::reverse(dim.begin(), dim.end());
    result[d] = std::move(dim);
  }
  return result;
}

void check_shape(const Layout& layout, const Shape& shape, const char* op) {
  int64_t size = shape_size(shape);
  if (size != layout.size()) {
    throw LayoutError(fmt::format("{}: shape {} has {} elements but {} has {}", op,
                                  shape_to_string(shape), size, layout.to_string(), layout.size()));
  }
}

std::vector<std::vector<Iter>> dims_of(const Layout& layout, const Shape& shape, const char* op) {
  check_shape(layout, shape, op);
  std::string why;
  auto dims = split_by_shape(layout.shard(), shape, &why);
  if (!dims) {
    throw LayoutError(fmt::format("{}: {} cannot be grouped by shape {}: {}", op,
                                  layout.to_string(), shape_to_string(shape), why));
  }
  return *dims;
}

Coord scaled_offset(const Coord& offset, const std::map<Axis, int64_t>& factors) {
  Coord result;
  for (const auto& [axis, value] : offset.entries()) {
    auto it = factors.find(axis);
    result.add(axis, value * (it == factors.end() ? 1 : it->second));
  }
  return result;
}

std::vector<Iter> scaled_iters(std::vector<Iter> iters, const std::map<Axis, int64_t>& factors) {
  for (Iter& iter : iters) {
    auto it = factors.find(iter.axis);
    if (it != factors.end()) iter.stride *= it->second;
  }
  return iters;
}

// The tile's spans on the axes of `outer`: the factors tile() multiplies outer by.
std::map<Axis, int64_t> tile_factors(const Layout& outer, const Layout& inner) {
  std::map<Axis, int64_t> factors;
  for (Axis axis : outer.axes())
    factors[axis] = inner.span(axis);
  return factors;
}

// Removes the iters of `part` (canonical) from the inner end of `whole` (canonical), splitting
// whole's iters where needed; returns what is left (the outer part), or the reason it fails.
std::optional<std::vector<Iter>> peel_suffix(std::vector<Iter> whole, const std::vector<Iter>& part,
                                             std::string* why) {
  for (size_t i = part.size(); i-- > 0;) {
    const Iter& want = part[i];
    if (whole.empty()) {
      *why = fmt::format("the tile's iter {} has nothing left to match", iter_string(want));
      return std::nullopt;
    }
    Iter& have = whole.back();
    if (have.axis != want.axis || have.stride != want.stride) {
      *why = fmt::format("the tile's iter {} does not match iter {} of the whole",
                         iter_string(want), iter_string(have));
      return std::nullopt;
    }
    if (have.extent % want.extent != 0) {
      *why = fmt::format("extent {} of the tile's iter {} does not divide extent {} of {}",
                         want.extent, iter_string(want), have.extent, iter_string(have));
      return std::nullopt;
    }
    if (have.extent == want.extent) {
      whole.pop_back();
    } else {
      have = Iter{have.extent / want.extent, have.stride * want.extent, have.axis};
    }
  }
  return whole;
}

// Removes the replica iters of `part` from `whole` (both canonical). A wanted iter may be the
// low part (same stride) or the high part (stride of the upper steps) of a merged iter.
std::optional<std::vector<Iter>> peel_replica(std::vector<Iter> whole, std::vector<Iter> part,
                                              std::string* why) {
  std::sort(part.begin(), part.end(), [](const Iter& a, const Iter& b) {
    if (a.axis != b.axis) return a.axis < b.axis;
    return a.stride < b.stride;
  });
  for (const Iter& want : part) {
    auto it = std::find_if(whole.begin(), whole.end(), [&](const Iter& have) {
      return have.axis == want.axis && have.extent % want.extent == 0 &&
             (have.stride == want.stride ||
              have.stride * (have.extent / want.extent) == want.stride);
    });
    if (it == whole.end()) {
      *why =
          fmt::format("replica iter {} is not part of the replica of the whole", iter_string(want));
      return std::nullopt;
    }
    const int64_t rest = it->extent / want.extent;
    const int64_t low_stride = it->stride == want.stride ? want.stride * want.extent : it->stride;
    if (rest == 1) {
      whole.erase(it);
    } else {
      *it = Iter{rest, low_stride, want.axis};
    }
  }
  return whole;
}

Shape quotient_shape(const Shape& whole, const Shape& part, const char* op) {
  if (whole.size() != part.size()) {
    throw LayoutError(fmt::format("{}: shapes {} and {} have different ranks", op,
                                  shape_to_string(whole), shape_to_string(part)));
  }
  Shape result(whole.size());
  for (size_t d = 0; d < whole.size(); ++d) {
    if (part[d] < 1 || whole[d] % part[d] != 0) {
      throw LayoutError(
          fmt::format("{}: extent {} does not divide extent {} of dimension {} ({} "
                      "into {})",
                      op, part[d], whole[d], d, shape_to_string(part), shape_to_string(whole)));
    }
    result[d] = whole[d] / part[d];
  }
  return result;
}

}  // namespace

// ---- Normal form ----------------------------------------------------------------------------

Layout canonicalize(const Layout& layout) {
  return Layout(canonical_shard(layout.shard()), canonical_replica(layout.replica()),
                layout.offset());
}

bool same_function(const Layout& a, const Layout& b, int64_t limit) {
  if (a.size() != b.size()) return false;
  if (a.size() * std::max(a.replication(), b.replication()) > limit) {
    throw LayoutError(
        fmt::format("same_function: {} is too large to compare exhaustively", a.to_string()));
  }
  for (int64_t x = 0; x < a.size(); ++x) {
    if (a.apply(x) != b.apply(x)) return false;
  }
  return true;
}

// ---- Shapes ---------------------------------------------------------------------------------

std::vector<std::vector<Iter>> group(const Layout& layout, const Shape& shape) {
  return dims_of(layout, shape, "group");
}

Layout reshape(const Layout& layout, const Shape& shape) {
  check_shape(layout, shape, "reshape");
  std::string why;
  auto dims = split_by_shape(canonical_shard(layout.shard()), shape, &why);
  if (!dims) return layout;  // the same function; its iters just do not show the dimensions
  std::vector<Iter> shard;
  for (const auto& dim : *dims)
    shard.insert(shard.end(), dim.begin(), dim.end());
  return Layout(std::move(shard), layout.replica(), layout.offset());
}

Layout slice(const Layout& layout, const Shape& shape, size_t dim, int64_t begin, int64_t end) {
  if (dim >= shape.size()) {
    throw LayoutError(
        fmt::format("slice: dimension {} does not exist in shape {}", dim, shape_to_string(shape)));
  }
  if (begin < 0 || end <= begin || end > shape[dim]) {
    throw LayoutError(
        fmt::format("slice: [{}, {}) is not a non-empty range inside [0, {}) of "
                    "dimension {}",
                    begin, end, shape[dim], dim));
  }
  auto dims = dims_of(layout, shape, "slice");
  Layout range({Iter{end - begin, 1, Axis::idx()}}, {}, Coord{{Axis::idx(), begin}});
  Layout part;
  try {
    part = compose(Layout(dims[dim]), range);
  } catch (const LayoutError& error) {
    throw LayoutError(fmt::format("slice: [{}, {}) of dimension {} of {} is not a layout: {}",
                                  begin, end, dim, layout.to_string(), error.what()));
  }
  std::vector<Iter> shard;
  for (size_t d = 0; d < dims.size(); ++d) {
    const std::vector<Iter>& iters = d == dim ? part.shard() : dims[d];
    shard.insert(shard.end(), iters.begin(), iters.end());
  }
  return Layout(std::move(shard), layout.replica(), layout.offset() + part.offset());
}

Layout permute(const Layout& layout, const Shape& shape, const std::vector<size_t>& perm) {
  std::vector<size_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (sorted.size() != shape.size() || sorted[i] != i) {
      throw LayoutError(fmt::format("permute: ({}) is not a permutation of the {} dimensions of {}",
                                    fmt::join(perm, ","), shape.size(), shape_to_string(shape)));
    }
  }
  auto dims = dims_of(layout, shape, "permute");
  std::vector<Iter> shard;
  for (size_t d : perm)
    shard.insert(shard.end(), dims[d].begin(), dims[d].end());
  return Layout(std::move(shard), layout.replica(), layout.offset());
}

// ---- Products and quotients -----------------------------------------------------------------

Layout scale(const Layout& layout, const std::vector<std::pair<Axis, int64_t>>& factors) {
  std::map<Axis, int64_t> map(factors.begin(), factors.end());
  for (const auto& [axis, factor] : factors) {
    if (factor < 0) {
      throw LayoutError(fmt::format("scale: factor {} for {} is negative", factor, axis.name()));
    }
  }
  return Layout(scaled_iters(layout.shard(), map), scaled_iters(layout.replica(), map),
                scaled_offset(layout.offset(), map));
}

Layout direct_sum(const Layout& outer, const Shape& outer_shape, const Layout& inner,
                  const Shape& inner_shape) {
  if (outer_shape.size() != inner_shape.size()) {
    throw LayoutError(fmt::format("direct_sum: shapes {} and {} have different ranks",
                                  shape_to_string(outer_shape), shape_to_string(inner_shape)));
  }
  auto outer_dims = dims_of(outer, outer_shape, "direct_sum");
  auto inner_dims = dims_of(inner, inner_shape, "direct_sum");
  std::vector<Iter> shard;
  for (size_t d = 0; d < outer_dims.size(); ++d) {
    shard.insert(shard.end(), outer_dims[d].begin(), outer_dims[d].end());
    shard.insert(shard.end(), inner_dims[d].begin(), inner_dims[d].end());
  }
  return Layout(std::move(shard), concat(outer.replica(), inner.replica()),
                outer.offset() + inner.offset());
}

Layout direct_sum(const Layout& outer, const Layout& inner) {
  return direct_sum(outer, {outer.size()}, inner, {inner.size()});
}

Layout tile(const Layout& outer, const Shape& outer_shape, const Layout& inner,
            const Shape& inner_shape) {
  check_shape(outer, outer_shape, "tile");
  check_shape(inner, inner_shape, "tile");
  std::map<Axis, int64_t> factors = tile_factors(outer, inner);
  Layout scaled(scaled_iters(outer.shard(), factors), scaled_iters(outer.replica(), factors),
                scaled_offset(outer.offset(), factors));
  return direct_sum(scaled, outer_shape, inner, inner_shape);
}

Layout tile(const Layout& outer, const Layout& inner) {
  return tile(outer, {outer.size()}, inner, {inner.size()});
}

Layout divide(const Layout& whole_in, const Shape& whole_shape, const Layout& inner_in,
              const Shape& inner_shape) {
  Shape outer_shape = quotient_shape(whole_shape, inner_shape, "divide");
  Layout whole = canonicalize(whole_in);
  Layout inner = canonicalize(inner_in);
  auto whole_dims = dims_of(whole, whole_shape, "divide");
  auto inner_dims = dims_of(inner, inner_shape, "divide");
  auto fail = [&](const std::string& why) -> LayoutError {
    return LayoutError(fmt::format("divide: {} is not a tile of {}: {}", inner_in.to_string(),
                                   whole_in.to_string(), why));
  };
  std::vector<Iter> outer_shard;
  for (size_t d = 0; d < whole_dims.size(); ++d) {
    std::string why;
    auto rest = peel_suffix(canonical_shard(whole_dims[d]), canonical_shard(inner_dims[d]), &why);
    if (!rest) throw fail(fmt::format("in dimension {}, {}", d, why));
    outer_shard.insert(outer_shard.end(), rest->begin(), rest->end());
  }
  std::string why;
  auto outer_replica = peel_replica(whole.replica(), inner.replica(), &why);
  if (!outer_replica) throw fail(why);
  Coord outer_offset = subtract(whole.offset(), inner.offset(), "divide");

  // Undo the scaling of tile(): every outer step on an axis is a multiple of the tile's span.
  auto unscale = [&](int64_t value, Axis axis, const char* what) {
    int64_t span = inner.span(axis);
    if (value % span != 0) {
      throw fail(fmt::format("{} {}@{} of the outer part is not a multiple of the tile's span {}",
                             what, value, axis.name(), span));
    }
    return value / span;
  };
  for (Iter& iter : outer_shard)
    iter.stride = unscale(iter.stride, iter.axis, "stride");
  for (Iter& iter : *outer_replica)
    iter.stride = unscale(iter.stride, iter.axis, "stride");
  Coord offset;
  for (const auto& [axis, value] : outer_offset.entries()) {
    offset.add(axis, unscale(value, axis, "offset"));
  }
  return Layout(std::move(outer_shard), std::move(*outer_replica), std::move(offset));
}

Layout divide(const Layout& whole, const Layout& inner) {
  if (inner.size() < 1 || whole.size() % inner.size() != 0) {
    throw LayoutError(fmt::format("divide: size {} of {} does not divide size {} of {}",
                                  inner.size(), inner.to_string(), whole.size(),
                                  whole.to_string()));
  }
  return divide(whole, {whole.size()}, inner, {inner.size()});
}

Layout divide_outer(const Layout& whole_in, const Shape& whole_shape, const Layout& outer_in,
                    const Shape& outer_shape) {
  Shape inner_shape = quotient_shape(whole_shape, outer_shape, "divide_outer");
  Layout whole = canonicalize(whole_in);
  Layout outer = canonicalize(outer_in);
  auto whole_dims = dims_of(whole, whole_shape, "divide_outer");
  auto outer_dims = dims_of(outer, outer_shape, "divide_outer");
  auto fail = [&](const std::string& why) -> LayoutError {
    return LayoutError(fmt::format("divide_outer: {} is not the outer factor of {}: {}",
                                   outer_in.to_string(), whole_in.to_string(), why));
  };

  // Split each dimension of the whole into the scaled outer part and the inner part, and read
  // the scale of each axis off the outer part's strides.
  std::map<Axis, int64_t> factors;
  std::vector<Iter> inner_shard;
  for (size_t d = 0; d < whole_dims.size(); ++d) {
    std::string why;
    auto halves = split_by_shape(whole_dims[d], {outer_shape[d], inner_shape[d]}, &why);
    if (!halves) throw fail(fmt::format("in dimension {}, {}", d, why));
    std::vector<Iter> scaled = canonical_shard((*halves)[0]);
    std::vector<Iter> wanted = canonical_shard(outer_dims[d]);
    if (scaled.size() != wanted.size()) {
      throw fail(fmt::format("dimension {} has outer iters {} where {} was expected", d,
                             iters_to_string(scaled), iters_to_string(wanted)));
    }
    for (size_t i = 0; i < scaled.size(); ++i) {
      const Iter& have = scaled[i];
      const Iter& want = wanted[i];
      bool fits = have.axis == want.axis && have.extent == want.extent &&
                  (want.stride == 0 ? have.stride == 0 : have.stride % want.stride == 0);
      if (!fits) {
        throw fail(fmt::format("iter {} of the whole is not a multiple of the outer iter {}",
                               iter_string(have), iter_string(want)));
      }
      if (want.stride == 0) continue;
      int64_t factor = have.stride / want.stride;
      auto [it, inserted] = factors.emplace(have.axis, factor);
      if (!inserted && it->second != factor) {
        throw fail(fmt::format("the outer part is scaled by both {} and {} on {}", it->second,
                               factor, have.axis.name()));
      }
    }
    inner_shard.insert(inner_shard.end(), (*halves)[1].begin(), (*halves)[1].end());
  }

  // Axes on which the outer part only has replicas or an offset: the scale is not visible in
  // the shard. A scaled replica step is a step of the whole's replica; a scaled offset solves
  // span(inner) = scale. Collect the candidates and try them.
  std::vector<Axis> unknown;
  std::vector<std::vector<int64_t>> candidates;
  int64_t combinations = 1;
  for (Axis axis : outer.axes()) {
    if (axis == Axis::idx() || factors.count(axis)) continue;
    std::vector<int64_t> options;
    auto replica_step = std::find_if(outer.replica().begin(), outer.replica().end(),
                                     [&](const Iter& iter) { return iter.axis == axis; });
    if (replica_step != outer.replica().end()) {
      for (const Iter& have : whole.replica()) {
        if (have.axis != axis) continue;
        for (int64_t d = 1; d <= have.extent; ++d) {
          if (have.extent % d == 0 && (have.stride * d) % replica_step->stride == 0) {
            options.push_back(have.stride * d / replica_step->stride);
          }
        }
      }
    } else {
      // span(inner) = 1 + (inner shard and replica reach) + whole offset - k * outer offset = k
      int64_t reach = whole.offset().get(axis);
      for (const Iter& iter : inner_shard) {
        if (iter.axis == axis) reach += (iter.extent - 1) * iter.stride;
      }
      for (const Iter& iter : whole.replica()) {
        if (iter.axis == axis) reach += (iter.extent - 1) * iter.stride;
      }
      int64_t per_step = 1 + outer.offset().get(axis);
      if ((reach + 1) % per_step == 0) options.push_back((reach + 1) / per_step);
    }
    std::sort(options.begin(), options.end());
    options.erase(std::unique(options.begin(), options.end()), options.end());
    if (options.empty()) {
      throw fail(
          fmt::format("no scale on {} makes the outer part's replica and offset fit", axis.name()));
    }
    unknown.push_back(axis);
    candidates.push_back(std::move(options));
    combinations *= static_cast<int64_t>(candidates.back().size());
  }
  Layout expected = canonicalize(whole);
  std::string last_reason = "no candidate scale fits";
  for (int64_t combo = 0; combo < combinations; ++combo) {
    int64_t rest = combo;
    for (size_t i = 0; i < unknown.size(); ++i) {
      const int64_t choices = static_cast<int64_t>(candidates[i].size());
      factors[unknown[i]] = candidates[i][static_cast<size_t>(rest % choices)];
      rest /= choices;
    }
    std::string why;
    auto inner_replica = peel_replica(
        whole.replica(), canonical_replica(scaled_iters(outer.replica(), factors)), &why);
    if (!inner_replica) {
      last_reason = why;
      continue;
    }
    Coord scaled_outer_offset = scaled_offset(outer.offset(), factors);
    bool offset_fits = true;
    for (const auto& [axis, value] : scaled_outer_offset.entries()) {
      offset_fits = offset_fits && whole.offset().get(axis) >= value;
    }
    if (!offset_fits) {
      last_reason = "the outer offset exceeds the whole's";
      continue;
    }
    Layout inner(inner_shard, *inner_replica, subtract(whole.offset(), scaled_outer_offset, ""));
    bool spans_fit = true;
    for (const auto& [axis, factor] : factors) {
      if (axis != Axis::idx() && inner.span(axis) != factor) spans_fit = false;
    }
    if (!spans_fit) {
      last_reason = "the scale of the outer part differs from the span of the rest";
      continue;
    }
    if (canonicalize(tile(outer, outer_shape, inner, inner_shape)) == expected) return inner;
    last_reason = "tile(outer, rest) does not give back the whole";
  }
  throw fail(last_reason);
}

Layout divide_outer(const Layout& whole, const Layout& outer) {
  if (outer.size() < 1 || whole.size() % outer.size() != 0) {
    throw LayoutError(fmt::format("divide_outer: size {} of {} does not divide size {} of {}",
                                  outer.size(), outer.to_string(), whole.size(),
                                  whole.to_string()));
  }
  return divide_outer(whole, {whole.size()}, outer, {outer.size()});
}

// ---- Functions of layouts -------------------------------------------------------------------

Layout compose(const Layout& outer_in, const Layout& inner_in) {
  Layout outer = canonicalize(outer_in);
  Layout inner = canonicalize(inner_in);
  auto fail = [&](const std::string& why) -> LayoutError {
    return LayoutError(
        fmt::format("compose: {} o {}: {}", outer_in.to_string(), inner_in.to_string(), why));
  };
  std::vector<Axis> inner_axes;
  for (const auto* list : {&inner.shard(), &inner.replica()}) {
    for (const Iter& iter : *list) {
      if (iter.stride != 0) inner_axes.push_back(iter.axis);
    }
  }
  for (const auto& [axis, value] : inner.offset().entries())
    inner_axes.push_back(axis);
  std::sort(inner_axes.begin(), inner_axes.end());
  inner_axes.erase(std::unique(inner_axes.begin(), inner_axes.end()), inner_axes.end());
  if (inner_axes.size() > 1) {
    throw fail("the inner layout must produce indices on one axis");
  }

  // Outer's shard as mixed-radix digits, innermost last.
  const std::vector<Iter>& digits = outer.shard();
  const size_t count = digits.size();
  std::vector<int64_t> used(count, 0);  // largest value each digit can receive

  // The iters that walk `extent` steps of `stride` through outer's index space, outermost first.
  auto walk = [&](int64_t extent, int64_t stride) {
    std::vector<Iter> result;
    if (extent == 1) return result;
    if (stride == 0) return std::vector<Iter>{Iter{extent, 0, Axis::idx()}};
    ptrdiff_t k = static_cast<ptrdiff_t>(count) - 1;
    for (; k >= 0; --k) {
      int64_t radix = digits[static_cast<size_t>(k)].extent;
      if (stride % radix == 0) {
        stride /= radix;
      } else if (radix % stride == 0) {
        break;
      } else {
        throw fail(fmt::format("step {} does not fit digit {} of extent {}", stride, k, radix));
      }
    }
    int64_t remaining = extent;
    while (remaining > 1) {
      if (k < 0)
        throw fail(
            fmt::format("the inner layout reaches beyond the size {} of the outer", outer.size()));
      const Iter& digit = digits[static_cast<size_t>(k)];
      int64_t room = digit.extent / stride;
      int64_t take = remaining <= room ? remaining : room;
      if (remaining > room && remaining % room != 0) {
        throw fail(fmt::format("{} steps do not fill digit {} of extent {} evenly", remaining, k,
                               digit.extent));
      }
      result.insert(result.begin(), Iter{take, digit.stride * stride, digit.axis});
      used[static_cast<size_t>(k)] += (take - 1) * stride;
      remaining /= take;
      stride = 1;
      --k;
    }
    return result;
  };

  std::vector<Iter> shard, replica;
  for (const Iter& iter : inner.shard()) {
    std::vector<Iter> part = walk(iter.extent, iter.stride);
    shard.insert(shard.end(), part.begin(), part.end());
  }
  for (const Iter& iter : inner.replica()) {
    std::vector<Iter> part = walk(iter.extent, iter.stride);
    replica.insert(replica.end(), part.begin(), part.end());
  }
  Coord offset = outer.offset();
  if (!inner_axes.empty()) {
    int64_t start = inner.offset().get(inner_axes[0]);
    if (start >= outer.size()) {
      throw fail(fmt::format("offset {} is outside the size {} of the outer", start, outer.size()));
    }
    for (size_t k = count; k-- > 0;) {
      int64_t digit_value = start % digits[k].extent;
      start /= digits[k].extent;
      used[k] += digit_value;
      offset.add(digits[k].axis, digit_value * digits[k].stride);
    }
  }
  for (size_t k = 0; k < count; ++k) {
    if (used[k] >= digits[k].extent) {
      throw fail(
          fmt::format("the inner indices carry across digit {} ({}) of the outer: they "
                      "reach {} there",
                      k, iter_string(digits[k]), used[k]));
    }
  }
  return Layout(std::move(shard), concat(replica, outer.replica()), std::move(offset));
}

Layout complement(const Layout& layout_in, const std::vector<std::pair<Axis, int64_t>>& bounds) {
  Layout layout = canonicalize(layout_in);
  auto fail = [&](const std::string& why) -> LayoutError {
    return LayoutError(fmt::format("complement: {}: {}", layout_in.to_string(), why));
  };
  std::map<Axis, std::vector<Iter>> by_axis;
  for (const auto* list : {&layout.shard(), &layout.replica()}) {
    for (const Iter& iter : *list) {
      if (iter.stride > 0) by_axis[iter.axis].push_back(iter);
    }
  }
  std::map<Axis, int64_t> bound_of;
  for (const auto& [axis, bound] : bounds) {
    if (bound < 1) throw fail(fmt::format("bound {}@{} is not positive", bound, axis.name()));
    bound_of[axis] = bound;
    by_axis[axis];  // axes with a bound but no iter get one full gap
  }
  std::vector<Iter> result;
  for (auto& [axis, iters] : by_axis) {
    std::sort(iters.begin(), iters.end(),
              [](const Iter& a, const Iter& b) { return a.stride < b.stride; });
    std::vector<Iter> gaps;
    int64_t covered = 1;  // [0, covered) is tiled so far, in steps of the iters seen
    for (const Iter& iter : iters) {
      if (iter.stride < covered) {
        throw fail(fmt::format("iter {} overlaps the iters of smaller stride on {}",
                               iter_string(iter), axis.name()));
      }
      if (iter.stride % covered != 0) {
        throw fail(fmt::format("stride {} of iter {} is not a multiple of {} covered below it",
                               iter.stride, iter_string(iter), covered));
      }
      if (iter.stride > covered) gaps.push_back(Iter{iter.stride / covered, covered, axis});
      covered = iter.stride * iter.extent;
    }
    auto bound = bound_of.find(axis);
    if (bound != bound_of.end()) {
      if (bound->second % covered != 0) {
        throw fail(fmt::format("bound {}@{} is not a multiple of the {} it covers", bound->second,
                               axis.name(), covered));
      }
      if (bound->second > covered) gaps.push_back(Iter{bound->second / covered, covered, axis});
    }
    result.insert(result.end(), gaps.rbegin(), gaps.rend());
  }
  return Layout(std::move(result));
}

int64_t InverseLayout::box_index(const Coord& point) const {
  int64_t index = 0;
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t value = point.get(axes[i]) - origin.get(axes[i]);
    if (value < 0 || value >= extents[i]) {
      throw LayoutError(fmt::format("inverse: point {} is outside the box of {} on {}",
                                    point.to_string(), extents[i], axes[i].name()));
    }
    index = index * extents[i] + value;
  }
  return index;
}

InverseLayout inverse(const Layout& layout_in, const std::vector<Axis>& axes) {
  Layout layout = canonicalize(layout_in);
  auto fail = [&](const std::string& why) -> LayoutError {
    return LayoutError(fmt::format("inverse: {}: {}", layout_in.to_string(), why));
  };
  auto chosen = [&](const Iter& iter) {
    return iter.stride > 0 && std::find(axes.begin(), axes.end(), iter.axis) != axes.end();
  };
  struct Step {
    Iter iter;
    int64_t logical_step;  // how far the logical index moves per step of this iter
  };
  std::vector<Step> steps, others;
  int64_t place = 1;
  for (size_t i = layout.shard().size(); i-- > 0;) {
    const Iter& iter = layout.shard()[i];
    (chosen(iter) ? steps : others).push_back(Step{iter, place});
    place *= iter.extent;
  }
  for (const Iter& iter : layout.replica()) {
    if (chosen(iter)) steps.push_back(Step{iter, 0});
  }

  InverseLayout result;
  result.axes = axes;
  std::map<Axis, int64_t> extent_of;
  for (Axis axis : axes) {
    std::vector<Iter> on_axis;
    for (const Step& step : steps) {
      if (step.iter.axis == axis) on_axis.push_back(step.iter);
    }
    std::sort(on_axis.begin(), on_axis.end(),
              [](const Iter& a, const Iter& b) { return a.stride < b.stride; });
    int64_t covered = 1;
    for (const Iter& iter : on_axis) {
      if (iter.stride != covered) {
        throw fail(
            fmt::format("the iters on {} do not cover it exactly: after [0, {}) comes "
                        "iter {}",
                        axis.name(), covered, iter_string(iter)));
      }
      covered *= iter.extent;
    }
    extent_of[axis] = covered;
    result.extents.push_back(covered);
    result.origin.set(axis, layout.offset().get(axis));
  }
  // Box place value of one step on each axis: row-major over the chosen axes.
  std::map<Axis, int64_t> box_place;
  int64_t box = 1;
  for (size_t i = axes.size(); i-- > 0;) {
    box_place[axes[i]] = box;
    box *= extent_of[axes[i]];
  }
  std::sort(steps.begin(), steps.end(), [&](const Step& a, const Step& b) {
    return a.iter.stride * box_place[a.iter.axis] > b.iter.stride * box_place[b.iter.axis];
  });
  std::vector<Iter> shard, replica;
  for (const Step& step : steps)
    shard.push_back(Iter{step.iter.extent, step.logical_step, Axis::idx()});
  for (const Step& step : others)
    replica.push_back(Iter{step.iter.extent, step.logical_step, Axis::idx()});
  result.layout = canonicalize(Layout(std::move(shard), std::move(replica)));
  return result;
}

// ---- Projections and re-typing --------------------------------------------------------------

Layout restrict_to(const Layout& layout, bool (*keep)(Axis)) {
  std::vector<Iter> shard, replica;
  for (Iter iter : layout.shard()) {
    if (!keep(iter.axis)) iter = Iter{iter.extent, 0, Axis::idx()};
    shard.push_back(iter);
  }
  for (const Iter& iter : layout.replica()) {
    if (keep(iter.axis)) replica.push_back(iter);
  }
  Coord offset;
  for (const auto& [axis, value] : layout.offset().entries()) {
    if (keep(axis)) offset.add(axis, value);
  }
  return canonicalize(Layout(std::move(shard), std::move(replica), std::move(offset)));
}

Layout storage(const Layout& layout) {
  return restrict_to(layout, [](Axis axis) { return !axis.is_thread(); });
}

Layout fuse(const Layout& layout, Axis parent) {
  auto move = [&](Axis axis, int64_t value) -> std::pair<Axis, int64_t> {
    std::optional<Axis> up = axis.parent();
    if (up && *up == parent) return {parent, value * axis.scale_in_parent()};
    return {axis, value};
  };
  auto move_all = [&](const std::vector<Iter>& iters) {
    std::vector<Iter> result;
    for (const Iter& iter : iters) {
      auto [axis, stride] = move(iter.axis, iter.stride);
      result.push_back(Iter{iter.extent, stride, axis});
    }
    return result;
  };
  Coord offset;
  for (const auto& [axis, value] : layout.offset().entries()) {
    auto [to, moved] = move(axis, value);
    offset.add(to, moved);
  }
  return Layout(move_all(layout.shard()), move_all(layout.replica()), std::move(offset));
}

Layout pack(const Layout& layout_in, int64_t n, Axis axis) {
  auto fail = [&](const std::string& why) -> LayoutError {
    return LayoutError(
        fmt::format("pack({}, {}): {}: {}", n, axis.name(), layout_in.to_string(), why));
  };
  if (n < 1) throw fail("the packing factor must be positive");
  if (!axis.is_memory()) throw fail(fmt::format("{} is not a memory axis", axis.name()));
  if (n == 1) return canonicalize(layout_in);
  Layout layout = canonicalize(layout_in);
  std::vector<Iter> shard = layout.shard();
  if (shard.empty() || shard.back().axis != axis || shard.back().stride != 1 ||
      shard.back().extent % n != 0) {
    throw fail(
        fmt::format("the innermost iter must be a multiple of {} contiguous steps 1@{}, "
                    "found {}",
                    n, axis.name(), shard.empty() ? "none" : iter_string(shard.back())));
  }
  shard.back().extent /= n;
  auto divide_step = [&](Iter& iter) {
    if (iter.axis != axis) return;
    if (iter.stride % n != 0) {
      throw fail(fmt::format("stride {} of iter {} is not a multiple of {}", iter.stride,
                             iter_string(iter), n));
    }
    iter.stride /= n;
  };
  // The innermost iter's stride 1 becomes a step of one packed element after the division.
  shard.back().stride = n;
  for (Iter& iter : shard)
    divide_step(iter);
  std::vector<Iter> replica = layout.replica();
  for (Iter& iter : replica)
    divide_step(iter);
  Coord offset = layout.offset();
  int64_t start = offset.get(axis);
  if (start % n != 0) {
    throw fail(fmt::format("offset {}@{} is not a multiple of {}", start, axis.name(), n));
  }
  offset.set(axis, start / n);
  return canonicalize(Layout(std::move(shard), std::move(replica), std::move(offset)));
}

Layout unpack(const Layout& layout, int64_t n, Axis axis) {
  if (n < 1) {
    throw LayoutError(fmt::format("unpack({}, {}): the factor must be positive", n, axis.name()));
  }
  if (!axis.is_memory()) {
    throw LayoutError(
        fmt::format("unpack({}, {}): {} is not a memory axis", n, axis.name(), axis.name()));
  }
  std::map<Axis, int64_t> factor = {{axis, n}};
  std::vector<Iter> shard = scaled_iters(layout.shard(), factor);
  shard.push_back(Iter{n, 1, axis});
  return canonicalize(Layout(std::move(shard), scaled_iters(layout.replica(), factor),
                             scaled_offset(layout.offset(), factor)));
}

}  // namespace nibble::layout
