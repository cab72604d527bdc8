// The README's quickstart: tensors, a matmul, and a backward pass.
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <iostream>

int main() {
  gg::manual_seed(0);
  gg::Tensor w = gg::randn({3, 2}).requires_grad_();
  gg::Tensor x = gg::tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});

  gg::Tensor loss = (x.matmul(w) * 2.0).sum();
  loss.backward();

  std::cout << "x @ w * 2 summed: " << loss << "\n";
  std::cout << "d loss / d w:\n" << w.grad() << "\n";

  // d/dw sum(2 x w) = 2 * (column sums of x) broadcast over w's columns.
  auto g = w.grad().to_vector<float>();
  const float expected[3] = {10, 14, 18};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 2; ++j)
      if (std::fabs(g[i * 2 + j] - expected[i]) > 1e-5f) return 1;
  return 0;
}
