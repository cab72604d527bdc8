#include "nn/clip_grad.hpp"

#include <cmath>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/error.hpp"
#include "ops/elementwise.hpp"

namespace gg::nn::utils {

namespace {
// Sum of x^2 in double, over four interleaved partial sums (a single running sum is one long
// chain of dependent adds, ~4x slower), without a double copy of the gradient.
double sum_of_squares(const float* x, int64_t n) {
  double part[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (int k = 0; k < 4; ++k) {
      const double a = x[i + k];
      part[k] += a * a;
    }
  }
  for (; i < n; ++i) {
    const double a = x[i];
    part[0] += a * a;
  }
  return (part[0] + part[1]) + (part[2] + part[3]);
}
}  // namespace

double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm, double norm_type,
                       bool error_if_nonfinite) {
  GG_CHECK(norm_type > 0, "[clip_grad_norm_] norm_type must be > 0 (or infinity), got {}",
           norm_type);
  NoGradGuard no_grad;
  const bool inf_norm = std::isinf(norm_type);
  std::vector<Tensor> grads;
  for (const Tensor& p : parameters) {
    GG_CHECK(p.defined(), "[clip_grad_norm_] a parameter is an undefined tensor");
    Tensor g = p.grad();
    if (g.defined()) grads.push_back(g);
  }
  double acc = 0;  // max |x| for the infinity norm, else sum |x|^norm_type
  for (const Tensor& g : grads) {
    if (norm_type == 2.0 && g.dtype() == kFloat32 && g.is_contiguous()) {
      acc += sum_of_squares(g.data_ptr<float>(), g.numel());
      continue;
    }
    Tensor c = g.to(kFloat64).contiguous();
    const double* x = c.data_ptr<double>();
    for (int64_t i = 0, n = c.numel(); i < n; ++i) {
      const double a = std::abs(x[i]);
      if (inf_norm) {
        acc = std::isnan(a) || a > acc ? a : acc;
      } else if (norm_type == 2.0) {
        acc += a * a;
      } else if (norm_type == 1.0) {
        acc += a;
      } else {
        acc += std::pow(a, norm_type);
      }
    }
  }
  const double total = inf_norm ? acc : std::pow(acc, 1.0 / norm_type);
  GG_CHECK(!error_if_nonfinite || std::isfinite(total),
           "[clip_grad_norm_] the total norm of order {} of the gradients is non-finite ({}), "
           "so they cannot be clipped",
           norm_type, total);
  const double coef = max_norm / (total + 1e-6);
  if (coef < 1.0) {
    for (const Tensor& g : grads) {
      if (g.dtype() == kFloat32 && g.is_contiguous()) {
        // In place: the products of g * coef (a float multiply by coef rounded to float).
        float* x = g.data_ptr<float>();
        const float c = static_cast<float>(coef);
        for (int64_t i = 0, n = g.numel(); i < n; ++i) x[i] *= c;
      } else {
        copy_(g, g * coef);
      }
    }
  }
  return total;
}

}  // namespace gg::nn::utils
