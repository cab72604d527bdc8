// BFloat16 on every CPU. Where oneDNN has no bf16 kernels (below AVX512_CORE; CI runs the suite
// as an AVX2 and an SSE4.1 CPU too), every op on bf16 computes in Float32 and rounds its result
// once: exactly what the Float32 op gives on the converted inputs, converted to bf16. There this
// file checks bit equality against that oracle, for every family; where bf16 is native it checks
// the same values within one bf16 rounding of the f32 result.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "groupgrad.hpp"
#include "ops/onednn/context.hpp"
#include "tests/test_support.hpp"

using namespace gg;
namespace F = gg::nn::functional;
using gg::test::values;

namespace {

// The f32 oracle rounded once, against the bf16 op's result: identical bits where bf16 runs
// through f32, else within one bf16 rounding of the oracle (2^-8 relative) plus `atol`.
void require_f32_rounded_once(const Tensor& got, const Tensor& f32_result, const std::string& what,
                              double atol = 0) {
  INFO(what << ": bf16 " << (onednn::native_bf16() ? "native" : "through f32") << " on "
            << onednn::isa_name(onednn::effective_isa()));
  REQUIRE((got.dtype() == f32_result.dtype() || got.dtype() == kBFloat16));
  const Tensor want = f32_result.to(got.dtype()).contiguous();
  const Tensor have = got.contiguous();
  REQUIRE(have.shape() == want.shape());
  if (!onednn::native_bf16()) {
    const bool same = std::memcmp(have.raw_data(), want.raw_data(),
                                  static_cast<size_t>(have.numel()) * have.element_size()) == 0;
    if (!same) {  // name the first difference
      const std::vector<double> h = values(have), w = values(want);
      for (size_t i = 0; i < h.size(); ++i) {
        if (h[i] == w[i] || (std::isnan(h[i]) && std::isnan(w[i]))) continue;
        INFO("element " << i << ": got " << h[i] << ", want " << w[i]);
        REQUIRE(h[i] == w[i]);
      }
    }
    REQUIRE(same);
    return;
  }
  const std::vector<double> h = values(have), w = values(f32_result);
  for (size_t i = 0; i < h.size(); ++i) {
    INFO("element " << i << ": got " << h[i] << ", f32 " << w[i]);
    REQUIRE(std::fabs(h[i] - w[i]) <= std::ldexp(std::fabs(w[i]), -7) + atol);
  }
}

Tensor bf16_randn(const Shape& shape) { return randn(shape).to(kBFloat16); }
Tensor f32(const Tensor& t) { return t.detach().to(kFloat32); }

}  // namespace

TEST_CASE("bf16 through f32: matmul, bmm, linear and their layouts", "[bf16]") {
  manual_seed(1);
  for (const auto& [as, bs] : std::vector<std::pair<Shape, Shape>>{{{37, 21}, {21, 45}},
                                                                   {{3, 50, 64}, {3, 64, 70}},
                                                                   {{4, 9, 16}, {16, 8}},
                                                                   {{200, 130}, {130, 3}}}) {
    Tensor a = bf16_randn(as), b = bf16_randn(bs);
    require_f32_rounded_once(matmul(a, b), matmul(f32(a), f32(b)),
                             fmt::format("matmul {}", shape_str(as)));
    // A transposed operand (strides only) and an f32 product written as bf16.
    Tensor bt = bf16_randn({bs.rbegin()[0], bs.rbegin()[1]}).transpose(0, 1);
    if (bs.size() == 2)
      require_f32_rounded_once(matmul(a, bt), matmul(f32(a), f32(bt)), "matmul transposed");
  }
  Tensor x = bf16_randn({6, 2, 32}), w = bf16_randn({24, 32}), bias = bf16_randn({24});
  // linear is two ops (matmul, then the bias add), each rounded once.
  Tensor product = F::linear(x, w);
  require_f32_rounded_once(product, F::linear(f32(x), f32(w)), "linear");
  require_f32_rounded_once(F::linear(x, w, bias), f32(product) + f32(bias), "linear with bias");
}

TEST_CASE("bf16 through f32: grouped_mm in every form, bias and out_dtype", "[bf16]") {
  manual_seed(2);
  // List form: ragged groups, a missing bias, an empty group.
  std::vector<Tensor> xs{bf16_randn({4, 5}), bf16_randn({2, 7}), bf16_randn({0, 3}),
                         bf16_randn({33, 16})};
  std::vector<Tensor> ws{bf16_randn({5, 6}), bf16_randn({7, 2}), bf16_randn({3, 4}),
                         bf16_randn({16, 9})};
  std::vector<Tensor> bs{bf16_randn({6}), Tensor(), bf16_randn({4}), bf16_randn({9})};
  auto all_f32 = [](const std::vector<Tensor>& v) {
    std::vector<Tensor> out;
    for (const Tensor& t : v) out.push_back(t.defined() ? f32(t) : t);
    return out;
  };
  for (std::optional<Dtype> out : {std::optional<Dtype>(), std::optional<Dtype>(kFloat32),
                                   std::optional<Dtype>(kBFloat16), std::optional<Dtype>(kInt8)}) {
    const std::string name = out ? std::string(dtype_name(*out)) : "default";
    std::vector<Tensor> got =
        F::grouped_mm(xs, ws, F::GroupedMMOptions{.bias = bs, .out_dtype = out});
    // The oracle: the f32 op with the same out_dtype (Int8 rounds the f32 result once too).
    std::vector<Tensor> want = F::grouped_mm(
        all_f32(xs), all_f32(ws),
        F::GroupedMMOptions{.bias = all_f32(bs), .out_dtype = out.value_or(kFloat32)});
    for (size_t g = 0; g < got.size(); ++g)
      require_f32_rounded_once(got[g], want[g], fmt::format("list form, out_dtype {}", name),
                               out == kInt8);
  }
  // Packed 2D x 3D (MoE) with offs and bias, 3D x 3D.
  Tensor tokens = bf16_randn({10, 8}), experts = bf16_randn({3, 8, 16}), eb = bf16_randn({3, 16});
  Tensor offs = tensor<int32_t>({4, 4, 10});
  require_f32_rounded_once(
      F::grouped_mm(tokens, experts, {.offs = offs, .bias = eb}),
      F::grouped_mm(f32(tokens), f32(experts), {.offs = offs, .bias = f32(eb)}), "packed 2d3d");
  Tensor a3 = bf16_randn({4, 8, 16}), b3 = bf16_randn({4, 16, 24}), bias3 = bf16_randn({4, 24});
  require_f32_rounded_once(F::grouped_mm(a3, b3, {.bias = bias3}),
                           F::grouped_mm(f32(a3), f32(b3), {.bias = f32(bias3)}), "packed 3d3d");

  // Backward: dX = dY W^T and dW = X^T dY in f32, rounded once into the bf16 gradients.
  Tensor x = bf16_randn({10, 8}).requires_grad_(), w = bf16_randn({3, 8, 16}).requires_grad_();
  Tensor x32 = f32(x).requires_grad_(), w32 = f32(w).requires_grad_();
  Tensor r = bf16_randn({10, 16});
  (F::grouped_mm(x, w, {.offs = offs}) * r).sum().backward();
  (F::grouped_mm(x32, w32, {.offs = offs}) * f32(r)).sum().backward();
  // (The products with r and the sum round in bf16 on the way: the incoming gradient is r itself,
  // exactly, since d sum / d y = 1 and y * r's gradient w.r.t. y is r.)
  require_f32_rounded_once(x.grad(), x32.grad(), "grouped_mm dX");
  require_f32_rounded_once(w.grad(), w32.grad(), "grouped_mm dW");
}

TEST_CASE("bf16 through f32: elementwise, softmax, layer_norm, reductions", "[bf16]") {
  manual_seed(3);
  // Small problems run the loops, large ones (>= onednn::kMinElements) oneDNN's f32 kernels.
  for (const Shape& shape : {Shape{7, 9}, Shape{64, 129}}) {
    const std::string s = fmt::format(" {}", shape_str(shape));
    Tensor a = bf16_randn(shape), b = bf16_randn(shape), row = bf16_randn({shape[1]});
    require_f32_rounded_once(a + b, f32(a) + f32(b), fmt::format("add{}", s));
    require_f32_rounded_once(a * row, f32(a) * f32(row), fmt::format("mul broadcast{}", s));
    const Tensor d = abs(b) + 1.0;  // (each op rounds once: d is bf16)
    require_f32_rounded_once(a / d, f32(a) / f32(d), fmt::format("div{}", s));
    require_f32_rounded_once(a + f32(b), f32(a) + f32(b), fmt::format("bf16 + f32 promotes{}", s));
    require_f32_rounded_once(gt(a, b), gt(f32(a), f32(b)), fmt::format("gt{}", s));
    require_f32_rounded_once(exp(a), exp(f32(a)), fmt::format("exp{}", s));
    require_f32_rounded_once(tanh(a), tanh(f32(a)), fmt::format("tanh{}", s));
    require_f32_rounded_once(gelu(a), gelu(f32(a)), fmt::format("gelu{}", s));
    require_f32_rounded_once(sigmoid(a), sigmoid(f32(a)), fmt::format("sigmoid{}", s));
    for (int64_t dim : {0, 1}) {
      const std::string d = fmt::format(" dim {}", dim);
      require_f32_rounded_once(softmax(a, dim), softmax(f32(a), dim),
                               fmt::format("softmax{}{}", s, d));
      require_f32_rounded_once(log_softmax(a, dim), log_softmax(f32(a), dim),
                               fmt::format("log_softmax{}{}", s, d));
      require_f32_rounded_once(sum(a, dim), sum(f32(a), dim), fmt::format("sum{}{}", s, d), 1e-6);
      require_f32_rounded_once(mean(a, dim), mean(f32(a), dim), fmt::format("mean{}{}", s, d),
                               1e-6);
    }
    require_f32_rounded_once(mean(a), mean(f32(a)), fmt::format("mean of all{}", s), 1e-6);
    Tensor lw = bf16_randn({shape[1]}), lb = bf16_randn({shape[1]});
    require_f32_rounded_once(layer_norm(a, {shape[1]}, lw, lb),
                             layer_norm(f32(a), {shape[1]}, f32(lw), f32(lb)),
                             fmt::format("layer_norm{}", s), 1e-2);
    // Conversions round to nearest even, as BFloat16(float) does, on every path.
    Tensor x = randn(shape) * 1e3;
    std::vector<float> xv = x.to_vector<float>();
    std::vector<BFloat16> want(xv.begin(), xv.end());
    std::vector<BFloat16> have = x.to(kBFloat16).to_vector<BFloat16>();
    REQUIRE(std::memcmp(have.data(), want.data(), want.size() * sizeof(BFloat16)) == 0);
  }
}

TEST_CASE("bf16 through f32: gradient accumulation, gelu backward and an optimizer step",
          "[bf16]") {
  manual_seed(4);
  for (int64_t n : {100, 5000}) {  // the loop and the oneDNN-sized accumulation
    Tensor x = bf16_randn({n}).requires_grad_();
    Tensor p = bf16_randn({n}), q = bf16_randn({n});
    ((x * p).sum() + (x * q).sum()).backward();  // x.grad = p + q, accumulated in bf16
    require_f32_rounded_once(x.grad(), f32(p) + f32(q),
                             fmt::format("accumulated gradient n={}", n));

    Tensor y = bf16_randn({n}).requires_grad_();
    Tensor y32 = f32(y).requires_grad_();
    gelu(y).sum().backward();
    gelu(y32).sum().backward();
    require_f32_rounded_once(y.grad(), y32.grad(), fmt::format("gelu backward n={}", n));
  }
  // AdamW on bf16 parameters runs on every CPU and follows the f32 run to bf16 precision.
  Tensor w = bf16_randn({64, 32}).requires_grad_();
  Tensor w32 = f32(w).requires_grad_();
  optim::AdamW opt({w}, optim::AdamWOptions(1e-2)), opt32({w32}, optim::AdamWOptions(1e-2));
  Tensor target = randn({64, 32});
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    opt32.zero_grad();
    ((w - target.to(kBFloat16)) * (w - target.to(kBFloat16))).mean().backward();
    ((w32 - target) * (w32 - target)).mean().backward();
    opt.step();
    opt32.step();
  }
  const std::vector<double> got = values(w), want = values(w32);
  for (size_t i = 0; i < got.size(); ++i) REQUIRE(std::fabs(got[i] - want[i]) <= 0.05);
}
