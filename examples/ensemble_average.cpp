// The seed's ensemble inference: the same input through three models in one grouped_mm call, then
// the predictions averaged with stack + mean. Checked against a naive loop.
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <vector>

namespace F = gg::nn::functional;

int main() {
  gg::manual_seed(2);
  const int64_t batch_size = 16, feature_dim = 24, output_dim = 5, models = 3;
  gg::Tensor input_batch = gg::randn({batch_size, feature_dim});
  std::vector<gg::Tensor> model_weights;
  for (int64_t m = 0; m < models; ++m)
    model_weights.push_back(gg::randn({feature_dim, output_dim}));
  std::vector<gg::Tensor> inputs(models, input_batch);  // the same input for every model
  std::vector<gg::Tensor> predictions = F::grouped_mm(inputs, model_weights);
  gg::Tensor ensemble_output = gg::stack(predictions, 0).mean(0);

  const auto x = input_batch.to_vector<float>();
  const auto got = ensemble_output.to_vector<float>();
  double worst = 0;
  for (int64_t i = 0; i < batch_size; ++i)
    for (int64_t j = 0; j < output_dim; ++j) {
      double want = 0;
      for (int64_t m = 0; m < models; ++m) {
        const auto w = model_weights[m].to_vector<float>();
        for (int64_t k = 0; k < feature_dim; ++k)
          want += double(x[i * feature_dim + k]) * w[k * output_dim + j];
      }
      want /= models;
      worst = std::max(worst, std::fabs(got[i * output_dim + j] - want) / (1 + std::fabs(want)));
    }
  std::cout << models << " models, predictions " << gg::shape_str(predictions[0].shape())
            << " each; ensemble output " << gg::shape_str(ensemble_output.shape()) << "\n";
  std::cout << "first two rows of the ensemble output:\n"
            << ensemble_output.narrow(0, 0, 2) << "\n";
  std::cout << "largest relative difference from a naive loop: " << worst << "\n";
  return worst < 1e-4 ? 0 : 1;
}
