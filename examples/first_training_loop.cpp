// Your first training loop: an ensemble of 4 small MLPs, each fitting y = sin(3x) from its own
// noisy sample, trained together -- each layer of all 4 models is ONE grouped_mm (GroupedLinear).
#include <fmt/core.h>

#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <vector>

namespace F = gg::nn::functional;
using Sizes = std::vector<int64_t>;

// n points of y = sin(3x) + noise, x uniform on [-1, 1]; returns {x [n, 1], y [n, 1]}.
std::pair<gg::Tensor, gg::Tensor> make_data(int64_t n, double noise) {
  gg::Tensor x = gg::rand({n, 1}) * 2.0 - 1.0;
  std::vector<float> y = (gg::randn({n}) * noise).to_vector<float>();
  for (int64_t i = 0; float v : x.to_vector<float>()) y[i++] += std::sin(3 * v);
  return {x, gg::tensor(y, {n, 1})};
}

int main() {
  gg::manual_seed(0);
  const int64_t models = 4, hidden = 32, n = 256;
  std::vector<gg::Tensor> xs, ys;  // one training set per model
  for (int64_t m = 0; m < models; ++m) {
    auto [x, y] = make_data(n, 0.1);
    xs.push_back(x), ys.push_back(y);
  }
  gg::nn::GroupedLinear layer1(Sizes(models, 1), Sizes(models, hidden));
  gg::nn::GroupedLinear layer2(Sizes(models, hidden), Sizes(models, 1));
  auto params = layer1.parameters();
  for (const auto& p : layer2.parameters()) params.push_back(p);
  gg::optim::Adam optimizer(params, gg::optim::AdamOptions(0.01));
  auto predict = [&](const std::vector<gg::Tensor>& inputs) {
    std::vector<gg::Tensor> h = layer1.forward(inputs);
    for (auto& t : h) t = gg::tanh(t);
    return layer2.forward(h);  // one [n, 1] prediction per model
  };
  double first = 0, last = 0;
  for (int step = 0; step <= 600; ++step) {
    // [models, n, 1] stacked: the mean over models of each model's mean squared error.
    gg::Tensor loss = F::mse_loss(gg::stack(predict(xs)), gg::stack(ys));
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    last = loss.item<float>();
    if (step == 0) first = last;
    if (step % 100 == 0)
      fmt::print("step {:3}  mean loss of the {} models {:.4f}\n", step, models, last);
  }
  // The ensemble's average on fresh noiseless points, all 4 models on the same input.
  gg::NoGradGuard no_grad;
  auto [x_test, y_test] = make_data(512, 0.0);
  gg::Tensor ensemble = gg::stack(predict(std::vector<gg::Tensor>(models, x_test))).mean(0);
  const double test = F::mse_loss(ensemble, y_test).item<float>();
  fmt::print("train loss {:.4f} -> {:.4f}; ensemble test MSE vs sin(3x): {:.5f}\n", first, last,
             test);
  return last < 0.1 * first && test < 0.01 ? 0 : 1;  // it learned, or this example fails
}
