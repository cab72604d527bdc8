#include "autograd_overhead.hpp"

#include <groupgrad/groupgrad.hpp>

namespace gg::bench {

std::vector<OverheadRow> autograd_overhead(int warmup, int reps) {
  constexpr int kOps = 64;
  const Tensor x = randn({16}).requires_grad_();
  const Tensor b = randn({16}).requires_grad_();
  const Tensor grad = ones({16});
  auto chain = [&] {
    Tensor y = x;
    for (int i = 0; i < kOps; ++i) y = y + b;
    return y;
  };
  auto no_grad = [&] {
    NoGradGuard guard;
    chain();
  };
  auto forward_backward = [&] { chain().backward(grad); };
  const std::vector<Timing> t = time_interleaved({no_grad, forward_backward}, warmup, reps);
  return {{fmt::format("autograd {} adds, no grad", kOps), t[0], kOps},
          {fmt::format("autograd {} adds, fwd+bwd", kOps), t[1], kOps}};
}

}  // namespace gg::bench
