#pragma once
// The `train` workload: one training step -- forward, loss, backward, gradient clipping, AdamW
// step, zero_grad (gradients set to none) -- of the model of examples/train_multihead, on
// groupgrad (train_groupgrad.cpp, the example's own model code) and on libtorch
// (train_libtorch.cpp, the same model written with torch::nn). The libtorch model takes the
// groupgrad model's initial parameters, so both start from the same point on the same batch.
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "peers.hpp"

namespace gg::bench {

struct NamedArray {
  std::string name;  // groupgrad's parameter name, e.g. "blocks.0.moe.up.weight.3"
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct TrainSetup {
  // The example's model and optimiser settings (train_multihead's defaults).
  int64_t vocab = 0, seq_len = 32, embed = 64, heads = 4, layers = 2, experts = 4, top_k = 2,
          hidden = 128;
  double lr = 3e-3, beta1 = 0.9, beta2 = 0.95, weight_decay = 0.01, clip = 1.0, aux_coef = 0.01;
  int64_t ignore_index = -100;
  // One batch of the example's data, [batch, width] token ids, row-major.
  int64_t batch = 0, width = 0;
  std::vector<int64_t> input, target;
  std::vector<NamedArray> params;  // the initial parameters
};

struct TrainSide {
  Variant step;                  // one training step
  std::function<double()> loss;  // the loss on the batch now, without a step
  // groupgrad only: the same step followed by examples/train_multihead's per-step TensorBoard
  // logging (SummaryWriter), to show what the logging costs a step.
  std::optional<Variant> logged_step = std::nullopt;
};

// Builds the example's model (seeded) and a batch from `data_path` (one word a line); fills
// `setup` for the libtorch side.
TrainSide groupgrad_train(const std::string& data_path, int64_t batch_size, TrainSetup* setup);
// The same model, parameters and batch on libtorch (available when libtorch_available()).
TrainSide libtorch_train(const TrainSetup& setup);
// The model and optimiser settings of `setup` (and its batch's shape) as JSON.
nlohmann::json settings_json(const TrainSetup& setup);
// Writes the starting point of `setup` for tools/train_pytorch.py to directory `dir` (created if
// needed): params.safetensors (the initial parameters under groupgrad's names, written by
// gg::safetensors::write), batch.safetensors ("input" and "target", Int64 [batch, width]) and
// train.json (the model and optimiser settings, groupgrad's loss on the batch before any step),
// each written atomically, train.json last.
void write_train_dump(const TrainSetup& setup, double initial_loss, const std::string& dir);

}  // namespace gg::bench
