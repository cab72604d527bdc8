// The seed's mixed-precision example: compute in Float32, write Int8 outputs (rounded to nearest,
// saturated to [-128, 127]). Checked against a naive loop with the same rounding.
#include <algorithm>
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <vector>

namespace F = gg::nn::functional;

int main() {
  gg::manual_seed(3);
  std::vector<gg::Tensor> inputs{gg::randn({100, 64}), gg::randn({100, 64})};
  // Weights scaled by 8 so that some products leave the int8 range and saturate.
  std::vector<gg::Tensor> weights{gg::randn({64, 32}) * 8.0, gg::randn({64, 32}) * 8.0};
  std::vector<gg::Tensor> outputs = F::grouped_mm(inputs, weights, {}, gg::kInt8);  // no bias

  int64_t mismatches = 0, saturated = 0;
  for (size_t g = 0; g < outputs.size(); ++g) {
    const auto x = inputs[g].to_vector<float>(), w = weights[g].to_vector<float>();
    const auto out = outputs[g].to_vector<int8_t>();
    for (int64_t i = 0; i < 100; ++i)
      for (int64_t j = 0; j < 32; ++j) {
        double v = 0;
        for (int64_t k = 0; k < 64; ++k) v += double(x[i * 64 + k]) * w[k * 32 + j];
        const double want = std::clamp(std::nearbyint(v), -128.0, 127.0);
        // Float32 accumulation may land on the other side of a .5 boundary: allow 1 there.
        const double tie = std::fabs(v - std::floor(v) - 0.5) < 1e-3 ? 1 : 0;
        if (std::fabs(out[i * 32 + j] - want) > tie) ++mismatches;
        if (std::fabs(v) > 127) ++saturated;
      }
    std::cout << "group " << g << ": " << gg::dtype_name(outputs[g].dtype()) << " "
              << gg::shape_str(outputs[g].shape()) << " (" << outputs[g].numel()
              << " bytes instead of " << outputs[g].numel() * 4 << ")\n";
  }
  std::cout << "first row of group 0, first 8 values: "
            << outputs[0].narrow(0, 0, 1).narrow(1, 0, 8) << "\n";
  std::cout << saturated << " values saturated; " << mismatches
            << " differ from round-to-nearest of a naive loop\n";
  return mismatches == 0 ? 0 : 1;
}
