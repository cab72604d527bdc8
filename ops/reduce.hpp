#pragma once
// Reductions: over all elements, one dimension or several (keepdim keeps them with size 1).
#include <initializer_list>
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
// Min over a dim, as max_with_indices: the first minimal element wins, NaN wins.
std::pair<Tensor, Tensor> min_with_indices(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor min(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim = false);

// Max / min of all elements, 0-d; an empty x is an error (as in PyTorch). The gradient is shared
// equally by every element equal to the result (PyTorch 2.x); NaN is the result if x has one.
Tensor max(const Tensor& x);
Tensor min(const Tensor& x);
// The index of the first max / min in x flattened (row-major), a 0-d Int64; empty x is an error.
Tensor argmax(const Tensor& x);
Tensor argmin(const Tensor& x);

// Sum / mean over several dims at once (negative dims count from the end; a repeat is an error;
// an empty list reduces every dim, as torch.sum(x, dim=[]) does). The braced-list overloads make
// sum(x, {0, 1}) and sum(x, {}) mean dims, never the one-dim overload.
Tensor sum(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor sum(const Tensor& x, std::initializer_list<int64_t> dims, bool keepdim = false);
Tensor mean(const Tensor& x, const Shape& dims, bool keepdim = false);
Tensor mean(const Tensor& x, std::initializer_list<int64_t> dims, bool keepdim = false);

// The k largest (largest = false: smallest) elements along dim, and their Int64 indices, sorted
// (also when sorted = false, where PyTorch leaves the order open). NaN ranks above every number.
// Equal values come in index order; PyTorch's order among ties may differ. The gradient goes to
// the chosen elements.
std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim = -1, bool largest = true,
                               bool sorted = true);

}  // namespace gg
