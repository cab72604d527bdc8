#include "ops/kernels/loss_kernels.hpp"

#include <cmath>

#include "core/copy.hpp"
#include "core/strided.hpp"

namespace gg::kernels {

NllOutput nll_loss(const Tensor& logp, const std::vector<int64_t>& target, Reduction reduction,
                   int64_t ignore_index, double smoothing) {
  Tensor lc = as_contiguous(logp);
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
  Tensor gc = as_contiguous(as_dtype(grad, kFloat64)), lc = as_contiguous(logp);
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

}  // namespace gg::kernels
