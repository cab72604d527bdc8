// Reduction kernels: Float32/BFloat16 sums run on oneDNN's reduction (f32 accumulation) for
// tensors of onednn::kMinElements or more; the loops accumulate in double.
#include "ops/kernels/reduce_kernels.hpp"

#include <algorithm>
#include <numeric>
#include <vector>

#include "core/copy.hpp"
#include "core/strided.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/reduction.hpp"
#include "ops/onednn/reorder.hpp"

namespace gg::kernels {

Shape reduced_shape(const Shape& shape, int64_t dim, bool keepdim) {
  Shape out = shape;
  if (keepdim)
    out[dim] = 1;
  else
    out.erase(out.begin() + dim);
  return out;
}

namespace {

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

}  // namespace

Tensor sum_dim(const Tensor& x, int64_t dim, bool keepdim, Dtype out_dtype) {
  if (onednn::bf16_through_f32(x.dtype()) && out_dtype == kBFloat16)  // no bf16 reduction here
    return as_dtype(sum_dim(as_dtype(x, kFloat32), dim, keepdim, kFloat32), kBFloat16);
  Tensor out = empty(reduced_shape(x.shape(), dim, true), out_dtype);
  // Float32/BFloat16 run on oneDNN where it fits (onednn::sum_dim declines the rest).
  const bool done =
      sum_short_dim(x, dim, out) ||
      (out_dtype == x.dtype() && x.numel() >= onednn::kMinElements && onednn::sum_dim(x, dim, out));
  if (!done) sum_dim_loop(x, dim, out);
  if (keepdim) return out;
  Shape shape = reduced_shape(x.shape(), dim, false);  // out viewed without dim, as reshape would
  Shape strides = contiguous_strides(shape);
  return as_strided_view(out, std::move(shape), std::move(strides), 0);
}

namespace {

// An element as the comparisons see it: integers exactly (no int64 -> double rounding), floats
// as double.
template <class T>
auto key(T v) {
  if constexpr (std::is_integral_v<T>)
    return v;
  else
    return convert<double>(v);
}
template <class K>
bool is_nan(K v) {
  if constexpr (std::is_integral_v<K>)
    return false;
  else
    return v != v;
}
// a ranks before b: the larger (or smaller) value first, NaN before every number as in PyTorch.
template <class K>
bool ranks_before(K a, K b, bool largest) {
  if (is_nan(a)) return !is_nan(b);
  if (is_nan(b)) return false;
  return largest ? a > b : a < b;
}

}  // namespace

std::pair<Tensor, Tensor> extreme_dim(const Tensor& src, int64_t dim, bool largest) {
  const int64_t n = src.size(dim), stride = src.stride(dim);
  Shape kept = reduced_shape(src.shape(), dim, true);
  Tensor values = empty(kept, src.dtype()), indices = empty(kept, kInt64);
  dispatch(src.dtype(), [&]<class T>() {
    const T* px = static_cast<const T*>(src.raw_data());
    T* pv = values.data_ptr<T>();
    int64_t* pi = indices.data_ptr<int64_t>();
    for_each_row(src, dim, [&](int64_t oo, int64_t io) {
      auto best = key(px[io]);
      int64_t arg = 0;
      for (int64_t i = 1; i < n && !is_nan(best); ++i) {
        auto v = key(px[io + i * stride]);
        if (ranks_before(v, best, largest)) {  // strictly: the first of equal values wins
          best = v;
          arg = i;
        }
      }
      pv[oo] = px[io + arg * stride];
      pi[oo] = arg;
    });
  });
  return {values, indices};
}

std::pair<Tensor, int64_t> ties_mask(const Tensor& x, const Tensor& value) {
  Tensor mask = zeros(x.shape(), x.dtype());
  int64_t count = 0;
  dispatch(x.dtype(), [&]<class T>() {
    const auto v = key(as_contiguous(value).data_ptr<T>()[0]);
    const T* px = static_cast<const T*>(x.raw_data());
    T* pm = mask.data_ptr<T>();
    const Shape out_strides = contiguous_strides(x.shape());
    for_each_strided<2>(x.shape(), {out_strides.data(), x.strides().data()}, {0, 0},
                        [&](const std::array<int64_t, 2>& o) {
                          const auto e = key(px[o[1]]);
                          if (e == v || (is_nan(e) && is_nan(v))) {
                            pm[o[0]] = convert<T>(1);
                            ++count;
                          }
                        });
  });
  return {mask, count};
}

std::pair<Tensor, Tensor> topk(const Tensor& src, int64_t k, int64_t dim, bool largest) {
  const int64_t n = src.size(dim), stride = src.stride(dim);
  Shape shape = src.shape();
  shape[dim] = k;
  Tensor values = empty(shape, src.dtype()), indices = empty(shape, kInt64);
  if (values.numel() == 0) return {values, indices};
  const int64_t out_stride = values.stride(dim);
  dispatch(src.dtype(), [&]<class T>() {
    const T* px = static_cast<const T*>(src.raw_data());
    T* pv = values.data_ptr<T>();
    int64_t* pi = indices.data_ptr<int64_t>();
    std::vector<int64_t> order(static_cast<size_t>(n));
    Shape outer = src.shape();
    outer[dim] = 1;
    for_each_strided<2>(outer, {values.strides().data(), src.strides().data()}, {0, 0},
                        [&](const std::array<int64_t, 2>& o) {
                          std::iota(order.begin(), order.end(), int64_t{0});
                          // Ties: the lower index first (a total order, so the result is
                          // deterministic).
                          auto before = [&](int64_t a, int64_t b) {
                            auto va = key(px[o[1] + a * stride]), vb = key(px[o[1] + b * stride]);
                            if (ranks_before(va, vb, largest)) return true;
                            if (ranks_before(vb, va, largest)) return false;
                            return a < b;
                          };
                          std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
                          for (int64_t i = 0; i < k; ++i) {
                            pv[o[0] + i * out_stride] = px[o[1] + order[i] * stride];
                            pi[o[0] + i * out_stride] = order[i];
                          }
                        });
  });
  return {values, indices};
}

Tensor extreme_backward(const Tensor& g, const Tensor& kept_idx, const Shape& src_shape,
                        int64_t dim) {
  // Scatter the gradient to the chosen element of each row.
  Tensor grad = zeros(src_shape, g.dtype());
  const Tensor gk = as_contiguous(g);  // (element k: row k of the kept shape)
  const Tensor idx = as_contiguous(kept_idx);
  const int64_t* pi = idx.data_ptr<int64_t>();
  dispatch(grad.dtype(), [&]<class T>() {
    T* pg = grad.data_ptr<T>();
    const T* pgk = gk.data_ptr<T>();
    int64_t k = 0;
    for_each_row(grad, dim, [&](int64_t, int64_t io) {
      pg[io + pi[k] * grad.stride(dim)] = pgk[k];
      ++k;
    });
  });
  return grad;
}

}  // namespace gg::kernels
