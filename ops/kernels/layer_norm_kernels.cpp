#include "ops/kernels/layer_norm_kernels.hpp"

#include <omp.h>

#include <cmath>
#include <vector>

#include "core/copy.hpp"
#include "core/parallel.hpp"
#include "core/strided.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/layer_norm.hpp"

namespace gg::kernels {

using reference::stat_dtype;

LayerNormOutput layer_norm(const Tensor& x, int64_t cols, const Tensor& weight, const Tensor& bias,
                           double eps, bool stats) {
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  if (onednn::bf16_through_f32(x.dtype())) {  // no bf16 layer_norm on this CPU
    auto f32 = [](const Tensor& t) { return t.defined() ? as_dtype(t, kFloat32) : t; };
    LayerNormOutput r = layer_norm(f32(x), cols, f32(weight), f32(bias), eps, stats);
    r.y = as_dtype(r.y, kBFloat16);
    return r;
  }
  if (!onednn::layer_norm_supported(x.dtype()) || rows == 0)
    return reference::layer_norm(x, cols, weight, bias, eps, stats);
  // oneDNN takes scale and shift in f32 whatever the data type.
  auto as_f32 = [](const Tensor& t) {
    return t.defined() ? as_contiguous(as_dtype(t, kFloat32)) : Tensor();
  };
  Tensor xc = as_contiguous(x), w = as_f32(weight), b = as_f32(bias);
  LayerNormOutput r{empty(x.shape(), x.dtype()), Tensor(), Tensor()};
  if (stats) {
    r.mean = empty({rows}, kFloat32);
    r.rstd = empty({rows}, kFloat32);  // holds the variance until converted below
  }
  const float eps_f = static_cast<float>(eps);
  onednn::layer_norm(xc.raw_data(), r.y.raw_data(), x.dtype(), rows, cols,
                     w.defined() ? w.data_ptr<float>() : nullptr,
                     b.defined() ? b.data_ptr<float>() : nullptr,
                     stats ? r.mean.data_ptr<float>() : nullptr,
                     stats ? r.rstd.data_ptr<float>() : nullptr, eps_f);
  if (stats) {
    float* p = r.rstd.data_ptr<float>();
    for (int64_t i = 0; i < rows; ++i) p[i] = 1.0f / std::sqrt(p[i] + eps_f);
  }
  return r;
}

LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, int64_t cols,
                                   bool need_dx, bool need_dweight, bool need_dbias) {
  const Dtype dtype = x.dtype();
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  Tensor g = as_contiguous(as_dtype(grad, dtype)), xc = as_contiguous(x);
  Tensor w = weight.defined() ? as_contiguous(weight) : Tensor();
  Tensor mc = as_dtype(as_contiguous(mean), stat_dtype(dtype)),
         rc = as_dtype(as_contiguous(rstd), stat_dtype(dtype));
  LayerNormGrads out;
  if (need_dx) out.dx = empty(x.shape(), dtype);
  if (need_dweight) out.dweight = empty({cols}, dtype);
  if (need_dbias) out.dbias = empty({cols}, dtype);
  dispatch(dtype, [&]<class T>() {
    if constexpr (!std::is_integral_v<T>) {
      using A = std::conditional_t<std::is_same_v<T, double>, double, float>;  // == stat dtype
      const T* pg = g.data_ptr<T>();
      const T* px = xc.data_ptr<T>();
      const T* pw = w.defined() ? w.data_ptr<T>() : nullptr;
      const A* pmean = mc.data_ptr<A>();
      const A* prstd = rc.data_ptr<A>();
      T* pdx = need_dx ? out.dx.data_ptr<T>() : nullptr;
      // Rows in parallel; each thread sums its own dweight/dbias partials, merged after.
      const int threads = rows >= 64 ? omp_get_max_threads() : 1;
      // (Sized up front: inside another parallel region fewer threads may run than asked.)
      std::vector<std::vector<A>> dw_part(threads, std::vector<A>(need_dweight ? cols : 0, A(0)));
      std::vector<std::vector<A>> db_part(threads, std::vector<A>(need_dbias ? cols : 0, A(0)));
      std::vector<std::vector<A>> xhat_part(threads, std::vector<A>(cols));
      std::vector<std::vector<A>> dxhat_part(threads, std::vector<A>(cols));
      parallel_for(
          rows, Schedule::kStatic,
          [&](int64_t row) {
            const int tid = omp_get_thread_num();
            std::vector<A>& xhat = xhat_part[tid];
            std::vector<A>& dxhat = dxhat_part[tid];
            std::vector<A>& dw = dw_part[tid];
            std::vector<A>& db = db_part[tid];
            const A mu = pmean[row], rs = prstd[row];
            const T* gr = pg + row * cols;
            const T* xr = px + row * cols;
            A sum_dxhat = 0, sum_dxhat_xhat = 0;
            for (int64_t j = 0; j < cols; ++j) {
              const A gj = convert<A>(gr[j]);
              xhat[j] = (convert<A>(xr[j]) - mu) * rs;
              dxhat[j] = pw ? gj * convert<A>(pw[j]) : gj;
              sum_dxhat += dxhat[j];
              sum_dxhat_xhat += dxhat[j] * xhat[j];
            }
            if (need_dweight)
              for (int64_t j = 0; j < cols; ++j) dw[j] += convert<A>(gr[j]) * xhat[j];
            if (need_dbias)
              for (int64_t j = 0; j < cols; ++j) db[j] += convert<A>(gr[j]);
            if (!need_dx) return;
            const A a = sum_dxhat / static_cast<A>(cols), b = sum_dxhat_xhat / static_cast<A>(cols);
            for (int64_t j = 0; j < cols; ++j)
              pdx[row * cols + j] = convert<T>(rs * (dxhat[j] - a - xhat[j] * b));
          },
          threads);
      auto merge = [&](const std::vector<std::vector<A>>& parts, const Tensor& dst) {
        T* pd = dst.data_ptr<T>();
        for (int64_t j = 0; j < cols; ++j) {
          double total = 0;
          for (const auto& part : parts) total += part[j];
          pd[j] = convert<T>(total);
        }
      };
      if (need_dweight) merge(dw_part, out.dweight);
      if (need_dbias) merge(db_part, out.dbias);
    }
  });
  return out;
}

}  // namespace gg::kernels
