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

}  // namespace gg
