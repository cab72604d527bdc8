// The seed's grouped "convolution": 4 channel groups of 32 features each mapped by their own
// [32, out_per_group] weight, outputs concatenated along the feature dim. Checked against a naive
// loop over the equivalent block-diagonal weight.
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <vector>

namespace F = gg::nn::functional;

int main() {
  gg::manual_seed(4);
  const int64_t batch_size = 32, group_size = 32, num_groups = 4, output_per_group = 16;
  std::vector<gg::Tensor> groups, group_weights;
  for (int64_t g = 0; g < num_groups; ++g) {
    groups.push_back(gg::randn({batch_size, group_size}));
    group_weights.push_back(gg::randn({group_size, output_per_group}));
  }
  std::vector<gg::Tensor> group_outputs = F::grouped_mm(groups, group_weights);
  gg::Tensor output = gg::cat(group_outputs, 1);  // [batch, num_groups * output_per_group]

  const int64_t width = num_groups * output_per_group;
  const auto got = output.to_vector<float>();
  double worst = 0;
  for (int64_t g = 0; g < num_groups; ++g) {
    const auto x = groups[g].to_vector<float>(), w = group_weights[g].to_vector<float>();
    for (int64_t i = 0; i < batch_size; ++i)
      for (int64_t j = 0; j < output_per_group; ++j) {
        double want = 0;
        for (int64_t k = 0; k < group_size; ++k)
          want += double(x[i * group_size + k]) * w[k * output_per_group + j];
        const double v = got[i * width + g * output_per_group + j];
        worst = std::max(worst, std::fabs(v - want) / (1 + std::fabs(want)));
      }
  }
  std::cout << num_groups << " groups of " << gg::shape_str(groups[0].shape()) << " @ "
            << gg::shape_str(group_weights[0].shape())
            << ", concatenated: " << gg::shape_str(output.shape()) << "\n";
  std::cout << "largest relative difference from a naive loop: " << worst << "\n";
  return worst < 1e-4 ? 0 : 1;
}
