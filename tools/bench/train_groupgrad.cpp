// The groupgrad side of the `train` workload: the model of examples/train_multihead (its own
// train/model.hpp and train/data.hpp), one step as that example takes it, minus the learning-rate
// schedule and the logging.
#include <groupgrad/groupgrad.hpp>
#include <memory>

#include "groupgrad_variant.hpp"
#include "train.hpp"
#include "train/data.hpp"
#include "train/model.hpp"

namespace F = gg::nn::functional;

namespace gg::bench {

namespace {
struct GroupgradTrainer {
  std::shared_ptr<train::CharTransformer> model;
  std::unique_ptr<gg::optim::AdamW> optimizer;
  std::vector<gg::Tensor> params;
  gg::Tensor input, target;
  double aux_coef = 0;
  double clip = 0;

  gg::Tensor loss() {
    gg::Tensor logits = model->forward(input);
    gg::Tensor ce = F::cross_entropy(logits.reshape({-1, logits.size(-1)}), target.reshape({-1}),
                                     gg::Reduction::Mean, train::kIgnore);
    return ce + model->aux_loss * (aux_coef / static_cast<double>(model->config.layers));
  }

  void step() {
    loss().backward();
    gg::nn::utils::clip_grad_norm_(params, clip);
    optimizer->step();
    optimizer->zero_grad(/*set_to_none=*/true);
  }
};
}  // namespace

TrainSide groupgrad_train(const std::string& data_path, int64_t batch_size, TrainSetup* setup) {
  TrainSetup& s = *setup;
  const train::Dataset data = train::load_dataset(data_path, 0.1);
  s.vocab = data.vocab_size();
  s.ignore_index = train::kIgnore;
  train::ModelConfig config{.vocab_size = s.vocab,
                            .seq_len = s.seq_len,
                            .embed_dim = s.embed,
                            .heads = s.heads,
                            .layers = s.layers,
                            .experts = s.experts,
                            .top_k = s.top_k,
                            .expert_hidden = s.hidden};
  gg::manual_seed(1337);  // the example's default seed
  auto t = std::make_shared<GroupgradTrainer>();
  t->model = std::make_shared<train::CharTransformer>(config);
  t->params = t->model->parameters();
  t->optimizer = std::make_unique<gg::optim::AdamW>(
      t->params,
      gg::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).weight_decay(s.weight_decay));
  t->aux_coef = s.aux_coef;
  t->clip = s.clip;
  train::BatchOrder order(data.train, batch_size, 1337);
  train::Batch batch = train::make_batch(data.train, order.indices(0), s.seq_len);
  t->input = batch.input;
  t->target = batch.target;

  s.batch = batch.input.size(0);
  s.width = batch.input.size(1);
  s.input = batch.input.to_vector<int64_t>();
  s.target = batch.target.to_vector<int64_t>();
  s.params.clear();
  for (const auto& [name, p] : t->model->named_parameters())
    s.params.push_back({name, p.shape(), p.contiguous().to_vector<float>()});

  return {{"groupgrad", [t] { t->step(); }, groupgrad_memory_counter(), ""}, [t] {
            gg::NoGradGuard no_grad;
            return static_cast<double>(t->loss().item<float>());
          }};
}

}  // namespace gg::bench
