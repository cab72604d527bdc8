#include "ops/reference/nn.hpp"

#include <cmath>
#include <limits>

#include "core/copy.hpp"
#include "core/strided.hpp"

namespace gg::reference {

Split3 split_at(const Shape& shape, int64_t dim) {
  Split3 s;
  for (int64_t d = 0; d < static_cast<int64_t>(shape.size()); ++d) {
    if (d < dim)
      s.outer *= shape[d];
    else if (d == dim)
      s.n = shape[d];
    else
      s.inner *= shape[d];
  }
  return s;
}

// ---- softmax ----------------------------------------------------------------------------------

Tensor softmax(const Tensor& x, int64_t dim, bool log) {
  Tensor xc = as_contiguous(x);
  Tensor out = empty(x.shape(), x.dtype());
  const Split3 split = split_at(x.shape(), dim);
  const int64_t outer = split.outer, n = split.n, inner = split.inner;
  dispatch(x.dtype(), [&]<class T>() {
    if constexpr (!std::is_integral_v<T>) {
      const T* px = xc.data_ptr<T>();
      T* po = out.data_ptr<T>();
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t base = o * n * inner + i;
          double max = -std::numeric_limits<double>::infinity();
          for (int64_t j = 0; j < n; ++j)
            max = std::fmax(max, convert<double>(px[base + j * inner]));
          double sum = 0;
          for (int64_t j = 0; j < n; ++j)
            sum += std::exp(convert<double>(px[base + j * inner]) - max);
          const double log_sum = std::log(sum);
          for (int64_t j = 0; j < n; ++j) {
            const double shifted = convert<double>(px[base + j * inner]) - max;
            po[base + j * inner] = convert<T>(log ? shifted - log_sum : std::exp(shifted) / sum);
          }
        }
      }
    }
  });
  return out;
}

// ---- layer norm -------------------------------------------------------------------------------

LayerNormOutput layer_norm(const Tensor& x, int64_t cols, const Tensor& weight, const Tensor& bias,
                           double eps, bool stats) {
  Tensor xc = as_contiguous(x);
  const int64_t rows = cols == 0 ? 0 : x.numel() / cols;
  LayerNormOutput r{empty(x.shape(), x.dtype()), Tensor(), Tensor()};
  if (stats) {
    r.mean = empty({rows}, stat_dtype(x.dtype()));
    r.rstd = empty({rows}, stat_dtype(x.dtype()));
  }
  Tensor w = weight.defined() ? as_contiguous(weight) : Tensor();
  Tensor b = bias.defined() ? as_contiguous(bias) : Tensor();
  dispatch(x.dtype(), [&]<class T>() {
    if constexpr (!std::is_integral_v<T>) {
      const T* px = xc.data_ptr<T>();
      const T* pw = w.defined() ? w.data_ptr<T>() : nullptr;
      const T* pb = b.defined() ? b.data_ptr<T>() : nullptr;
      T* py = r.y.data_ptr<T>();
      for (int64_t row = 0; row < rows; ++row) {
        const T* xr = px + row * cols;
        double mean = 0, var = 0;
        for (int64_t j = 0; j < cols; ++j) mean += convert<double>(xr[j]);
        mean /= static_cast<double>(cols);
        for (int64_t j = 0; j < cols; ++j) {
          const double d = convert<double>(xr[j]) - mean;
          var += d * d;
        }
        var /= static_cast<double>(cols);
        const double rstd = 1.0 / std::sqrt(var + eps);
        for (int64_t j = 0; j < cols; ++j) {
          double y = (convert<double>(xr[j]) - mean) * rstd;
          if (pw) y *= convert<double>(pw[j]);
          if (pb) y += convert<double>(pb[j]);
          py[row * cols + j] = convert<T>(y);
        }
        if (stats) {
          store_from_double(r.mean.raw_data(), r.mean.dtype(), row, mean);
          store_from_double(r.rstd.raw_data(), r.rstd.dtype(), row, rstd);
        }
      }
    }
  });
  return r;
}

}  // namespace gg::reference
