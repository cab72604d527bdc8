// Reductions: validation and autograd here, kernels in ops/kernels/reduce_kernels.cpp.
#include "ops/reduce.hpp"

#include <algorithm>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/copy.hpp"
#include "ops/elementwise.hpp"
#include "ops/kernels/reduce_kernels.hpp"
#include "ops/shape_ops.hpp"

namespace gg {

namespace {
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

Dtype sum_dtype(Dtype d) { return is_floating(d) ? d : kInt64; }
}  // namespace

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
  x.checked("sum");
  if (x.dim() == 0) {
    wrap_dim(dim, 0, "sum");
    return x.to(sum_dtype(x.dtype())).clone();
  }
  dim = wrap_dim(dim, x.dim(), "sum");
  Tensor out = kernels::sum_dim(x, dim, keepdim, sum_dtype(x.dtype()));
  Shape in_shape = x.shape();
  return record("SumBackward", {x}, out, [=](const Grads& g, const Needs&) {
    Tensor grad = keepdim ? g[0] : g[0].unsqueeze(dim);
    return Grads{grad.expand(in_shape)};
  });
}

Tensor sum(const Tensor& x) {
  x.checked("sum");
  Tensor flat = x.reshape({x.numel()});
  return sum(flat, 0, false);
}

Tensor mean(const Tensor& x, int64_t dim, bool keepdim) {
  x.checked("mean");
  GG_CHECK(is_floating(x.dtype()), "[mean] needs a floating dtype, got {} (use .to(kFloat32))",
           dtype_name(x.dtype()));
  int64_t n = x.dim() == 0 ? 1 : x.size(wrap_dim(dim, x.dim(), "mean"));
  // 16-bit floats: the sum and the division in f32, rounded once (as PyTorch accumulates).
  if (x.dtype() == kBFloat16 || x.dtype() == kFloat16)
    return mean(x.to(kFloat32), dim, keepdim).to(x.dtype());
  return sum(x, dim, keepdim) / static_cast<double>(n);
}

Tensor mean(const Tensor& x) {
  x.checked("mean");
  GG_CHECK(is_floating(x.dtype()), "[mean] needs a floating dtype, got {} (use .to(kFloat32))",
           dtype_name(x.dtype()));
  if (x.dtype() == kBFloat16 || x.dtype() == kFloat16)  // as above
    return mean(x.to(kFloat32)).to(x.dtype());
  return sum(x) / static_cast<double>(x.numel());
}

namespace {

// Which dims `dims` names (wrapped; a repeat is an error); an empty list names them all, as in
// PyTorch. A 0-d x has one nameable dim (0 or -1), as wrap_dim has it.
std::vector<bool> named_dims(const Shape& dims, const Tensor& x, const char* op) {
  std::vector<bool> named(static_cast<size_t>(std::max<int64_t>(x.dim(), 1)), dims.empty());
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), op);
    GG_CHECK(!named[w], "[{}] dimension {} appears more than once in dims [{}] (shape {})", op, w,
             fmt::join(dims, ", "), shape_str(x.shape()));
    named[w] = true;
  }
  return named;
}

// x's shape with the named dims set to 1.
Shape kept_shape(const Shape& shape, const std::vector<bool>& named) {
  Shape kept = shape;
  for (size_t d = 0; d < kept.size(); ++d)
    if (named[d]) kept[d] = 1;
  return kept;
}

// The values over one dim and their indices, the max (largest) or the min, as max_with_indices.
std::pair<Tensor, Tensor> extreme_with_indices(const Tensor& x, int64_t dim, bool keepdim,
                                               bool largest, const char* op) {
  x.checked(op);
  Tensor src = x.dim() == 0 ? x.reshape({1}) : x;
  dim = wrap_dim(dim, x.dim(), op);
  GG_CHECK(src.size(dim) > 0, "[{}] cannot reduce over dimension {} of size 0 (shape {})", op, dim,
           shape_str(x.shape()));
  Shape kept = kernels::reduced_shape(src.shape(), dim, true);
  auto [values, indices] = kernels::extreme_dim(src, dim, largest);
  Shape out_shape = x.dim() == 0 ? Shape{} : kernels::reduced_shape(x.shape(), dim, keepdim);
  values = values.reshape(out_shape);
  indices = indices.reshape(out_shape);
  Shape in_shape = x.shape(), src_shape = src.shape();
  Tensor kept_idx = indices.reshape(kept);
  // The backward is a kernel: once differentiable.
  values = autograd::once_differentiable(
      record(largest ? "MaxBackward" : "MinBackward", {x}, values,
             [=, idx = autograd::SavedTensor(kept_idx)](const Grads& g, const Needs&) {
               Tensor grad = kernels::extreme_backward(g[0], idx.unpack(), src_shape, dim);
               return Grads{grad.reshape(in_shape)};
             }));
  return {values, indices};
}

// The check every whole-tensor max/min/argmax/argmin makes: PyTorch has no identity to return.
void check_not_empty(const Tensor& x, const char* op) {
  x.checked(op);
  GG_CHECK(x.numel() > 0,
           "[{}] cannot reduce an empty tensor over all its elements (shape {}); give a dim", op,
           shape_str(x.shape()));
}

// x's elements as a plain 1-d tensor (a copy if x is not contiguous), for the kernels.
Tensor flat_plain(const Tensor& x) {
  Tensor c = as_contiguous(x);
  return as_strided_view(c, {c.numel()}, {1}, c.storage_offset());
}

// The max (largest) or min of all of x, 0-d. The gradient is shared equally by the elements equal
// to it (by the NaNs when it is NaN), as in PyTorch 2.x.
Tensor extreme_all(const Tensor& x, bool largest, const char* op) {
  check_not_empty(x, op);
  Tensor values = kernels::extreme_dim(flat_plain(x), 0, largest).first;
  Tensor out = as_strided_view(values, {}, {}, values.storage_offset());
  if (!autograd::needs_grad({x})) return out;
  return record(largest ? "MaxBackward" : "MinBackward", {x}, out,
                [x = autograd::SavedTensor(x), v = autograd::SavedTensor::output(out)](
                    const Grads& g, const Needs&) {
                  auto [mask, count] = kernels::ties_mask(x.unpack(), v.unpack());
                  return Grads{mask * (g[0] / static_cast<double>(count))};
                });
}

Tensor arg_extreme_all(const Tensor& x, bool largest, const char* op) {
  check_not_empty(x, op);
  Tensor idx = kernels::extreme_dim(flat_plain(x), 0, largest).second;
  return as_strided_view(idx, {}, {}, idx.storage_offset());
}

}  // namespace

std::pair<Tensor, Tensor> max_with_indices(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_with_indices(x, dim, keepdim, true, "max");
}
std::pair<Tensor, Tensor> min_with_indices(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_with_indices(x, dim, keepdim, false, "min");
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  return max_with_indices(x, dim, keepdim).first;
}
Tensor min(const Tensor& x, int64_t dim, bool keepdim) {
  return min_with_indices(x, dim, keepdim).first;
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return extreme_with_indices(x, dim, keepdim, true, "argmax").second;
}
Tensor argmin(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return extreme_with_indices(x, dim, keepdim, false, "argmin").second;
}

Tensor max(const Tensor& x) { return extreme_all(x, true, "max"); }
Tensor min(const Tensor& x) { return extreme_all(x, false, "min"); }
Tensor argmax(const Tensor& x) { return arg_extreme_all(x, true, "argmax"); }
Tensor argmin(const Tensor& x) { return arg_extreme_all(x, false, "argmin"); }

Tensor sum(const Tensor& x, const Shape& dims, bool keepdim) {
  x.checked("sum");
  const std::vector<bool> named = named_dims(dims, x, "sum");
  if (x.dim() == 0) return sum(x, 0, keepdim);
  // The kept dims first, then the reduced ones: one sum over their product, in one pass (and one
  // oneDNN call where it fits). No copy when the reduced dims are already x's innermost.
  Shape shape, strides;
  int64_t n = 1;
  for (int pass = 0; pass < 2; ++pass) {
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (named[d] != (pass == 1)) continue;
      shape.push_back(x.size(d));
      strides.push_back(x.stride(d));
      if (pass == 1 && x.numel() > 0) n *= x.size(d);
    }
  }
  const int64_t outer = static_cast<int64_t>(std::count(named.begin(), named.end(), false));
  Shape rows(shape.begin(), shape.begin() + outer);
  Tensor summed;
  if (x.numel() == 0) {  // zeros at once (and n, a product beside a 0, may have overflowed)
    summed = zeros(rows, sum_dtype(x.dtype()));
  } else {
    Tensor c = as_contiguous(as_strided_view(x, shape, strides, x.storage_offset(), "sum"));
    rows.push_back(n);
    Tensor flat = as_strided_view(c, rows, contiguous_strides(rows), c.storage_offset(), "sum");
    summed = kernels::sum_dim(flat, outer, false, sum_dtype(x.dtype()));
  }
  const Shape in_shape = x.shape(), kept = kept_shape(in_shape, named);
  Shape out_shape = keepdim ? kept : summed.shape();
  Tensor out =
      as_strided_view(summed, out_shape, contiguous_strides(out_shape), summed.storage_offset());
  return record("SumBackward", {x}, out, [=](const Grads& g, const Needs&) {
    return Grads{g[0].reshape(kept).expand(in_shape)};
  });
}

Tensor mean(const Tensor& x, const Shape& dims, bool keepdim) {
  x.checked("mean");
  GG_CHECK(is_floating(x.dtype()), "[mean] needs a floating dtype, got {} (use .to(kFloat32))",
           dtype_name(x.dtype()));
  const std::vector<bool> named = named_dims(dims, x, "mean");
  if (x.dtype() == kBFloat16 || x.dtype() == kFloat16)  // as mean over one dim
    return mean(x.to(kFloat32), dims, keepdim).to(x.dtype());
  double n = 1;  // (in double: beside a size 0 the product may pass int64)
  for (int64_t d = 0; d < x.dim(); ++d)
    if (named[d]) n *= static_cast<double>(x.size(d));
  return sum(x, dims, keepdim) / n;
}

Tensor sum(const Tensor& x, std::initializer_list<int64_t> dims, bool keepdim) {
  return sum(x, Shape(dims), keepdim);
}
Tensor mean(const Tensor& x, std::initializer_list<int64_t> dims, bool keepdim) {
  return mean(x, Shape(dims), keepdim);
}

std::pair<Tensor, Tensor> topk(const Tensor& x, int64_t k, int64_t dim, bool largest, bool sorted) {
  (void)sorted;  // always sorted: PyTorch leaves the order unspecified when sorted is false
  x.checked("topk");
  Tensor src = x.dim() == 0 ? x.reshape({1}) : x;
  dim = wrap_dim(dim, x.dim(), "topk");
  const int64_t n = src.size(dim);
  GG_CHECK(k >= 0 && k <= n, "[topk] k = {} is out of range for dimension {} of size {} (shape {})",
           k, dim, n, shape_str(x.shape()));
  auto [values, indices] = kernels::topk(src, k, dim, largest);
  if (x.dim() == 0) {  // PyTorch: a 0-d input gives 0-d results (for k = 0 too)
    values = kernels::extreme_dim(src, 0, largest).first.reshape({});
    indices = zeros({}, kInt64);
  }
  if (!autograd::needs_grad({x})) return {values, indices};
  const Shape in_shape = x.shape(), src_shape = src.shape();
  const Shape kept_shape = values.dim() == 0 ? Shape{1} : values.shape();
  values = record(
      "TopkBackward", {x}, values,
      [=, idx = autograd::SavedTensor(indices.reshape(kept_shape))](const Grads& g, const Needs&) {
        Tensor base = zeros(src_shape, g[0].dtype());
        return Grads{
            scatter_add(base, dim, idx.unpack(), g[0].reshape(kept_shape)).reshape(in_shape)};
      });
  return {values, indices};
}

Tensor Tensor::max() const { return gg::max(*this); }
Tensor Tensor::min() const { return gg::min(*this); }
Tensor Tensor::min(int64_t dim, bool keepdim) const { return gg::min(*this, dim, keepdim); }
Tensor Tensor::argmax() const { return gg::argmax(*this); }
Tensor Tensor::argmax(int64_t dim, bool keepdim) const { return gg::argmax(*this, dim, keepdim); }
Tensor Tensor::argmin() const { return gg::argmin(*this); }
Tensor Tensor::argmin(int64_t dim, bool keepdim) const { return gg::argmin(*this, dim, keepdim); }
Tensor Tensor::sum(const Shape& dims, bool keepdim) const { return gg::sum(*this, dims, keepdim); }
Tensor Tensor::sum(std::initializer_list<int64_t> dims, bool keepdim) const {
  return gg::sum(*this, Shape(dims), keepdim);
}
Tensor Tensor::mean(const Shape& dims, bool keepdim) const {
  return gg::mean(*this, dims, keepdim);
}
Tensor Tensor::mean(std::initializer_list<int64_t> dims, bool keepdim) const {
  return gg::mean(*this, Shape(dims), keepdim);
}
std::pair<Tensor, Tensor> Tensor::topk(int64_t k, int64_t dim, bool largest, bool sorted) const {
  return gg::topk(*this, k, dim, largest, sorted);
}
Tensor Tensor::sum() const { return gg::sum(*this); }
Tensor Tensor::mean() const { return gg::mean(*this); }
Tensor Tensor::sum(int64_t dim, bool keepdim) const { return gg::sum(*this, dim, keepdim); }
Tensor Tensor::mean(int64_t dim, bool keepdim) const { return gg::mean(*this, dim, keepdim); }
Tensor Tensor::max(int64_t dim, bool keepdim) const { return gg::max(*this, dim, keepdim); }

}  // namespace gg
