#pragma once
// The sums the autograd engine accumulates gradients with. Declared in core so that autograd
// needs no ops header (as libtorch's AccumulateGrad calls variable.add_); defined with the
// elementwise ops in ops/elementwise.cpp.
#include "tensor.hpp"

namespace gg {

// dst += src in place, not recorded: same shape and floating dtype, dst contiguous. The sum is
// the one add computes (in float for the 16-bit floats), element for element.
void accumulate_into(const Tensor& dst, const Tensor& src);

// a + b, broadcasting and promoting: the gg::add that ops/elementwise.hpp declares with the
// other elementwise ops (redeclared here for the engine).
Tensor add(const Tensor& a, const Tensor& b);

}  // namespace gg
