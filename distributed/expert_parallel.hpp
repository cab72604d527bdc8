#pragma once
// Expert parallelism for MoEFeedForward over gg::distributed's ranks (docs/distributed.md, "Expert
// parallelism"): the E experts are sharded, E / world_size per rank, and each token's rows travel
// to the rank that owns its expert and back, with a differentiable all_to_all.
//
//   gg::distributed::init();
//   gg::manual_seed(0);                                   // the same full model on every rank
//   auto full = std::make_shared<gg::nn::MoEFeedForward>(512, 2048, 8, 2);
//   auto moe = gg::nn::ExpertParallelMoE::from_full(*full);   // this rank's 8 / world experts
//   gg::nn::DistributedDataParallel ddp(moe);             // averages the router only
//   auto loss = F::mse_loss(ddp.forward(x_local), y_local) + 0.01 * moe->last_aux_loss();
//   loss.backward();                                      // expert gradients cross ranks as well
//
// Both calls below are collective: every rank makes them in the same order, and every rank then
// runs backward through their outputs (backward exchanges gradients between the ranks; a rank
// that does not take part leaves the others waiting). The ranks must agree on grad mode and on
// the dtypes. Without MPI they throw gg::Error.
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "../nn/grouped_linear.hpp"
#include "../nn/linear.hpp"
#include "../nn/module.hpp"
#include "../nn/moe.hpp"
#include "distributed.hpp"

namespace gg::distributed {

// all_to_all_single along dim 0 as an op of the graph: returns a new tensor of
// sum(output_split_sizes) rows (input's rows when the sizes are empty: equal pieces) with input's
// trailing shape and dtype. Its backward is the reverse exchange, the gradient's rows going back
// with the split sizes swapped. The backward runs on every rank that reached this node, whatever
// needs the gradient there, so every rank must backward through the output.
Tensor all_to_all_differentiable(const Tensor& input, std::vector<int64_t> output_split_sizes,
                                 std::vector<int64_t> input_split_sizes);

}  // namespace gg::distributed

namespace gg::nn {

// MoEFeedForward with its experts spread over the ranks. Rank r holds the experts
// [first_expert(), first_expert() + local_experts()) = [r * E / W, (r + 1) * E / W) of W ranks.
//
// Forward (x: this rank's tokens, (*, embed_dim); different ranks may have different token counts,
// zero included): routes x exactly as MoEFeedForward (same top-k, ties to the lower index, gate
// normalisation, load-balancing loss over this rank's tokens), sorts the (token, slot) rows by
// expert, exchanges the per-expert row counts (all_to_all of W * (local_experts + 3) int64s), sends
// the rows to their experts' ranks (all_to_all_differentiable), runs the local experts with one
// packed grouped_mm per projection, sends the results back the reverse way and combines them with
// the gates. Output, aux loss and gradients equal MoEFeedForward's with the same weights: x's and
// the router's from this rank's tokens, each expert's summed over every rank's tokens routed to
// it (tested on 2 and 4 ranks).
//
// Parameters, named as MoEFeedForward's with local expert indices: router.weight [E, embed]
// (replicated: DistributedDataParallel broadcasts and averages it), up.weight.<i> [hidden, embed],
// up.bias.<i>, down.weight.<i> [embed, hidden], down.bias.<i>, where local index i is global
// expert first_expert() + i. The expert parameters are marked with
// gg::distributed::mark_not_replicated when the module makes them, so DistributedDataParallel
// neither broadcasts nor averages them.
//
// Initialisation: the router as MoEFeedForward's (the global generator; ranks seeded alike get the
// same router, and DDP broadcasts rank 0's anyway); global expert g's four tensors from a generator
// seeded with one draw of the global generator and g, each U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as
// nn.Linear: experts differ from each other, and with ranks seeded alike expert g gets the same
// values whatever the world size. To start from a specific MoEFeedForward, use from_full.
class ExpertParallelMoE : public Module {
 public:
  // Collective. Every rank passes the same arguments (checked: otherwise every rank throws
  // gg::Error), and num_experts must divide by world_size().
  ExpertParallelMoE(int64_t embed_dim, int64_t hidden_dim, int64_t num_experts, int64_t top_k,
                    MoEOptions options = {});
  // Collective: shards `full` (the same module on every rank): a copy of its router and of this
  // rank's experts, in full's dtype.
  static std::shared_ptr<ExpertParallelMoE> from_full(const MoEFeedForward& full);

  // x (*, embed_dim) -> (*, embed_dim). Collective. Also sets last_aux_loss() and
  // last_expert_counts(). Input one rank rejects (shape, dtype) throws gg::Error on every rank.
  Tensor forward(const Tensor& x);

  // The load-balancing loss of the last forward over this rank's tokens (MoEFeedForward's formula;
  // 0 for no tokens). Undefined before the first forward.
  Tensor last_aux_loss() const;
  // This rank's token-slots routed to each of the num_experts() global experts by the last forward
  // (as MoEFeedForward::last_expert_counts gives for these tokens).
  std::vector<int64_t> last_expert_counts() const;

  int64_t embed_dim() const { return embed_dim_; }
  int64_t hidden_dim() const { return hidden_dim_; }
  int64_t num_experts() const { return num_experts_; }
  int64_t top_k() const { return top_k_; }
  const MoEOptions& options() const { return options_; }
  // The experts this rank holds: local_experts() = num_experts() / world size of them, the first
  // being global expert first_expert().
  int64_t local_experts() const { return local_experts_; }
  int64_t first_expert() const { return first_expert_; }

  // "gg::nn::ExpertParallelMoE(embed_dim=8, hidden_dim=16, num_experts=4, top_k=2,
  // normalize_top_k=true, bias=true, experts=[2, 4))".
  void pretty_print(std::ostream& stream) const override;

  std::shared_ptr<Linear> router;
  std::shared_ptr<GroupedLinear> up;    // the local experts' first projection
  std::shared_ptr<GroupedLinear> down;  // and their second

 private:
  int64_t embed_dim_, hidden_dim_, num_experts_, top_k_;
  MoEOptions options_;
  int world_ = 1;
  int64_t local_experts_ = 0, first_expert_ = 0;
  detail::LastRouting last_;  // written by every forward
};

}  // namespace gg::nn
