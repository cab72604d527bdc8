#pragma once
// Reductions: over all elements or one dimension (keepdim keeps it with size 1).
#include <utility>

#include "../core/tensor.hpp"

namespace gg {

Tensor sum(const Tensor& x);
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);
// Max over a dim: values (differentiable, gradient to the first maximal element) and Int64 indices.
std::pair<Tensor, Tensor> max_with_indices(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace gg
