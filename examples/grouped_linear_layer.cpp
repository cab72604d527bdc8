// The seed's grouped linear layer: three feature groups of 50, 75 and 30 features projected to 64,
// 128 and 32 dims with biases, in one grouped_mm call; then one backward pass. Checked against a
// naive loop (forward) and the closed form of the bias gradient (backward).
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <vector>

namespace F = gg::nn::functional;

int main() {
  gg::manual_seed(1);
  const std::vector<int64_t> in_dims{50, 75, 30}, out_dims{64, 128, 32};
  const int64_t samples = 100;
  std::vector<gg::Tensor> input, weights, biases;
  for (size_t g = 0; g < in_dims.size(); ++g) {
    input.push_back(gg::randn({samples, in_dims[g]}));
    weights.push_back(gg::randn({in_dims[g], out_dims[g]}).requires_grad_());
    biases.push_back(gg::randn({out_dims[g]}).requires_grad_());
  }
  std::vector<gg::Tensor> outputs = F::grouped_mm(input, weights, biases);

  double worst = 0;
  for (size_t g = 0; g < outputs.size(); ++g) {
    const int64_t K = in_dims[g], N = out_dims[g];
    const auto x = input[g].to_vector<float>(), w = weights[g].to_vector<float>();
    const auto b = biases[g].to_vector<float>(), out = outputs[g].to_vector<float>();
    for (int64_t i = 0; i < samples; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double want = b[j];
        for (int64_t k = 0; k < K; ++k) want += double(x[i * K + k]) * w[k * N + j];
        worst = std::max(worst, std::fabs(out[i * N + j] - want) / (1 + std::fabs(want)));
      }
    std::cout << "group " << g << ": " << gg::shape_str(input[g].shape()) << " @ "
              << gg::shape_str(weights[g].shape()) << " + bias " << gg::shape_str(biases[g].shape())
              << " -> " << gg::shape_str(outputs[g].shape()) << "\n";
  }
  std::cout << "largest relative difference from a naive loop: " << worst << "\n";

  // One backward pass through all groups: d(sum of every output)/d bias_g = samples everywhere.
  gg::Tensor loss = outputs[0].sum() + outputs[1].sum() + outputs[2].sum();
  loss.backward();
  bool grads_ok = true;
  for (size_t g = 0; g < biases.size(); ++g) {
    for (float v : biases[g].grad().to_vector<float>()) grads_ok &= std::fabs(v - samples) < 1e-3;
    grads_ok &= weights[g].grad().shape() == weights[g].shape();
  }
  std::cout << "loss " << loss.item<float>()
            << "; bias[0] grad (first 4): " << biases[0].grad().narrow(0, 0, 4) << "\n";
  return worst < 1e-4 && grads_ok ? 0 : 1;
}
