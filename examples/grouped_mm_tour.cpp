// grouped_mm in three calls: the list form with per-group shapes and biases, the packed MoE form
// with offsets, and a backward pass through both. Checks each result against gg::matmul.
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <iostream>

namespace F = gg::nn::functional;

static bool close(const gg::Tensor& a, const gg::Tensor& b) {
  auto x = a.to_vector<float>(), y = b.to_vector<float>();
  for (size_t i = 0; i < x.size(); ++i)
    if (std::fabs(x[i] - y[i]) > 1e-4f * (1 + std::fabs(y[i]))) return false;
  return x.size() == y.size();
}

int main() {
  gg::manual_seed(0);
  // List form: each group has its own k_i and m_i; bias is optional per group.
  std::vector<gg::Tensor> x{gg::randn({4, 5}), gg::randn({2, 7}), gg::randn({0, 3})};
  std::vector<gg::Tensor> w{gg::randn({5, 6}), gg::randn({7, 2}), gg::randn({3, 4})};
  std::vector<gg::Tensor> b{gg::randn({6}), gg::Tensor(), gg::randn({4})};  // group 1: no bias
  for (auto* list : {&x, &w, &b})
    for (gg::Tensor& t : *list)
      if (t.defined()) t.requires_grad_();
  std::vector<gg::Tensor> y = F::grouped_mm(x, w, F::GroupedMMOptions{.bias = b});
  bool ok = close(y[0], x[0].matmul(w[0]) + b[0]) && close(y[1], x[1].matmul(w[1])) &&
            y[2].shape() == gg::Shape{0, 4};

  // Packed MoE form: tokens sorted by expert, offs = cumulative END offsets of each group.
  gg::Tensor tokens = gg::randn({10, 8}).requires_grad_();
  gg::Tensor experts = gg::randn({3, 8, 16}).requires_grad_();      // [G, K, N]
  gg::Tensor offs = gg::tensor<int32_t>({4, 4, 10});                // rows 0-3, none, 4-9
  gg::Tensor out = F::grouped_mm(tokens, experts, {.offs = offs});  // [10, 16]
  ok = ok && close(out.narrow(0, 4, 6), tokens.narrow(0, 4, 6).matmul(experts.select(0, 2)));

  // One backward through both: gradients reach every input, weight and bias.
  gg::Tensor loss = y[0].sum() + y[1].pow(2).mean() + out.tanh().sum();
  loss.backward();
  std::cout << "loss " << loss.item<float>() << "\n"
            << "grad of w[1]:\n"
            << w[1].grad() << "\n"
            << "grad of expert 1 (got no tokens) is zero: "
            << gg::abs(experts.grad().select(0, 1)).sum() << "\n";
  ok = ok && gg::abs(experts.grad().select(0, 1)).sum().item<float>() == 0 && b[2].grad().defined();
  std::cout << (ok ? "all checks passed" : "MISMATCH") << "\n";
  return ok ? 0 : 1;
}
