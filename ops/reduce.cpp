// Reductions: validation and autograd here, kernels in ops/kernels/reduce_kernels.cpp.
#include "ops/reduce.hpp"

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "ops/elementwise.hpp"
#include "ops/kernels/reduce_kernels.hpp"

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

std::pair<Tensor, Tensor> max_with_indices(const Tensor& x, int64_t dim, bool keepdim) {
  x.checked("max");
  Tensor src = x.dim() == 0 ? x.reshape({1}) : x;
  dim = wrap_dim(dim, x.dim(), "max");
  GG_CHECK(src.size(dim) > 0, "[max] cannot reduce over dimension {} of size 0 (shape {})", dim,
           shape_str(x.shape()));
  Shape kept = kernels::reduced_shape(src.shape(), dim, true);
  auto [values, indices] = kernels::max_dim(src, dim);
  Shape out_shape = x.dim() == 0 ? Shape{} : kernels::reduced_shape(x.shape(), dim, keepdim);
  values = values.reshape(out_shape);
  indices = indices.reshape(out_shape);
  Shape in_shape = x.shape(), src_shape = src.shape();
  Tensor kept_idx = indices.reshape(kept);
  values = record("MaxBackward", {x}, values,
                  [=, idx = autograd::SavedTensor(kept_idx)](const Grads& g, const Needs&) {
                    Tensor grad = kernels::max_backward(g[0], idx.unpack(), src_shape, dim);
                    return Grads{grad.reshape(in_shape)};
                  });
  return {values, indices};
}

Tensor max(const Tensor& x, int64_t dim, bool keepdim) {
  return max_with_indices(x, dim, keepdim).first;
}
Tensor argmax(const Tensor& x, int64_t dim, bool keepdim) {
  NoGradGuard no_grad;
  return max_with_indices(x, dim, keepdim).second;
}

Tensor Tensor::sum() const { return gg::sum(*this); }
Tensor Tensor::mean() const { return gg::mean(*this); }
Tensor Tensor::sum(int64_t dim, bool keepdim) const { return gg::sum(*this, dim, keepdim); }
Tensor Tensor::mean(int64_t dim, bool keepdim) const { return gg::mean(*this, dim, keepdim); }
Tensor Tensor::max(int64_t dim, bool keepdim) const { return gg::max(*this, dim, keepdim); }

}  // namespace gg
