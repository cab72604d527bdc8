// The oneDNN primitive caches are bounded (ops/onednn/context.hpp): a long job that meets many
// shapes keeps at most primitive_cache_capacity() primitives per cache, evicting the least
// recently used one, and results stay right however small the capacity (checked against the
// plain-loop reference matmul). The threaded variant is in test_threads.cpp (run under TSan).
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "core/random.hpp"
#include "core/tensor.hpp"
#include "ops/kernels/matmul_kernel.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/matmul.hpp"
#include "ops/reference/matmul.hpp"

using gg::onednn::PrimitiveCache;

namespace {

// Sets the capacity for one test and puts the previous one back.
struct CapacityGuard {
  size_t old = gg::onednn::primitive_cache_capacity();
  explicit CapacityGuard(size_t capacity) { gg::onednn::set_primitive_cache_capacity(capacity); }
  ~CapacityGuard() { gg::onednn::set_primitive_cache_capacity(old); }
};

// A cache of strings that records which keys it had to build.
struct Recorder {
  PrimitiveCache<std::string> cache;
  std::vector<std::string> built;
  std::shared_ptr<const std::string> get(const std::string& key) {
    return cache.get(key, [&] {
      built.push_back(key);
      return "value of " + key;
    });
  }
};

// One contiguous Float32 problem [M, K] x [K, N] with a bias.
gg::onednn::MatmulProblem problem(int64_t M, int64_t K, int64_t N) {
  gg::onednn::MatmulProblem p;
  p.M = M;
  p.K = K;
  p.N = N;
  p.src_strides = {M * K, K, 1};
  p.wei_strides = {K * N, N, 1};
  p.dst_strides = {M * N, N, 1};
  p.has_bias = true;
  return p;
}

}  // namespace

TEST_CASE("primitive cache: a full cache evicts the least recently used entry",
          "[primitive_cache]") {
  CapacityGuard capacity(2);
  Recorder r;
  CHECK(*r.get("a") == "value of a");
  r.get("b");
  r.get("a");  // hit: now b is the least recently used
  r.get("c");  // evicts b
  CHECK(r.cache.size() == 2);
  r.get("a");  // still cached
  r.get("c");  // still cached
  r.get("b");  // rebuilt, evicting a (used before c)
  r.get("c");  // still cached
  r.get("a");  // rebuilt
  CHECK(r.built == std::vector<std::string>{"a", "b", "c", "b", "a"});
  CHECK(r.cache.size() == 2);
}

TEST_CASE("primitive cache: an evicted entry stays alive while it is held", "[primitive_cache]") {
  CapacityGuard capacity(1);
  Recorder r;
  const auto held = r.get("first");
  const int64_t entries = gg::onednn::cache_entries();
  const uint64_t evictions = gg::onednn::cache_evictions();
  r.get("second");  // evicts "first" from the cache, not from `held`
  CHECK(gg::onednn::cache_evictions() == evictions + 1);
  CHECK(gg::onednn::cache_entries() == entries);
  CHECK(*held == "value of first");  // (AddressSanitizer would report a use after free)
  r.get("first");
  CHECK(r.built == std::vector<std::string>{"first", "second", "first"});
}

TEST_CASE("primitive cache: capacity 0 keeps nothing and still returns the value",
          "[primitive_cache]") {
  CapacityGuard capacity(0);
  Recorder r;
  CHECK(*r.get("x") == "value of x");
  CHECK(*r.get("x") == "value of x");
  CHECK(r.cache.size() == 0);
  CHECK(r.built.size() == 2);
}

TEST_CASE("primitive cache: many matmul shapes stay within the capacity, with right results",
          "[primitive_cache]") {
  CapacityGuard capacity(3);
  CHECK(dnnl::get_primitive_cache_capacity() == 3);  // oneDNN's own cache follows ours
  gg::manual_seed(31);
  // 12 shapes visited round-robin, three times: with 3 entries and LRU every visit after the
  // first round is a miss (each shape was evicted by the 3 visited since) that evicts one entry,
  // and the cache never holds more than 3.
  std::vector<gg::onednn::MatmulProblem> problems;
  for (int64_t i = 0; i < 12; ++i) problems.push_back(problem(3 + i, 4 + i % 5, 5 + 2 * i));
  const int64_t entries = gg::onednn::cache_entries();
  gg::onednn::CacheStats before;
  uint64_t evictions = 0;
  for (int round = 0; round < 3; ++round) {
    if (round == 1) {
      before = gg::onednn::cache_stats();
      evictions = gg::onednn::cache_evictions();
    }
    for (const auto& p : problems) {
      INFO("round " << round << ": " << gg::onednn::to_string(p));
      const gg::Tensor src = gg::randn({p.M, p.K}), wei = gg::randn({p.K, p.N});
      const gg::Tensor bias = gg::randn({p.N});
      gg::Tensor got = gg::zeros({p.M, p.N}), want = gg::zeros({p.M, p.N});
      gg::kernels::matmul(p, src.raw_data(), wei.raw_data(), bias.raw_data(), got.raw_data());
      gg::reference::matmul(p, src.raw_data(), wei.raw_data(), bias.raw_data(), want.raw_data());
      const auto g = got.to_vector<float>(), w = want.to_vector<float>();
      for (size_t i = 0; i < g.size(); ++i)
        REQUIRE(std::fabs(g[i] - w[i]) <= 1e-4f * (1 + std::fabs(w[i])));
      // Only the matmul cache gains entries here, and it holds at most 3.
      REQUIRE(gg::onednn::cache_entries() <= entries + 3);
    }
  }
  CHECK(gg::onednn::cache_stats().misses - before.misses == 24);
  CHECK(gg::onednn::cache_stats().hits == before.hits);
  CHECK(gg::onednn::cache_evictions() - evictions == 24);
}
