// The README's quickstart: tensors, a matmul, and a backward pass.
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
  gg::Tensor expected = gg::tensor<float>({10, 10, 14, 14, 18, 18}, {3, 2});
  return gg::allclose(w.grad(), expected) ? 0 : 1;
}
