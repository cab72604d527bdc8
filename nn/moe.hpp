#pragma once
// MoEFeedForward: a mixture-of-experts feed-forward layer (Mixtral-style top-k routing, no token
// dropping), with every expert projection as ONE packed grouped_mm.
//
// For x (*, embed) flattened to T tokens:
//   probs   = softmax(router(x))                        router: Linear(embed, num_experts, no bias)
//   top-k   experts per token by probability (ties -> lower index); the choice is not
//           differentiable, the gate values are: gates = probs of the chosen experts, renormalised
//           to sum to 1 over the top-k (Mixtral; options.normalize_top_k = false keeps them raw)
//   dispatch the T*k (token, slot) pairs sorted by expert (stable, so by token within an expert),
//           offs = cumulative expert counts; x rows gathered in that order (index_select)
//   experts h = gelu(up(x_sorted, offs)), y = down(h, offs): two 2D x 3D grouped_mm calls
//   combine out[t] = sum_j gates[t, j] * y[slot (t, j)] (a gather back to token order, then a sum
//           over the k slots: gradients reach router, experts and x)
// and the Switch Transformer load-balancing loss, kept from the last forward:
//   aux = num_experts * sum_e f_e * P_e,  f_e = (slots routed to e) / (T * k),  P_e = mean_t probs
//   (1 for a perfectly balanced router; only P_e carries gradient, to the router and x).
//
// Parameters: router.weight [num_experts, embed]; up.weight.<e> [hidden, embed], up.bias.<e>;
// down.weight.<e> [embed, hidden], down.bias.<e> (GroupedLinear naming; nn.Linear layout and
// initialisation per expert).
#include <memory>
#include <mutex>
#include <vector>

#include "grouped_linear.hpp"
#include "linear.hpp"
#include "module.hpp"

namespace gg::nn {

namespace detail {
// The load-balancing loss and expert counts of a MoE layer's last forward. Forwards of one module
// may run concurrently, so the pair is written and read together under a mutex.
class LastRouting {
 public:
  void set(Tensor aux_loss, std::vector<int64_t> counts);
  Tensor aux_loss() const;
  std::vector<int64_t> counts() const;

 private:
  mutable std::mutex mutex_;
  Tensor aux_loss_;
  std::vector<int64_t> counts_;
};
}  // namespace detail

struct MoEOptions {
  bool normalize_top_k = true;  // renormalise the top-k gates to sum to 1 (Mixtral)
  bool bias = true;             // biases in the expert projections
};

class MoEFeedForward : public Module {
 public:
  MoEFeedForward(int64_t embed_dim, int64_t hidden_dim, int64_t num_experts, int64_t top_k,
                 MoEOptions options = {});

  // x (*, embed_dim) -> (*, embed_dim). Also sets last_aux_loss() and last_expert_counts().
  // Forwards of one module may run concurrently (the README's promise): the only state forward
  // writes is this pair, stored together under a mutex; with concurrent forwards "the last" is
  // whichever finished last. To get one call's own loss and counts, use
  // functional::moe_feed_forward.
  Tensor forward(const Tensor& x);

  // The load-balancing loss of the last forward (a scalar in the graph of that forward; add
  // `coef * moe->last_aux_loss()` to the training loss). Undefined before the first forward.
  Tensor last_aux_loss() const;
  // Token-slots routed to each expert by the last forward (a copy: forwards may be running).
  std::vector<int64_t> last_expert_counts() const;

  int64_t embed_dim() const { return embed_dim_; }
  int64_t hidden_dim() const { return hidden_dim_; }
  int64_t num_experts() const { return num_experts_; }
  int64_t top_k() const { return top_k_; }
  const MoEOptions& options() const { return options_; }

  // "gg::nn::MoEFeedForward(embed_dim=8, hidden_dim=16, num_experts=4, top_k=2,
  // normalize_top_k=true, bias=true)"; router, up and down follow under operator<<.
  void pretty_print(std::ostream& stream) const override;
  // A deep copy (the last forward's aux loss and counts are not copied).
  std::shared_ptr<Module> clone() const override;

  std::shared_ptr<Linear> router;
  std::shared_ptr<GroupedLinear> up;
  std::shared_ptr<GroupedLinear> down;

 private:
  int64_t embed_dim_, hidden_dim_, num_experts_, top_k_;
  MoEOptions options_;
  detail::LastRouting last_;  // written by every forward
};

using MoE = MoEFeedForward;

namespace functional {

struct MoEResult {
  Tensor output;    // (*, embed)
  Tensor aux_loss;  // scalar
  std::vector<int64_t> expert_counts;
};

// The layer's forward with explicit parameters: router_weight [E_x, embed] (router_bias may be
// undefined), up_weight [E_x, hidden, embed], up_bias [E_x, hidden], down_weight
// [E_x, embed, hidden], down_bias [E_x, embed] (biases may be undefined).
MoEResult moe_feed_forward(const Tensor& x, int64_t top_k, const Tensor& router_weight,
                           const Tensor& router_bias, const Tensor& up_weight,
                           const Tensor& up_bias, const Tensor& down_weight,
                           const Tensor& down_bias, bool normalize_top_k = true);

}  // namespace functional

}  // namespace gg::nn
