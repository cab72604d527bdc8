#pragma once
// One training step of examples/train_multihead's model (its own train/model.hpp), as that
// example takes it minus the learning-rate schedule and the logging: forward, loss (cross-entropy
// plus the MoE auxiliary loss), backward, clip_grad_norm_, AdamW step, zero_grad(set_to_none).
// Shared by the train workload (train_groupgrad.cpp) and the dp workload (dp.cpp), which wraps
// the model in DistributedDataParallel.
#include <groupgrad/groupgrad.hpp>
#include <memory>
#include <vector>

#include "train.hpp"
#include "train/data.hpp"
#include "train/model.hpp"

namespace gg::bench {

struct GroupgradTrainer {
  std::shared_ptr<train::CharTransformer> model;
  // When set (dp workload), it wraps `model` and forward goes through it, so that backward
  // averages the gradients over the ranks.
  std::shared_ptr<gg::nn::DistributedDataParallel<train::CharTransformer>> ddp;
  std::unique_ptr<gg::optim::AdamW> optimizer;
  std::vector<gg::Tensor> params;
  gg::Tensor input, target;
  double aux_coef = 0;
  double clip = 0;

  gg::Tensor loss() {
    gg::Tensor logits = ddp ? ddp->forward(input) : model->forward(input);
    gg::Tensor ce = gg::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                      target.reshape({-1}), gg::Reduction::Mean,
                                                      train::kIgnore);
    return ce + model->aux_loss * (aux_coef / static_cast<double>(model->config.layers));
  }

  gg::Tensor step() {
    gg::Tensor l = loss();
    l.backward();
    gg::nn::utils::clip_grad_norm_(params, clip);
    optimizer->step();
    optimizer->zero_grad(/*set_to_none=*/true);
    return l;
  }
};

// The example's model configuration for the settings in s (s.vocab must be set).
inline train::ModelConfig model_config(const TrainSetup& s) {
  return {.vocab_size = s.vocab,
          .seq_len = s.seq_len,
          .embed_dim = s.embed,
          .heads = s.heads,
          .layers = s.layers,
          .experts = s.experts,
          .top_k = s.top_k,
          .expert_hidden = s.hidden};
}

// A fresh model (seeded as the example seeds it, so every call makes the same parameters), its
// AdamW, and the batch.
inline std::shared_ptr<GroupgradTrainer> make_trainer(const train::ModelConfig& config,
                                                      const TrainSetup& s,
                                                      const train::Batch& batch) {
  gg::manual_seed(1337);  // the example's default seed
  auto t = std::make_shared<GroupgradTrainer>();
  t->model = std::make_shared<train::CharTransformer>(config);
  t->params = t->model->parameters();
  t->optimizer = std::make_unique<gg::optim::AdamW>(
      t->params,
      gg::optim::AdamWOptions(s.lr).betas({s.beta1, s.beta2}).weight_decay(s.weight_decay));
  t->aux_coef = s.aux_coef;
  t->clip = s.clip;
  t->input = batch.input;
  t->target = batch.target;
  return t;
}

}  // namespace gg::bench
