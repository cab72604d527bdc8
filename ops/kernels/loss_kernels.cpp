#include "ops/kernels/loss_kernels.hpp"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/copy.hpp"
#include "core/strided.hpp"

namespace gg::kernels {

NllOutput nll_loss(const Tensor& logp, const std::vector<int64_t>& target, Reduction reduction,
                   int64_t ignore_index, double smoothing, const std::vector<double>& weight) {
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
      const double w = weight.empty() ? 1.0 : weight[t];
      losses[p] = w * loss;
      ++r.count;
      r.weight_sum += w;
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
  // Mean divides by the non-ignored count (their weight sum), as PyTorch does: 0 / 0 = NaN when
  // all are ignored.
  if (reduction == Reduction::Mean) total /= r.weight_sum;
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

Tensor nll_loss_grad_factor(const Shape& shape, Dtype dtype, const std::vector<int64_t>& target,
                            int64_t ignore_index, const std::vector<double>& weight,
                            double divisor) {
  const int64_t C = shape[1], D = shape[2];
  Tensor out = zeros(shape, dtype);
  for (int64_t p = 0; p < static_cast<int64_t>(target.size()); ++p) {
    const int64_t t = target[p];
    if (t == ignore_index) continue;
    const double w = weight.empty() ? 1.0 : weight[t];
    store_from_double(out.raw_data(), dtype, (p / D) * C * D + t * D + p % D, -w / divisor);
  }
  return out;
}

// ---- the elementwise losses -------------------------------------------------------------------

namespace {

// log1p(exp(-|x|)) + max(-x, 0) = log(1 + exp(-x)), without overflow for large |x|.
double softplus_neg(double x) { return std::log1p(std::exp(-std::abs(x))) + std::max(-x, 0.0); }

double sign(double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0); }

// PyTorch clamps the logs of binary_cross_entropy at -100, so that 0 * log(0) stays finite.
double clamped_log(double v) { return std::max(std::log(v), -100.0); }
double clamped_log1m(double v) { return std::max(std::log1p(-v), -100.0); }

double loss_value(const PointwiseLossArgs& a, double x, double t, double w, double pw) {
  const double d = x - t, ad = std::abs(d);
  switch (a.kind) {
    case PointwiseLoss::L1:
      return ad;
    case PointwiseLoss::SmoothL1:
      return ad < a.param ? 0.5 * d * d / a.param : ad - 0.5 * a.param;
    case PointwiseLoss::Huber:
      return ad < a.param ? 0.5 * d * d : a.param * (ad - 0.5 * a.param);
    case PointwiseLoss::Bce:
      return -w * (t * clamped_log(x) + (1 - t) * clamped_log1m(x));
    case PointwiseLoss::BceWithLogits:
      return w * ((1 - t) * x + (1 + (pw - 1) * t) * softplus_neg(x));
  }
  return 0;
}

double loss_grad_input(const PointwiseLossArgs& a, double x, double t, double w, double pw) {
  const double d = x - t, ad = std::abs(d);
  switch (a.kind) {
    case PointwiseLoss::L1:
      return sign(d);
    case PointwiseLoss::SmoothL1:
      return ad < a.param ? d / a.param : sign(d);
    case PointwiseLoss::Huber:
      return ad < a.param ? d : a.param * sign(d);
    case PointwiseLoss::Bce:
      // PyTorch's guard against 0 / 0 at x = 0 or 1.
      return w * d / std::max(x * (1 - x), 1e-12);
    case PointwiseLoss::BceWithLogits: {
      // sigmoid(-x) from the stable softplus: exp(-softplus(x)) = 1 / (1 + exp(x)).
      const double sig_neg = std::exp(-softplus_neg(-x));
      return w * ((1 - t) - (1 + (pw - 1) * t) * sig_neg);
    }
  }
  return 0;
}

double loss_grad_target(const PointwiseLossArgs& a, double x, double t, double w, double pw) {
  switch (a.kind) {
    case PointwiseLoss::L1:
    case PointwiseLoss::SmoothL1:
    case PointwiseLoss::Huber:
      return -loss_grad_input(a, x, t, w, pw);  // they depend on x - t only
    case PointwiseLoss::Bce:
      // PyTorch does not clamp here: at a probability of exactly 0 or 1 this is infinite.
      return w * (std::log1p(-x) - std::log(x));
    case PointwiseLoss::BceWithLogits:
      return w * ((pw - 1) * softplus_neg(x) - x);
  }
  return 0;
}

// Calls f(index, x, t, w, pw) for every element of `shape` in row-major order, the operands read
// as double through their broadcast strides (an undefined weight reads as 1).
template <class F>
void for_each_loss_element(const PointwiseLossArgs& a, const Tensor& x, const Tensor& t,
                           const Shape& shape, F&& f) {
  const Tensor one = scalar_tensor(1.0, kFloat64);
  std::array<Tensor, 4> ops{as_dtype(x, kFloat64), as_dtype(t, kFloat64),
                            as_dtype(a.weight.defined() ? a.weight : one, kFloat64),
                            as_dtype(a.pos_weight.defined() ? a.pos_weight : one, kFloat64)};
  std::array<Shape, 4> strides;
  std::array<const double*, 4> ptr{};
  for (size_t i = 0; i < ops.size(); ++i) {
    strides[i] = broadcast_strides(ops[i], shape);
    ptr[i] = static_cast<const double*>(ops[i].raw_data());
  }
  const Shape out_strides = contiguous_strides(shape);
  for_each_strided<5>(shape,
                      {out_strides.data(), strides[0].data(), strides[1].data(), strides[2].data(),
                       strides[3].data()},
                      {0, 0, 0, 0, 0}, [&](const std::array<int64_t, 5>& o) {
                        f(o[0], ptr[0][o[1]], ptr[1][o[2]], ptr[2][o[3]], ptr[3][o[4]]);
                      });
}

}  // namespace

Tensor pointwise_loss(const PointwiseLossArgs& args, const Tensor& x, const Tensor& t,
                      const Shape& shape, Dtype dtype, Reduction reduction) {
  // The per-element losses are materialised even when reduced: a broadcast too big to hold is
  // then refused by the allocation rule instead of looping for hours.
  Tensor losses = empty(shape, kFloat64);
  double* pl = losses.data_ptr<double>();
  for_each_loss_element(args, x, t, shape,
                        [&](int64_t i, double xv, double tv, double w, double pw) {
                          pl[i] = loss_value(args, xv, tv, w, pw);
                        });
  if (reduction == Reduction::None) return as_dtype(losses, dtype);
  double total = 0;
  for (int64_t i = 0; i < losses.numel(); ++i) total += pl[i];
  // Mean of no elements is 0 / 0 = NaN, as in PyTorch.
  if (reduction == Reduction::Mean) total /= static_cast<double>(losses.numel());
  return scalar_tensor(total, dtype);
}

Tensor pointwise_loss_grad(const PointwiseLossArgs& args, const Tensor& x, const Tensor& t,
                           const Shape& shape, Dtype dtype, bool wrt_target) {
  Tensor out = empty(shape, dtype);
  void* po = out.raw_data();
  for_each_loss_element(args, x, t, shape,
                        [&](int64_t i, double xv, double tv, double w, double pw) {
                          const double g = wrt_target ? loss_grad_target(args, xv, tv, w, pw)
                                                      : loss_grad_input(args, xv, tv, w, pw);
                          store_from_double(po, dtype, i, g);
                        });
  return out;
}

}  // namespace gg::kernels
