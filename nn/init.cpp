#include "nn/init.hpp"

#include <cmath>
#include <mutex>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/random.hpp"

namespace gg::nn::init {

namespace {
// Draws numel values in Float64 (row-major) and copies them into t, whatever its dtype/strides.
template <class Draw>
Tensor fill(Tensor t, const char* op, Draw draw) {
  t.checked(op);
  GG_CHECK(t.is_floating_point(), "[{}] needs a floating-point tensor, got {} {}", op,
           dtype_name(t.dtype()), shape_str(t.shape()));
  NoGradGuard no_grad;
  Tensor values = empty(t.shape(), kFloat64);
  double* p = values.data_ptr<double>();
  {
    Generator& g = global_generator();
    std::lock_guard lock(g.mutex());
    for (int64_t i = 0, n = values.numel(); i < n; ++i) p[i] = draw(g);
  }
  copy_(t, values);
  return t;
}

double fan(const Tensor& t, FanMode mode, const char* op) {
  GG_CHECK(t.dim() >= 2, "[{}] fan in and fan out need at least 2 dimensions, got shape {}", op,
           shape_str(t.shape()));
  auto [in, out] = calculate_fan_in_and_fan_out(t);
  return static_cast<double>(mode == FanMode::FanIn ? in : out);
}
}  // namespace

double calculate_gain(Nonlinearity nonlinearity, double param) {
  switch (nonlinearity) {
    case Nonlinearity::Linear:
    case Nonlinearity::Sigmoid:
      return 1.0;
    case Nonlinearity::Tanh:
      return 5.0 / 3.0;
    case Nonlinearity::ReLU:
      return std::sqrt(2.0);
    case Nonlinearity::LeakyReLU:
      return std::sqrt(2.0 / (1.0 + param * param));
  }
  return 1.0;
}

std::pair<int64_t, int64_t> calculate_fan_in_and_fan_out(const Tensor& t) {
  GG_CHECK(t.dim() >= 2, "[calculate_fan_in_and_fan_out] needs at least 2 dimensions, got shape {}",
           shape_str(t.shape()));
  int64_t receptive = 1;
  const auto what = [&] { return "the fans of " + shape_str(t.shape()); };
  for (int64_t d = 2; d < t.dim(); ++d)
    receptive = size_mul(receptive, t.size(d), "calculate_fan_in_and_fan_out", what);
  return {size_mul(t.size(1), receptive, "calculate_fan_in_and_fan_out", what),
          size_mul(t.size(0), receptive, "calculate_fan_in_and_fan_out", what)};
}

Tensor uniform_(Tensor t, double a, double b) {
  GG_CHECK(a <= b, "[uniform_] needs a <= b, got a={} b={}", a, b);
  return fill(std::move(t), "uniform_", [a, b](Generator& g) { return a + (b - a) * g.uniform(); });
}

Tensor normal_(Tensor t, double mean, double std) {
  GG_CHECK(std >= 0, "[normal_] needs std >= 0, got {}", std);
  return fill(std::move(t), "normal_",
              [mean, std](Generator& g) { return mean + std * g.normal(); });
}

Tensor constant_(Tensor t, double value) {
  t.checked("constant_");
  NoGradGuard no_grad;
  copy_(t, scalar_tensor(value, kFloat64));
  return t;
}

Tensor zeros_(Tensor t) { return constant_(std::move(t), 0.0); }
Tensor ones_(Tensor t) { return constant_(std::move(t), 1.0); }

Tensor kaiming_uniform_(Tensor t, double a, FanMode mode, Nonlinearity nonlinearity) {
  t.checked("kaiming_uniform_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(fan(t, mode, "kaiming_uniform_"));
  const double bound = std::sqrt(3.0) * std;
  return uniform_(std::move(t), -bound, bound);
}

Tensor kaiming_normal_(Tensor t, double a, FanMode mode, Nonlinearity nonlinearity) {
  t.checked("kaiming_normal_");
  const double std = calculate_gain(nonlinearity, a) / std::sqrt(fan(t, mode, "kaiming_normal_"));
  return normal_(std::move(t), 0.0, std);
}

Tensor xavier_uniform_(Tensor t, double gain) {
  t.checked("xavier_uniform_");
  const double in = fan(t, FanMode::FanIn, "xavier_uniform_");
  const double out = fan(t, FanMode::FanOut, "xavier_uniform_");
  const double bound = gain * std::sqrt(6.0 / (in + out));
  return uniform_(std::move(t), -bound, bound);
}

Tensor xavier_normal_(Tensor t, double gain) {
  t.checked("xavier_normal_");
  const double in = fan(t, FanMode::FanIn, "xavier_normal_");
  const double out = fan(t, FanMode::FanOut, "xavier_normal_");
  return normal_(std::move(t), 0.0, gain * std::sqrt(2.0 / (in + out)));
}

}  // namespace gg::nn::init
