#pragma once
// --expert-parallel of examples/train_multihead: each block's MoEFeedForward sharded over the
// ranks with gg::nn::ExpertParallelMoE (E / world experts per rank, the router replicated), and
// what training such a model needs besides DDP:
//  - gradients: DDP averages the replicated gradients (÷ world), but an expert's gradient is the
//    SUM over the ranks of each rank's loss gradient, i.e. world × the global-mean gradient;
//    average_expert_grads() divides it by world;
//  - clipping by the global norm: the replicated part once, plus every rank's experts;
//  - checkpoints in the one-process layout: the full model (every rank's experts gathered under
//    the full module's names) and the full optimizer state, so a checkpoint loads in one process
//    and a --resume re-shards it.
// Every call below but with_full is collective: every rank makes it, in the same order.
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model.hpp"

namespace train {

class ExpertSharding {
 public:
  // Collective: replaces every block's MoEFeedForward of `model` (the same on every rank) by
  // ExpertParallelMoE::from_full of it, keeping the full layers to write checkpoints from.
  explicit ExpertSharding(CharTransformer& model)
      : model_(model), rank_(gg::distributed::rank()), world_(gg::distributed::world_size()) {
    for (auto& block : model.blocks) {
      auto full = block->moe_as<gg::nn::MoEFeedForward>();
      GG_CHECK(full != nullptr, "[train] ExpertSharding: a block's MoE is not a MoEFeedForward");
      auto sharded = gg::nn::ExpertParallelMoE::from_full(*full);
      local_experts_ = sharded->local_experts();
      block->set_moe(sharded);
      full_.push_back(full);
      sharded_.push_back(sharded);
    }
    for (const auto& p : model.parameters())
      (gg::distributed::is_replicated(p) ? replicated_ : experts_).push_back(p);
  }

  const std::vector<gg::Tensor>& replicated() const { return replicated_; }

  // After backward (and DDP's average of the rest): the experts' gradients ÷ world, so that
  // every gradient is the global batch's mean gradient, as one process computes it.
  void average_expert_grads() const {
    gg::NoGradGuard no_grad;
    for (const auto& p : experts_)
      if (p.grad().defined()) p.grad().mul_(1.0 / world_);
  }

  // Collective. clip_grad_norm_ over the whole model: the total 2-norm of the replicated
  // gradients (equal on every rank, counted once) and of every rank's experts (all_reduce of
  // their squares); scales every gradient by max_norm / (norm + 1e-6) when that is below 1.
  // Returns the norm.
  double clip_grad_norm(double max_norm) const {
    constexpr double kNoClip = std::numeric_limits<double>::infinity();  // measures only
    const double rep = gg::nn::utils::clip_grad_norm_(replicated_, kNoClip);
    const double mine = gg::nn::utils::clip_grad_norm_(experts_, kNoClip);
    gg::Tensor sq = gg::tensor<double>({mine * mine}, {1});
    gg::distributed::all_reduce(sq, gg::distributed::ReduceOp::Sum);
    const double total = std::sqrt(rep * rep + sq.to_vector<double>()[0]);
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
      gg::NoGradGuard no_grad;
      for (const auto* list : {&replicated_, &experts_})
        for (const auto& p : *list)
          if (p.grad().defined()) p.grad().mul_(static_cast<double>(static_cast<float>(coef)));
    }
    return total;
  }

  // Runs fn with the blocks' full MoEFeedForward layers in the model in place of the sharded ones
  // (model.named_parameters() then reads as one process's), and puts the sharded ones back.
  template <class Fn>
  void with_full(Fn&& fn) {
    for (size_t l = 0; l < full_.size(); ++l) model_.blocks[l]->set_moe(full_[l]);
    try {
      fn();
    } catch (...) {
      restore();
      throw;
    }
    restore();
  }

  // Collective: copies the router and every rank's experts into the full layers (all_gather),
  // and returns the optimizer's state in the full model's layout: "state.<k>.<key>" with k the
  // index of the parameter in the full model's parameters() (what one process's AdamW saves).
  gg::nn::NamedTensors gather(const gg::optim::Optimizer& optimizer) {
    gg::NoGradGuard no_grad;
    const gg::nn::NamedTensors sharded = model_.named_parameters();
    std::map<std::string, std::pair<size_t, gg::Tensor>> full;  // name -> (index, tensor)
    with_full([&] {
      size_t k = 0;
      for (const auto& [name, t] : model_.named_parameters()) full[name] = {k++, t};
    });
    // The optimizer's state by parameter: "state.<j>.<key>" (the same keys, in the same order,
    // on every rank: every parameter has been stepped).
    std::map<size_t, std::vector<std::pair<std::string, gg::Tensor>>> state;
    for (const auto& [name, t] : optimizer.state_dict()) {
      const size_t dot = name.find('.', 6);
      state[std::stoull(name.substr(6, dot - 6))].emplace_back(name.substr(dot + 1), t);
    }
    gg::nn::NamedTensors out;
    for (size_t j = 0; j < sharded.size(); ++j) {
      const auto& [name, t] = sharded[j];
      const bool replicated = gg::distributed::is_replicated(t);
      // This parameter and its state, from every rank that holds a different one.
      std::vector<gg::Tensor> values =
          replicated ? std::vector<gg::Tensor>{t} : gg::distributed::all_gather(t);
      for (size_t r = 0; r < values.size(); ++r)
        full_entry(full, name, replicated, static_cast<int>(r)).second.copy_(values[r]);
      for (const auto& [key, s] : state[j]) {
        std::vector<gg::Tensor> states =
            replicated ? std::vector<gg::Tensor>{s} : gg::distributed::all_gather(s.reshape({-1}));
        for (size_t r = 0; r < states.size(); ++r) {
          const size_t k = full_entry(full, name, replicated, static_cast<int>(r)).first;
          out.emplace_back(fmt::format("state.{}.{}", k, key),
                           replicated ? states[r] : states[r].reshape(s.shape()));
        }
      }
    }
    return out;
  }

  // Not collective: this rank's share of `full_state` (an optimizer state in the full layout,
  // whose parameter names were `full_names`), for an optimizer over the sharded model's
  // parameters().
  gg::nn::NamedTensors shard_state(const gg::nn::NamedTensors& full_state,
                                   const gg::nn::NamedTensors& full_names) const {
    std::map<std::string, size_t> index;
    for (size_t k = 0; k < full_names.size(); ++k) index[full_names[k].first] = k;
    std::map<size_t, size_t> to_local;  // full index -> sharded index
    const gg::nn::NamedTensors sharded = model_.named_parameters();
    for (size_t j = 0; j < sharded.size(); ++j) {
      const auto& [name, t] = sharded[j];
      const std::string n = full_name(name, gg::distributed::is_replicated(t), rank_);
      const auto it = index.find(n);
      GG_CHECK(it != index.end(), "[train] ExpertSharding: the full model has no parameter {}", n);
      to_local[it->second] = j;
    }
    gg::nn::NamedTensors out;
    for (const auto& [name, t] : full_state) {  // "state.<k>.<key>"
      const size_t dot = name.find('.', 6);
      const size_t k = std::stoull(name.substr(6, dot - 6));
      if (const auto it = to_local.find(k); it != to_local.end())
        out.emplace_back(fmt::format("state.{}{}", it->second, name.substr(dot)), t);
    }
    return out;
  }

 private:
  // The full model's name of rank r's parameter `name`: an expert's local index made global.
  std::string full_name(const std::string& name, bool replicated, int r) const {
    if (replicated) return name;
    const size_t dot = name.rfind('.');
    const int64_t i = std::stoll(name.substr(dot + 1));
    return name.substr(0, dot + 1) + std::to_string(r * local_experts_ + i);
  }
  std::pair<size_t, gg::Tensor>& full_entry(std::map<std::string, std::pair<size_t, gg::Tensor>>& m,
                                            const std::string& name, bool replicated, int r) const {
    const std::string n = full_name(name, replicated, r);
    const auto it = m.find(n);
    GG_CHECK(it != m.end(), "[train] ExpertSharding: the full model has no parameter {}", n);
    return it->second;
  }
  void restore() {
    for (size_t l = 0; l < sharded_.size(); ++l) model_.blocks[l]->set_moe(sharded_[l]);
  }

  CharTransformer& model_;
  int rank_, world_;
  int64_t local_experts_ = 0;
  std::vector<std::shared_ptr<gg::nn::MoEFeedForward>> full_;
  std::vector<std::shared_ptr<gg::nn::ExpertParallelMoE>> sharded_;
  std::vector<gg::Tensor> replicated_, experts_;
};

}  // namespace train
