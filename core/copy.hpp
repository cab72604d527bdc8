#pragma once
#include "tensor.hpp"

namespace gg {

// Copies src into dst element by element (src broadcast to dst's shape), converting dtypes as
// Tensor::to does. Not recorded by autograd: a kernel for ops and optimizers (dst is written in
// place, so use it on tensors that no graph has saved). Declared here, defined in ops/copy.cpp:
// it takes the vectorised bf16 <-> f32 conversion and oneDNN's reorder where they fit.
void copy_(const Tensor& dst, const Tensor& src);

// The copies of contiguous() and to() without their autograd node, for kernels and backends: they
// read their operands' data inside an op that records its own node, so a recorded copy would only
// cost a node (and a detach() before each call was easy to forget). t itself when it already is
// contiguous, or of `dtype`; else a new contiguous tensor that copy_ fills. Defined in
// ops/copy.cpp beside the differentiable contiguous() and to(), which are these plus the node.
Tensor as_contiguous(const Tensor& t);
Tensor as_dtype(const Tensor& t, Dtype dtype);

}  // namespace gg
