// Thread safety: grouped_mm and module forwards (GroupedLinear, MultiheadAttention, Linear,
// LayerNorm, Embedding, MoEFeedForward) run from several std::threads at once on SHARED weights
// under NoGradGuard, and every result equals the one computed single-threaded beforehand, bit for
// bit. Also: grad mode is per thread, and independent models train in parallel threads to the same
// parameters as sequentially. The TSan preset runs these ("threads:" tests) with OMP_NUM_THREADS=1.
#include <catch2/catch.hpp>
#include <functional>
#include <thread>

#include "groupgrad.hpp"
#include "ops/onednn/context.hpp"

using namespace gg;
namespace F = gg::nn::functional;

namespace {

constexpr int kThreads = 4;
constexpr int kRounds = 6;

std::vector<float> floats(const Tensor& t) { return t.contiguous().to_vector<float>(); }

// Runs work(thread, round) for every round on kThreads threads at once, each starting together,
// and returns how many results differed from expected(thread, round).
int run_concurrently(const std::function<std::vector<float>(int, int)>& work,
                     const std::vector<std::vector<std::vector<float>>>& expected) {
  std::atomic<int> mismatches{0}, ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      NoGradGuard no_grad;
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      for (int r = 0; r < kRounds; ++r)
        if (work(t, r) != expected[t][r]) mismatches.fetch_add(1);
    });
  }
  for (auto& th : threads) th.join();
  return mismatches.load();
}

// The single-threaded results of work for every (thread, round).
std::vector<std::vector<std::vector<float>>> sequential(
    const std::function<std::vector<float>(int, int)>& work) {
  NoGradGuard no_grad;
  std::vector<std::vector<std::vector<float>>> out(kThreads);
  for (int t = 0; t < kThreads; ++t)
    for (int r = 0; r < kRounds; ++r) out[t].push_back(work(t, r));
  return out;
}

// Inputs made up front in the main thread (one per thread and round), so the threads only read.
template <class Make>
auto inputs(Make make) {
  std::vector<std::vector<decltype(make(0, 0))>> v(kThreads);
  for (int t = 0; t < kThreads; ++t)
    for (int r = 0; r < kRounds; ++r) v[t].push_back(make(t, r));
  return v;
}

}  // namespace

TEST_CASE("threads: grouped_mm list and packed forms on shared weights", "[threads]") {
  manual_seed(1);
  // Shared: ragged list weights with biases, a packed 2D x 3D stack, a 3D x 3D stack.
  const std::vector<Tensor> ws = {randn({16, 24}), randn({8, 8}), randn({32, 4}).t()};
  const std::vector<Tensor> bs = {randn({24}), Tensor(), randn({32})};
  const Tensor w3 = randn({4, 16, 12}), b3 = randn({4, 12});
  const Tensor w33 = randn({3, 8, 5});
  const auto list_in = inputs([](int, int r) {
    return std::vector<Tensor>{randn({5 + r, 16}), randn({3, 8}), randn({2, 7, 4})};
  });
  const auto packed_in = inputs([](int t, int r) {
    const int64_t m = 20 + t + r;
    return std::pair{randn({m, 16}), tensor<int64_t>({3, 3 + t, 10, m - 1})};
  });
  const auto batched_in = inputs([](int, int) { return randn({3, 6, 8}); });

  auto work = [&](int t, int r) {
    std::vector<float> all;
    for (const Tensor& y : F::grouped_mm(list_in[t][r], ws, bs)) {
      const auto v = floats(y);
      all.insert(all.end(), v.begin(), v.end());
    }
    const auto& [x, offs] = packed_in[t][r];
    for (float v : floats(F::grouped_mm(x, w3, {.offs = offs, .bias = b3}))) all.push_back(v);
    for (float v : floats(F::grouped_mm(batched_in[t][r], w33))) all.push_back(v);
    // Float64 runs on the reference kernel.
    for (double v :
         F::grouped_mm(batched_in[t][r].to(kFloat64), w33.to(kFloat64)).to_vector<double>())
      all.push_back(static_cast<float>(v));
    return all;
  };
  const auto expected = sequential(work);
  CHECK(run_concurrently(work, expected) == 0);
}

TEST_CASE("threads: GroupedLinear and MultiheadAttention forwards on one shared module",
          "[threads]") {
  manual_seed(2);
  nn::GroupedLinear glin({8, 12, 8}, {16, 4, 16});
  nn::GroupedLinear uniform({8, 8, 8, 8}, {6, 6, 6, 6});
  nn::MultiheadAttention mha(16, 4);
  mha.eval();
  const auto list_in = inputs([](int, int r) {
    return std::vector<Tensor>{randn({4 + r, 8}), randn({3, 12}), randn({2, 2, 8})};
  });
  const auto packed_in = inputs([](int t, int) {
    return std::pair{randn({12, 8}), tensor<int32_t>({2, 5 + t % 3, 9, 12})};
  });
  const auto seq_in = inputs([](int t, int r) { return randn({2, 3 + (t + r) % 4, 16}); });

  auto work = [&](int t, int r) {
    std::vector<float> all;
    for (const Tensor& y : glin.forward(list_in[t][r]))
      for (float v : floats(y)) all.push_back(v);
    const auto& [x, offs] = packed_in[t][r];
    for (float v : floats(uniform.forward(x, offs))) all.push_back(v);
    const Tensor& s = seq_in[t][r];
    auto [out, weights] = mha.forward(s, s, s);
    for (float v : floats(out)) all.push_back(v);
    for (float v : floats(weights)) all.push_back(v);
    const Tensor s6 = seq_in[t][r].narrow(1, 0, std::min<int64_t>(3, s.size(1)));
    const auto masked = mha.forward(s6, s6, s6, {.average_attn_weights = false, .is_causal = true});
    for (float v : floats(std::get<0>(masked))) all.push_back(v);
    for (float v : floats(std::get<1>(masked))) all.push_back(v);
    return all;
  };
  const auto expected = sequential(work);
  CHECK(run_concurrently(work, expected) == 0);
}

TEST_CASE("threads: Linear, LayerNorm and Embedding forwards on shared modules", "[threads]") {
  manual_seed(3);
  nn::Embedding emb(32, 16);
  nn::Linear lin(16, 24);
  nn::LayerNorm norm(24);
  const auto tokens = inputs([](int, int r) { return randint(0, 32, {3, 5 + r}); });
  auto work = [&](int t, int r) {
    Tensor h = norm.forward(lin.forward(emb.forward(tokens[t][r])));
    return floats(softmax(h, -1));
  };
  const auto expected = sequential(work);
  CHECK(run_concurrently(work, expected) == 0);
}

TEST_CASE("threads: grad mode is per thread", "[threads]") {
  const Tensor w = randn({4, 4}).requires_grad_();
  const Tensor x = randn({2, 4});
  std::atomic<bool> guarded_recorded{true}, open_recorded{false};
  std::thread guarded([&] {
    NoGradGuard no_grad;
    for (int i = 0; i < 50; ++i)
      if (!x.matmul(w).requires_grad()) guarded_recorded = false;
  });
  std::thread open([&] {
    for (int i = 0; i < 50; ++i)
      if (x.matmul(w).requires_grad()) open_recorded = true;
  });
  guarded.join();
  open.join();
  CHECK_FALSE(guarded_recorded.load());
  CHECK(open_recorded.load());
}

TEST_CASE("threads: independent models train in parallel as they do one after another",
          "[threads]") {
  // Each thread owns its model, optimizer and data (made up front); backward and step run
  // concurrently, sharing only the library's global state (tape counters, primitive caches).
  struct Job {
    std::shared_ptr<nn::GroupedLinear> layer;
    std::shared_ptr<nn::Linear> head;
    std::vector<Tensor> xs;
    Tensor y;
  };
  auto make_jobs = [] {
    manual_seed(4);
    std::vector<Job> jobs;
    for (int t = 0; t < kThreads; ++t) {
      Job j{std::make_shared<nn::GroupedLinear>(std::vector<int64_t>{6, 6},
                                                std::vector<int64_t>{8, 8}),
            std::make_shared<nn::Linear>(16, 1),
            {randn({10, 6}), randn({10, 6})},
            randn({10, 1})};
      jobs.push_back(std::move(j));
    }
    return jobs;
  };
  auto train = [](Job& j) {
    std::vector<Tensor> params = j.layer->parameters();
    for (const Tensor& p : j.head->parameters()) params.push_back(p);
    optim::AdamW opt(params, optim::AdamWOptions(0.01));
    for (int step = 0; step < 20; ++step) {
      std::vector<Tensor> h = j.layer->forward(j.xs);
      Tensor pred = j.head->forward(relu(cat(h, 1)));
      Tensor loss = mse_loss(pred, j.y);
      opt.zero_grad();
      loss.backward();
      opt.step();
    }
    std::vector<float> out;
    for (const Tensor& p : params)
      for (float v : floats(p)) out.push_back(v);
    return out;
  };
  std::vector<Job> one_by_one = make_jobs(), parallel = make_jobs();
  std::vector<std::vector<float>> expected, got(kThreads);
  for (Job& j : one_by_one) expected.push_back(train(j));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back([&, t] { got[t] = train(parallel[t]); });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) CHECK(got[t] == expected[t]);
}

TEST_CASE("threads: many shapes through a tiny primitive cache that evicts while others run",
          "[threads]") {
  // Capacity 2 and 10 shapes: nearly every call evicts a primitive that another thread may be
  // running at that moment. Holders keep evicted primitives alive (shared ownership), and a new
  // primitive built where an evicted one lived never inherits its per-thread bindings.
  const size_t old_capacity = onednn::primitive_cache_capacity();
  onednn::set_primitive_cache_capacity(2);
  manual_seed(5);
  std::vector<Tensor> ws;
  for (int64_t i = 0; i < 10; ++i) ws.push_back(randn({4 + i, 3 + 2 * i}));
  const auto xs = inputs([&](int t, int r) {
    return randn({2 + (t + r) % 3, 4 + (t * 3 + r) % 10});
  });
  auto work = [&](int t, int r) {
    const Tensor& x = xs[t][r];
    return floats(x.matmul(ws[static_cast<size_t>(x.size(1) - 4)]));
  };
  const auto expected = sequential(work);
  CHECK(run_concurrently(work, expected) == 0);
  onednn::set_primitive_cache_capacity(old_capacity);
}

// Issue 13 item 4: MoEFeedForward::forward wrote last_aux_loss_ / last_counts_ unsynchronised, and
// four threads forwarding one module corrupted the heap ("double free or corruption"; TSan: a
// data race). The outputs match the single-threaded ones and the accessors always see one whole
// forward's values (counts summing to tokens x top_k), read while forwards run.
TEST_CASE("threads: MoEFeedForward forwards on one shared module", "[threads]") {
  manual_seed(13);
  auto moe = std::make_shared<nn::MoEFeedForward>(8, 16, 4, 2);
  const auto xs = inputs([](int, int r) { return randn({5 + r, 8}); });
  const auto work = [&](int t, int r) { return floats(moe->forward(xs[t][r])); };
  const auto expected = sequential(work);
  std::atomic<bool> done{false};
  std::atomic<int> torn{0};
  std::thread reader([&] {
    while (!done.load()) {
      const std::vector<int64_t> counts = moe->last_expert_counts();
      const Tensor aux = moe->last_aux_loss();
      int64_t total = 0;
      for (int64_t c : counts) total += c;
      if (counts.size() != 4 || total % 2 != 0 || total < 10 || total > 2 * (5 + kRounds - 1) ||
          !aux.defined() || aux.numel() != 1)
        torn.fetch_add(1);
    }
  });
  CHECK(run_concurrently(work, expected) == 0);
  done = true;
  reader.join();
  CHECK(torn.load() == 0);
}

// The audit behind item 4 found one more forward-time write: GroupedLinear packs its parameters
// back into one storage on the first forward after Module::to() split them (swapping each
// parameter's storage). Concurrent first forwards did that at once; now under a mutex that every
// forward of a uniform module passes first.
TEST_CASE("threads: the first GroupedLinear forwards after Module::to run concurrently",
          "[threads]") {
  manual_seed(14);
  const std::vector<int64_t> features(4, 8);
  const Tensor x = randn({12, 8}, kFloat64), offs = tensor<int64_t>({3, 6, 9, 12});
  for (int trial = 0; trial < 8; ++trial) {
    auto gl = std::make_shared<nn::GroupedLinear>(features, features);
    gl->to(kFloat64);  // separate storages again
    std::vector<std::vector<double>> got(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        NoGradGuard no_grad;
        got[t] = t % 2 ? gl->forward(x, offs).to_vector<double>()
                       : cat(gl->forward(split(x, 3, 0)), 0).to_vector<double>();
      });
    }
    for (auto& th : threads) th.join();
    NoGradGuard no_grad;
    const std::vector<double> packed = gl->forward(x, offs).to_vector<double>();
    const std::vector<double> list = cat(gl->forward(split(x, 3, 0)), 0).to_vector<double>();
    for (int t = 0; t < kThreads; ++t) CHECK(got[t] == (t % 2 ? packed : list));
  }
}
