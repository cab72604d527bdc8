// ExpertParallelMoE against the single-process MoEFeedForward with the same weights. Every rank
// builds the same full module from one seed and shards it with from_full; each rank feeds its own
// tokens (rank q's come from a seed of q, so any rank can make any rank's). The oracle, computed
// on every rank with copies of the full module: output, aux loss, x's and the router's gradients
// from this rank's tokens alone; each expert's gradients summed over every rank's tokens (the
// full module run on each rank's batch in turn, accumulating).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <sstream>
#include <string>

#include "dist_support.hpp"
#include "distributed/expert_parallel.hpp"

using namespace gg;
using gg::test::as_doubles;
using gg::test::Contains;
using gg::test::error_of;
using gg::test::joined_world;
namespace dist = gg::distributed;

namespace {

constexpr int64_t kEmbed = 6, kHidden = 5;

// |got - want| <= tol * max(1, |want|) elementwise, with equal shapes.
void require_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what << " on rank " << dist::rank());
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(got.shape() == want.shape());
  const std::vector<double> g = as_doubles(got), w = as_doubles(want);
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": " << g[i] << " vs " << w[i]);
    REQUIRE(std::abs(g[i] - w[i]) <= tol * std::max(1.0, std::abs(w[i])));
  }
}

// Rank q's tokens x (lead..., embed) and the weights w of its loss sum(out * w).
struct Batch {
  Tensor x, w;
};
Batch batch_of(int q, const Shape& lead, Dtype dtype, uint64_t seed) {
  manual_seed(seed * 1000 + static_cast<uint64_t>(q));
  Shape shape = lead;
  shape.push_back(kEmbed);
  const Tensor x = randn(shape, kFloat64).to(dtype), w = randn(shape, kFloat64).to(dtype);
  return {x, w};
}

// The loss every rank backpropagates: it weights each output element differently and includes the
// load-balancing loss, so that every gradient path (experts, gates, aux) is exercised.
Tensor loss_of(const Tensor& out, const Tensor& aux, const Tensor& w) {
  return (out * w).sum() + aux * 0.3;
}

struct Case {
  Dtype dtype = kFloat64;
  double tol = 1e-12;
  int64_t experts_per_rank = 2;
  int64_t top_k = 2;
  nn::MoEOptions options = {};
  bool x_requires_grad = true;
  bool zero_router = false;  // all probabilities equal: experts 0..top_k-1 win every tie
  std::function<Shape(int)> lead = [](int q) { return Shape{3 + 2 * q}; };
  uint64_t seed = 1;
};

std::shared_ptr<nn::MoEFeedForward> full_module(const Case& c, int world) {
  manual_seed(c.seed);
  auto full = std::make_shared<nn::MoEFeedForward>(kEmbed, kHidden, c.experts_per_rank * world,
                                                   c.top_k, c.options);
  full->to(c.dtype);
  if (c.zero_router) {
    NoGradGuard no_grad;
    full->router->weight.copy_(zeros(full->router->weight.shape(), c.dtype));
  }
  return full;
}

std::shared_ptr<nn::MoEFeedForward> copy_of(const nn::MoEFeedForward& m) {
  return std::dynamic_pointer_cast<nn::MoEFeedForward>(m.clone());
}

// Checks one step of ExpertParallelMoE against the full module on every rank's tokens.
void check_against_full(const Case& c) {
  const int w = joined_world();
  const int me = dist::rank();
  const auto full = full_module(c, w);
  const auto ep = nn::ExpertParallelMoE::from_full(*full);
  REQUIRE(ep->local_experts() == c.experts_per_rank);
  REQUIRE(ep->first_expert() == me * c.experts_per_rank);
  REQUIRE(ep->num_experts() == c.experts_per_rank * w);

  const Batch b = batch_of(me, c.lead(me), c.dtype, c.seed);
  Tensor x = b.x.detach().clone();
  if (c.x_requires_grad) x.requires_grad_();
  const Tensor out = ep->forward(x);
  loss_of(out, ep->last_aux_loss(), b.w).backward();

  // This rank's tokens through the full module: output, aux loss, counts, x's and router's grads.
  const auto mine = copy_of(*full);
  Tensor x_ref = b.x.detach().clone();
  if (c.x_requires_grad) x_ref.requires_grad_();
  const Tensor out_ref = mine->forward(x_ref);
  const int64_t tokens = x.numel() / kEmbed;
  if (tokens > 0) loss_of(out_ref, mine->last_aux_loss(), b.w).backward();
  require_close(out, out_ref, c.tol, "output");
  require_close(ep->last_aux_loss(), mine->last_aux_loss(), c.tol, "aux loss");
  CHECK(ep->last_expert_counts() == mine->last_expert_counts());
  if (tokens > 0) {
    if (c.x_requires_grad) require_close(x.grad(), x_ref.grad(), c.tol, "x grad");
    require_close(ep->router->weight.grad(), mine->router->weight.grad(), c.tol, "router grad");
  } else {  // no tokens: nothing to route, and nothing flows back to x or the router
    if (x.grad().defined()) CHECK(x.grad().numel() == 0);
    const Tensor g = ep->router->weight.grad();
    if (g.defined()) require_close(g, zeros(g.shape(), c.dtype), 0, "router grad");
  }

  // Every rank's tokens through the full module, accumulating: the experts' gradients.
  const auto all = copy_of(*full);
  for (int q = 0; q < w; ++q) {
    const Batch bq = batch_of(q, c.lead(q), c.dtype, c.seed);
    if (bq.x.numel() == 0) continue;
    const Tensor out_q = all->forward(bq.x);  // before last_aux_loss()
    loss_of(out_q, all->last_aux_loss(), bq.w).backward();
  }
  for (const char* kind : {"up.weight.", "up.bias.", "down.weight.", "down.bias."}) {
    if (!c.options.bias && std::string(kind).find("bias") != std::string::npos) continue;
    for (int64_t i = 0; i < ep->local_experts(); ++i) {
      const std::string local = kind + std::to_string(i);
      const std::string global = kind + std::to_string(ep->first_expert() + i);
      require_close(ep->parameter(local).grad(), all->parameter(global).grad(), c.tol,
                    local + " grad (global " + global + ")");
    }
  }
  dist::barrier();
}

}  // namespace

TEST_CASE("EP: all_to_all_differentiable moves rows and sends gradients back", "[dist][ep]") {
  const int w = joined_world();
  const int r = dist::rank();
  // Rank i sends (i + 2 j) % 3 rows to rank j (some pieces empty); row k of that piece holds
  // value(i, j, k, col). The loss on rank j weights row k from rank i by weight(i, j, k, col), so
  // the gradient of rank i's row k for j is weight(i, j, k, col): known on every rank.
  const auto rows = [](int i, int j) { return int64_t((i + 2 * j) % 3); };
  const auto value = [](int i, int j, int64_t k, int col) {
    return 100.0 * i + 10 * j + k + 0.25 * col;
  };
  const auto weight = [](int i, int j, int64_t k, int col) {
    return 1.0 + i - 2.0 * j + 0.5 * k - col;
  };
  for (Dtype d : {kFloat64, kFloat32}) {
    INFO(dtype_name(d));
    std::vector<int64_t> in_splits, out_splits;
    std::vector<double> in_values, want_out, loss_weights, want_grad;
    for (int j = 0; j < w; ++j) {
      in_splits.push_back(rows(r, j));
      for (int64_t k = 0; k < rows(r, j); ++k)
        for (int col = 0; col < 2; ++col) {
          in_values.push_back(value(r, j, k, col));
          want_grad.push_back(weight(r, j, k, col));
        }
    }
    for (int i = 0; i < w; ++i) {
      out_splits.push_back(rows(i, r));
      for (int64_t k = 0; k < rows(i, r); ++k)
        for (int col = 0; col < 2; ++col) {
          want_out.push_back(value(i, r, k, col));
          loss_weights.push_back(weight(i, r, k, col));
        }
    }
    const auto n = [](const std::vector<double>& v) { return static_cast<int64_t>(v.size() / 2); };
    Tensor x = tensor(in_values, {n(in_values), 2}).to(d).requires_grad_();
    const Tensor y = dist::all_to_all_differentiable(x, out_splits, in_splits);
    CHECK(y.dtype() == d);
    CHECK(as_doubles(y) == want_out);
    (y * tensor(loss_weights, {n(loss_weights), 2}).to(d)).sum().backward();
    REQUIRE(x.grad().defined());
    CHECK(as_doubles(x.grad()) == want_grad);
  }
  // Equal pieces without split sizes, and a 3-D input: row j goes to rank j.
  {
    std::vector<double> v;
    for (int j = 0; j < w; ++j) v.insert(v.end(), {double(r), double(j), double(r * j)});
    Tensor x = tensor(v, {w, 1, 3}).requires_grad_();
    const Tensor y = dist::all_to_all_differentiable(x, {}, {});
    std::vector<double> want;
    for (int i = 0; i < w; ++i) want.insert(want.end(), {double(i), double(r), double(i * r)});
    CHECK(y.shape() == Shape{w, 1, 3});
    CHECK(as_doubles(y) == want);
    // Loss sum(y * (rank + 1)): every row of x goes to rank j, whose weight is j + 1.
    (y * double(r + 1)).sum().backward();
    std::vector<double> grad;
    for (int j = 0; j < w; ++j) grad.insert(grad.end(), 3, double(j + 1));
    CHECK(as_doubles(x.grad()) == grad);
  }
  // Split sizes the ranks disagree on: the collective's check throws on every rank.
  {
    std::vector<int64_t> splits(static_cast<size_t>(w), 1);
    if (r == 1) splits[0] = 2;
    const Tensor x = zeros({r == 1 ? w + 1 : w, 2});
    const std::string error = error_of(
        [&] { dist::all_to_all_differentiable(x, std::vector<int64_t>(size_t(w), 1), splits); });
    CHECK_THAT(error, Contains("[all_to_all_single] rank 1 sends 2 rows to rank 0"));
  }
  dist::barrier();
}

TEST_CASE("EP: output, aux loss and every gradient equal MoEFeedForward's (Float64, 1e-12)",
          "[dist][ep]") {
  SECTION("two experts per rank, top 2, uneven token counts") { check_against_full({}); }
  SECTION("one expert per rank, top 1, no biases, raw gates, 3-D input") {
    check_against_full({.experts_per_rank = 1,
                        .top_k = 1,
                        .options = {.normalize_top_k = false, .bias = false},
                        .lead =
                            [](int q) {
                              return Shape{2, 1 + q};
                            },
                        .seed = 2});
  }
  SECTION("three experts per rank, top 3") {
    check_against_full({.experts_per_rank = 3, .top_k = 3, .seed = 3});
  }
  SECTION("x without grad (raw data): the experts and router still get theirs") {
    check_against_full({.x_requires_grad = false, .seed = 4});
  }
}

TEST_CASE("EP: output, aux loss and every gradient equal MoEFeedForward's (Float32, 1e-5)",
          "[dist][ep]") {
  // Float32: output, aux loss, x's and the router's gradients come out bit for bit here; an
  // expert's weight gradient sums the rows of every rank in another order than the full module (by
  // expert, then by source rank), so it agrees to rounding: below 1e-8 relative on this machine,
  // and 1e-5 relative to max(1, |g|) leaves room for other oneDNN kernels and ISAs.
  check_against_full({.dtype = kFloat32, .tol = 1e-5, .seed = 5});
}

TEST_CASE("EP: experts no token chose on any rank get zero gradients, without a hang",
          "[dist][ep]") {
  // A zero router gives every expert the same probability: ties go to the lower index, so experts
  // 0 and 1 take every token, and the ranks past the first hold experts that receive no rows.
  check_against_full({.top_k = 2, .zero_router = true, .seed = 6});
  // One expert per rank, top 1: rank 0's expert takes everything.
  check_against_full({.experts_per_rank = 1, .top_k = 1, .zero_router = true, .seed = 6});
}

TEST_CASE("EP: a rank with no tokens still takes part", "[dist][ep]") {
  const auto lead = [](int q) { return Shape{q == 0 || q == 3 ? 0 : 4 + q}; };
  check_against_full({.lead = lead, .seed = 7});
  // Float32 combines the gates with its own loop.
  check_against_full({.dtype = kFloat32, .tol = 1e-5, .lead = lead, .seed = 7});
}

TEST_CASE("EP: parameter names, marks and initialisation", "[dist][ep]") {
  const int w = joined_world();
  const int me = dist::rank();
  manual_seed(11);
  nn::ExpertParallelMoE ep(kEmbed, kHidden, 2 * w, 2);
  std::vector<std::string> names;
  for (const auto& [name, p] : ep.named_parameters()) names.push_back(name);
  const std::vector<std::string> want{"router.weight", "up.weight.0", "up.weight.1",
                                      "up.bias.0",     "up.bias.1",   "down.weight.0",
                                      "down.weight.1", "down.bias.0", "down.bias.1"};
  CHECK(names == want);
  CHECK(dist::is_replicated(ep.router->weight));
  for (const auto& [name, p] : ep.named_parameters())
    if (name != "router.weight") CHECK_FALSE(dist::is_replicated(p));
  // Seeded alike, the ranks share the router; the experts all differ, and stay within nn.Linear's
  // bounds.
  const std::vector<Tensor> routers = dist::all_gather(ep.router->weight);
  for (const Tensor& t : routers) CHECK(as_doubles(t) == as_doubles(ep.router->weight));
  std::vector<std::vector<double>> experts;
  for (const Tensor& t : dist::all_gather(ep.up->stacked_weight().detach()))
    for (int64_t i = 0; i < 2; ++i) experts.push_back(as_doubles(t.select(0, i)));
  for (size_t a = 0; a < experts.size(); ++a)
    for (size_t b = a + 1; b < experts.size(); ++b) CHECK(experts[a] != experts[b]);
  for (double v : as_doubles(ep.down->stacked_bias().detach()))
    CHECK(std::abs(v) <= 1 / std::sqrt(double(kHidden)));
  std::ostringstream printed;
  ep.pretty_print(printed);
  CHECK_THAT(printed.str(), Contains(fmt::format("experts=[{}, {})", 2 * me, 2 * me + 2)));
  dist::barrier();
}

TEST_CASE("EP: DDP averages the router only; the experts keep their summed gradients",
          "[dist][ep][ddp]") {
  const int w = joined_world();
  const int me = dist::rank();
  const Case c{.seed = 8};
  const auto full = full_module(c, w);
  const auto ep = nn::ExpertParallelMoE::from_full(*full);
  nn::DistributedDataParallel ddp(ep);
  const auto buckets = ddp.bucket_parameter_names();
  std::vector<std::string> averaged;
  for (const auto& bucket : buckets) averaged.insert(averaged.end(), bucket.begin(), bucket.end());
  CHECK(averaged == std::vector<std::string>{"module.router.weight"});

  const Batch b = batch_of(me, c.lead(me), c.dtype, c.seed);
  const Tensor out = ddp.forward(b.x);
  loss_of(out, ep->last_aux_loss(), b.w).backward();
  const auto all = copy_of(*full);
  for (int q = 0; q < w; ++q) {
    const Batch bq = batch_of(q, c.lead(q), c.dtype, c.seed);
    const Tensor out_q = all->forward(bq.x);  // before last_aux_loss()
    loss_of(out_q, all->last_aux_loss(), bq.w).backward();
  }
  // The router: the mean over the ranks of their own tokens' gradients.
  require_close(ep->router->weight.grad(), all->router->weight.grad() / double(w), 1e-12,
                "router grad");
  for (int64_t i = 0; i < ep->local_experts(); ++i) {
    const std::string global = std::to_string(ep->first_expert() + i);
    require_close(ep->up->weight->tensors()[static_cast<size_t>(i)].grad(),
                  all->parameter("up.weight." + global).grad(), 1e-12, "up.weight grad");
    require_close(ep->down->bias->tensors()[static_cast<size_t>(i)].grad(),
                  all->parameter("down.bias." + global).grad(), 1e-12, "down.bias grad");
  }
  dist::barrier();
}

TEST_CASE("EP: bad construction and bad input throw on every rank", "[dist][ep]") {
  const int w = joined_world();
  const int me = dist::rank();
  CHECK_THAT(error_of([&] { nn::ExpertParallelMoE ep(kEmbed, kHidden, w + 1, 1); }),
             Contains(fmt::format("[ExpertParallelMoE] num_experts={} must be divisible by the "
                                  "world size {}",
                                  w + 1, w)));
  CHECK_THAT(error_of([&] { nn::ExpertParallelMoE ep(kEmbed, me == 1 ? 7 : kHidden, w, 1); }),
             Contains("[ExpertParallelMoE] every rank must construct it with the same arguments: "
                      "rank 0 has (embed_dim=6, hidden_dim=5,") &&
                 Contains("rank 1 has (embed_dim=6, hidden_dim=7,"));
  CHECK_THAT(error_of([&] { nn::ExpertParallelMoE ep(kEmbed, kHidden, w, w + 1); }),
             Contains(fmt::format(
                 "[ExpertParallelMoE] top_k must be in [1, num_experts={}], got {}", w, w + 1)));
  // Rank 1's input has the wrong width: it throws its own error, the others say who failed.
  nn::ExpertParallelMoE ep(kEmbed, kHidden, w, 1);
  const Tensor x = zeros({3, me == 1 ? kEmbed + 1 : kEmbed});
  const std::string error = error_of([&] { ep.forward(x); });
  if (me == 1) {
    CHECK_THAT(error, Contains("[ExpertParallelMoE] input must be [*, 6] (embed_dim)"));
  } else {
    CHECK_THAT(error, Contains("[ExpertParallelMoE] rank 1 rejected its input"));
  }
  // Grad mode off on one rank only, while the others record: every rank throws.
  const std::string mode_error = error_of([&] {
    std::optional<NoGradGuard> guard;
    if (me == 0) guard.emplace();
    ep.forward(zeros({2, kEmbed}));
  });
  CHECK_THAT(mode_error, Contains("[ExpertParallelMoE] some ranks run forward with grad mode off"));
  // And afterwards the ranks are still in step: a forward under no_grad everywhere works.
  {
    NoGradGuard no_grad;
    CHECK(ep.forward(ones({2, kEmbed})).shape() == Shape{2, kEmbed});
  }
  dist::barrier();
}
