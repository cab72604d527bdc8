// ExpertParallelMoE and the differentiable all_to_all it moves rows with (docs/distributed.md,
// "Expert parallelism"). The routing, the experts' packed grouped_mm and the combine are
// MoEFeedForward's own (nn/moe_internal.hpp); this file adds the exchanges between them.
#include "distributed/expert_parallel.hpp"

#include <fmt/format.h>

#include <cmath>
#include <exception>
#include <optional>
#include <string>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "distributed/async_reduce.hpp"
#include "nn/moe_internal.hpp"
#include "ops/shape_ops.hpp"

namespace gg::distributed {

namespace {
// Rows of the output of an all_to_all_single: the sum of the split sizes, or the input's rows for
// equal pieces. Split sizes the collective will reject (negative, overflowing) give 0 here, so that
// the collective's own check, on every rank, is what throws.
int64_t output_rows(const Tensor& input, const std::vector<int64_t>& output_split_sizes) {
  if (output_split_sizes.empty()) return input.defined() && input.dim() >= 1 ? input.size(0) : 0;
  int64_t rows = 0;
  for (const int64_t s : output_split_sizes) {
    if (s < 0 || __builtin_add_overflow(rows, s, &rows)) return 0;
  }
  return rows;
}
}  // namespace

Tensor all_to_all_differentiable(const Tensor& input, std::vector<int64_t> output_split_sizes,
                                 std::vector<int64_t> input_split_sizes) {
  detail::require_mpi("all_to_all_differentiable");
  // An output the collective can describe even for bad input: it checks every rank's operands.
  Shape shape{output_rows(input, output_split_sizes)};
  if (input.defined() && input.dim() >= 1)
    shape.insert(shape.end(), input.shape().begin() + 1, input.shape().end());
  Tensor output = empty(std::move(shape), input.defined() ? input.dtype() : kFloat32);
  all_to_all_single(output, input, output_split_sizes, input_split_sizes);
  // The reverse exchange, written with this op itself, so that it is differentiable again. It
  // runs even where input's gradient is not needed: the other ranks wait for this rank's rows.
  return autograd::record(
      "AllToAllBackward", {input}, output,
      [out_splits = std::move(output_split_sizes), in_splits = std::move(input_split_sizes)](
          const std::vector<Tensor>& grads, const std::vector<bool>& needs) {
        Tensor g = all_to_all_differentiable(grads[0], in_splits, out_splits);
        return std::vector<Tensor>{needs[0] ? std::move(g) : Tensor()};
      });
}

}  // namespace gg::distributed

namespace gg::nn {

namespace {

constexpr const char* kOp = "[ExpertParallelMoE]";

// The constructor's arguments, all-gathered to check that the ranks agree.
std::string config_str(const std::vector<int64_t>& c) {
  return fmt::format(
      "embed_dim={}, hidden_dim={}, num_experts={}, top_k={}, normalize_top_k={}, bias={}", c[0],
      c[1], c[2], c[3], c[4] != 0, c[5] != 0);
}

// U(-bound, bound) into t, from gen (bound = 1/sqrt(fan_in), nn.Linear's initialisation).
void fill_uniform(const Tensor& t, int64_t fan_in, Generator& gen) {
  const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
  std::vector<double> values(static_cast<size_t>(t.numel()));
  for (double& v : values) v = (2 * gen.uniform() - 1) * bound;
  NoGradGuard no_grad;
  Tensor(t).copy_(tensor<double>(values, t.shape()));
}

}  // namespace

ExpertParallelMoE::ExpertParallelMoE(int64_t embed_dim, int64_t hidden_dim, int64_t num_experts,
                                     int64_t top_k, MoEOptions options)
    : embed_dim_(embed_dim),
      hidden_dim_(hidden_dim),
      num_experts_(num_experts),
      top_k_(top_k),
      options_(options) {
  distributed::detail::require_mpi("ExpertParallelMoE");
  world_ = distributed::world_size();
  const int me = distributed::rank();
  // First the ranks compare their arguments, so that a rank with different (or bad) ones throws
  // together with the others instead of leaving them waiting in the next collective.
  const std::vector<int64_t> mine{
      embed_dim, hidden_dim, num_experts, top_k, options.normalize_top_k, options.bias};
  const std::vector<Tensor> all = distributed::all_gather(tensor<int64_t>(mine));
  for (int r = 1; r < world_; ++r) {
    const std::vector<int64_t> theirs = all[static_cast<size_t>(r)].to_vector<int64_t>();
    GG_CHECK(theirs == all[0].to_vector<int64_t>(),
             "{} every rank must construct it with the same arguments: rank 0 has ({}), rank {} "
             "has ({})",
             kOp, config_str(all[0].to_vector<int64_t>()), r, config_str(theirs));
  }
  detail::check_moe_sizes(kOp, embed_dim, hidden_dim, num_experts, top_k);
  GG_CHECK(num_experts % world_ == 0,
           "{} num_experts={} must be divisible by the world size {} (each rank holds "
           "num_experts / world_size experts)",
           kOp, num_experts, world_);
  local_experts_ = num_experts / world_;
  first_expert_ = static_cast<int64_t>(me) * local_experts_;

  router = register_module("router", std::make_shared<Linear>(embed_dim, num_experts, false));
  const std::vector<int64_t> e(static_cast<size_t>(local_experts_), embed_dim);
  const std::vector<int64_t> h(static_cast<size_t>(local_experts_), hidden_dim);
  up = register_module("up", std::make_shared<GroupedLinear>(e, h, options.bias));
  down = register_module("down", std::make_shared<GroupedLinear>(h, e, options.bias));

  // Each global expert from its own generator: one draw of the global generator (the same on
  // ranks seeded alike) and the expert's global index.
  uint64_t base = 0;
  {
    Generator& g = global_generator();
    const std::lock_guard lock(g.mutex());
    base = g.next_u64();
  }
  for (int64_t i = 0; i < local_experts_; ++i) {
    const auto global = static_cast<uint64_t>(first_expert_ + i);
    Generator gen(base ^ (0x9e3779b97f4a7c15ULL * (global + 1)));
    const auto k = static_cast<size_t>(i);
    fill_uniform((*up->weight)[k], embed_dim, gen);
    if (up->bias) fill_uniform((*up->bias)[k], embed_dim, gen);
    fill_uniform((*down->weight)[k], hidden_dim, gen);
    if (down->bias) fill_uniform((*down->bias)[k], hidden_dim, gen);
  }
  for (const std::shared_ptr<GroupedLinear>& experts : {up, down})
    for (const Tensor& p : experts->parameters()) distributed::mark_not_replicated(p);
}

std::shared_ptr<ExpertParallelMoE> ExpertParallelMoE::from_full(const MoEFeedForward& full) {
  auto ep = std::make_shared<ExpertParallelMoE>(full.embed_dim(), full.hidden_dim(),
                                                full.num_experts(), full.top_k(), full.options());
  ep->to(full.router->weight.dtype());
  NoGradGuard no_grad;
  ep->router->weight.copy_(full.router->weight);
  const auto copy = [&](const ParameterList& to, const ParameterList& from) {
    for (size_t i = 0; i < to.size(); ++i)
      Tensor(to[i]).copy_(from[static_cast<size_t>(ep->first_expert_) + i]);
  };
  copy(*ep->up->weight, *full.up->weight);
  copy(*ep->down->weight, *full.down->weight);
  if (full.up->bias) copy(*ep->up->bias, *full.up->bias);
  if (full.down->bias) copy(*ep->down->bias, *full.down->bias);
  return ep;
}

Tensor ExpertParallelMoE::forward(const Tensor& x) {
  const int64_t L = local_experts_;
  const auto W = static_cast<size_t>(world_);
  // This rank's part, which may throw: kept until the ranks have compared notes, so that every
  // rank throws (a rank that threw alone would leave the others in the exchange).
  std::exception_ptr error;
  std::optional<detail::MoERouting> routed;
  Tensor up_w, up_b, down_w, down_b;
  bool need_x = false, need_any = false;
  try {
    detail::check_moe_router(kOp, x, top_k_, router->weight, router->bias);
    up_w = up->stacked_weight();
    up_b = up->stacked_bias();
    down_w = down->stacked_weight();
    down_b = down->stacked_bias();
    detail::check_moe_experts(kOp, x, L, "local_experts", up_w, up_b, down_w, down_b);
    const int64_t T = detail::moe_token_count(x, top_k_);
    routed =
        detail::moe_route(x, T, top_k_, router->weight, router->bias, options_.normalize_top_k);
    need_x = autograd::needs_grad({x});
    need_any = autograd::needs_grad({x, up_w, up_b, down_w, down_b});
  } catch (const Error&) {
    error = std::current_exception();
  }

  // The counts exchange: to each rank, this rank's rows for each of its experts, then whether
  // gradients must travel back through the first exchange (x needs one) and through the second
  // (x or the experts need one), whether grad mode is on, and whether this rank failed.
  const auto stride = static_cast<size_t>(L) + 4;
  std::vector<int64_t> send(W * stride, 0);
  for (size_t j = 0; j < W; ++j) {
    int64_t* to = send.data() + j * stride;
    if (routed)
      for (size_t l = 0; l < static_cast<size_t>(L); ++l)
        to[l] = routed->counts[j * static_cast<size_t>(L) + l];
    to[L] = need_x;
    to[L + 1] = need_any;
    to[L + 2] = GradMode::is_enabled();
    to[L + 3] = error != nullptr;
  }
  Tensor received_counts = empty({static_cast<int64_t>(W * stride)}, kInt64);
  distributed::all_to_all_single(received_counts, tensor<int64_t>(send));
  const std::vector<int64_t> recv = received_counts.to_vector<int64_t>();
  bool any_need_x = false, any_need = false, all_enabled = true;
  int failed = -1;
  for (size_t i = 0; i < W; ++i) {
    const int64_t* from = recv.data() + i * stride;
    any_need_x = any_need_x || from[L] != 0;
    any_need = any_need || from[L + 1] != 0;
    all_enabled = all_enabled && from[L + 2] != 0;
    if (from[L + 3] != 0 && failed < 0) failed = static_cast<int>(i);
  }
  if (error) std::rethrow_exception(error);
  GG_CHECK(failed < 0,
           "{} rank {} rejected its input (its own error says why); every rank stops this forward",
           kOp, failed);
  GG_CHECK(!any_need || all_enabled,
           "{} some ranks run forward with grad mode off while others record a graph; every rank "
           "must do the same, since backward exchanges gradients between the ranks",
           kOp);
  detail::MoERouting& r = *routed;

  // Rows to each rank (r's slots are sorted by global expert: rank j's experts are contiguous),
  // rows from each, and the rows each local expert gets.
  std::vector<int64_t> send_rows(W, 0), recv_rows(W, 0), expert_rows(static_cast<size_t>(L), 0);
  for (size_t j = 0; j < W; ++j)
    for (size_t l = 0; l < static_cast<size_t>(L); ++l) {
      send_rows[j] += r.counts[j * static_cast<size_t>(L) + l];
      recv_rows[j] += recv[j * stride + l];
      expert_rows[l] += recv[j * stride + l];
    }
  // The received rows come by source rank, then by expert: `order` lists them by expert, then by
  // source rank (the packed grouped_mm needs each expert's rows together).
  std::vector<int64_t> order, source_start(W, 0);
  for (size_t i = 1; i < W; ++i) source_start[i] = source_start[i - 1] + recv_rows[i - 1];
  for (size_t l = 0; l < static_cast<size_t>(L); ++l)
    for (size_t i = 0; i < W; ++i) {
      int64_t at = source_start[i];
      for (size_t m = 0; m < l; ++m) at += recv[i * stride + m];
      for (int64_t c = 0; c < recv[i * stride + l]; ++c) order.push_back(at + c);
    }
  bool identity = true;
  std::vector<int64_t> back_order(order.size());
  for (size_t p = 0; p < order.size(); ++p) {
    identity = identity && order[p] == static_cast<int64_t>(p);
    back_order[static_cast<size_t>(order[p])] = static_cast<int64_t>(p);
  }

  // An exchange whose gradient some rank needs is recorded on every rank, so that every rank's
  // backward takes part in the reverse exchange: where nothing before it requires grad, a
  // detached copy that does stands in. (With raw data for x and no rank needing x's gradient,
  // the first exchange has no backward anywhere.)
  Tensor dispatched = r.dispatched;
  if (any_need_x && !dispatched.requires_grad()) dispatched = dispatched.detach().requires_grad_();
  const Tensor arrived = distributed::all_to_all_differentiable(dispatched, recv_rows, send_rows);
  const Tensor by_expert = identity ? arrived : index_select(arrived, 0, tensor<int64_t>(order));
  const Tensor y =
      detail::moe_experts(by_expert, detail::moe_offsets(expert_rows), up_w, up_b, down_w, down_b);
  Tensor by_source = identity ? y : index_select(y, 0, tensor<int64_t>(back_order));
  if (any_need && !by_source.requires_grad()) by_source = by_source.detach().requires_grad_();
  const Tensor returned = distributed::all_to_all_differentiable(by_source, send_rows, recv_rows);
  Tensor output = detail::moe_combine(returned, r, x.shape());
  Tensor aux = r.tokens > 0 ? detail::moe_aux_loss(r) : scalar_tensor(0, x.dtype());
  last_.set(std::move(aux), std::move(r.counts));
  return output;
}

Tensor ExpertParallelMoE::last_aux_loss() const { return last_.aux_loss(); }

std::vector<int64_t> ExpertParallelMoE::last_expert_counts() const { return last_.counts(); }

void ExpertParallelMoE::pretty_print(std::ostream& stream) const {
  stream << fmt::format(
      "gg::nn::ExpertParallelMoE(embed_dim={}, hidden_dim={}, num_experts={}, top_k={}, "
      "normalize_top_k={}, bias={}, experts=[{}, {}))",
      embed_dim_, hidden_dim_, num_experts_, top_k_, options_.normalize_top_k, options_.bias,
      first_expert_, first_expert_ + local_experts_);
}

}  // namespace gg::nn
