// The README's "Your own differentiable functions": a custom Function, backward from two roots at
// once, and swapping a parameter's data. Checks its own results (exit status 1 if one is wrong).
#include <cmath>
#include <cstdio>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <vector>

// softplus(x) = log(1 + exp(x)), with the derivative written by hand: sigmoid(x).
struct Softplus : gg::autograd::Function<Softplus> {
  static constexpr const char* name = "SoftplusBackward";
  static gg::Tensor forward(gg::autograd::AutogradContext* ctx, const gg::Tensor& x) {
    ctx->save_for_backward({x});
    return (x.exp() + 1.0).log();
  }
  static std::vector<gg::Tensor> backward(gg::autograd::AutogradContext* ctx,
                                          const std::vector<gg::Tensor>& grad_outputs) {
    const gg::Tensor& x = ctx->get_saved_variables()[0];
    return {grad_outputs[0] * x.sigmoid()};
  }
};

int main() {
  std::cout << "oneDNN runs " << gg::backend::isa_name()
            << (gg::backend::native_bf16() ? ", bf16 natively\n" : ", bf16 through f32\n");

  gg::Tensor x = gg::tensor<double>({-2, -0.5, 0, 1, 3}, {5}).requires_grad_();
  gg::Tensor y = Softplus::apply(x);
  std::cout << "softplus(x) = " << y << "\n";  // prints grad_fn=<SoftplusBackward>

  // Two roots in one backward pass: d/dx [sum(y) + sum(2 x)] = sigmoid(x) + 2.
  gg::autograd::backward({y.sum(), (x * 2.0).sum()});
  const std::vector<double> xs = x.to_vector<double>(), g = x.grad().to_vector<double>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double expected = 1.0 / (1.0 + std::exp(-xs[i])) + 2.0;
    if (std::fabs(g[i] - expected) > 1e-12) {
      std::printf("gradient %zu: %g, expected %g\n", i, g[i], expected);
      return 1;
    }
  }

  // set_data (libtorch's name): the same handle, and every copy of it, now shows other data;
  // its grad and requires_grad stay, as optimizers holding the parameter expect.
  gg::Tensor alias = x;
  x.set_data(gg::zeros({5}, gg::kFloat64));
  if (alias.to_vector<double>() != std::vector<double>(5, 0.0) || !alias.requires_grad() ||
      !alias.grad().defined())
    return 1;
  return 0;
}
