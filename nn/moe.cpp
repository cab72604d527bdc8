#include "nn/moe.hpp"

#include <algorithm>
#include <mutex>
#include <numeric>
#include <span>

#include "autograd/node.hpp"
#include "nn/functional.hpp"
#include "nn/moe_internal.hpp"
#include "ops/elementwise.hpp"
#include "ops/matmul.hpp"
#include "ops/nn_ops.hpp"
#include "ops/reduce.hpp"
#include "ops/shape_ops.hpp"

namespace gg::nn {

namespace {

constexpr const char* kOp = "[MoEFeedForward]";

// Where each (token, slot) pair goes, from the router probabilities (not differentiable).
struct Routing {
  std::vector<int64_t> counts;       // slots per expert
  std::vector<int64_t> token_of;     // sorted position -> token
  std::vector<int64_t> position_of;  // slot t * k + j -> sorted position
  std::vector<int64_t> prob_index;   // slot t * k + j -> t * num_experts + expert
};

Routing route(const Tensor& probs, int64_t top_k) {
  const int64_t T = probs.size(0), NE = probs.size(1);
  const std::vector<double> p = probs.detach().to(kFloat64).to_vector<double>();
  Routing r;
  r.counts.assign(static_cast<size_t>(NE), 0);
  // Sizes checked by the caller (T * top_k slots, T * NE probabilities).
  r.prob_index.resize(static_cast<size_t>(T * top_k));
  std::vector<int64_t> expert(static_cast<size_t>(T * top_k));
  std::vector<int64_t> order(static_cast<size_t>(NE));
  for (int64_t t = 0; t < T; ++t) {
    const double* row = p.data() + t * NE;
    std::iota(order.begin(), order.end(), 0);
    // Highest probability first; ties go to the lower expert index.
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int64_t a, int64_t b) {
      return row[a] > row[b] || (row[a] == row[b] && a < b);
    });
    for (int64_t j = 0; j < top_k; ++j) {
      const int64_t e = order[j];
      expert[t * top_k + j] = e;
      r.prob_index[t * top_k + j] = t * NE + e;
      ++r.counts[e];
    }
  }
  // Counting sort of the slots by expert, stable (token order within an expert).
  std::vector<int64_t> next(static_cast<size_t>(NE), 0);
  std::partial_sum(r.counts.begin(), r.counts.end() - 1, next.begin() + 1);
  r.token_of.resize(expert.size());
  r.position_of.resize(expert.size());
  for (int64_t s = 0; s < T * top_k; ++s) {
    const int64_t pos = next[expert[s]]++;
    r.token_of[pos] = s / top_k;
    r.position_of[s] = pos;
  }
  return r;
}

// out[t, :] = sum_j gates[t, j] * per_slot[t, j, :], for Float32 as plain loops with their own
// backward: as a batched [1, k] @ [k, E] matmul, each token is a oneDNN batch of a few hundred
// flops, and the gates' gradient (N = k = 2) alone took ~95 us for 512 tokens. Other dtypes
// take the matmul. per_slot [T, k, E], gates [T, k].
Tensor combine_slots(const Tensor& per_slot, const Tensor& gates) {
  const int64_t T = per_slot.size(0), K = per_slot.size(1), E = per_slot.size(2);
  if (per_slot.dtype() != kFloat32 || gates.dtype() != kFloat32)
    return matmul(gates.reshape({T, 1, K}), per_slot).reshape({T, E});
  const Tensor y = per_slot.contiguous(), g = gates.contiguous();
  Tensor out = empty({T, E}, kFloat32);
  {
    const float* py = y.data_ptr<float>();
    const float* pg = g.data_ptr<float>();
    float* po = out.data_ptr<float>();
    for (int64_t t = 0; t < T; ++t) {
      float* o = po + t * E;
      for (int64_t e = 0; e < E; ++e) o[e] = 0;
      for (int64_t j = 0; j < K; ++j) {
        const float w = pg[t * K + j];
        const float* row = py + (t * K + j) * E;
        for (int64_t e = 0; e < E; ++e) o[e] += w * row[e];
      }
    }
  }
  // per_slot is saved only for the gates' gradient, gates only for per_slot's.
  // The backward is a loop that records nothing: once differentiable.
  return autograd::once_differentiable(autograd::record(
      "MoECombineBackward", {per_slot, gates}, out,
      [sy = gates.requires_grad() ? autograd::SavedTensor(y) : autograd::SavedTensor(),
       sg = per_slot.requires_grad() ? autograd::SavedTensor(g) : autograd::SavedTensor(), T, K,
       E](const std::vector<Tensor>& grads, const std::vector<bool>& needs) {
        const Tensor y = sy.unpack(), g = sg.unpack();
        const Tensor d = grads[0].contiguous();
        const float* pd = d.data_ptr<float>();
        Tensor dy, dg;
        if (needs[0]) {  // dy[t, j, :] = gates[t, j] * d[t, :]
          dy = empty({T, K, E}, kFloat32);
          const float* pg = g.data_ptr<float>();
          float* p = dy.data_ptr<float>();
          for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < K; ++j)
              for (int64_t e = 0; e < E; ++e)
                p[(t * K + j) * E + e] = pg[t * K + j] * pd[t * E + e];
        }
        if (needs[1]) {  // dg[t, j] = <per_slot[t, j, :], d[t, :]>
          dg = empty({T, K}, kFloat32);
          const float* py = y.data_ptr<float>();
          float* p = dg.data_ptr<float>();
          for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < K; ++j) {
              float acc = 0;
              for (int64_t e = 0; e < E; ++e) acc += py[(t * K + j) * E + e] * pd[t * E + e];
              p[t * K + j] = acc;
            }
        }
        return std::vector<Tensor>{dy, dg};
      }));
}

}  // namespace

namespace detail {

void check_moe_sizes(const char* op, int64_t embed_dim, int64_t hidden_dim, int64_t num_experts,
                     int64_t top_k) {
  GG_CHECK(embed_dim > 0 && hidden_dim > 0 && num_experts > 0,
           "{} embed_dim, hidden_dim and num_experts must be positive, got {}, {} and {}", op,
           embed_dim, hidden_dim, num_experts);
  GG_CHECK(top_k >= 1 && top_k <= num_experts, "{} top_k must be in [1, num_experts={}], got {}",
           op, num_experts, top_k);
}

void check_moe_router(const char* op, const Tensor& x, int64_t top_k, const Tensor& router_weight,
                      const Tensor& router_bias) {
  GG_CHECK(x.defined(), "{} input is an undefined tensor", op);
  GG_CHECK(router_weight.defined() && router_weight.dim() == 2,
           "{} router weight must be [num_experts, embed_dim], got {}", op,
           describe(router_weight));
  const int64_t NE = router_weight.size(0), E = router_weight.size(1);
  GG_CHECK(x.dim() >= 1 && x.size(-1) == E, "{} input must be [*, {}] (embed_dim), got {}", op, E,
           describe(x));
  GG_CHECK(top_k >= 1 && top_k <= NE, "{} top_k must be in [1, num_experts={}], got {}", op, NE,
           top_k);
  GG_CHECK(!router_bias.defined() || router_bias.shape() == Shape{NE},
           "{} router bias must be [{}], got {}", op, NE, describe(router_bias));
  for (const Tensor* t : {&router_weight, &router_bias}) {
    GG_CHECK(!t->defined() || t->dtype() == x.dtype(),
             "{} input is {} but a parameter is {} ({}); convert the module (module.to(dtype)) "
             "or the input",
             op, dtype_name(x.dtype()), dtype_name(t->dtype()), describe(*t));
  }
}

void check_moe_experts(const char* op, const Tensor& x, int64_t groups, const char* groups_name,
                       const Tensor& up_weight, const Tensor& up_bias, const Tensor& down_weight,
                       const Tensor& down_bias) {
  const int64_t NE = groups, E = x.size(-1);
  GG_CHECK(up_weight.defined() && up_weight.dim() == 3 && up_weight.size(0) == NE &&
               up_weight.size(2) == E,
           "{} up weight must be [{}={}, hidden, embed_dim={}], got {}", op, groups_name, NE, E,
           describe(up_weight));
  const int64_t hidden = up_weight.size(1);
  GG_CHECK(down_weight.defined() && down_weight.shape() == (Shape{NE, E, hidden}),
           "{} down weight must be [{}, {}, {}] ({}, embed_dim, hidden), got {}", op, NE, E, hidden,
           groups_name, describe(down_weight));
  GG_CHECK(!up_bias.defined() || up_bias.shape() == (Shape{NE, hidden}),
           "{} up bias must be [{}, {}], got {}", op, NE, hidden, describe(up_bias));
  GG_CHECK(!down_bias.defined() || down_bias.shape() == (Shape{NE, E}),
           "{} down bias must be [{}, {}], got {}", op, NE, E, describe(down_bias));
  for (const Tensor* t : {&up_weight, &up_bias, &down_weight, &down_bias}) {
    GG_CHECK(!t->defined() || t->dtype() == x.dtype(),
             "{} input is {} but a parameter is {} ({}); convert the module (module.to(dtype)) "
             "or the input",
             op, dtype_name(x.dtype()), dtype_name(t->dtype()), describe(*t));
  }
}

int64_t moe_token_count(const Tensor& x, int64_t top_k) {
  // Tokens: the product of the leading dims (not numel / E: E may be 0).
  const Shape& xs = x.shape();
  const int64_t T =
      size_product(std::span<const int64_t>(xs.data(), xs.size() - 1), "MoEFeedForward",
                   [&] { return "the token count of input " + describe(x); });
  size_mul(T, top_k, "MoEFeedForward",
           [&] { return fmt::format("tokens x top_k={} of {}", top_k, describe(x)); });
  return T;
}

MoERouting moe_route(const Tensor& x, int64_t tokens, int64_t top_k, const Tensor& router_weight,
                     const Tensor& router_bias, bool normalize_top_k) {
  const int64_t T = tokens, E = x.size(-1);
  // route() and the gathers hold a few int64 per (token, slot) pair, and T * NE probabilities.
  check_allocation(static_cast<uint64_t>(T * top_k), 4 * sizeof(int64_t), "MoEFeedForward",
                   "the routing tables of the token slots");
  const Tensor x2 = x.reshape({T, E});
  MoERouting out;
  out.tokens = T;
  out.top_k = top_k;
  out.probs = softmax(functional::linear(x2, router_weight, router_bias), -1);  // (T, NE)
  Routing r = route(out.probs, top_k);

  out.gates = index_select(out.probs.reshape({out.probs.numel()}), 0, tensor<int64_t>(r.prob_index))
                  .reshape({T, top_k});
  if (normalize_top_k) out.gates = out.gates / out.gates.sum(1, true);
  out.dispatched = index_select(x2, 0, tensor<int64_t>(r.token_of));  // (T*k, E)
  out.counts = std::move(r.counts);
  out.position_of = std::move(r.position_of);
  return out;
}

Tensor moe_offsets(const std::vector<int64_t>& counts) {
  std::vector<int64_t> ends(counts.size());
  std::partial_sum(counts.begin(), counts.end(), ends.begin());
  return tensor<int64_t>(ends);
}

Tensor moe_experts(const Tensor& rows, const Tensor& offs, const Tensor& up_weight,
                   const Tensor& up_bias, const Tensor& down_weight, const Tensor& down_bias) {
  // One packed 2D x 3D grouped_mm per projection.
  const Tensor h =
      gelu(functional::grouped_linear(rows, offs, up_weight, up_bias));  // (rows, hidden)
  return functional::grouped_linear(h, offs, down_weight, down_bias);    // (rows, E)
}

Tensor moe_combine(const Tensor& y, const MoERouting& r, const Shape& shape) {
  const Tensor per_slot =
      index_select(y, 0, tensor<int64_t>(r.position_of)).reshape({r.tokens, r.top_k, y.size(1)});
  return combine_slots(per_slot, r.gates).reshape(shape);
}

Tensor moe_aux_loss(const MoERouting& r) {
  const auto slots = static_cast<double>(r.tokens * r.top_k);
  std::vector<double> fraction(r.counts.size());
  for (size_t e = 0; e < r.counts.size(); ++e)
    fraction[e] = static_cast<double>(r.counts[e]) / slots;
  const Tensor f = tensor<double>(fraction).to(r.probs.dtype());
  return (f * r.probs.mean(0)).sum() * static_cast<double>(r.counts.size());
}

}  // namespace detail

namespace functional {

MoEResult moe_feed_forward(const Tensor& x, int64_t top_k, const Tensor& router_weight,
                           const Tensor& router_bias, const Tensor& up_weight,
                           const Tensor& up_bias, const Tensor& down_weight,
                           const Tensor& down_bias, bool normalize_top_k) {
  nn::detail::check_moe_router(kOp, x, top_k, router_weight, router_bias);
  const int64_t NE = router_weight.size(0);
  nn::detail::check_moe_experts(kOp, x, NE, "num_experts", up_weight, up_bias, down_weight,
                                down_bias);
  const int64_t T = nn::detail::moe_token_count(x, top_k);
  MoEResult result;
  if (T == 0) {
    result.output = zeros(x.shape(), x.dtype());
    result.aux_loss = scalar_tensor(0, x.dtype());
    result.expert_counts.assign(static_cast<size_t>(NE), 0);
    return result;
  }
  nn::detail::MoERouting r =
      nn::detail::moe_route(x, T, top_k, router_weight, router_bias, normalize_top_k);
  const Tensor y = nn::detail::moe_experts(r.dispatched, nn::detail::moe_offsets(r.counts),
                                           up_weight, up_bias, down_weight, down_bias);
  result.output = nn::detail::moe_combine(y, r, x.shape());
  result.aux_loss = nn::detail::moe_aux_loss(r);
  result.expert_counts = std::move(r.counts);
  return result;
}

}  // namespace functional

MoEFeedForward::MoEFeedForward(int64_t embed_dim, int64_t hidden_dim, int64_t num_experts,
                               int64_t top_k, MoEOptions options)
    : embed_dim_(embed_dim),
      hidden_dim_(hidden_dim),
      num_experts_(num_experts),
      top_k_(top_k),
      options_(options) {
  detail::check_moe_sizes(kOp, embed_dim, hidden_dim, num_experts, top_k);
  router = register_module("router", std::make_shared<Linear>(embed_dim, num_experts, false));
  const std::vector<int64_t> e(static_cast<size_t>(num_experts), embed_dim);
  const std::vector<int64_t> h(static_cast<size_t>(num_experts), hidden_dim);
  up = register_module("up", std::make_shared<GroupedLinear>(e, h, options.bias));
  down = register_module("down", std::make_shared<GroupedLinear>(h, e, options.bias));
}

Tensor MoEFeedForward::forward(const Tensor& x) {
  functional::MoEResult r = functional::moe_feed_forward(
      x, top_k_, router->weight, router->bias, up->stacked_weight(), up->stacked_bias(),
      down->stacked_weight(), down->stacked_bias(), options_.normalize_top_k);
  { last_.set(std::move(r.aux_loss), std::move(r.expert_counts)); }
  return r.output;
}

void MoEFeedForward::pretty_print(std::ostream& stream) const {
  stream << fmt::format(
      "gg::nn::MoEFeedForward(embed_dim={}, hidden_dim={}, num_experts={}, top_k={}, "
      "normalize_top_k={}, bias={})",
      embed_dim_, hidden_dim_, num_experts_, top_k_, options_.normalize_top_k, options_.bias);
}

std::shared_ptr<Module> MoEFeedForward::clone() const {
  auto copy =
      std::make_shared<MoEFeedForward>(embed_dim_, hidden_dim_, num_experts_, top_k_, options_);
  clone_state_into(*copy);
  return copy;
}

Tensor MoEFeedForward::last_aux_loss() const { return last_.aux_loss(); }

std::vector<int64_t> MoEFeedForward::last_expert_counts() const { return last_.counts(); }

namespace detail {

void LastRouting::set(Tensor aux_loss, std::vector<int64_t> counts) {
  const std::lock_guard<std::mutex> lock(mutex_);
  aux_loss_ = std::move(aux_loss);
  counts_ = std::move(counts);
}

Tensor LastRouting::aux_loss() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return aux_loss_;
}

std::vector<int64_t> LastRouting::counts() const {
  const std::lock_guard<std::mutex> lock(mutex_);
  return counts_;
}

}  // namespace detail

}  // namespace gg::nn
