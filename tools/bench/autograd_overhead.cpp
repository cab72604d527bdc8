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
  return {{fmt::format("autograd {} adds, no grad", kOps), time_it(no_grad, warmup, reps), kOps},
          {fmt::format("autograd {} adds, fwd+bwd", kOps), time_it(forward_backward, warmup, reps),
           kOps}};
}

}  // namespace gg::bench
