#pragma once
// Reduction kernels, without autograd or validation (ops/reduce.cpp validates and records).
#include <cstdint>
#include <utility>

#include "../../core/tensor.hpp"

namespace gg::kernels {

// shape without dim, or with dim kept as size 1.
Shape reduced_shape(const Shape& shape, int64_t dim, bool keepdim);

// x (at least 1-d, dim in range) summed over dim into out_dtype, accumulating in double or int64
// (in f32 on oneDNN and on the short-dim path).
Tensor sum_dim(const Tensor& x, int64_t dim, bool keepdim, Dtype out_dtype);

// The max of src (at least 1-d, size(dim) > 0) over dim, and its index (kInt64), both with dim
// kept as size 1. The first maximum wins; NaN wins, as in PyTorch.
std::pair<Tensor, Tensor> max_dim(const Tensor& src, int64_t dim);
// The gradient of max_dim: zeros of src_shape (g's dtype) with g's elements at the chosen indices
// (kept_idx, as max_dim returned it; g of kept_idx's number of elements).
Tensor max_backward(const Tensor& g, const Tensor& kept_idx, const Shape& src_shape, int64_t dim);

}  // namespace gg::kernels
