// A hook sees the gradient flowing into a tensor and may replace it (return a tensor) or only
// observe it (return nothing); retain_grad() keeps a non-leaf's gradient in grad().
#include <groupgrad/groupgrad.hpp>
#include <vector>

struct HookResult {
  std::vector<double> hidden_grad;  // h.grad(), kept by retain_grad()
  std::vector<double> x_grad;       // x.grad(), clipped by its hook
  double seen = 0;                  // the sum of h's gradient, as the observing hook saw it
};

inline HookResult hooks_and_retain_grad() {
  HookResult r;
  gg::Tensor x = gg::tensor<double>({1.0, -2.0, 3.0}).requires_grad_();
  gg::Tensor h = x * 2.0;  // not a leaf: its gradient is dropped after backward unless retained
  h.retain_grad();
  h.register_hook([&](const gg::Tensor& g) { r.seen = g.sum().item<double>(); });
  x.register_hook([](const gg::Tensor& g) { return g.clamp(-5.0, 5.0); });  // clips x's gradient
  (h * h).sum().backward();
  r.hidden_grad = h.grad().to_vector<double>();  // 2h = [4, -8, 12]
  r.x_grad = x.grad().to_vector<double>();       // 2 * [4, -8, 12], clipped: [5, -5, 5]
  return r;
}
