// The public primitive-cache capacity of ops/backend_info.hpp (an installed header) fronts the
// oneDNN context's (ops/onednn/context.hpp, not installed): setting it through gg::backend sets
// the library's caches and oneDNN's own, and a capacity of 0 keeps nothing while the results stay
// right (checked against the Float64 reference matmul).
#include <catch2/catch.hpp>
#include <dnnl.hpp>

#include "core/random.hpp"
#include "groupgrad.hpp"
#include "ops/onednn/context.hpp"
#include "tests/test_support.hpp"

namespace {

// Puts the capacity a test changed back.
struct RestoreCapacity {
  size_t old = gg::backend::primitive_cache_capacity();
  ~RestoreCapacity() { gg::backend::set_primitive_cache_capacity(old); }
};

}  // namespace

TEST_CASE("backend: set_primitive_cache_capacity sets the library's caches and oneDNN's",
          "[backend_info]") {
  RestoreCapacity restore;
  CHECK(gg::backend::primitive_cache_capacity() == gg::onednn::primitive_cache_capacity());
  gg::backend::set_primitive_cache_capacity(7);
  CHECK(gg::backend::primitive_cache_capacity() == 7);
  CHECK(gg::onednn::primitive_cache_capacity() == 7);
  CHECK(dnnl::get_primitive_cache_capacity() == 7);
  gg::backend::set_primitive_cache_capacity(1024);
  CHECK(gg::backend::primitive_cache_capacity() == 1024);
  CHECK(dnnl::get_primitive_cache_capacity() == 1024);
}

TEST_CASE("backend: capacity 0 keeps no primitive and matmul stays right", "[backend_info]") {
  RestoreCapacity restore;
  gg::backend::set_primitive_cache_capacity(0);
  gg::manual_seed(5);
  auto check_matmul = [](int64_t n) {
    // Batched, so that it runs a oneDNN primitive on every ISA (below AVX512_CORE a plain
    // batch-1 f32 product runs dnnl_sgemm, which caches nothing).
    const gg::Tensor a = gg::randn({2, n, 64}), b = gg::randn({2, 64, n + 3});
    const gg::Tensor got = gg::matmul(a, b);  // Float32: oneDNN
    const gg::Tensor want = gg::matmul(a.to(gg::kFloat64), b.to(gg::kFloat64));
    CHECK(gg::allclose(got.to(gg::kFloat64), want, 1e-4, 1e-4));
  };
  // Entries cached by earlier work in this process may only be evicted, never added to.
  int64_t entries = gg::onednn::cache_entries();
  for (int64_t n : {33, 47, 61}) {
    check_matmul(n);
    CHECK(gg::onednn::cache_entries() <= entries);
    entries = gg::onednn::cache_entries();
  }
  // With room again, a shape not seen before is kept.
  gg::backend::set_primitive_cache_capacity(1024);
  check_matmul(29);
  CHECK(gg::onednn::cache_entries() > entries);
}
