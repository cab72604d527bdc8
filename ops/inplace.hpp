#pragma once
// The machinery behind the in-place methods of Tensor (core/tensor.hpp, "In-place"): one place
// that applies PyTorch's autograd rules for in-place ops, so that each op is a line.
#include <functional>

#include "../core/tensor.hpp"

namespace gg {

// Runs the in-place op `op` on self: out_of_place(s) computes the op's result from s (standing in
// for self) out of place, possibly recording a node; apply_inplace writes the result into self's
// storage (bumping its version) and, when that node was recorded, makes it self's grad_fn. It
// refuses (gg::Error naming `op`) a leaf that requires grad while grad mode is on, a view that
// another tensor shares storage with when the result requires grad, a floating result for an
// integer tensor and a result whose shape is not self's. `operands` are the op's other tensor
// operands (for the checks). E.g. clamp_: apply_inplace(*this, "clamp_", {}, [&](const Tensor& s)
// { return clamp(s, lo, hi); }).
Tensor& apply_inplace(Tensor& self, const char* op, std::initializer_list<Tensor> operands,
                      const std::function<Tensor(const Tensor&)>& out_of_place);

}  // namespace gg
