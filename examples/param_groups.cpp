// Parameter groups and a scheduler: AdamW with weight decay on the weights only (biases and the
// LayerNorm get none, each group's lr from its own options), warmed up by a LambdaLR.
#include <groupgrad/groupgrad.hpp>

namespace F = gg::nn::functional;

int main() {
  gg::manual_seed(0);
  auto model = std::make_shared<gg::nn::Sequential>(
      std::make_shared<gg::nn::Linear>(4, 32), std::make_shared<gg::nn::LayerNorm>(32), gg::tanh,
      std::make_shared<gg::nn::Linear>(32, 1));
  // Split by name: "1.*" is the LayerNorm, "*.bias" the biases.
  std::vector<gg::Tensor> decay, no_decay;
  for (const auto& [name, p] : model->named_parameters()) {
    const bool is_norm = name.starts_with("1."), is_bias = name.ends_with(".bias");
    (is_norm || is_bias ? no_decay : decay).push_back(p);
  }
  gg::optim::AdamW optimizer({{decay}, {no_decay, {.weight_decay = 0.0}}},
                             gg::optim::AdamWOptions(1e-2).weight_decay(0.1));
  // Linear warmup over 20 steps: each group's lr is its initial lr times the factor.
  gg::optim::LambdaLR warmup(
      optimizer, [](int64_t step) { return std::min(1.0, static_cast<double>(step + 1) / 20.0); });

  gg::Tensor x = gg::randn({256, 4});
  gg::Tensor y = gg::tanh(x.matmul(gg::tensor<float>({1, -2, 0.5f, 3}, {4, 1})));
  double first = 0, last = 0;
  for (int step = 0; step < 200; ++step) {
    gg::Tensor loss = F::mse_loss(model->forward(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    warmup.step();
    last = loss.item<float>();
    if (step == 0) first = last;
    if (step % 100 == 0 || step == 10) {
      const std::vector<double> lrs = warmup.get_last_lr();  // one per group
      fmt::print("step {:3}  loss {:.5f}  next lr {:.4f} (weights), {:.4f} (biases, norm)\n", step,
                 last, lrs[0], lrs[1]);
    }
  }
  // The groups kept their options: the second one never decays.
  for (const auto& group : optimizer.param_groups())
    fmt::print("{} tensors, weight_decay {}\n", group.params().size(),
               group.options().weight_decay());
  fmt::print("loss {:.5f} -> {:.5f}\n", first, last);
  return last < 0.05 * first ? 0 : 1;  // it learned, or this example fails
}
