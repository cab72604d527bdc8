// Memory stays flat in a long training run: a small transformer-like model (Embedding +
// MultiheadAttention + LayerNorm + Linear, AdamW, cross-entropy on next tokens) trains for 500
// steps; after warm-up, live tensor bytes (gg::Storage::live_bytes) are the same after every step
// and resident memory (/proc/self/statm) stops growing. (valgrind memcheck of short programs runs
// as the ctest tests labelled "valgrind", see the top-level CMakeLists.txt.)
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "groupgrad.hpp"

using namespace gg;

namespace {

// Sanitizers keep freed memory in quarantine and shadow it: resident memory means nothing there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

int64_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * ::sysconf(_SC_PAGESIZE);
}

struct TinyTransformer : nn::Module {
  TinyTransformer(int64_t vocab, int64_t embed, int64_t heads) {
    emb = register_module("emb", std::make_shared<nn::Embedding>(vocab, embed));
    attn = register_module("attn", std::make_shared<nn::MultiheadAttention>(embed, heads));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(embed));
    head = register_module("head", std::make_shared<nn::Linear>(embed, vocab));
  }
  // tokens (batch, seq) -> logits (batch, seq, vocab), causal self-attention with a residual.
  Tensor forward(const Tensor& tokens) {
    Tensor x = emb->forward(tokens);
    auto [a, weights] = attn->forward(x, x, x, {.need_weights = false, .is_causal = true});
    return head->forward(norm->forward(x + a));
  }
  std::shared_ptr<nn::Embedding> emb;
  std::shared_ptr<nn::MultiheadAttention> attn;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

}  // namespace

TEST_CASE("memory: 500 training steps keep live tensor bytes and resident memory flat",
          "[memory]") {
  manual_seed(5);
  const int64_t vocab = 24, embed = 16, batch = 4, seq = 10;
  TinyTransformer model(vocab, embed, 4);
  optim::AdamW opt(model.parameters(), optim::AdamWOptions(3e-3));
  // A fixed batch of sequences (next-token targets): the loss must go down, memory must not go up.
  const Tensor data = randint(0, vocab, {batch, seq + 1});
  const Tensor inputs = data.narrow(1, 0, seq).contiguous();
  const Tensor targets = data.narrow(1, 1, seq).contiguous().reshape({batch * seq});

  const int kSteps = 500, kWarmup = 50;
  int64_t live_after_warmup = 0, rss_after_warmup = 0, live_max = 0, live_min = 0;
  std::vector<int64_t> rss;  // after every 50th step
  double first_loss = 0, last_loss = 0;
  for (int step = 1; step <= kSteps; ++step) {
    Tensor logits = model.forward(inputs).reshape({batch * seq, vocab});
    Tensor loss = cross_entropy(logits, targets);
    opt.zero_grad();
    loss.backward();
    opt.step();
    last_loss = loss.item<float>();
    if (step == 1) first_loss = last_loss;
    // Drop this step's handles before measuring: what stays is parameters, grads, optimizer
    // state and the data.
    logits = Tensor();
    loss = Tensor();
    const int64_t live = Storage::live_bytes();
    if (step == kWarmup) {
      live_after_warmup = live_max = live_min = live;
      rss_after_warmup = resident_bytes();
    } else if (step > kWarmup) {
      live_max = std::max(live_max, live);
      live_min = std::min(live_min, live);
    }
    if (step % 50 == 0) rss.push_back(resident_bytes());
  }
  INFO("loss " << first_loss << " -> " << last_loss);
  CHECK(last_loss < 0.5 * first_loss);  // it trains

  // Live tensor bytes: exactly the same after every step from warm-up on.
  INFO("live bytes after warm-up " << live_after_warmup << ", min " << live_min << ", max "
                                   << live_max);
  CHECK(live_max == live_after_warmup);
  CHECK(live_min == live_after_warmup);

  // Resident memory: no growth trend after warm-up. Allocator noise is allowed (256 KiB), a leak
  // of even 1 KiB per step (450 KiB over the run) is not.
  if (!kSanitized) {
    INFO("resident bytes after warm-up " << rss_after_warmup << ", at the end " << rss.back());
    CHECK(rss.back() - rss_after_warmup < 256 * 1024);
    // And the second half grows no more than noise either.
    CHECK(rss.back() - rss[rss.size() / 2] < 128 * 1024);
  }
}

TEST_CASE("memory: a finished graph frees every tensor it saved", "[memory]") {
  manual_seed(6);
  const int64_t before = Storage::live_bytes();
  {
    nn::MultiheadAttention mha(8, 2);
    nn::GroupedLinear glin({8, 8}, {4, 4});
    const int64_t with_params = Storage::live_bytes();
    for (int i = 0; i < 3; ++i) {
      Tensor x = randn({2, 5, 8});
      auto [y, w] = mha.forward(x, x, x);
      auto outs = glin.forward({y.reshape({10, 8}), randn({3, 8})});
      (outs[0].sum() + outs[1].sum() + w.sum()).backward();
    }
    mha.zero_grad(/*set_to_none=*/true);
    glin.zero_grad(/*set_to_none=*/true);
    CHECK(Storage::live_bytes() == with_params);
  }
  CHECK(Storage::live_bytes() == before);
}

TEST_CASE("memory: mul and div save an operand only for the other's gradient", "[memory]") {
  manual_seed(7);
  Tensor leaf = randn({256, 64}).requires_grad_();
  Tensor x = leaf * 2.0;  // a non-leaf, 64 KiB
  Tensor y = x * 0.125, z = x / 3.0;  // the scalars need no gradient: x is not saved
  const int64_t with_outputs = Storage::live_bytes();
  x = Tensor();
  CHECK(Storage::live_bytes() == with_outputs - 256 * 64 * 4);
  (y.sum() + z.sum()).backward();
  // d/dleaf = 2 * (0.125 + 1/3) everywhere.
  const std::vector<float> g = leaf.grad().to_vector<float>();
  for (float v : g) REQUIRE(v == Approx(2 * (0.125 + 1.0 / 3.0)));
  // With a gradient for both, each keeps the other.
  Tensor a = randn({256, 64}).requires_grad_(), b = randn({256, 64}).requires_grad_();
  Tensor c = a * 2.0, d = b * 2.0;
  Tensor e = c * d;
  const int64_t with_e = Storage::live_bytes();
  c = Tensor();
  d = Tensor();
  CHECK(Storage::live_bytes() == with_e);
}
