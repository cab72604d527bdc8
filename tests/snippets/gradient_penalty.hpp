// A gradient penalty (WGAN-GP): the norm of d critic(x) / dx is part of the loss. autograd::grad
// with create_graph = true records the gradient's own computation, so that backward on the
// penalty differentiates through it (double backward) into the critic's parameters.
#include <groupgrad/groupgrad.hpp>
#include <optional>

// mean over the rows of x of (|d critic(x_row) / dx_row| - 1)^2
inline gg::Tensor gradient_penalty(gg::nn::Sequential& critic, const gg::Tensor& x) {
  gg::Tensor input = x.detach().requires_grad_();
  gg::Tensor score = critic.forward(input).sum();
  gg::Tensor dx = gg::autograd::grad({score}, {input}, /*grad_outputs=*/{},
                                     /*retain_graph=*/std::nullopt, /*create_graph=*/true)[0];
  gg::Tensor norm = gg::sqrt(gg::sum(dx * dx, /*dim=*/1));
  return gg::mean((norm - 1.0) * (norm - 1.0));
}

// In a training step: the penalty joins the loss, one backward fills every parameter's grad.
//   gg::Tensor loss = critic_loss + 10.0 * gradient_penalty(*critic, x);
//   optimizer.zero_grad(); loss.backward(); optimizer.step();
