// The Tensor core: views share storage (a write through a view is seen by the base), strides of
// views, contiguity, reshape vs view, broadcasting, factories, the generator, and every error path
// of core/ (checked by message).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <set>
#include <vector>

#include "core/copy.hpp"
#include "core/random.hpp"
#include "core/strided.hpp"
#include "groupgrad.hpp"

using Catch::Contains;
using gg::Shape;
using gg::Tensor;

namespace {

// Element idx of a float32 view, addressed through its own strides (an oracle independent of
// to_vector/contiguous).
float& at(const Tensor& t, std::initializer_list<int64_t> idx) {
  REQUIRE(static_cast<int64_t>(idx.size()) == t.dim());
  int64_t off = 0, d = 0;
  for (int64_t i : idx) off += i * t.stride(d++);
  return t.data_ptr<float>()[off];
}

bool same_storage(const Tensor& a, const Tensor& b) {
  return a.impl()->storage == b.impl()->storage;
}

// 0, 1, 2, ... as float32 in the given shape.
Tensor iota(Shape shape) {
  return gg::arange(0, static_cast<double>(gg::numel_of(shape)), 1, gg::kFloat32).reshape(shape);
}

std::vector<float> iota_values(int64_t n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  return v;
}

}  // namespace

// ---- views -------------------------------------------------------------------------------------

TEST_CASE("core: reshape and view are views of the same storage", "[core][views]") {
  Tensor a = iota({6});
  Tensor r = a.reshape({2, 3});
  Tensor v = r.view({3, 2});
  CHECK(same_storage(a, r));
  CHECK(same_storage(a, v));
  CHECK(r.shape() == Shape{2, 3});
  CHECK(r.strides() == Shape{3, 1});
  CHECK(v.strides() == Shape{2, 1});

  at(v, {2, 1}) = 100;  // element 5
  at(r, {0, 1}) = -1;   // element 1
  CHECK(a.to_vector<float>() == std::vector<float>{0, -1, 2, 3, 4, 100});

  gg::copy_(v.select(0, 1), gg::full({2}, 7.0));  // elements 2 and 3
  CHECK(a.to_vector<float>() == std::vector<float>{0, -1, 7, 7, 4, 100});

  Tensor inferred = a.reshape({-1, 2});
  CHECK(inferred.shape() == Shape{3, 2});
  CHECK(same_storage(a, inferred));
  CHECK(a.flatten().shape() == Shape{6});
  CHECK(iota({2, 3, 4}).flatten(1).shape() == Shape{2, 12});
}

TEST_CASE("core: transpose and permute swap strides and write through", "[core][views]") {
  Tensor a = iota({2, 3});
  Tensor t = a.transpose(0, 1);
  CHECK(same_storage(a, t));
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.strides() == Shape{1, 3});
  CHECK_FALSE(t.is_contiguous());
  CHECK(t.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
  CHECK(a.t().strides() == Shape{1, 3});
  CHECK(a.transpose(-1, -2).strides() == Shape{1, 3});

  at(t, {2, 1}) = 42;  // a[1][2]
  CHECK(at(a, {1, 2}) == 42);
  gg::copy_(t.select(0, 0), gg::tensor<float>({-1, -2}));  // a[0][0], a[1][0]
  CHECK(a.to_vector<float>() == std::vector<float>{-1, 1, 2, -2, 4, 42});

  Tensor x = iota({2, 3, 4});
  Tensor p = x.permute({2, 0, 1});
  CHECK(same_storage(x, p));
  CHECK(p.shape() == Shape{4, 2, 3});
  CHECK(p.strides() == Shape{1, 12, 4});
  CHECK(x.permute({-1, 0, 1}).strides() == Shape{1, 12, 4});
  // Oracle: p[i][j][k] == x[j][k][i] == 12 j + 4 k + i.
  std::vector<float> expected;
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 2; ++j)
      for (int k = 0; k < 3; ++k) expected.push_back(static_cast<float>(12 * j + 4 * k + i));
  CHECK(p.to_vector<float>() == expected);
  at(p, {3, 1, 2}) = -5;
  CHECK(x.to_vector<float>()[23] == -5);
  CHECK(x.transpose(0, 2).strides() == Shape{1, 4, 12});
}

TEST_CASE("core: narrow and select offset into the base", "[core][views]") {
  Tensor x = iota({4, 5});
  Tensor n = x.narrow(1, 1, 3);
  CHECK(same_storage(x, n));
  CHECK(n.shape() == Shape{4, 3});
  CHECK(n.strides() == Shape{5, 1});
  CHECK(n.storage_offset() == 1);
  CHECK_FALSE(n.is_contiguous());
  CHECK(x.narrow(0, 1, 2).is_contiguous());
  CHECK(x.narrow(0, 1, 2).storage_offset() == 5);
  CHECK(x.narrow(0, -2, 2).to_vector<float>() ==
        std::vector<float>{10, 11, 12, 13, 14, 15, 16, 17, 18, 19});
  CHECK(x.narrow(1, 5, 0).numel() == 0);  // an empty narrow at the end is allowed

  gg::copy_(n, gg::zeros({4, 3}));
  std::vector<float> expected = iota_values(20);
  for (int r = 0; r < 4; ++r)
    for (int c = 1; c < 4; ++c) expected[r * 5 + c] = 0;
  CHECK(x.to_vector<float>() == expected);

  Tensor s = x.select(1, 4);
  CHECK(s.shape() == Shape{4});
  CHECK(s.strides() == Shape{5});
  CHECK(s.storage_offset() == 4);
  CHECK(s.to_vector<float>() == std::vector<float>{4, 9, 14, 19});
  at(s, {2}) = -9;
  CHECK(at(x, {2, 4}) == -9);
  CHECK(x.select(0, -1).to_vector<float>() == std::vector<float>{15, 0, 0, 0, 19});

  // Views of views accumulate offsets.
  Tensor nn = x.narrow(0, 1, 3).narrow(1, 2, 2).select(0, 1);
  CHECK(nn.storage_offset() == 12);
  at(nn, {1}) = 77;
  CHECK(at(x, {2, 3}) == 77);
}

TEST_CASE("core: squeeze and unsqueeze are views", "[core][views]") {
  Tensor y = iota({3, 1, 2});
  Tensor sq = y.squeeze();
  CHECK(sq.shape() == Shape{3, 2});
  CHECK(same_storage(y, sq));
  CHECK(y.squeeze(1).shape() == Shape{3, 2});
  CHECK(y.squeeze(-2).shape() == Shape{3, 2});
  CHECK(y.squeeze(0).shape() == Shape{3, 1, 2});  // size 3: unchanged
  at(sq, {2, 1}) = 50;
  CHECK(at(y, {2, 0, 1}) == 50);

  Tensor u = y.unsqueeze(0);
  CHECK(u.shape() == Shape{1, 3, 1, 2});
  CHECK(y.unsqueeze(-1).shape() == Shape{3, 1, 2, 1});
  CHECK(y.unsqueeze(3).shape() == Shape{3, 1, 2, 1});
  CHECK(same_storage(y, u));
  at(u, {0, 1, 0, 0}) = -3;
  CHECK(at(y, {1, 0, 0}) == -3);

  // Of a non-contiguous tensor: still a view, strides carried over.
  Tensor t = iota({2, 3}).transpose(0, 1);
  Tensor tu = t.unsqueeze(1);
  CHECK(same_storage(t, tu));
  CHECK(tu.shape() == Shape{3, 1, 2});
  CHECK(tu.stride(0) == 1);
  CHECK(tu.stride(2) == 3);
  CHECK(tu.squeeze(1).strides() == Shape{1, 3});

  // A 0-d tensor gains and loses dimensions without a copy.
  Tensor s = gg::scalar_tensor(2.5);
  Tensor s1 = s.unsqueeze(0);
  CHECK(s1.shape() == Shape{1});
  CHECK(same_storage(s, s1));
  CHECK(same_storage(s, s.view({1, 1})));
  CHECK(s1.squeeze().dim() == 0);
  CHECK(same_storage(s, s1.squeeze()));
}

TEST_CASE("core: expand gives stride 0 and aliases the base", "[core][views]") {
  Tensor b = gg::tensor<float>({1, 2, 3}, {3, 1});
  Tensor e = b.expand({3, 4});
  CHECK(same_storage(b, e));
  CHECK(e.shape() == Shape{3, 4});
  CHECK(e.strides() == Shape{1, 0});
  CHECK_FALSE(e.is_contiguous());
  CHECK(e.to_vector<float>() == std::vector<float>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3});

  Tensor e3 = b.expand({2, -1, 4});
  CHECK(e3.shape() == Shape{2, 3, 4});
  CHECK(e3.strides() == Shape{0, 1, 0});

  at(b, {1, 0}) = 20;  // the base changes every expanded copy of it
  CHECK(e.to_vector<float>() == std::vector<float>{1, 1, 1, 1, 20, 20, 20, 20, 3, 3, 3, 3});
  at(e, {2, 3}) = 30;  // and a write through the expanded view lands in the base
  CHECK(b.to_vector<float>() == std::vector<float>{1, 20, 30});

  Tensor row = gg::tensor<float>({1, 2, 3});
  CHECK(row.expand({2, 3}).strides() == Shape{0, 1});
  CHECK(row.expand({0, 3}).numel() == 0);
  CHECK(row.expand({3}).strides() == Shape{1});
}

TEST_CASE("core: contiguous copies only when needed", "[core][views]") {
  Tensor a = iota({3, 4});
  Tensor c = a.contiguous();
  CHECK(same_storage(a, c));
  CHECK(c.raw_data() == a.raw_data());

  Tensor rows = a.narrow(0, 1, 2);  // contiguous with an offset: no copy either
  CHECK(rows.is_contiguous());
  CHECK(same_storage(rows.contiguous(), a));

  Tensor t = a.transpose(0, 1);
  Tensor tc = t.contiguous();
  CHECK_FALSE(same_storage(t, tc));
  CHECK(tc.is_contiguous());
  CHECK(tc.strides() == Shape{3, 1});
  CHECK(tc.to_vector<float>() == t.to_vector<float>());
  at(tc, {0, 1}) = -1;  // a copy: the base is untouched
  CHECK(at(a, {1, 0}) == 4);

  Tensor e = gg::tensor<float>({5, 6}).expand({3, 2});
  Tensor ec = e.contiguous();
  CHECK_FALSE(same_storage(e, ec));
  CHECK(ec.to_vector<float>() == std::vector<float>{5, 6, 5, 6, 5, 6});

  // Size-1 dimensions and empty tensors are contiguous whatever their strides.
  CHECK(iota({3, 1}).transpose(0, 1).is_contiguous());
  CHECK(gg::zeros({3, 2, 0}).permute({2, 1, 0}).is_contiguous());
  CHECK(gg::scalar_tensor(1).is_contiguous());
}

TEST_CASE("core: reshape copies a non-viewable layout, view refuses it", "[core][views]") {
  Tensor a = iota({2, 3});
  Tensor t = a.transpose(0, 1);
  Tensor r = t.reshape({6});
  CHECK_FALSE(same_storage(t, r));
  CHECK(r.to_vector<float>() == std::vector<float>{0, 3, 1, 4, 2, 5});
  REQUIRE_THROWS_AS(t.view({6}), gg::Error);
  REQUIRE_THROWS_WITH(t.view({6}), Contains("[view] a view of shape [6] is not possible for a "
                                            "tensor of shape [3, 2] with strides [1, 3]") &&
                                       Contains("use reshape()"));

  // Non-contiguous, but the dims being split or merged are contiguous among themselves: a view.
  Tensor x = iota({2, 3, 4}).transpose(0, 1);  // [3, 2, 4], strides [4, 12, 1]
  Tensor split = x.view({3, 2, 2, 2});
  CHECK(same_storage(x, split));
  CHECK(split.strides() == Shape{4, 12, 2, 1});
  CHECK(split.to_vector<float>() == x.to_vector<float>());
  Tensor n = iota({4, 5}).narrow(1, 0, 2);  // [4, 2], strides [5, 1]
  CHECK(same_storage(n, n.view({4, 2, 1})));
  Tensor merged = n.reshape({8});
  CHECK_FALSE(same_storage(n, merged));
  CHECK(merged.to_vector<float>() == std::vector<float>{0, 1, 5, 6, 10, 11, 15, 16});
  REQUIRE_THROWS_WITH(n.view({8}), Contains("[view] a view of shape [8] is not possible"));

  // Expanded (stride 0) dims merge only by copying.
  Tensor e = gg::tensor<float>({1, 2}).expand({3, 2});
  CHECK_FALSE(same_storage(e, e.reshape({6})));
  CHECK(e.reshape({6}).to_vector<float>() == std::vector<float>{1, 2, 1, 2, 1, 2});
  CHECK(same_storage(e, e.view({3, 1, 2})));
}

// ---- broadcasting ------------------------------------------------------------------------------

TEST_CASE("core: broadcast_shapes follows NumPy's rules", "[core][broadcast]") {
  CHECK(gg::broadcast_shapes({3, 1}, {4}, "test") == Shape{3, 4});
  CHECK(gg::broadcast_shapes({4}, {3, 1}, "test") == Shape{3, 4});
  CHECK(gg::broadcast_shapes({2, 1, 5}, {3, 1}, "test") == Shape{2, 3, 5});
  CHECK(gg::broadcast_shapes({}, {2, 3}, "test") == Shape{2, 3});
  CHECK(gg::broadcast_shapes({2, 3}, {2, 3}, "test") == Shape{2, 3});
  CHECK(gg::broadcast_shapes({0}, {1}, "test") == Shape{0});
  CHECK(gg::broadcast_shapes({1, 0}, {3, 1}, "test") == Shape{3, 0});
  REQUIRE_THROWS_AS(gg::broadcast_shapes({3}, {4}, "test"), gg::Error);
  REQUIRE_THROWS_WITH(gg::broadcast_shapes({3}, {4}, "test"),
                      Contains("[test] shapes [3] and [4] cannot be broadcast"));
  REQUIRE_THROWS_WITH(gg::broadcast_shapes({2, 3}, {5, 3, 1}, "op"),
                      Contains("[op] shapes [2, 3] and [5, 3, 1] cannot be broadcast"));
  CHECK(gg::broadcast_shapes({2, 3}, {5, 2, 1}, "op") == Shape{5, 2, 3});
  REQUIRE_THROWS_WITH(gg::broadcast_shapes({0}, {2}, "op"), Contains("cannot be broadcast"));

  Tensor t = gg::zeros({3, 1});
  CHECK(gg::broadcast_strides(t, {2, 3, 4}) == Shape{0, 1, 0});
  REQUIRE_THROWS_WITH(gg::broadcast_strides(t, {3, 2, 4}),
                      Contains("[broadcast] cannot broadcast [3, 1] to [3, 2, 4]"));
}

TEST_CASE("core: arithmetic broadcasts its operands", "[core][broadcast]") {
  Tensor a = gg::tensor<float>({1, 2, 3}, {3, 1});
  Tensor b = gg::tensor<float>({10, 20, 30, 40}, {4});
  Tensor c = a + b;
  REQUIRE(c.shape() == Shape{3, 4});
  std::vector<float> expected;
  for (float x : {1.f, 2.f, 3.f})
    for (float y : {10.f, 20.f, 30.f, 40.f}) expected.push_back(x + y);
  CHECK(c.to_vector<float>() == expected);

  // [2, 1, 3] * [4, 1] -> [2, 4, 3], in double against a naive loop.
  Tensor p = gg::arange(0, 6, 1, gg::kFloat64).reshape({2, 1, 3});
  Tensor q = gg::arange(1, 5, 1, gg::kFloat64).reshape({4, 1});
  Tensor pq = p * q;
  REQUIRE(pq.shape() == Shape{2, 4, 3});
  std::vector<double> got = pq.to_vector<double>(), want;
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 4; ++j)
      for (int k = 0; k < 3; ++k) want.push_back((i * 3 + k) * (j + 1.0));
  CHECK(got == want);

  // A transposed (non-contiguous) operand and a scalar.
  Tensor m = iota({2, 3}).transpose(0, 1);  // [[0, 3], [1, 4], [2, 5]]
  CHECK((m - gg::tensor<float>({1, 2})).to_vector<float>() ==
        std::vector<float>{-1, 1, 0, 2, 1, 3});
  CHECK((m + 1.0).to_vector<float>() == std::vector<float>{1, 4, 2, 5, 3, 6});

  Tensor x = gg::zeros({3});
  Tensor y = gg::zeros({4});
  REQUIRE_THROWS_AS(x + y, gg::Error);
  REQUIRE_THROWS_WITH(x + y, Contains("[add] shapes [3] and [4] cannot be broadcast"));
  REQUIRE_THROWS_WITH(gg::zeros({2, 3}) * gg::zeros({3, 2}),
                      Contains("shapes [2, 3] and [3, 2] cannot be broadcast"));
}

// ---- factories ---------------------------------------------------------------------------------

TEST_CASE("core: zeros, ones, full and tensor", "[core][factories]") {
  for (gg::Dtype dt : {gg::kFloat32, gg::kFloat64, gg::kBFloat16, gg::kFloat16, gg::kInt8,
                       gg::kInt32, gg::kInt64}) {
    INFO(gg::dtype_name(dt));
    Tensor z = gg::zeros({2, 3}, dt);
    CHECK(z.dtype() == dt);
    CHECK(z.shape() == Shape{2, 3});
    CHECK(z.strides() == Shape{3, 1});
    CHECK(z.to(gg::kFloat64).to_vector<double>() == std::vector<double>(6, 0.0));
    CHECK(gg::ones({4}, dt).to(gg::kFloat64).to_vector<double>() == std::vector<double>(4, 1.0));
    CHECK(gg::full({2, 2}, -7, dt).to(gg::kFloat64).to_vector<double>() ==
          std::vector<double>(4, -7.0));
    CHECK(gg::zeros_like(z).dtype() == dt);
    CHECK(gg::ones_like(z).shape() == z.shape());
  }
  CHECK(gg::zeros({2}).dtype() == gg::kFloat32);
  CHECK(gg::full({2}, 1000, gg::kInt8).to_vector<int8_t>() == std::vector<int8_t>{127, 127});
  CHECK(gg::full({}, 2.5).item<float>() == 2.5f);
  CHECK(gg::zeros({}).dim() == 0);
  CHECK(gg::zeros({}).numel() == 1);
  CHECK(gg::zeros({0, 5}).numel() == 0);
  CHECK(gg::scalar_tensor(4, gg::kInt32).item<int32_t>() == 4);

  Tensor t = gg::tensor<int32_t>({1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK(t.dtype() == gg::kInt32);
  CHECK(t.size(0) == 3);
  CHECK(t.size(-1) == 2);
  CHECK(t.stride(-2) == 2);
  CHECK(t.numel() == 6);
  CHECK(t.dim() == 2);
  CHECK(gg::tensor<double>({1.5, 2.5}).shape() == Shape{2});
  CHECK(gg::tensor<int64_t>({}, {0}).numel() == 0);
  REQUIRE_THROWS_WITH(gg::tensor<float>({1, 2, 3, 4, 5}, {2, 3}),
                      Contains("[tensor] 5 values do not fill shape [2, 3] (6 elements)"));
}

TEST_CASE("core: arange counts up, down and to nothing", "[core][factories]") {
  CHECK(gg::arange(5).dtype() == gg::kInt64);
  CHECK(gg::arange(5).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3, 4});
  CHECK(gg::arange(2, 5).to_vector<int64_t>() == std::vector<int64_t>{2, 3, 4});
  CHECK(gg::arange(10, 0, -3).to_vector<int64_t>() == std::vector<int64_t>{10, 7, 4, 1});
  CHECK(gg::arange(1, 2, 0.25, gg::kFloat32).to_vector<float>() ==
        std::vector<float>{1, 1.25f, 1.5f, 1.75f});
  CHECK(gg::arange(5, 0, -1.5, gg::kFloat64).to_vector<double>() ==
        std::vector<double>{5, 3.5, 2, 0.5});
  CHECK(gg::arange(-1, 1, 0.5, gg::kFloat64).to_vector<double>() ==
        std::vector<double>{-1, -0.5, 0, 0.5});

  // Empty ranges give a [0] tensor (NumPy's rule: a step pointing away from end gives nothing).
  for (Tensor e : {gg::arange(0), gg::arange(3, 3), gg::arange(5, 0), gg::arange(0, 5, -1),
                   gg::arange(0, 0, 0.5, gg::kFloat32)}) {
    CHECK(e.shape() == Shape{0});
    CHECK(e.numel() == 0);
  }

  REQUIRE_THROWS_WITH(gg::arange(0, 1, 0), Contains("[arange] step must be nonzero"));
  REQUIRE_THROWS_WITH(gg::arange(0, INFINITY), Contains("[arange]") && Contains("finite"));
  REQUIRE_THROWS_WITH(gg::arange(0, NAN), Contains("finite"));
  REQUIRE_THROWS_WITH(gg::arange(0, 1e300), Contains("[arange]") && Contains("too many"));
}

TEST_CASE("core: rand, randn and randint draw what they promise", "[core][random]") {
  gg::manual_seed(1234);
  const int64_t n = 100000;

  std::vector<float> u = gg::rand({n}).to_vector<float>();
  double sum = 0;
  for (float v : u) {
    REQUIRE(v >= 0.0f);
    REQUIRE(v < 1.0f);
    sum += v;
  }
  CHECK(sum / n == Approx(0.5).margin(0.01));
  // Low-precision dtypes never round up to 1 either.
  for (gg::Dtype dt : {gg::kBFloat16, gg::kFloat16, gg::kFloat64}) {
    std::vector<double> w = gg::rand({n}, dt).to(gg::kFloat64).to_vector<double>();
    CHECK(*std::max_element(w.begin(), w.end()) < 1.0);
    CHECK(*std::min_element(w.begin(), w.end()) >= 0.0);
  }

  std::vector<double> z = gg::randn({n}, gg::kFloat64).to_vector<double>();
  double mean = std::accumulate(z.begin(), z.end(), 0.0) / n, var = 0;
  for (double v : z) var += (v - mean) * (v - mean);
  double sd = std::sqrt(var / (n - 1));
  // The standard error of the mean is 1/sqrt(n) = 0.003; of the std about 0.002.
  CHECK(std::fabs(mean) < 0.02);
  CHECK(std::fabs(sd - 1.0) < 0.02);
  int64_t beyond3 = std::count_if(z.begin(), z.end(), [](double v) { return std::fabs(v) > 3; });
  CHECK(beyond3 > 150);  // expected 270 (0.27%)
  CHECK(beyond3 < 400);
  CHECK(gg::randn({3, 4}).dtype() == gg::kFloat32);
  CHECK(gg::randn({3, 4}, gg::kBFloat16).shape() == Shape{3, 4});

  Tensor r = gg::randint(-3, 5, {10000});
  CHECK(r.dtype() == gg::kInt64);
  std::set<int64_t> seen;
  for (int64_t v : r.to_vector<int64_t>()) {
    REQUIRE(v >= -3);
    REQUIRE(v < 5);
    seen.insert(v);
  }
  CHECK(seen.size() == 8);
  for (int32_t v : gg::randint(0, 2, {100}, gg::kInt32).to_vector<int32_t>())
    CHECK((v == 0 || v == 1));

  REQUIRE_THROWS_WITH(gg::randint(5, 5, {2}), Contains("[randint] low 5 must be below high 5"));
  REQUIRE_THROWS_WITH(gg::randn({2}, gg::kInt32),
                      Contains("[randn] needs a floating dtype, got int32"));
  REQUIRE_THROWS_WITH(gg::rand({2}, gg::kInt64), Contains("[rand] needs a floating dtype"));
}

TEST_CASE("core: manual_seed makes the generator reproducible", "[core][random]") {
  gg::manual_seed(42);
  std::vector<float> a = gg::randn({1000}).to_vector<float>();
  gg::manual_seed(42);
  std::vector<float> b = gg::randn({1000}).to_vector<float>();
  CHECK(a == b);
  gg::manual_seed(43);
  std::vector<float> c = gg::randn({1000}).to_vector<float>();
  CHECK(a != c);
  int equal = 0;
  for (size_t i = 0; i < a.size(); ++i) equal += a[i] == c[i];
  CHECK(equal < 10);

  // The stream continues across calls (Box-Muller's cached second value included), and reseeding
  // forgets the cached value.
  gg::manual_seed(7);
  std::vector<double> x = gg::randn({5}, gg::kFloat64).to_vector<double>();
  std::vector<double> y = gg::randn({5}, gg::kFloat64).to_vector<double>();
  gg::manual_seed(7);
  std::vector<double> xy = gg::randn({10}, gg::kFloat64).to_vector<double>();
  x.insert(x.end(), y.begin(), y.end());
  CHECK(xy == x);
  gg::manual_seed(7);
  CHECK(gg::randn({3}, gg::kFloat64).to_vector<double>() ==
        std::vector<double>(xy.begin(), xy.begin() + 3));

  gg::manual_seed(9);
  std::vector<float> ru = gg::rand({50}).to_vector<float>();
  std::vector<int64_t> ri = gg::randint(0, 1000, {50}).to_vector<int64_t>();
  gg::manual_seed(9);
  CHECK(gg::rand({50}).to_vector<float>() == ru);
  CHECK(gg::randint(0, 1000, {50}).to_vector<int64_t>() == ri);

  gg::Generator g1(5), g2(5), g3(6);
  for (int i = 0; i < 10; ++i) {
    double v = g1.normal();
    CHECK(v == g2.normal());
    CHECK(v != g3.normal());
  }
}

// ---- errors ------------------------------------------------------------------------------------

TEST_CASE("core: reading an undefined tensor throws", "[core][errors]") {
  Tensor u;
  CHECK_FALSE(u.defined());
  REQUIRE_THROWS_AS(u.shape(), gg::Error);
  REQUIRE_THROWS_WITH(u.shape(), Contains("[shape]") && Contains("undefined"));
  REQUIRE_THROWS_WITH(u.dtype(), Contains("[dtype]") && Contains("undefined"));
  REQUIRE_THROWS_WITH(u.dim(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.numel(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.size(0), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.strides(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.to(gg::kFloat64), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.contiguous(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.to_vector<float>(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.item<float>(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.data_ptr<float>(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.reshape({1}), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.transpose(0, 1), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.narrow(0, 0, 1), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.expand({2}), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.requires_grad(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.detach(), Contains("undefined"));
  REQUIRE_THROWS_WITH(u.clone(), Contains("undefined"));
  REQUIRE_THROWS_WITH(gg::zeros({2}) + u, Contains("undefined"));
  REQUIRE_THROWS_WITH(gg::copy_(gg::zeros({2}), u), Contains("[copy_]") && Contains("undefined"));
  CHECK(u.to_string() == "tensor(undefined)");
}

TEST_CASE("core: out-of-range dimensions and indices throw", "[core][errors]") {
  Tensor x = gg::zeros({4, 5});
  REQUIRE_THROWS_AS(x.size(5), gg::Error);
  REQUIRE_THROWS_WITH(
      x.size(5), Contains("[size] dimension 5 out of range for a 2-d tensor (expected -2 to 1)"));
  REQUIRE_THROWS_WITH(x.size(-3), Contains("[size] dimension -3 out of range"));
  REQUIRE_THROWS_WITH(x.stride(2), Contains("[stride] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(gg::scalar_tensor(1).size(0), Contains("[size]") && Contains("0-d"));
  REQUIRE_THROWS_WITH(x.transpose(0, 7), Contains("[transpose] dimension 7 out of range for a "
                                                  "2-d tensor"));
  REQUIRE_THROWS_WITH(x.transpose(-3, 0), Contains("[transpose] dimension -3 out of range"));
  REQUIRE_THROWS_WITH(x.permute({0}),
                      Contains("[permute] expected 2 dimensions for a tensor of shape [4, 5]"));
  REQUIRE_THROWS_WITH(x.permute({1, 1}), Contains("[permute] dimension 1 repeats in [1, 1]"));
  REQUIRE_THROWS_WITH(x.permute({0, 2}), Contains("[permute] dimension 2 out of range"));

  REQUIRE_THROWS_WITH(x.narrow(1, 3, 3),
                      Contains("[narrow] start 3 and length 3 are out of range for dimension 1 "
                               "of size 5 (shape [4, 5])"));
  REQUIRE_THROWS_WITH(x.narrow(0, 5, 0), Contains("[narrow] start 5"));
  REQUIRE_THROWS_WITH(x.narrow(0, -5, 1), Contains("[narrow]") && Contains("out of range"));
  REQUIRE_THROWS_WITH(x.narrow(0, 0, -1), Contains("[narrow]") && Contains("out of range"));
  REQUIRE_THROWS_WITH(x.narrow(2, 0, 1), Contains("[narrow] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(gg::scalar_tensor(1).narrow(0, 0, 1),
                      Contains("[narrow] cannot narrow a 0-d"));

  REQUIRE_THROWS_WITH(x.select(0, 4), Contains("[select] index 4 is out of range for dimension 0 "
                                               "of size 4 (shape [4, 5])"));
  REQUIRE_THROWS_WITH(x.select(1, -6), Contains("[select] index -6 is out of range"));
  REQUIRE_THROWS_WITH(x.select(2, 0), Contains("[select] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(gg::scalar_tensor(1).select(0, 0), Contains("[select] cannot select"));

  REQUIRE_THROWS_WITH(x.squeeze(2), Contains("[squeeze] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(x.unsqueeze(3), Contains("[unsqueeze] dimension 3 out of range for a 3-d"));
  REQUIRE_THROWS_WITH(x.unsqueeze(-4), Contains("[unsqueeze] dimension -4 out of range"));
  REQUIRE_THROWS_WITH(x.flatten(2), Contains("[flatten] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(gg::zeros({2, 3, 4}).flatten(2, 1),
                      Contains("[flatten] start_dim 2 must not be after end_dim 1"));
  REQUIRE_THROWS_WITH(gg::zeros({2, 3, 4}).t(), Contains("[t] expects a tensor with at most 2"));

  REQUIRE_THROWS_WITH(x.expand({4, 6}),
                      Contains("[expand] the size 5 of dimension 1 must match the target size 6 "
                               "or be 1 (tensor [4, 5], target [4, 6])"));
  REQUIRE_THROWS_WITH(x.expand({5}),
                      Contains("[expand] the target shape [5] has fewer dimensions"));
  REQUIRE_THROWS_WITH(x.expand({-1, 4, 5}),
                      Contains("[expand] new leading dimension 0 cannot be -1"));
  REQUIRE_THROWS_WITH(gg::zeros({1}).expand({-2}), Contains("[expand]"));
}

TEST_CASE("core: impossible reshapes throw", "[core][errors]") {
  Tensor x = gg::zeros({2, 3});
  REQUIRE_THROWS_AS(x.reshape({4}), gg::Error);
  REQUIRE_THROWS_WITH(
      x.reshape({4}),
      Contains("[reshape] shape [4] is invalid for input of shape [2, 3] (6 elements)"));
  REQUIRE_THROWS_WITH(x.view({4}), Contains("[view] shape [4] is invalid"));
  REQUIRE_THROWS_WITH(x.reshape({-1, -1}),
                      Contains("[reshape] only one dimension can be -1, got [-1, -1]"));
  REQUIRE_THROWS_WITH(x.reshape({-1, 4}), Contains("[reshape] shape [-1, 4] is invalid"));
  REQUIRE_THROWS_WITH(x.reshape({3, -2}), Contains("[reshape] invalid size -2 in shape [3, -2]"));
  REQUIRE_THROWS_WITH(gg::zeros({0, 3}).reshape({-1, 0}), Contains("[reshape]"));
  CHECK(gg::zeros({0, 3}).reshape({3, -1, 2}).shape() == Shape{3, 0, 2});
}

TEST_CASE("core: bad sizes in factories throw", "[core][errors]") {
  REQUIRE_THROWS_AS(gg::zeros({2, -1}), gg::Error);
  REQUIRE_THROWS_WITH(gg::zeros({2, -1}),
                      Contains("[shape] sizes must be non-negative, got [2, -1]"));
  REQUIRE_THROWS_WITH(gg::ones({-3}), Contains("non-negative"));
  REQUIRE_THROWS_WITH(gg::full({-3}, 1.0), Contains("non-negative"));
  REQUIRE_THROWS_WITH(gg::empty({-3}), Contains("non-negative"));
  REQUIRE_THROWS_WITH(gg::randn({4, -2}), Contains("non-negative"));
  REQUIRE_THROWS_WITH(gg::rand({-2}), Contains("non-negative"));
  REQUIRE_THROWS_WITH(gg::randint(0, 3, {-2}), Contains("non-negative"));

  const int64_t big = int64_t{1} << 32;
  REQUIRE_THROWS_WITH(gg::zeros({big, big}),
                      Contains("[shape] number of elements of [4294967296, 4294967296] overflows "
                               "int64"));
  REQUIRE_THROWS_WITH(gg::numel_of({std::numeric_limits<int64_t>::max(), 2}),
                      Contains("overflows int64"));
  CHECK(gg::numel_of({std::numeric_limits<int64_t>::max(), 1}) ==
        std::numeric_limits<int64_t>::max());
  // Like PyTorch, sizes whose product overflows are rejected even when another size is 0.
  REQUIRE_THROWS_WITH(gg::zeros({big, big, 0}), Contains("overflows int64"));
  // Fits in int64 elements, but not in bytes.
  REQUIRE_THROWS_WITH(gg::zeros({int64_t{1} << 62}), Contains("[empty]") && Contains("overflow"));
  REQUIRE_THROWS_WITH(gg::zeros({2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2}),
                      Contains("[empty] at most 16 dimensions"));
}

TEST_CASE("core: item and to_vector check element count and type", "[core][errors]") {
  Tensor x = gg::tensor<float>({1, 2});
  REQUIRE_THROWS_AS(x.item<float>(), gg::Error);
  REQUIRE_THROWS_WITH(x.item<float>(),
                      Contains("[item] expected a one-element tensor, got shape [2]"));
  REQUIRE_THROWS_WITH(gg::zeros({0}).item<float>(), Contains("[item] expected a one-element"));
  CHECK(gg::full({1, 1}, 3.0).item<float>() == 3.0f);
  CHECK(x.narrow(0, 1, 1).item<float>() == 2.0f);

  REQUIRE_THROWS_WITH(x.to_vector<double>(),
                      Contains("[to_vector] requested float64 but the tensor is float32"));
  CHECK(x.narrow(0, 0, 1).item<int64_t>() == 1);  // item<T> converts (issue 18)
  REQUIRE_THROWS_WITH(x.data_ptr<int32_t>(),
                      Contains("[data_ptr] requested int32 but the tensor is float32"));
  REQUIRE_THROWS_WITH(gg::zeros({2}, gg::kInt32).requires_grad_(),
                      Contains("[requires_grad_] only floating-point tensors can require grad"));
}

TEST_CASE("core: integer arithmetic wraps around in two's complement, as PyTorch's does",
          "[core]") {
  // Signed overflow was undefined behaviour in the loops (found by fuzz_ops under UBSan).
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  Tensor big = gg::tensor<int64_t>({kMax, kMin, 3}, {3});
  REQUIRE((big * 2.0).to_vector<int64_t>() == std::vector<int64_t>{-2, 0, 6});
  REQUIRE((big + big).to_vector<int64_t>() == std::vector<int64_t>{-2, 0, 6});
  REQUIRE((big - gg::tensor<int64_t>({-1, 1, 0}, {3})).to_vector<int64_t>() ==
          std::vector<int64_t>{kMin, kMax, 3});
  REQUIRE(gg::neg(big).to_vector<int64_t>() == std::vector<int64_t>{-kMax, kMin, -3});
  REQUIRE(gg::abs(big).to_vector<int64_t>() == std::vector<int64_t>{kMax, kMin, 3});
}

TEST_CASE("core: as_contiguous and as_dtype copy like contiguous() and to() but record nothing",
          "[core][copy]") {
  Tensor x = gg::arange(6.0, gg::kFloat32).reshape({2, 3});
  x.requires_grad_();
  // Nothing to do: the tensor itself, no copy and no new handle.
  CHECK(gg::as_contiguous(x).raw_data() == x.raw_data());
  CHECK(gg::as_dtype(x, gg::kFloat32).raw_data() == x.raw_data());
  // A copy: the values contiguous() and to() give, with no node (a kernel's operands).
  Tensor t = x.transpose(0, 1);
  Tensor c = gg::as_contiguous(t), d = gg::as_dtype(t, gg::kFloat64);
  CHECK(c.is_contiguous());
  CHECK(c.grad_fn() == nullptr);
  CHECK(d.grad_fn() == nullptr);
  CHECK(d.dtype() == gg::kFloat64);
  CHECK(c.to_vector<float>() == t.contiguous().to_vector<float>());
  CHECK(d.to_vector<double>() == t.to(gg::kFloat64).to_vector<double>());
}
