#pragma once
// Ops that assemble or pick apart tensors (copies, unlike the views on Tensor).
#include <vector>

#include "../core/tensor.hpp"

namespace gg {

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim = 0);
Tensor stack(const std::vector<Tensor>& tensors, int64_t dim = 0);
// Splits into pieces of split_size along dim (the last may be smaller); views.
std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
// Rows of x picked by an Int32/Int64 index along dim (embeddings); gradient scatter-adds.
Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index);

// out[i][j] = x[index[i][j]][j] (dim 0), out[i][j] = x[i][index[i][j]] (dim 1), and so on: out has
// index's shape. index: Int64 or Int32 with as many dims as x, no larger than x in any dim but
// dim, every value in [0, x.size(dim)) (no negative indices, as in PyTorch). Gradient: scatter_add.
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
// A copy of x with src added at index along dim: out[index[i][j]][j] += src[i][j] (dim 0);
// repeated indices accumulate. src has x's dtype; index is no larger than src in any dim and than
// x in any dim but dim (PyTorch's rules). Differentiable in x (identity) and src (gather, with
// zeros where src is larger than index; PyTorch rejects that case in backward).
Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src);
// The slices of x along dim (x.select(dim, i) for every i): views, differentiable.
std::vector<Tensor> unbind(const Tensor& x, int64_t dim = 0);
// A copy of x with the order of elements reversed along each of dims (repeats are an error).
Tensor flip(const Tensor& x, const Shape& dims);
// A copy of x (at least 2-d; batched over leading dims) keeping the elements on and below
// (tril) or on and above (triu) the diagonal of the last two dims; diagonal > 0 is above the main
// one, < 0 below it. The others are zero.
Tensor tril(const Tensor& x, int64_t diagonal = 0);
Tensor triu(const Tensor& x, int64_t diagonal = 0);

}  // namespace gg
