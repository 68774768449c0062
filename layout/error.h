// The one error type of the layout algebra.
//
// Every operation that cannot do what it was asked throws a LayoutError whose message names the
// operation, quotes the layouts involved in the notation of layout.h, and says what does not fit
// ("divide: extent 4 of the tile does not divide extent 6 of dimension 1"). Nothing in layout/
// aborts on bad input.
#pragma once

#include <stdexcept>

namespace nibble::layout {

class LayoutError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

}  // namespace nibble::layout
