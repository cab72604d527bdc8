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

// The max (largest) or min of src (at least 1-d, size(dim) > 0) over dim, and its index (kInt64),
// both with dim kept as size 1. The first extreme element wins; NaN wins, as in PyTorch.
std::pair<Tensor, Tensor> extreme_dim(const Tensor& src, int64_t dim, bool largest);
// The gradient of extreme_dim: zeros of src_shape (g's dtype) with g's elements at the chosen
// indices (kept_idx, as extreme_dim returned it; g of kept_idx's number of elements).
Tensor extreme_backward(const Tensor& g, const Tensor& kept_idx, const Shape& src_shape,
                        int64_t dim);
// A contiguous tensor of x's shape and dtype: 1 where x equals the one-element `value` (NaN
// matches NaN), 0 elsewhere; and how many ones. The ties a whole-tensor max/min shares its
// gradient among.
std::pair<Tensor, int64_t> ties_mask(const Tensor& x, const Tensor& value);
// The k largest (or smallest) elements of src along dim (0 <= k <= size(dim)), sorted, and their
// Int64 indices; NaN ranks above every number. Equal values come in index order.
std::pair<Tensor, Tensor> topk(const Tensor& src, int64_t k, int64_t dim, bool largest);

}  // namespace gg::kernels
