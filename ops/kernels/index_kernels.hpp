#pragma once
// index_select and its gradient index_add, gather and scatter_add, flip, tril/triu: without
// autograd or validation (ops/shape_ops.cpp checks the indices and records).
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

// out[i][j][k] = x[index[i][j][k]][j][k] for dim 0 (and likewise for the others): out has
// index's shape. index: Int64, as many dims as x, every value already checked to be in range.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// A contiguous copy of x with src's elements added at index along dim:
// out[index[i][j][k]][j][k] += src[i][j][k] for dim 0 (repeated indices accumulate). index: Int64,
// checked, no larger than src in any dim and than x in any dim but dim.
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// A contiguous copy of x reversed along every dim d with flipped[d].
Tensor flip(const Tensor& x, const std::vector<bool>& flipped);
// A contiguous copy of x (at least 2-d) with the elements above (lower: tril) or below (triu) the
// given diagonal of its last two dims set to zero.
Tensor triangle(const Tensor& x, int64_t diagonal, bool lower);

}  // namespace gg::kernels
