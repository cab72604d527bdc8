// Reductions. Float32/BFloat16 sums run on oneDNN's reduction (f32 accumulation) for tensors of
// onednn::kMinElements or more; the loops accumulate in double.
#include "ops/reduce.hpp"

#include <limits>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/strided.hpp"
#include "ops/elementwise.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/reduction.hpp"
#include "ops/onednn/reorder.hpp"

namespace gg {

namespace {
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

Shape reduced_shape(const Shape& shape, int64_t dim, bool keepdim) {
  Shape out = shape;
  if (keepdim)
    out[dim] = 1;
  else
    out.erase(out.begin() + dim);
  return out;
}

// Calls f(out_offset, in_offset_of_row_start) for every output element of a reduction over dim,
// with the input's stride along dim; the output is contiguous with dim kept as size 1.
template <class F>
void for_each_row(const Tensor& x, int64_t dim, F&& f) {
  Shape outer = x.shape();
  outer[dim] = 1;
  Shape out_strides = contiguous_strides(outer);
  for_each_strided<2>(outer, {out_strides.data(), x.strides().data()}, {0, 0},
                      [&](const std::array<int64_t, 2>& o) { f(o[0], o[1]); });
}

// out (x's shape with dim kept as 1) = sum over dim, accumulating in double or int64.
void sum_dim_loop(const Tensor& x, int64_t dim, const Tensor& out) {
  const int64_t n = x.size(dim), stride = x.stride(dim);
  dispatch(x.dtype(), [&]<class T>() {
    dispatch(out.dtype(), [&]<class TO>() {
      const T* px = static_cast<const T*>(x.raw_data());
      TO* po = static_cast<TO*>(out.raw_data());
      for_each_row(x, dim, [&](int64_t oo, int64_t io) {
        using A = std::conditional_t<std::is_integral_v<T>, int64_t, double>;
        A acc = 0;
        for (int64_t i = 0; i < n; ++i) acc += convert<A>(px[io + i * stride]);
        po[oo] = convert<TO>(acc);
      });
    });
  });
}

// A contiguous Float32 x summed over a short dim that is not the last ([outer, n, inner] with
// n <= kShortDim, e.g. MoE's combine over the top-k): rows added in float, in order, as
// vectors. oneDNN transposes such an x first and then reduces rows of n elements: ~20x slower
// ([512, 2, 64] over dim 1: 0.3 ms).
constexpr int64_t kShortDim = 16;
bool sum_short_dim(const Tensor& x, int64_t dim, const Tensor& out) {
  const int64_t n = x.size(dim);
  if (x.dtype() != kFloat32 || out.dtype() != kFloat32 || !x.is_contiguous() || n > kShortDim ||
      n == 0 || dim == x.dim() - 1)
    return false;
  const int64_t inner = x.stride(dim), outer = out.numel() / inner;
  const float* px = static_cast<const float*>(x.raw_data());
  float* po = static_cast<float*>(out.raw_data());
  for (int64_t o = 0; o < outer; ++o) {
    const float* row = px + o * n * inner;
    float* dst = po + o * inner;
    for (int64_t j = 0; j < inner; ++j) dst[j] = row[j];
    for (int64_t k = 1; k < n; ++k) {
      for (int64_t j = 0; j < inner; ++j) dst[j] += row[k * inner + j];
    }
  }
  return true;
}

Tensor sum_dim_kernel(const Tensor& x, int64_t dim, bool keepdim, Dtype out_dtype) {
  if (onednn::bf16_through_f32(x.dtype()) && out_dtype == kBFloat16)  // no bf16 reduction here
    return sum_dim_kernel(x.detach().to(kFloat32), dim, keepdim, kFloat32).to(kBFloat16);
  Tensor out = empty(reduced_shape(x.shape(), dim, true), out_dtype);
  // Float32/BFloat16 run on oneDNN where it fits (onednn::sum_dim declines the rest).
  const bool done =
      sum_short_dim(x, dim, out) ||
      (out_dtype == x.dtype() && x.numel() >= onednn::kMinElements && onednn::sum_dim(x, dim, out));
  if (!done) sum_dim_loop(x, dim, out);
  return keepdim ? out : out.detach().reshape(reduced_shape(x.shape(), dim, false));
}

Dtype sum_dtype(Dtype d) { return is_floating(d) ? d : kInt64; }
}  // namespace

Tensor sum(const Tensor& x, int64_t dim, bool keepdim) {
  x.checked("sum");
  if (x.dim() == 0) {
    wrap_dim(dim, 0, "sum");
    return x.to(sum_dtype(x.dtype())).clone();
  }
  dim = wrap_dim(dim, x.dim(), "sum");
  Tensor out = sum_dim_kernel(x, dim, keepdim, sum_dtype(x.dtype()));
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
  const int64_t n = src.size(dim), stride = src.stride(dim);
  GG_CHECK(n > 0, "[max] cannot reduce over dimension {} of size 0 (shape {})", dim,
           shape_str(x.shape()));
  Shape kept = reduced_shape(src.shape(), dim, true);
  Tensor values = empty(kept, x.dtype()), indices = empty(kept, kInt64);
  dispatch(x.dtype(), [&]<class T>() {
    const T* px = static_cast<const T*>(src.raw_data());
    T* pv = values.data_ptr<T>();
    int64_t* pi = indices.data_ptr<int64_t>();
    for_each_row(src, dim, [&](int64_t oo, int64_t io) {
      double best = convert<double>(px[io]);
      int64_t arg = 0;
      for (int64_t i = 1; i < n && best == best; ++i) {
        double v = convert<double>(px[io + i * stride]);
        if (v > best || v != v) {  // NaN wins, as in PyTorch
          best = v;
          arg = i;
        }
      }
      pv[oo] = px[io + arg * stride];
      pi[oo] = arg;
    });
  });
  Shape out_shape = x.dim() == 0 ? Shape{} : reduced_shape(x.shape(), dim, keepdim);
  values = values.reshape(out_shape);
  indices = indices.reshape(out_shape);
  Shape in_shape = x.shape(), src_shape = src.shape();
  Tensor kept_idx = indices.reshape(kept);
  values = record("MaxBackward", {x}, values, [=](const Grads& g, const Needs&) {
    // Scatter the gradient to the chosen element of each row.
    Tensor grad = zeros(src_shape, g[0].dtype());
    Tensor gk = g[0].contiguous().reshape(kept);
    const int64_t* pi = kept_idx.contiguous().data_ptr<int64_t>();
    dispatch(grad.dtype(), [&]<class T>() {
      T* pg = grad.data_ptr<T>();
      const T* pgk = gk.contiguous().data_ptr<T>();
      int64_t k = 0;
      for_each_row(grad, dim, [&](int64_t, int64_t io) {
        pg[io + pi[k] * grad.stride(dim)] = pgk[k];
        ++k;
      });
    });
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
