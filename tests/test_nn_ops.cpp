// softmax, log_softmax, layer_norm, cross_entropy, mse_loss and dropout: forward values against
// naive double loops (and a few PyTorch values), the oneDNN Float32/BFloat16 kernels against the
// Float64 reference kernel, gradients against central differences in Float64, and the errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

#include "autograd/grad_mode.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/kernels/layer_norm_kernels.hpp"
#include "ops/kernels/softmax_kernels.hpp"
#include "ops/nn_ops.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/layer_norm.hpp"
#include "ops/onednn/softmax.hpp"
#include "ops/reduce.hpp"
#include "ops/reference/nn.hpp"
#include "tests/test_support.hpp"

using namespace gg;

namespace {

using test::check_gradients;
using test::values;

// Every |got - want| <= atol + rtol * |want| (NaN only where NaN is wanted).
void require_close(const std::vector<double>& got, const std::vector<double>& want, double atol,
                   double rtol = 0) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    if (std::isnan(want[i])) {
      REQUIRE(std::isnan(got[i]));
    } else {
      REQUIRE(std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]));
    }
  }
}

// ---- naive oracles (double, index arithmetic on row-major values) ----------------------------

std::vector<double> naive_softmax(const std::vector<double>& x, const Shape& shape, int64_t dim,
                                  bool log) {
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[d];
  for (size_t d = dim + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t n = shape[dim];
  std::vector<double> out(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t j) { return (o * n + j) * inner + i; };
      double max = -INFINITY;
      for (int64_t j = 0; j < n; ++j) max = std::max(max, x[at(j)]);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += std::exp(x[at(j)] - max);
      for (int64_t j = 0; j < n; ++j)
        out[at(j)] = log ? x[at(j)] - max - std::log(sum) : std::exp(x[at(j)] - max) / sum;
    }
  }
  return out;
}

std::vector<double> naive_layer_norm(const std::vector<double>& x, int64_t cols,
                                     const std::vector<double>& w, const std::vector<double>& b,
                                     double eps) {
  std::vector<double> out(x.size());
  for (size_t r = 0; r < x.size() / cols; ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += x[r * cols + j] / cols;
    for (int64_t j = 0; j < cols; ++j) var += std::pow(x[r * cols + j] - mean, 2) / cols;
    for (int64_t j = 0; j < cols; ++j) {
      double y = (x[r * cols + j] - mean) / std::sqrt(var + eps);
      out[r * cols + j] = y * (w.empty() ? 1 : w[j]) + (b.empty() ? 0 : b[j]);
    }
  }
  return out;
}

// PyTorch's definition, term by term: (1 - s) * nll_loss + s / C * smooth_loss, each reduced
// over the non-ignored positions. logits are [N, C, D] row-major.
std::vector<double> naive_cross_entropy(const std::vector<double>& logits, int64_t N, int64_t C,
                                        int64_t D, const std::vector<int64_t>& target,
                                        Reduction reduction, int64_t ignore, double s) {
  std::vector<double> nll(N * D, 0), smooth(N * D, 0);
  int64_t count = 0;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t d = 0; d < D; ++d) {
      const int64_t p = n * D + d, t = target[p];
      if (t == ignore) continue;
      ++count;
      double max = -INFINITY, sum = 0;
      for (int64_t c = 0; c < C; ++c) max = std::max(max, logits[(n * C + c) * D + d]);
      for (int64_t c = 0; c < C; ++c) sum += std::exp(logits[(n * C + c) * D + d] - max);
      const double lse = max + std::log(sum);
      nll[p] = -(logits[(n * C + t) * D + d] - lse);
      for (int64_t c = 0; c < C; ++c) smooth[p] -= logits[(n * C + c) * D + d] - lse;
    }
  }
  if (reduction == Reduction::None) {
    std::vector<double> out(N * D);
    for (int64_t p = 0; p < N * D; ++p) out[p] = (1 - s) * nll[p] + s / C * smooth[p];
    return out;
  }
  const double total_nll = std::accumulate(nll.begin(), nll.end(), 0.0);
  const double total_smooth = std::accumulate(smooth.begin(), smooth.end(), 0.0);
  const double div = reduction == Reduction::Mean ? static_cast<double>(count) : 1.0;
  return {(1 - s) * total_nll / div + s / C * total_smooth / div};
}

// The deterministic logits the PyTorch reference values below were computed from.
Tensor sine_logits(const Shape& shape) {
  std::vector<double> v(numel_of(shape));
  for (size_t i = 0; i < v.size(); ++i) v[i] = std::sin(0.7 * i) * 3 + 0.1 * i;
  return tensor<double>(v, shape);
}

}  // namespace

// ---- softmax / log_softmax -------------------------------------------------------------------

TEST_CASE("softmax and log_softmax match a double loop along every dim", "[nn_ops][softmax]") {
  manual_seed(10);
  const Shape shape{3, 4, 5};
  Tensor x64 = randn(shape, kFloat64) * 3.0;
  struct Case {
    Dtype dtype;
    double tol;
  };
  for (Case c :
       {Case{kFloat64, 1e-14}, Case{kFloat32, 2e-6}, Case{kBFloat16, 2e-2}, Case{kFloat16, 2e-3}}) {
    // The oracle gets the input the op saw (rounded to the dtype).
    Tensor x = x64.to(c.dtype);
    const std::vector<double> vr = values(x);
    for (bool log : {false, true}) {
      for (int64_t dim : {0, 1, 2, -1}) {
        INFO(dtype_name(c.dtype) << " log=" << log << " dim=" << dim);
        Tensor y = log ? log_softmax(x, dim) : softmax(x, dim);
        REQUIRE(y.dtype() == c.dtype);
        REQUIRE(y.shape() == shape);
        // Float32 log-probabilities of size ~10 carry absolute rounding errors of a few ulp.
        const double atol = log && c.dtype == kFloat32 ? 1e-5 : c.tol;
        require_close(values(y), naive_softmax(vr, shape, dim < 0 ? dim + 3 : dim, log), atol,
                      c.tol);
      }
    }
  }
}

TEST_CASE("softmax is numerically stable and handles odd shapes", "[nn_ops][softmax]") {
  for (Dtype dtype : {kFloat64, kFloat32, kBFloat16}) {
    INFO(dtype_name(dtype));
    Tensor big = tensor<double>({1000, 1001, 1002, -1000}, {1, 4}).to(dtype);
    require_close(values(softmax(big, 1)), naive_softmax(values(big), {1, 4}, 1, false), 1e-2);
    std::vector<double> ls = values(log_softmax(big, 1));
    for (double v : ls) REQUIRE(std::isfinite(v));
    REQUIRE(ls[3] == Approx(-2002.4076).epsilon(1e-2));
  }
  // Non-contiguous input, 0-d input, empty input.
  Tensor x = randn({4, 3}, kFloat64);
  Tensor xt = x.t();  // [3, 4] view
  require_close(values(softmax(xt, 1)), values(softmax(xt.contiguous(), 1)), 1e-15);
  Tensor s = softmax(scalar_tensor(3.0, kFloat64), 0);
  REQUIRE(s.dim() == 0);
  REQUIRE(s.item<double>() == 1.0);
  // oneDNN's approximate log gives 1.4e-6 here (see ops/onednn/softmax.cpp).
  REQUIRE(log_softmax(scalar_tensor(3.0), -1).item<float>() == Approx(0).margin(1e-5));
  REQUIRE(softmax(zeros({0, 3}), 1).shape() == Shape{0, 3});
  REQUIRE(softmax(zeros({2, 0}), 1).shape() == Shape{2, 0});
}

TEST_CASE("oneDNN softmax matches the Float64 reference kernel", "[nn_ops][softmax][onednn]") {
  manual_seed(11);
  for (const Shape& shape : {Shape{64, 1000}, Shape{7, 33}, Shape{5, 17, 9}, Shape{1, 1}}) {
    for (int64_t dim : {-1, 0}) {
      Tensor x = randn(shape, kFloat32) * 4.0;
      for (bool log : {false, true}) {
        INFO(shape_str(shape) << " dim=" << dim << " log=" << log);
        const std::vector<double> want =
            values(reference::softmax(x.to(kFloat64), dim + (dim < 0 ? x.dim() : 0), log));
        const int64_t d = dim < 0 ? dim + x.dim() : dim;
        require_close(values(kernels::softmax(x, d, log)), want, log ? 1e-5 : 1e-6, 1e-5);
        Tensor xb = x.to(kBFloat16);
        require_close(values(kernels::softmax(xb, d, log)),
                      values(reference::softmax(xb.to(kFloat64), d, log)), 1e-2, 1e-2);
      }
    }
  }
  // The backend also takes a middle axis ([outer, n, inner]), which oneDNN runs as ref:any.
  Tensor m = randn({3, 6, 4});
  for (bool log : {false, true}) {
    Tensor out = empty({3, 6, 4});
    onednn::softmax(m.raw_data(), out.raw_data(), kFloat32, 3, 6, 4, log);
    require_close(values(out), values(reference::softmax(m.to(kFloat64), 1, log)), 1e-5, 1e-5);
  }
  // The last-dim case runs a jit kernel, not oneDNN's reference loops, and is built only once.
  CHECK_FALSE(onednn::softmax_implementation(kFloat32, 64, 1000, 1, false).starts_with("ref"));
  CHECK_FALSE(onednn::softmax_implementation(kFloat32, 64, 1000, 1, true).starts_with("ref"));
  if (onednn::native_bf16()) {
    CHECK_FALSE(onednn::softmax_implementation(kBFloat16, 64, 1000, 1, false).starts_with("ref"));
  } else {  // below AVX512_CORE the op computes bf16 through f32 and never asks oneDNN for bf16
    CHECK_FALSE(onednn::softmax_supported(kBFloat16));
    CHECK_THROWS_WITH(onednn::softmax_implementation(kBFloat16, 64, 1000, 1, false),
                      Catch::Contains("bfloat16 from AVX512_CORE up; got bfloat16 on"));
  }
  Tensor x = randn({8, 123});
  softmax(x, 1);
  const auto before = onednn::cache_stats();
  for (int i = 0; i < 5; ++i) softmax(x, 1);
  REQUIRE(onednn::cache_stats().misses == before.misses);
  REQUIRE(onednn::cache_stats().hits >= before.hits + 5);
}

TEST_CASE("softmax and log_softmax gradients match finite differences", "[nn_ops][softmax][grad]") {
  manual_seed(12);
  for (int64_t dim : {0, 1, -1}) {
    INFO("dim " << dim);
    check_gradients([dim](const std::vector<Tensor>& x) { return softmax(x[0], dim); },
                    {randn({3, 4, 2})});
    check_gradients([dim](const std::vector<Tensor>& x) { return log_softmax(x[0], dim); },
                    {randn({3, 4, 2})});
  }
  check_gradients([](const std::vector<Tensor>& x) { return softmax(x[0].t(), 1) * x[0].t(); },
                  {randn({4, 3})});
  // The Float32 (oneDNN) forward with the same backward formula.
  Tensor x = randn({3, 5}).requires_grad_();
  Tensor g = randn({3, 5});
  softmax(x, 1).backward(g);
  Tensor x64 = x.detach().to(kFloat64).requires_grad_();
  softmax(x64, 1).backward(g.to(kFloat64));
  require_close(values(x.grad()), values(x64.grad()), 1e-6, 1e-5);
}

TEST_CASE("softmax errors", "[nn_ops][softmax][errors]") {
  REQUIRE_THROWS_WITH(softmax(zeros({2, 3}), 2),
                      Catch::Contains("[softmax] dimension 2 out of range for a 2-d tensor"));
  REQUIRE_THROWS_WITH(log_softmax(zeros({2, 3}), -3),
                      Catch::Contains("[log_softmax] dimension -3 out of range"));
  REQUIRE_THROWS_WITH(softmax(zeros({2, 3}, kInt64), 1),
                      Catch::Contains("[softmax] input must be a floating-point tensor, got int64 "
                                      "[2, 3]"));
  REQUIRE_THROWS_WITH(softmax(Tensor(), 0), Catch::Contains("[softmax] the tensor is undefined"));
}

// ---- layer_norm ------------------------------------------------------------------------------

TEST_CASE("layer_norm matches a double loop", "[nn_ops][layer_norm]") {
  manual_seed(20);
  struct Case {
    Dtype dtype;
    double tol;
  };
  for (Case c :
       {Case{kFloat64, 1e-12}, Case{kFloat32, 1e-5}, Case{kBFloat16, 5e-2}, Case{kFloat16, 5e-3}}) {
    for (const Shape& norm : {Shape{6}, Shape{3, 6}}) {
      for (int affine = 0; affine < 3; ++affine) {  // none, weight only, weight and bias
        INFO(dtype_name(c.dtype) << " normalized " << shape_str(norm) << " affine " << affine);
        Tensor x = (randn({2, 3, 6}, kFloat64) * 2.0 + 1.0).to(c.dtype);
        Tensor w = affine >= 1 ? randn(norm, kFloat64).to(c.dtype) : Tensor();
        Tensor b = affine >= 2 ? randn(norm, kFloat64).to(c.dtype) : Tensor();
        Tensor y = layer_norm(x, norm, w, b, 1e-5);
        REQUIRE(y.dtype() == c.dtype);
        REQUIRE(y.shape() == x.shape());
        std::vector<double> want = naive_layer_norm(
            values(x), numel_of(norm), w.defined() ? values(w) : std::vector<double>{},
            b.defined() ? values(b) : std::vector<double>{}, 1e-5);
        require_close(values(y), want, c.tol, c.tol);
      }
    }
  }
  // A large eps matters; a constant row normalises to the bias.
  Tensor x = tensor<double>({1, 2, 3, 4, 5, 5, 5, 5}, {2, 4});
  require_close(values(layer_norm(x, {4}, {}, {}, 0.5)),
                naive_layer_norm(values(x), 4, {}, {}, 0.5), 1e-14);
  Tensor bias = tensor<float>({1, 2, 3, 4});
  require_close(values(layer_norm(x.to(kFloat32), {4}, ones({4}), bias).select(0, 1)), {1, 2, 3, 4},
                1e-6);
  // Non-contiguous input.
  Tensor xt = randn({6, 4}, kFloat64).t();
  require_close(values(layer_norm(xt, {6})), values(layer_norm(xt.contiguous(), {6})), 1e-15);
}

TEST_CASE("oneDNN layer_norm matches the Float64 reference kernel",
          "[nn_ops][layer_norm][onednn]") {
  manual_seed(21);
  for (const Shape& shape : {Shape{64, 512}, Shape{5, 7}, Shape{1, 1}}) {
    const int64_t cols = shape[1];
    Tensor x = randn(shape) * 3.0 + 2.0;
    Tensor w = randn({cols}), b = randn({cols});
    for (bool stats : {false, true}) {
      INFO(shape_str(shape) << " stats " << stats);
      auto ref =
          reference::layer_norm(x.to(kFloat64), cols, w.to(kFloat64), b.to(kFloat64), 1e-5, true);
      auto got = kernels::layer_norm(x, cols, w, b, 1e-5, stats);
      require_close(values(got.y), values(ref.y), 1e-5, 1e-5);
      if (stats) {
        REQUIRE(got.mean.dtype() == kFloat32);
        require_close(values(got.mean), values(ref.mean), 1e-5, 1e-6);
        require_close(values(got.rstd), values(ref.rstd), 1e-5, 1e-5);
      }
      Tensor xb = x.to(kBFloat16);
      auto refb = reference::layer_norm(xb.to(kFloat64), cols, w.to(kBFloat16).to(kFloat64), {},
                                        1e-5, false);
      require_close(values(kernels::layer_norm(xb, cols, w.to(kBFloat16), {}, 1e-5, stats).y),
                    values(refb.y), 3e-2, 1e-2);
    }
  }
  CHECK_FALSE(
      onednn::layer_norm_implementation(kFloat32, 64, 512, true, true, true).starts_with("ref"));
  if (onednn::native_bf16()) {
    CHECK_FALSE(onednn::layer_norm_implementation(kBFloat16, 64, 512, true, false, false)
                    .starts_with("ref"));
  } else {  // computed through f32 (see softmax above)
    CHECK_FALSE(onednn::layer_norm_supported(kBFloat16));
    CHECK_THROWS_WITH(onednn::layer_norm_implementation(kBFloat16, 64, 512, true, false, false),
                      Catch::Contains("bfloat16 from AVX512_CORE up; got bfloat16 on"));
  }
  Tensor x = randn({4, 32}), w = randn({32});
  layer_norm(x, {32}, w);
  const auto before = onednn::cache_stats();
  for (int i = 0; i < 3; ++i) layer_norm(x, {32}, w);
  REQUIRE(onednn::cache_stats().misses == before.misses);
}

TEST_CASE("layer_norm gradients match finite differences", "[nn_ops][layer_norm][grad]") {
  manual_seed(22);
  check_gradients([](const std::vector<Tensor>& t) { return layer_norm(t[0], {5}, t[1], t[2]); },
                  {randn({3, 5}), randn({5}), randn({5})});
  check_gradients(
      [](const std::vector<Tensor>& t) {
        return layer_norm(t[0], {2, 3}, t[1], {}, 0.1);
      },
      {randn({2, 2, 3}), randn({2, 3})});
  check_gradients([](const std::vector<Tensor>& t) { return layer_norm(t[0], {4}); },
                  {randn({3, 4})});
  check_gradients([](const std::vector<Tensor>& t) { return layer_norm(t[0].t(), {3}, {}, t[1]); },
                  {randn({3, 4}), randn({3})});
  // Only the weight needs a gradient.
  Tensor x = randn({3, 4}, kFloat64), w = randn({4}, kFloat64).requires_grad_();
  layer_norm(x, {4}, w).sum().backward();
  REQUIRE(w.grad().defined());
  REQUIRE_FALSE(x.grad().defined());
  // The Float32 path (oneDNN forward statistics) gives the Float64 gradients.
  Tensor x32 = randn({4, 16}).requires_grad_(), w32 = randn({16}).requires_grad_();
  Tensor b32 = randn({16}).requires_grad_(), g = randn({4, 16});
  layer_norm(x32, {16}, w32, b32).backward(g);
  std::vector<Tensor> t64;
  for (const Tensor& t : {x32, w32, b32}) t64.push_back(t.detach().to(kFloat64).requires_grad_());
  layer_norm(t64[0], {16}, t64[1], t64[2]).backward(g.to(kFloat64));
  require_close(values(x32.grad()), values(t64[0].grad()), 1e-4, 1e-4);
  require_close(values(w32.grad()), values(t64[1].grad()), 1e-4, 1e-4);
  require_close(values(b32.grad()), values(t64[2].grad()), 1e-5, 1e-5);
}

TEST_CASE("layer_norm errors", "[nn_ops][layer_norm][errors]") {
  Tensor x = zeros({2, 3, 4});
  REQUIRE_THROWS_WITH(layer_norm(x, {3}),
                      Catch::Contains("[layer_norm] normalized_shape [3] must match the trailing "
                                      "dimensions of the input [2, 3, 4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {1, 2, 3, 4}),
                      Catch::Contains("normalized_shape [1, 2, 3, 4] must match"));
  REQUIRE_THROWS_WITH(layer_norm(x, {}),
                      Catch::Contains("[layer_norm] normalized_shape must have"));
  REQUIRE_THROWS_WITH(layer_norm(x, {3, 4}, zeros({4})),
                      Catch::Contains("[layer_norm] weight has shape [4] but normalized_shape is "
                                      "[3, 4]"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, {}, zeros({4}, kFloat64)),
                      Catch::Contains("[layer_norm] bias is float64 but the input is float32"));
  REQUIRE_THROWS_WITH(layer_norm(zeros({2, 4}, kInt32), {4}),
                      Catch::Contains("[layer_norm] input must be a floating-point tensor"));
  REQUIRE_THROWS_WITH(layer_norm(x, {4}, {}, {}, -1.0),
                      Catch::Contains("[layer_norm] eps must be finite and >= 0, got -1"));
}

// ---- cross_entropy ---------------------------------------------------------------------------

TEST_CASE("cross_entropy matches PyTorch's values", "[nn_ops][cross_entropy]") {
  // From torch 2.x, F.cross_entropy on sine_logits (float64); see the commit adding this test.
  Tensor x = sine_logits({4, 5});
  Tensor t = tensor<int64_t>({1, 0, 4, -100});
  CHECK(cross_entropy(x, t).item<double>() == Approx(2.803541197283877).epsilon(1e-12));
  CHECK(cross_entropy(x, t, Reduction::Sum).item<double>() ==
        Approx(8.41062359185163).epsilon(1e-12));
  require_close(values(cross_entropy(x, t, Reduction::None)),
                {1.9596775245509415, 1.8704786706071994, 4.580467396693489, 0.0}, 1e-12);
  CHECK(cross_entropy(x, t, Reduction::Mean, -100, 0.1).item<double>() ==
        Approx(2.7436839258262196).epsilon(1e-12));
  CHECK(cross_entropy(x, t, Reduction::Sum, -100, 0.1).item<double>() ==
        Approx(8.231051777478658).epsilon(1e-12));
  require_close(values(cross_entropy(x, t, Reduction::None, -100, 0.1)),
                {1.9732709346803932, 1.9143995633072444, 4.343381279491022, 0.0}, 1e-12);
  Tensor xg = x.clone().requires_grad_();
  cross_entropy(xg, t, Reduction::Mean, -100, 0.1).backward();
  require_close(values(xg.grad()),
                {-0.0005144502856607175,
                 -0.25969871612388823,
                 0.1378162958317191,
                 0.10399090620179251,
                 0.018405964376037285,
                 -0.2553166983325453,
                 0.0052303383067626216,
                 0.0027610710484077296,
                 0.023214072241825374,
                 0.2241112167355495,
                 0.042689996608218275,
                 0.14065489367113101,
                 0.10239458929114781,
                 0.01751048565891983,
                 -0.30324996522941694,
                 0,
                 0,
                 0,
                 0,
                 0},
                1e-12);

  // (N, C, d1, d2) with ignore_index = 2, a valid class.
  Tensor x4 = sine_logits({2, 3, 2, 2});
  Tensor t4 = tensor<int64_t>({0, 2, 1, 1, 2, 2, 0, 1}, {2, 2, 2});
  CHECK(cross_entropy(x4, t4, Reduction::Mean, 2, 0.2).item<double>() ==
        Approx(3.1995862610917882).epsilon(1e-12));
  CHECK(cross_entropy(x4, t4, Reduction::Sum, 2, 0.2).item<double>() ==
        Approx(15.997931305458941).epsilon(1e-12));
  Tensor none = cross_entropy(x4, t4, Reduction::None, 2, 0.2);
  REQUIRE(none.shape() == Shape{2, 2, 2});
  require_close(values(none),
                {1.6675645270921482, 0.0, 5.101798287450444, 5.819145758772152, 0.0, 0.0,
                 2.8215478326846792, 0.5878748994595201},
                1e-12);
  Tensor x4g = x4.clone().requires_grad_();
  cross_entropy(x4g, t4, Reduction::Sum, 2, 0.2).backward();
  require_close(values(x4g.grad()),
                {-0.6818348246900076,
                 0.0,
                 0.4778594599728747,
                 0.16898126893171928,
                 0.6865936694183254,
                 0.0,
                 -0.8635746008493461,
                 -0.8652821474338536,
                 -0.004758844728317814,
                 0.0,
                 0.3857151408764715,
                 0.6963008785021343,
                 0.0,
                 0.0,
                 -0.8223098005313574,
                 -0.06066363179479097,
                 0.0,
                 0.0,
                 0.15310168468747748,
                 0.06788014635524064,
                 0.0,
                 0.0,
                 0.6692081158438798,
                 -0.007216514560449798},
                1e-12);

  // Mean over no non-ignored target is 0 / 0, as in PyTorch.
  CHECK(
      std::isnan(cross_entropy(sine_logits({2, 3}), tensor<int64_t>({-100, -100})).item<double>()));
  // Unbatched: logits (C) with a 0-d target.
  Tensor one =
      cross_entropy(sine_logits({5}), scalar_tensor(3, kInt64), Reduction::Mean, -100, 0.3);
  REQUIRE(one.dim() == 0);
  CHECK(one.item<double>() == Approx(1.400575228175812).epsilon(1e-12));
}

TEST_CASE("cross_entropy matches the definition for every option", "[nn_ops][cross_entropy]") {
  manual_seed(30);
  struct Layout {
    Shape logits;
    int64_t D;
  };
  for (Layout l : {Layout{{6, 4}, 1}, Layout{{3, 4, 5}, 5}, Layout{{2, 4, 2, 3}, 6}}) {
    const int64_t N = l.logits[0], C = l.logits[1];
    Tensor x = randn(l.logits, kFloat64) * 2.0;
    Shape tshape = l.logits;
    tshape.erase(tshape.begin() + 1);
    std::vector<int64_t> tv = randint(0, C, tshape).to_vector<int64_t>();
    tv[1] = -1;  // one ignored position
    for (Reduction red : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
      for (double s : {0.0, 0.25, 1.0}) {
        for (Dtype tdtype : {kInt64, kInt32}) {
          INFO(shape_str(l.logits) << " reduction " << static_cast<int>(red) << " smoothing " << s);
          Tensor t = tensor<int64_t>(tv, tshape).to(tdtype);
          std::vector<double> want = naive_cross_entropy(values(x), N, C, l.D, tv, red, -1, s);
          require_close(values(cross_entropy(x, t, red, -1, s)), want, 1e-12, 1e-12);
          // Float32 (log_softmax on oneDNN) and BFloat16.
          require_close(values(cross_entropy(x.to(kFloat32), t, red, -1, s)), want, 1e-5, 1e-5);
          require_close(values(cross_entropy(x.to(kBFloat16), t, red, -1, s)), want, 0.1, 2e-2);
        }
      }
    }
  }
}

TEST_CASE("cross_entropy gradients match finite differences", "[nn_ops][cross_entropy][grad]") {
  manual_seed(31);
  Tensor t2 = tensor<int64_t>({2, 0, -100, 3, 1});
  Tensor t4 = tensor<int32_t>({0, 2, 1, 1, 7, 2, 0, 1, 2, 0, 7, 1}, {2, 2, 3});
  for (Reduction red : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    for (double s : {0.0, 0.3}) {
      INFO("reduction " << static_cast<int>(red) << " smoothing " << s);
      check_gradients(
          [&](const std::vector<Tensor>& x) { return cross_entropy(x[0], t2, red, -100, s); },
          {randn({5, 4})});
      check_gradients(
          [&](const std::vector<Tensor>& x) { return cross_entropy(x[0], t4, red, 7, s); },
          {randn({2, 3, 2, 3})});
    }
  }
}

TEST_CASE("cross_entropy errors", "[nn_ops][cross_entropy][errors]") {
  Tensor x = zeros({3, 4});
  REQUIRE_THROWS_WITH(cross_entropy(x, tensor<int64_t>({0, 4, 1})),
                      Catch::Contains("[cross_entropy] target 4 at position 1 is out of range for "
                                      "4 classes"));
  REQUIRE_THROWS_WITH(cross_entropy(x, tensor<int64_t>({0, -1, 1})),
                      Catch::Contains("[cross_entropy] target -1 at position 1 is out of range"));
  REQUIRE_THROWS_WITH(cross_entropy(x, tensor<float>({0, 1, 1})),
                      Catch::Contains("[cross_entropy] target must hold class indices as int64 or "
                                      "int32, got float32 [3]"));
  REQUIRE_THROWS_WITH(cross_entropy(x, tensor<int64_t>({0, 1})),
                      Catch::Contains("[cross_entropy] target has shape [2] but logits [3, 4] need "
                                      "a target of shape [3]"));
  REQUIRE_THROWS_WITH(cross_entropy(zeros({2, 3, 5}), zeros({2, 3}, kInt64)),
                      Catch::Contains("need a target of shape [2, 5]"));
  REQUIRE_THROWS_WITH(cross_entropy(zeros({3, 4}, kInt64), tensor<int64_t>({0, 1, 1})),
                      Catch::Contains("[cross_entropy] logits must be a floating-point tensor"));
  REQUIRE_THROWS_WITH(
      cross_entropy(x, tensor<int64_t>({0, 1, 1}), Reduction::Mean, -100, 1.5),
      Catch::Contains("[cross_entropy] label_smoothing must be in [0, 1], got 1.5"));
}

// ---- mse_loss --------------------------------------------------------------------------------

TEST_CASE("mse_loss matches a double loop and its gradients", "[nn_ops][mse_loss]") {
  manual_seed(40);
  Tensor a = randn({3, 4}, kFloat64), b = randn({3, 4}, kFloat64);
  std::vector<double> va = values(a), vb = values(b), sq(va.size());
  for (size_t i = 0; i < va.size(); ++i) sq[i] = (va[i] - vb[i]) * (va[i] - vb[i]);
  const double total = std::accumulate(sq.begin(), sq.end(), 0.0);
  require_close(values(mse_loss(a, b, Reduction::None)), sq, 1e-15);
  CHECK(mse_loss(a, b, Reduction::Sum).item<double>() == Approx(total).epsilon(1e-14));
  CHECK(mse_loss(a, b).item<double>() == Approx(total / 12).epsilon(1e-14));
  CHECK(mse_loss(a.to(kFloat32), b.to(kFloat32)).item<float>() == Approx(total / 12).epsilon(1e-5));
  for (Reduction red : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    check_gradients([red](const std::vector<Tensor>& x) { return mse_loss(x[0], x[1], red); },
                    {randn({3, 4}), randn({3, 4})});
  }
  REQUIRE_THROWS_WITH(mse_loss(zeros({3, 1}), zeros({3})),
                      Catch::Contains("[mse_loss] input [3, 1] and target [3] must have the same "
                                      "shape"));
  REQUIRE_THROWS_WITH(mse_loss(zeros({3}), zeros({3}, kInt64)),
                      Catch::Contains("[mse_loss] target must be a floating-point tensor"));
}

// ---- dropout ---------------------------------------------------------------------------------

TEST_CASE("dropout zeroes with probability p and scales the rest", "[nn_ops][dropout]") {
  Tensor x = ones({200, 100});
  // Evaluation, and p = 0, are the identity (the very same tensor).
  REQUIRE(dropout(x, 0.5, false).impl() == x.impl());
  REQUIRE(dropout(x, 0.0, true).impl() == x.impl());
  REQUIRE(values(dropout(x, 1.0, true)) == std::vector<double>(20000, 0.0));

  manual_seed(41);
  std::vector<float> y = dropout(x, 0.3, true).to_vector<float>();
  int64_t zeros_seen = 0;
  for (float v : y) {
    if (v == 0)
      ++zeros_seen;
    else
      REQUIRE(v == Approx(1 / 0.7).epsilon(1e-6));
  }
  // 20000 Bernoulli(0.3) draws: mean 6000, standard deviation ~65.
  CHECK(zeros_seen > 6000 - 400);
  CHECK(zeros_seen < 6000 + 400);
  // The global generator makes it reproducible.
  manual_seed(41);
  REQUIRE(dropout(x, 0.3, true).to_vector<float>() == y);

  // The gradient is the same mask.
  manual_seed(42);
  Tensor w = randn({50, 4}, kFloat64).requires_grad_();
  Tensor out = dropout(w, 0.5, true);
  out.sum().backward();
  std::vector<double> vo = values(out), vw = values(w), vg = values(w.grad());
  for (size_t i = 0; i < vo.size(); ++i) REQUIRE(vg[i] == (vo[i] == 0 ? 0.0 : 2.0));
  REQUIRE(vo[0] == (vg[0] == 0 ? 0.0 : 2.0 * vw[0]));
  check_gradients(
      [](const std::vector<Tensor>& t) {
        manual_seed(43);  // the same mask on every evaluation
        return dropout(t[0], 0.4, true);
      },
      {randn({6, 5})});
}

TEST_CASE("dropout errors", "[nn_ops][dropout][errors]") {
  REQUIRE_THROWS_WITH(dropout(ones({2}), 1.5, true),
                      Catch::Contains("[dropout] probability p must be in [0, 1], got 1.5"));
  REQUIRE_THROWS_WITH(dropout(ones({2}), -0.1, false),
                      Catch::Contains("[dropout] probability p must be in [0, 1], got -0.1"));
  REQUIRE_THROWS_WITH(dropout(ones({2}), std::nan(""), true),
                      Catch::Contains("[dropout] probability p must be in [0, 1]"));
  REQUIRE_THROWS_WITH(dropout(ones({2}, kInt32), 0.5, true),
                      Catch::Contains("[dropout] input must be a floating-point tensor"));
}
