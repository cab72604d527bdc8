#pragma once
// The pieces of MoEFeedForward's forward (nn/moe.cpp), shared with ExpertParallelMoE
// (distributed/expert_parallel.cpp), which runs the same routing and combine around an exchange of
// the dispatched rows between ranks. Library-internal: no public header includes this one.
#include <cstdint>
#include <vector>

#include "../core/tensor.hpp"

namespace gg::nn::detail {

// Checks a MoE layer's constructor sizes: embed_dim, hidden_dim and num_experts positive, top_k in
// [1, num_experts]. `op` ("[MoEFeedForward]") starts every message.
void check_moe_sizes(const char* op, int64_t embed_dim, int64_t hidden_dim, int64_t num_experts,
                     int64_t top_k);
// Checks x against the router: defined, [*, embed] with embed = router_weight.size(1), top_k in
// [1, num_experts], router_weight [num_experts, embed], router_bias [num_experts] or undefined,
// and the router's dtype equal to x's. `op` ("[MoEFeedForward]") starts every message.
void check_moe_router(const char* op, const Tensor& x, int64_t top_k, const Tensor& router_weight,
                      const Tensor& router_bias);
// Checks `groups` experts' stacked parameters against x (already checked by check_moe_router):
// up_weight [groups, hidden, embed], up_bias [groups, hidden], down_weight [groups, embed, hidden],
// down_bias [groups, embed] (biases may be undefined), all of x's dtype. `groups_name` names the
// group count in the messages ("num_experts").
void check_moe_experts(const char* op, const Tensor& x, int64_t groups, const char* groups_name,
                       const Tensor& up_weight, const Tensor& up_bias, const Tensor& down_weight,
                       const Tensor& down_bias);

// The number of tokens of x (the product of its leading dims), checking that tokens x top_k
// fits int64.
int64_t moe_token_count(const Tensor& x, int64_t top_k);

// Where the (token, slot) pairs of x go, and the tensors the rest of the forward needs. Works for
// zero tokens too (empty tensors, zero counts).
struct MoERouting {
  int64_t tokens = 0;
  int64_t top_k = 0;
  Tensor probs;       // (T, num_experts) router softmax
  Tensor gates;       // (T, top_k) the chosen experts' probabilities (renormalised if asked)
  Tensor dispatched;  // (T * top_k, embed) x's rows sorted by expert (stable: by token within one)
  std::vector<int64_t> counts;       // slots per expert
  std::vector<int64_t> position_of;  // slot t * top_k + j -> its row in `dispatched`
};
// Routes x (checked by check_moe_router; T = moe_token_count(x, top_k)) as MoEFeedForward does:
// top-k by probability, ties to the lower expert index, gates renormalised when normalize_top_k.
MoERouting moe_route(const Tensor& x, int64_t tokens, int64_t top_k, const Tensor& router_weight,
                     const Tensor& router_bias, bool normalize_top_k);

// Cumulative end offsets of row counts (grouped_mm's offs), Int64.
Tensor moe_offsets(const std::vector<int64_t>& counts);
// The experts on rows grouped by offs: gelu(rows @ up^T + up_bias) @ down^T + down_bias, one packed
// grouped_mm per projection.
Tensor moe_experts(const Tensor& rows, const Tensor& offs, const Tensor& up_weight,
                   const Tensor& up_bias, const Tensor& down_weight, const Tensor& down_bias);
// out[t] = sum_j gates[t, j] * y[position_of[t * k + j]]: the expert outputs y (in `dispatched`'s
// row order) back in token order, weighted by the gates, reshaped to `shape`.
Tensor moe_combine(const Tensor& y, const MoERouting& r, const Shape& shape);
// The Switch Transformer load-balancing loss of the routing (needs tokens > 0).
Tensor moe_aux_loss(const MoERouting& r);

}  // namespace gg::nn::detail
