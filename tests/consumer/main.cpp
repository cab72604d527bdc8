// Built against an installed copy of groupgrad: proves the package config and headers are usable,
// the public autograd API (a custom function, autograd::backward) and the gradcheck header
// included.
#include <cstdio>
#include <groupgrad/autograd/gradcheck.hpp>
#include <groupgrad/groupgrad.hpp>

namespace {

struct Square : gg::autograd::Function<Square> {
  static gg::Tensor forward(gg::autograd::AutogradContext* ctx, const gg::Tensor& x) {
    ctx->save_for_backward({x});
    return x * x;
  }
  static std::vector<gg::Tensor> backward(gg::autograd::AutogradContext* ctx,
                                          const std::vector<gg::Tensor>& grads) {
    return {grads[0] * 2.0 * ctx->get_saved_variables()[0]};
  }
};

}  // namespace

int main() {
  gg::Tensor a = gg::tensor<float>({1, 2, 3, 4}, {2, 2});
  gg::Tensor b = gg::ones({2, 2});
  auto c = (a + b).to_vector<float>();
  bool ok = c == std::vector<float>{2, 3, 4, 5};

  gg::Tensor x = gg::tensor<float>({1, 2, 3}, {3}).requires_grad_();
  gg::autograd::backward({Square::apply(x).sum()});
  ok = ok && x.grad().to_vector<float>() == std::vector<float>{2, 4, 6};

  std::printf("consumer: %s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
