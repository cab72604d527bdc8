// An ensemble of small MLPs in a ModuleList: the ensemble is ONE module, so parameters(),
// named_parameters(), train()/eval(), printing and gg::save/gg::load cover every member.
#include <groupgrad/groupgrad.hpp>
#include <memory>
#include <vector>

namespace nn = gg::nn;

struct Ensemble : nn::Module {
  explicit Ensemble(int64_t members, int64_t hidden) {
    for (int64_t m = 0; m < members; ++m)
      models->push_back(std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(1, hidden),
                                                         gg::tanh,
                                                         std::make_shared<nn::Linear>(hidden, 1)));
  }
  // Every member's prediction for x [n, 1], stacked: [members, n, 1].
  gg::Tensor forward(const gg::Tensor& x) {
    std::vector<gg::Tensor> predictions;
    for (size_t m = 0; m < models->size(); ++m)
      predictions.push_back(models->at<nn::Sequential>(m).forward(x));
    return gg::stack(predictions);
  }
  // Children of a ModuleList are named "0", "1", ...: parameters are "models.2.0.weight".
  std::shared_ptr<nn::ModuleList> models =
      register_module("models", std::make_shared<nn::ModuleList>());
};

// Trains a 4-member ensemble on y = x^2 for `steps` steps; returns the first and last loss.
inline std::pair<double, double> train_ensemble(int steps) {
  gg::manual_seed(0);
  auto ensemble = std::make_shared<Ensemble>(/*members=*/4, /*hidden=*/16);
  gg::optim::Adam optimizer(ensemble->parameters(), gg::optim::AdamOptions(0.01));
  const gg::Tensor x = gg::rand({64, 1}) * 2.0 - 1.0;
  const gg::Tensor y = (x * x).unsqueeze(0).expand({4, 64, 1});  // the target of every member
  double first = 0, last = 0;
  for (int step = 0; step < steps; ++step) {
    gg::Tensor loss = nn::functional::mse_loss(ensemble->forward(x), y);
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    last = loss.item<float>();
    if (step == 0) first = last;
  }
  return {first, last};
}
