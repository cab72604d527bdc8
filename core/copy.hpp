#pragma once
#include "tensor.hpp"

namespace gg {

// Copies src into dst element by element (src broadcast to dst's shape), converting dtypes as
// Tensor::to does. Not recorded by autograd: a kernel for ops and optimizers (dst is written in
// place, so use it on tensors that no graph has saved).
void copy_(const Tensor& dst, const Tensor& src);

}  // namespace gg
