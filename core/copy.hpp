#pragma once
#include "tensor.hpp"

namespace gg {

// Copies src into dst element by element (src broadcast to dst's shape), converting dtypes as
// Tensor::to does. Not recorded by autograd: a kernel for ops and optimizers (dst is written in
// place, so use it on tensors that no graph has saved). Declared here, defined in ops/copy.cpp:
// it takes the vectorised bf16 <-> f32 conversion and oneDNN's reorder where they fit.
void copy_(const Tensor& dst, const Tensor& src);

// The same copy by the plain strided loop alone (core/strided.hpp), with no faster paths but
// memmove for equal contiguous layouts: the one copy_ falls back to.
void strided_copy_(const Tensor& dst, const Tensor& src);

}  // namespace gg
