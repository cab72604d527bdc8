// DistributedDataParallel against one process on the concatenated batch: every rank holds the whole
// batch (same seed), trains on its slice through DDP, and computes the single-process reference on
// all of it with a copy of the broadcast weights. The model routes rows to one of two experts by
// the sign of their first feature, and the data makes rank 0 choose only expert 0 and rank 1 only
// expert 1: on those ranks the other expert gets no gradient and must take part as zeros.
#include <algorithm>
#include <cmath>

#include "dist_support.hpp"

using namespace gg;
using gg::test::as_doubles;
using gg::test::Contains;
using gg::test::error_of;
using gg::test::joined_world;
namespace dist = gg::distributed;

namespace {

struct Routed : nn::Module {
  explicit Routed(Dtype dtype, bool extra = false) {
    fc = register_module("fc", std::make_shared<nn::Linear>(4, 8));
    expert0 = register_module("expert0", std::make_shared<nn::Linear>(8, 3));
    expert1 = register_module("expert1", std::make_shared<nn::Linear>(8, 3));
    register_buffer("scale", full({3}, 1.0 + dist::rank()));
    if (extra) register_parameter("extra", zeros({2}));
    to(dtype);
  }
  Tensor forward(const Tensor& x) {
    const Tensor h = fc->forward(x).tanh();
    const std::vector<double> first = as_doubles(x.select(1, 0));
    std::vector<int64_t> chose[2];
    for (size_t i = 0; i < first.size(); ++i) chose[first[i] > 0 ? 0 : 1].push_back(int64_t(i));
    std::vector<Tensor> ys;
    std::vector<int64_t> order;
    const std::shared_ptr<nn::Linear> experts[2] = {expert0, expert1};
    for (int e = 0; e < 2; ++e) {
      if (chose[e].empty()) continue;  // this expert gets no gradient in this step
      ys.push_back(experts[e]->forward(index_select(h, 0, tensor(chose[e]))));
      order.insert(order.end(), chose[e].begin(), chose[e].end());
    }
    std::vector<int64_t> inverse(order.size());
    for (size_t k = 0; k < order.size(); ++k) inverse[static_cast<size_t>(order[k])] = int64_t(k);
    return index_select(cat(ys, 0), 0, tensor(inverse)) * buffer("scale");
  }
  std::shared_ptr<nn::Linear> fc, expert0, expert1;
};

// A model with `from`'s current parameter and buffer values.
std::shared_ptr<Routed> copy_of(const Routed& from, Dtype dtype) {
  auto ref = std::make_shared<Routed>(dtype);
  NoGradGuard no_grad;
  for (const auto& [name, t] : from.named_parameters()) ref->parameter(name).copy_(t);
  for (const auto& [name, t] : from.named_buffers()) ref->buffer(name).copy_(t);
  return ref;
}

// The whole batch of `rows_per_rank` rows per rank (the same on every rank): rank 0's rows all go
// to expert 0 and rank 1's all to expert 1, the other ranks' rows are mixed.
std::pair<Tensor, Tensor> whole_batch(int world, int64_t rows_per_rank, Dtype dtype,
                                      uint64_t seed) {
  manual_seed(seed);
  std::vector<double> x = as_doubles(randn({world * rows_per_rank, 4}, kFloat64));
  for (int64_t i = 0; i < rows_per_rank; ++i) {
    x[static_cast<size_t>(4 * i)] = std::abs(x[static_cast<size_t>(4 * i)]) + 0.1;
    const auto j = static_cast<size_t>(4 * (rows_per_rank + i));
    x[j] = -std::abs(x[j]) - 0.1;
  }
  const Tensor y = randn({world * rows_per_rank, 3}, kFloat64);
  return {tensor(x, {world * rows_per_rank, 4}).to(dtype), y.to(dtype)};
}

Tensor slice(const Tensor& t, int64_t rows) { return t.narrow(0, dist::rank() * rows, rows); }

// Every parameter's grad equals the reference's to tol (relative to max(1, |ref|)).
// In the whole-batch comparisons every expert is used by some rank, so every grad is defined.
void require_same_grads(const nn::Module& net, const nn::Module& ref, double tol) {
  for (const auto& [name, p] : net.named_parameters()) {
    INFO("parameter " << name << " on rank " << dist::rank());
    // Undefined only where the reference has none either (an expert this rank alone never used).
    REQUIRE(p.grad().defined() == ref.parameter(name).grad().defined());
    if (!p.grad().defined()) continue;
    const std::vector<double> got = as_doubles(p.grad()),
                              want = as_doubles(ref.parameter(name).grad());
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i)
      REQUIRE(std::abs(got[i] - want[i]) <= tol * std::max(1.0, std::abs(want[i])));
  }
}

void check_one_step_equals_whole_batch(Dtype dtype, double tol, double bucket_cap_mb) {
  const int w = joined_world();
  manual_seed(100 + static_cast<uint64_t>(dist::rank()));  // different weights on every rank...
  auto net = std::make_shared<Routed>(dtype);
  nn::DistributedDataParallel ddp(net, {bucket_cap_mb, {}});  // ... until DDP broadcasts rank 0's
  CHECK(as_doubles(net->buffer("scale")) == std::vector<double>{1, 1, 1});
  if (bucket_cap_mb < 0.001) CHECK(ddp.bucket_parameter_names().size() > 2);
  auto ref = copy_of(*net, dtype);
  for (uint64_t step = 0; step < 2; ++step) {
    const int64_t rows = 5;
    const auto [x, y] = whole_batch(w, rows, dtype, 7 + step);
    mse_loss(ddp.forward(slice(x, rows)), slice(y, rows)).backward();
    mse_loss(ref->forward(x), y).backward();
    require_same_grads(*net, *ref, tol);
    ddp.zero_grad(/*set_to_none=*/step == 0);
    ref->zero_grad(step == 0);
  }
}

}  // namespace

TEST_CASE("DDP: one step equals one process on the whole batch (Float64, 1e-12)", "[dist][ddp]") {
  check_one_step_equals_whole_batch(kFloat64, 1e-12, 25);
  // Buckets of ~200 bytes: many buckets, started while backward runs, in the same order everywhere.
  check_one_step_equals_whole_batch(kFloat64, 1e-12, 0.0002);
}

TEST_CASE("DDP: one step equals one process on the whole batch (Float32, 1e-5)", "[dist][ddp]") {
  // Float32: the ranks' partial gradients are summed in a different order than the single
  // process sums the rows, so the results agree to rounding (a few ulps of the largest terms).
  check_one_step_equals_whole_batch(kFloat32, 1e-5, 25);
  check_one_step_equals_whole_batch(kFloat32, 1e-5, 0.0002);
}

TEST_CASE("DDP: BFloat16 gradients are averaged in float32 (to bf16 accuracy)", "[dist][ddp]") {
  // BFloat16 buckets are Float32: compared with the Float64 model on the whole batch with the same
  // (bf16) weights, only bf16's own rounding of the forward and backward remains (8 bits: 2^-8
  // relative per rounding, a few of them in a row).
  const int w = joined_world();
  manual_seed(150 + static_cast<uint64_t>(dist::rank()));
  auto net = std::make_shared<Routed>(kBFloat16);
  nn::DistributedDataParallel ddp(net);
  auto ref = std::make_shared<Routed>(kFloat64);
  {
    NoGradGuard no_grad;
    for (const auto& [name, t] : net->named_parameters()) ref->parameter(name).copy_(t);
    for (const auto& [name, t] : net->named_buffers()) ref->buffer(name).copy_(t);
  }
  const int64_t rows = 5;
  const auto [x, y] = whole_batch(w, rows, kFloat64, 17);
  mse_loss(ddp.forward(slice(x, rows).to(kBFloat16)), slice(y, rows).to(kBFloat16)).backward();
  mse_loss(ref->forward(x.to(kBFloat16).to(kFloat64)), y.to(kBFloat16).to(kFloat64)).backward();
  for (const auto& [name, p] : net->named_parameters()) REQUIRE(p.grad().dtype() == kBFloat16);
  require_same_grads(*net, *ref, 5e-2);
}

TEST_CASE("DDP: no_sync accumulates locally, the next backward averages the sum", "[dist][ddp]") {
  const int w = joined_world();
  manual_seed(200 + static_cast<uint64_t>(dist::rank()));
  auto net = std::make_shared<Routed>(kFloat64);
  nn::DistributedDataParallel ddp(net);
  auto ref = copy_of(*net, kFloat64);
  auto local_ref = copy_of(*net, kFloat64);
  const int64_t rows = 4;
  const auto [x1, y1] = whole_batch(w, rows, kFloat64, 31);
  const auto [x2, y2] = whole_batch(w, rows, kFloat64, 32);
  {
    auto guard = ddp.no_sync();
    mse_loss(ddp.forward(slice(x1, rows)), slice(y1, rows)).backward();
  }
  // Not averaged: exactly this rank's own gradient.
  mse_loss(local_ref->forward(slice(x1, rows)), slice(y1, rows)).backward();
  require_same_grads(*net, *local_ref, 0);
  mse_loss(ddp.forward(slice(x2, rows)), slice(y2, rows)).backward();
  (mse_loss(ref->forward(x1), y1) + mse_loss(ref->forward(x2), y2)).backward();
  require_same_grads(*net, *ref, 1e-12);
}

TEST_CASE("DDP: parameters marked not replicated are neither broadcast nor averaged",
          "[dist][ddp]") {
  const int w = joined_world();
  manual_seed(300 + static_cast<uint64_t>(dist::rank()));
  auto net = std::make_shared<Routed>(kFloat64);
  dist::mark_not_replicated(net->expert1->weight);
  CHECK_FALSE(dist::is_replicated(net->expert1->weight));
  CHECK(dist::is_replicated(net->expert1->bias));
  const std::vector<double> own = as_doubles(net->expert1->weight);
  nn::DistributedDataParallel ddp(net, {25, {"expert0.bias"}});
  CHECK(as_doubles(net->expert1->weight) == own);  // this rank's own values
  for (const auto& bucket : ddp.bucket_parameter_names())
    for (const std::string& name : bucket) {
      CHECK(name != "module.expert1.weight");
      CHECK(name != "module.expert0.bias");
    }
  auto local_ref = copy_of(*net, kFloat64);
  const int64_t rows = 4;
  const auto [x, y] = whole_batch(w, rows, kFloat64, 41);
  mse_loss(ddp.forward(slice(x, rows)), slice(y, rows)).backward();
  mse_loss(local_ref->forward(slice(x, rows)), slice(y, rows)).backward();
  for (const char* name : {"expert1.weight", "expert0.bias"}) {
    INFO(name);
    const Tensor g = net->parameter(name).grad(), want = local_ref->parameter(name).grad();
    if (want.defined()) {
      CHECK(as_doubles(g) == as_doubles(want));  // local only
    } else {
      CHECK_FALSE(g.defined());  // no expert row on this rank, and nobody filled it in
    }
  }
}

TEST_CASE("DDP: ranks that wrap different models all throw", "[dist][ddp]") {
  joined_world();
  const int r = dist::rank();
  auto more = std::make_shared<Routed>(kFloat64, /*extra=*/r == 0);
  const std::string count_error = error_of([&] { nn::DistributedDataParallel ddp(more); });
  CHECK_THAT(count_error, Contains("[DistributedDataParallel] every rank must wrap a module with "
                                   "the same number of replicated parameters and buffers") &&
                              Contains("rank 0 has 8, rank 1 has 7"));
  auto other = std::make_shared<Routed>(r == 1 ? kFloat32 : kFloat64);
  const std::string dtype_error = error_of([&] { nn::DistributedDataParallel ddp(other); });
  CHECK_THAT(dtype_error, Contains("[DistributedDataParallel] broadcasting fc.weight from rank 0: "
                                   "[broadcast] every rank must pass the same dtype and shape") &&
                              Contains("rank 1 has float32 [8, 4]"));
  auto fine = std::make_shared<Routed>(kFloat64);
  CHECK_THAT(error_of([&] {
               nn::DistributedDataParallel ddp(fine, {0, {}});
             }),
             Contains("[DistributedDataParallel] bucket_cap_mb must be positive, got 0"));
  dist::barrier();
}
