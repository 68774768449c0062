#include "layout/layout.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "layout/error.h"

namespace nibble::layout {

// ---------------------------------------------------------------------------------------------
// Coord

Coord::Coord(std::initializer_list<std::pair<Axis, int64_t>> entries) {
  for (const auto& [axis, value] : entries)
    add(axis, value);
}

int64_t Coord::get(Axis axis) const {
  for (const auto& [a, value] : entries_) {
    if (a == axis) return value;
  }
  return 0;
}

void Coord::set(Axis axis, int64_t value) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), axis,
                             [](const auto& entry, Axis a) { return entry.first < a; });
  if (it != entries_.end() && it->first == axis) {
    if (value == 0) {
      entries_.erase(it);
    } else {
      it->second = value;
    }
    return;
  }
  if (value != 0) entries_.insert(it, {axis, value});
}

void Coord::add(Axis axis, int64_t value) {
  if (value != 0) set(axis, get(axis) + value);
}

Coord Coord::operator+(const Coord& other) const {
  Coord sum = *this;
  for (const auto& [axis, value] : other.entries_)
    sum.add(axis, value);
  return sum;
}

std::string Coord::to_string() const {
  std::string out = "(";
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i > 0) out += ", ";
    out += fmt::format("{}={}", entries_[i].first.name(), entries_[i].second);
  }
  return out + ")";
}

// ---------------------------------------------------------------------------------------------
// Layout

namespace {

void check_iters(const std::vector<Iter>& iters, const char* what) {
  for (const Iter& iter : iters) {
    if (iter.extent < 1) {
      throw LayoutError(fmt::format("{} iter {}:{}@{} has extent {}; extents must be positive",
                                    what, iter.extent, iter.stride, iter.axis.name(), iter.extent));
    }
    if (iter.stride < 0) {
      throw LayoutError(fmt::format("{} iter {}:{}@{} has a negative stride", what, iter.extent,
                                    iter.stride, iter.axis.name()));
    }
  }
}

int64_t checked_product(const std::vector<Iter>& iters) {
  int64_t product = 1;
  for (const Iter& iter : iters) {
    if (__builtin_mul_overflow(product, iter.extent, &product)) {
      throw LayoutError("layout size overflows 64-bit integers");
    }
  }
  return product;
}

}  // namespace

Layout::Layout(std::vector<Iter> shard, std::vector<Iter> replica, Coord offset)
    : shard_(std::move(shard)), replica_(std::move(replica)), offset_(std::move(offset)) {
  check_iters(shard_, "shard");
  check_iters(replica_, "replica");
  for (const auto& [axis, value] : offset_.entries()) {
    if (value < 0) {
      throw LayoutError(fmt::format("offset {}@{} is negative", value, axis.name()));
    }
  }
  checked_product(shard_);
  checked_product(replica_);
}

Layout Layout::row_major(const Shape& shape, Axis axis) {
  std::vector<Iter> iters(shape.size());
  int64_t stride = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    iters[i] = Iter{shape[i], stride, axis};
    stride *= shape[i];
  }
  return Layout(std::move(iters));
}

Layout Layout::column_major(const Shape& shape, Axis axis) {
  std::vector<Iter> iters(shape.size());
  int64_t stride = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    iters[i] = Iter{shape[i], stride, axis};
    stride *= shape[i];
  }
  return Layout(std::move(iters));
}

int64_t Layout::size() const {
  return checked_product(shard_);
}
int64_t Layout::replication() const {
  return checked_product(replica_);
}

std::vector<Axis> Layout::axes() const {
  std::vector<Axis> result;
  for (const auto* list : {&shard_, &replica_}) {
    for (const Iter& iter : *list)
      result.push_back(iter.axis);
  }
  for (const auto& [axis, value] : offset_.entries())
    result.push_back(axis);
  std::sort(result.begin(), result.end());
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

bool Layout::uses(Axis axis) const {
  std::vector<Axis> used = axes();
  return std::find(used.begin(), used.end(), axis) != used.end();
}

int64_t Layout::span(Axis axis) const {
  int64_t last = offset_.get(axis);
  for (const auto* list : {&shard_, &replica_}) {
    for (const Iter& iter : *list) {
      if (iter.axis == axis) last += (iter.extent - 1) * iter.stride;
    }
  }
  return last + 1;
}

Coord Layout::place(int64_t x) const {
  int64_t total = size();
  if (x < 0 || x >= total) {
    throw LayoutError(
        fmt::format("apply: index {} is outside [0, {}) of {}", x, total, to_string()));
  }
  Coord result = offset_;
  for (size_t i = shard_.size(); i-- > 0;) {
    const Iter& iter = shard_[i];
    result.add(iter.axis, (x % iter.extent) * iter.stride);
    x /= iter.extent;
  }
  return result;
}

std::vector<Coord> Layout::replica_steps() const {
  std::vector<Coord> steps = {Coord()};
  for (const Iter& iter : replica_) {
    std::vector<Coord> next;
    next.reserve(steps.size() * static_cast<size_t>(iter.extent));
    for (const Coord& step : steps) {
      for (int64_t i = 0; i < iter.extent; ++i) {
        Coord moved = step;
        moved.add(iter.axis, i * iter.stride);
        next.push_back(std::move(moved));
      }
    }
    steps = std::move(next);
  }
  return steps;
}

std::vector<Coord> Layout::apply(int64_t x) const {
  Coord base = place(x);
  if (replica_.empty()) return {base};
  std::vector<Coord> result;
  for (const Coord& step : replica_steps())
    result.push_back(base + step);
  std::sort(result.begin(), result.end());
  result.erase(std::unique(result.begin(), result.end()), result.end());
  return result;
}

std::string iters_to_string(const std::vector<Iter>& iters) {
  if (iters.size() == 1) {
    return fmt::format("{}:{}@{}", iters[0].extent, iters[0].stride, iters[0].axis.name());
  }
  std::vector<std::string> extents, strides;
  for (const Iter& iter : iters) {
    extents.push_back(std::to_string(iter.extent));
    strides.push_back(fmt::format("{}@{}", iter.stride, iter.axis.name()));
  }
  return fmt::format("({}):({})", fmt::join(extents, ","), fmt::join(strides, ","));
}

std::string shape_to_string(const Shape& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

int64_t shape_size(const Shape& shape) {
  int64_t product = 1;
  for (int64_t extent : shape) {
    if (extent < 1) {
      throw LayoutError(fmt::format("shape {} has extent {}; extents must be positive",
                                    shape_to_string(shape), extent));
    }
    if (__builtin_mul_overflow(product, extent, &product)) {
      throw LayoutError(fmt::format("shape {} overflows 64-bit integers", shape_to_string(shape)));
    }
  }
  return product;
}

std::string Layout::to_string() const {
  std::string out = "S[" + iters_to_string(shard_) + "]";
  if (!replica_.empty()) out += " + R[" + iters_to_string(replica_) + "]";
  for (const auto& [axis, value] : offset_.entries()) {
    out += fmt::format(" + {}@{}", value, axis.name());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Parsing: a small recursive-descent reader that remembers where it is for error messages.

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Layout layout() {
    std::vector<Iter> shard, replica;
    Coord offset;
    bool seen_shard = false;
    skip_space();
    do {
      skip_space();
      if (peek_word("S[")) {
        if (seen_shard) fail("a second shard S[...]; a layout has one shard");
        pos_ += 2;
        shard = iters("shard");
        expect(']');
        seen_shard = true;
      } else if (peek_word("R[")) {
        pos_ += 2;
        std::vector<Iter> more = iters("replica");
        replica.insert(replica.end(), more.begin(), more.end());
        expect(']');
      } else if (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
        int64_t value = integer("offset");
        expect('@');
        offset.add(axis(), value);
      } else {
        fail("expected S[...], R[...] or an offset such as 16@smem");
      }
      skip_space();
    } while (accept('+'));
    if (pos_ != text_.size()) fail("expected '+' or the end of the layout");
    if (!seen_shard) fail("a layout needs a shard S[...]", 0);
    try {
      return Layout(std::move(shard), std::move(replica), std::move(offset));
    } catch (const LayoutError& error) {
      throw LayoutError(fmt::format("layout '{}': {}", text_, error.what()));
    }
  }

 private:
  std::vector<Iter> iters(const char* what) {
    skip_space();
    std::vector<int64_t> extents;
    std::vector<std::pair<int64_t, Axis>> strides;
    size_t extents_column = pos_;
    if (accept('(')) {
      skip_space();
      if (!accept(')')) {
        do
          extents.push_back(extent());
        while (accept(','));
        expect(')');
      }
      expect(':');
      expect('(');
      skip_space();
      if (!accept(')')) {
        do
          strides.push_back(stride());
        while (accept(','));
        expect(')');
      }
    } else {
      extents.push_back(extent());
      expect(':');
      strides.push_back(stride());
    }
    if (extents.size() != strides.size()) {
      fail(fmt::format("{} has {} extents but {} strides", what, extents.size(), strides.size()),
           extents_column);
    }
    std::vector<Iter> result;
    for (size_t i = 0; i < extents.size(); ++i) {
      result.push_back(Iter{extents[i], strides[i].first, strides[i].second});
    }
    return result;
  }

  int64_t extent() {
    skip_space();
    size_t column = pos_;
    int64_t value = integer("extent");
    if (value == 0) fail("extent 0: extents must be positive", column);
    return value;
  }

  std::pair<int64_t, Axis> stride() {
    int64_t value = integer("stride");
    expect('@');
    return {value, axis()};
  }

  Axis axis() {
    skip_space();
    size_t start = pos_;
    while (pos_ < text_.size() &&
           (std::isalnum(static_cast<unsigned char>(text_[pos_])) || text_[pos_] == '_')) {
      ++pos_;
    }
    if (start == pos_) fail("expected an axis name such as lane, reg or smem");
    std::string_view name = text_.substr(start, pos_ - start);
    std::optional<Axis> found = Axis::find(name);
    if (!found) {
      std::vector<std::string> names;
      for (Axis a : all_axes())
        names.push_back(a.name());
      fail(fmt::format("unknown axis '{}' (known: {})", name, fmt::join(names, ", ")), start);
    }
    return *found;
  }

  int64_t integer(const char* what) {
    skip_space();
    size_t start = pos_;
    if (pos_ < text_.size() && text_[pos_] == '-') {
      fail(fmt::format("negative {}: extents, strides and offsets are non-negative", what));
    }
    int64_t value = 0;
    while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_]))) {
      if (__builtin_mul_overflow(value, 10, &value) ||
          __builtin_add_overflow(value, text_[pos_] - '0', &value)) {
        fail(fmt::format("{} does not fit in 64 bits", what), start);
      }
      ++pos_;
    }
    if (start == pos_) fail(fmt::format("expected an integer ({})", what));
    return value;
  }

  bool peek_word(std::string_view word) const { return text_.substr(pos_, word.size()) == word; }

  bool accept(char c) {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  void expect(char c) {
    if (!accept(c)) fail(fmt::format("expected '{}'", c));
  }

  void skip_space() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_])))
      ++pos_;
  }

  [[noreturn]] void fail(const std::string& message) { fail(message, pos_); }

  [[noreturn]] void fail(const std::string& message, size_t column) {
    std::string found = column < text_.size() ? fmt::format("'{}'", text_[column]) : "the end";
    throw LayoutError(fmt::format("layout parse error at column {} (at {}): {}\n  {}\n  {}^",
                                  column + 1, found, message, text_, std::string(column, ' ')));
  }

  std::string_view text_;
  size_t pos_ = 0;
};

}  // namespace

Layout Layout::parse(std::string_view text) {
  return Parser(text).layout();
}

}  // namespace nibble::layout
