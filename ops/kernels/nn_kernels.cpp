#include "ops/kernels/nn_kernels.hpp"

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/parallel.hpp"
#include "core/random.hpp"
#include "core/strided.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/layer_norm.hpp"
#include "ops/onednn/softmax.hpp"
#include "ops/reference/nn.hpp"

namespace gg::kernels {

using reference::Split3;
using reference::split_at;
using reference::stat_dtype;

// ---- softmax ----------------------------------------------------------------------------------

Tensor softmax(const Tensor& x, int64_t dim, bool log) {
  if (x.numel() == 0) return empty(x.shape(), x.dtype());  // (2^40 empty rows: no loop over them)
  if (onednn::bf16_through_f32(x.dtype()))                 // no bf16 softmax on this CPU
    return softmax(x.detach().to(kFloat32), dim, log).to(kBFloat16);
  if (!onednn::softmax_supported(x.dtype()) || x.numel() == 0)
    return reference::softmax(x, dim, log);
  const Split3 split = split_at(x.shape(), dim);
  const int64_t outer = split.outer, n = split.n, inner = split.inner;
  if (inner != 1) {
    // oneDNN runs a non-last axis with ref:any (~20x slower than its jit kernel on the last
    // axis, and slower than our loop); moving the axis last costs two copies and wins.
    const int64_t last = x.dim() - 1;
    Tensor moved = softmax(x.detach().transpose(dim, last).contiguous(), last, log);
    return moved.transpose(dim, last).contiguous();
  }
  Tensor xc = x.detach().contiguous();
  Tensor out = empty(x.shape(), x.dtype());
  onednn::softmax(xc.raw_data(), out.raw_data(), x.dtype(), outer, n, 1, log);
  return out;
}

// ---- layer norm -------------------------------------------------------------------------------

LayerNormOutput layer_norm(const Tensor& x, int64_t cols, const Tensor& weight, const Tensor& bias,
                           double eps, bool stats) {
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  if (onednn::bf16_through_f32(x.dtype())) {  // no bf16 layer_norm on this CPU
    auto f32 = [](const Tensor& t) { return t.defined() ? t.detach().to(kFloat32) : t; };
    LayerNormOutput r = layer_norm(f32(x), cols, f32(weight), f32(bias), eps, stats);
    r.y = r.y.to(kBFloat16);
    return r;
  }
  if (!onednn::layer_norm_supported(x.dtype()) || rows == 0)
    return reference::layer_norm(x, cols, weight, bias, eps, stats);
  // oneDNN takes scale and shift in f32 whatever the data type.
  auto as_f32 = [](const Tensor& t) {
    return t.defined() ? t.detach().to(kFloat32).contiguous() : Tensor();
  };
  Tensor xc = x.detach().contiguous(), w = as_f32(weight), b = as_f32(bias);
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
  Tensor g = grad.detach().to(dtype).contiguous(), xc = x.detach().contiguous();
  Tensor w = weight.defined() ? weight.detach().contiguous() : Tensor();
  Tensor mc = mean.contiguous().to(stat_dtype(dtype)), rc = rstd.contiguous().to(stat_dtype(dtype));
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

// ---- index_select -----------------------------------------------------------------------------

Tensor index_select(const Tensor& x, int64_t dim, const std::vector<int64_t>& index) {
  Tensor xc = x.detach().contiguous();
  Shape shape = x.shape();
  shape[dim] = static_cast<int64_t>(index.size());
  Tensor out = empty(shape, x.dtype());
  const Split3 split = split_at(x.shape(), dim);
  const int64_t outer = split.outer, n = split.n, inner = split.inner;
  const size_t row_bytes = static_cast<size_t>(inner) * x.element_size();
  if (row_bytes == 0 || out.numel() == 0) return out;  // (2^40 empty outer rows: no loop)
  const auto* src = static_cast<const uint8_t*>(xc.raw_data());
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  const int64_t k = static_cast<int64_t>(index.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < k; ++i)
      std::memcpy(dst + (o * k + i) * row_bytes, src + (o * n + index[i]) * row_bytes, row_bytes);
  return out;
}

Tensor index_add(const Shape& shape, int64_t dim, const std::vector<int64_t>& index,
                 const Tensor& src) {
  Tensor out = zeros(shape, src.dtype());
  Tensor sc = src.detach().contiguous();
  const Split3 split = split_at(shape, dim);
  const int64_t outer = split.outer, n = split.n, inner = split.inner;
  const int64_t k = static_cast<int64_t>(index.size());
  if (sc.numel() == 0) return out;  // nothing to add, however many empty rows
  dispatch(src.dtype(), [&]<class T>() {
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* ps = sc.data_ptr<T>();
    T* po = out.data_ptr<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < k; ++i) {
        T* d = po + (o * n + index[i]) * inner;
        const T* s = ps + (o * k + i) * inner;
        for (int64_t j = 0; j < inner; ++j) d[j] = convert<T>(convert<A>(d[j]) + convert<A>(s[j]));
      }
    }
  });
  return out;
}

// ---- nll loss ---------------------------------------------------------------------------------

NllOutput nll_loss(const Tensor& logp, const std::vector<int64_t>& target, Reduction reduction,
                   int64_t ignore_index, double smoothing) {
  Tensor lc = logp.detach().contiguous();
  const int64_t N = logp.size(0), C = logp.size(1), D = logp.size(2);
  const int64_t positions = N * D;
  std::vector<double> losses(positions, 0.0);
  NllOutput r;
  dispatch(logp.dtype(), [&]<class T>() {
    const T* pl = lc.data_ptr<T>();
    for (int64_t p = 0; p < positions; ++p) {
      const int64_t t = target[p];
      if (t == ignore_index) continue;
      const T* row = pl + (p / D) * C * D + p % D;  // class c of position p at row[c * D]
      double loss = -(1.0 - smoothing) * convert<double>(row[t * D]);
      if (smoothing != 0) {
        double sum = 0;
        for (int64_t c = 0; c < C; ++c) sum += convert<double>(row[c * D]);
        loss -= smoothing / static_cast<double>(C) * sum;
      }
      losses[p] = loss;
      ++r.count;
    }
  });
  if (reduction == Reduction::None) {
    r.loss = empty({positions}, logp.dtype());
    for (int64_t p = 0; p < positions; ++p)
      store_from_double(r.loss.raw_data(), logp.dtype(), p, losses[p]);
    return r;
  }
  double total = 0;
  for (double l : losses) total += l;
  // Mean divides by the non-ignored count, as PyTorch does: 0 / 0 = NaN when all are ignored.
  if (reduction == Reduction::Mean) total /= static_cast<double>(r.count);
  r.loss = scalar_tensor(total, logp.dtype());
  return r;
}

Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logp,
                              const std::vector<int64_t>& target, Reduction reduction,
                              int64_t ignore_index, double smoothing, int64_t count) {
  const int64_t N = logp.size(0), C = logp.size(1), D = logp.size(2);
  const int64_t positions = N * D;
  Tensor out = zeros(logp.shape(), logp.dtype());
  Tensor gc = grad.detach().to(kFloat64).contiguous(), lc = logp.detach().contiguous();
  const double* pg = gc.data_ptr<double>();
  const double scale = reduction == Reduction::Mean ? 1.0 / static_cast<double>(count) : 1.0;
  dispatch(logp.dtype(), [&]<class T>() {
    if constexpr (!std::is_integral_v<T>) {
      using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
      const T* pl = lc.data_ptr<T>();
      T* po = out.data_ptr<T>();
      const A spread = static_cast<A>(smoothing / static_cast<double>(C));
      const A hit = static_cast<A>(1.0 - smoothing);
      for (int64_t p = 0; p < positions; ++p) {
        const int64_t t = target[p];
        if (t == ignore_index) continue;
        const A w = static_cast<A>(pg[reduction == Reduction::None ? p : 0] * scale);
        const int64_t base = (p / D) * C * D + p % D;  // class c of position p at base + c * D
        for (int64_t c = 0; c < C; ++c) {
          const A softmax = std::exp(convert<A>(pl[base + c * D]));
          po[base + c * D] = convert<T>(w * (softmax - spread - (c == t ? hit : A(0))));
        }
      }
    }
  });
  return out;
}

// ---- dropout ----------------------------------------------------------------------------------

Tensor dropout_mask(const Shape& shape, Dtype dtype, double p) {
  Tensor mask = empty(shape, dtype);
  const double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  Generator& gen = global_generator();
  std::lock_guard lock(gen.mutex());
  dispatch(dtype, [&]<class T>() {
    T* pm = mask.data_ptr<T>();
    const T keep = convert<T>(scale), drop = convert<T>(0.0);
    for (int64_t i = 0, n = mask.numel(); i < n; ++i) pm[i] = gen.uniform() < p ? drop : keep;
  });
  return mask;
}

}  // namespace gg::kernels
