#pragma once
// index_select and its gradient index_add, without autograd or validation (ops/shape_ops.cpp
// checks the indices and records).
#include <cstdint>
#include <vector>

#include "../../core/tensor.hpp"

namespace gg::kernels {

// out = x with dim restricted to the rows in `index` (each already checked to be in range).
Tensor index_select(const Tensor& x, int64_t dim, const std::vector<int64_t>& index);
// A zero tensor of `shape` (dtype of src) with src's rows added at the rows in `index` along
// dim (repeated indices accumulate): the gradient of index_select.
Tensor index_add(const Shape& shape, int64_t dim, const std::vector<int64_t>& index,
                 const Tensor& src);

}  // namespace gg::kernels
