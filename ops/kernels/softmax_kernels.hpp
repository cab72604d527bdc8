#pragma once
// Softmax and log-softmax without autograd or validation (ops/nn_ops.cpp validates and records):
// oneDNN for Float32 and BFloat16, the plain loops of ops/reference/nn.hpp for the other float
// dtypes (and as the tests' oracle).
#include <cstdint>

#include "../../core/tensor.hpp"

namespace gg::kernels {

// (log_)softmax of x along dim, as a new contiguous tensor of x's dtype (x: a float dtype, any
// strides, at least 1-d).
Tensor softmax(const Tensor& x, int64_t dim, bool log);

}  // namespace gg::kernels
