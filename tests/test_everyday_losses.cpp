// nll_loss, cross_entropy with class weights, binary_cross_entropy(_with_logits), l1_loss,
// smooth_l1_loss and huber_loss: values and gradients against PyTorch
// (tests/fixtures/make_loss_fixtures.py -> losses.json) for every reduction, the Float32 and
// BFloat16 paths against the Float64 one, extreme logits, empty inputs, and the error messages.
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/tensor.hpp"
#include "nn/functional.hpp"
#include "ops/elementwise.hpp"
#include "ops/nn_ops.hpp"
#include "ops/reduce.hpp"
#include "tests/fixture_support.hpp"
#include "tests/test_support.hpp"

using namespace gg;
using json = nlohmann::json;
using test::fixture;
using test::number;
using test::values;

namespace {

// A fixture tensor; floating ones are made in `dtype` (from their Float64 values).
Tensor from_json(const json& t, Dtype dtype = kFloat64) {
  if (t.is_null()) return {};
  const Shape shape = t["shape"].get<Shape>();
  const std::string d = t["dtype"].get<std::string>();
  if (d == "int64") return tensor<int64_t>(t["data"].get<std::vector<int64_t>>(), shape);
  std::vector<double> v;
  for (const json& x : t["data"]) v.push_back(number(x));
  return tensor<double>(v, shape).to(dtype);
}

std::vector<double> fixture_values(const json& t) {
  std::vector<double> v;
  for (const json& x : t["data"]) v.push_back(number(x));
  return v;
}

// Every |got - want| <= atol + rtol * |want|; NaN only where NaN is wanted, infinities equal.
void require_close(const std::vector<double>& got, const std::vector<double>& want, double atol,
                   double rtol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    if (std::isnan(want[i])) {
      REQUIRE(std::isnan(got[i]));
    } else if (std::isinf(want[i])) {
      REQUIRE(got[i] == want[i]);
    } else {
      REQUIRE(std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]));
    }
  }
}

Reduction reduction_of(const std::string& r) {
  if (r == "none") return Reduction::None;
  return r == "sum" ? Reduction::Sum : Reduction::Mean;
}

// The case's inputs by name; absent optional ones are undefined.
using Args = std::map<std::string, Tensor>;

Tensor run(const json& c, Args& a) {
  const std::string op = c["op"].get<std::string>();
  const Reduction red = reduction_of(c["reduction"].get<std::string>());
  const json& o = c["options"];
  const int64_t ignore = o.value("ignore_index", int64_t{-100});
  if (op == "nll_loss") return nll_loss(a["input"], a["target"], a["weight"], red, ignore);
  if (op == "cross_entropy")
    return cross_entropy(a["input"], a["target"], a["weight"], red, ignore,
                         o.value("label_smoothing", 0.0));
  if (op == "binary_cross_entropy")
    return binary_cross_entropy(a["input"], a["target"], a["weight"], red);
  if (op == "binary_cross_entropy_with_logits")
    return binary_cross_entropy_with_logits(a["input"], a["target"], a["weight"], a["pos_weight"],
                                            red);
  if (op == "l1_loss") return l1_loss(a["input"], a["target"], red);
  if (op == "smooth_l1_loss") return smooth_l1_loss(a["input"], a["target"], red, o["beta"]);
  if (op == "huber_loss") return huber_loss(a["input"], a["target"], red, o["delta"]);
  FAIL("unknown op " << op);
  return {};
}

Args inputs_of(const json& c, Dtype dtype) {
  Args a;
  for (const auto& [name, t] : c["inputs"].items()) a[name] = from_json(t, dtype);
  return a;
}

}  // namespace

TEST_CASE("the losses match PyTorch's values and gradients in Float64", "[everyday_losses]") {
  const json& cases = fixture("losses.json")["cases"];
  REQUIRE(cases.size() >= 80);
  for (const json& c : cases) {
    INFO("case " << c["name"].get<std::string>());
    Args a = inputs_of(c, kFloat64);
    const json& grads = c["expected"]["grads"];
    for (const auto& [name, g] : grads.items()) a[name].requires_grad_();
    Tensor out = run(c, a);
    const json& want = c["expected"]["output"];
    REQUIRE(out.shape() == want["shape"].get<Shape>());
    REQUIRE(out.dtype() == kFloat64);
    require_close(values(out), fixture_values(want), 1e-12, 1e-10);
    if (grads.empty()) continue;
    out.backward(from_json(c["grad_output"]));
    for (const auto& [name, g] : grads.items()) {
      INFO("gradient of " << name);
      REQUIRE(a[name].grad().defined());
      REQUIRE(a[name].grad().shape() == g["shape"].get<Shape>());
      require_close(values(a[name].grad()), fixture_values(g), 1e-12, 1e-8);
    }
  }
}

TEST_CASE("the losses in Float32 and BFloat16 match the Float64 path on the same values",
          "[everyday_losses]") {
  for (const json& c : fixture("losses.json")["cases"]) {
    INFO("case " << c["name"].get<std::string>());
    for (Dtype d : {kFloat32, kBFloat16}) {
      INFO("dtype " << dtype_name(d));
      Args low = inputs_of(c, d);
      Args high;  // the same (rounded) values in Float64
      for (auto& [name, t] : low)
        high[name] = t.defined() && is_floating(t.dtype()) ? t.to(kFloat64) : t;
      const json& grads = c["expected"]["grads"];
      for (const auto& [name, g] : grads.items()) {
        low[name].requires_grad_();
        high[name].requires_grad_();
      }
      Tensor out = run(c, low), ref = run(c, high);
      REQUIRE(out.dtype() == d);
      const double rtol = d == kFloat32 ? 1e-5 : 1e-2;
      require_close(values(out), values(ref), rtol, rtol);
      if (grads.empty() || d == kBFloat16) continue;
      Tensor go = from_json(c["grad_output"]);
      out.backward(go.to(d));
      ref.backward(go);
      for (const auto& [name, g] : grads.items()) {
        INFO("gradient of " << name);
        REQUIRE(low[name].grad().dtype() == d);
        // binary_cross_entropy's gradient at a probability of exactly 0 or 1 is about 1e12.
        require_close(values(low[name].grad()), values(high[name].grad()), 1e-5, 1e-4);
      }
    }
  }
}

TEST_CASE("nll_loss and cross_entropy take int32 targets like int64 ones", "[everyday_losses]") {
  for (const json& c : fixture("losses.json")["cases"]) {
    const std::string op = c["op"].get<std::string>();
    if (op != "nll_loss" && op != "cross_entropy") continue;
    INFO("case " << c["name"].get<std::string>());
    Args a = inputs_of(c, kFloat64);
    Tensor want = run(c, a);
    a["target"] = a["target"].to(kInt32);
    require_close(values(run(c, a)), values(want), 0, 0);
  }
}

TEST_CASE("binary_cross_entropy_with_logits does not overflow at logits of 1e4",
          "[everyday_losses]") {
  for (Dtype d : {kFloat32, kBFloat16, kFloat64}) {
    INFO("dtype " << dtype_name(d));
    Tensor x = tensor<double>({1e4, -1e4, 1e4, -1e4, 88.0, -88.0}).to(d).requires_grad_();
    Tensor t = tensor<double>({1, 0, 0, 1, 0.5, 0.5}).to(d);
    Tensor loss = binary_cross_entropy_with_logits(x, t, {}, {}, Reduction::None);
    // Exact: (1 - t) x + softplus(-x): 0, 0, 1e4, 1e4, and 44 + log1p(exp(-88)) both ways.
    require_close(values(loss), {0, 0, 1e4, 1e4, 44, 44}, 1e-6, d == kBFloat16 ? 1e-2 : 1e-6);
    sum(loss).backward();
    // sigmoid(x) - t.
    require_close(values(x.grad()), {0, 0, 1, -1, 0.5, -0.5}, 1e-6, 1e-6);
  }
}

TEST_CASE("the losses of empty inputs return at once: mean is nan", "[everyday_losses]") {
  Tensor e = zeros({0, 3}), et = zeros({0}, kInt64);
  CHECK(std::isnan(l1_loss(e, e).item<float>()));
  CHECK(smooth_l1_loss(e, e, Reduction::Sum).item<float>() == 0);
  CHECK(huber_loss(e, e, Reduction::None).shape() == Shape{0, 3});
  CHECK(std::isnan(binary_cross_entropy(e, e).item<float>()));
  CHECK(std::isnan(binary_cross_entropy_with_logits(e, e).item<float>()));
  CHECK(std::isnan(nll_loss(e, et).item<float>()));
  CHECK(nll_loss(e, et, {}, Reduction::None).shape() == Shape{0});
  CHECK(std::isnan(cross_entropy(e, et, ones({3})).item<float>()));
  Tensor x = zeros({0, 3}).requires_grad_();
  sum(l1_loss(x, e, Reduction::None)).backward();
  CHECK(x.grad().shape() == Shape{0, 3});
}

TEST_CASE("the losses are in nn::functional and take non-contiguous inputs", "[everyday_losses]") {
  namespace F = gg::nn::functional;
  Tensor x = randn({4, 3}, kFloat64), t = randn({4, 3}, kFloat64);
  Tensor xt = x.transpose(0, 1), tt = t.transpose(0, 1);  // [3, 4] views
  CHECK(F::l1_loss(xt, tt).item<double>() ==
        Approx(F::l1_loss(xt.contiguous(), tt.contiguous()).item<double>()).epsilon(1e-14));
  CHECK(F::huber_loss(xt, tt, Reduction::Sum, 0.5).item<double>() ==
        Approx(F::huber_loss(xt.contiguous(), tt.contiguous(), Reduction::Sum, 0.5).item<double>())
            .epsilon(1e-14));
  CHECK(F::smooth_l1_loss(xt, tt).item<double>() ==
        Approx(F::smooth_l1_loss(xt.contiguous(), tt.contiguous()).item<double>()).epsilon(1e-14));
  Tensor logp = log_softmax(xt, 1);  // [3, 4], non-contiguous
  Tensor target = tensor<int64_t>({0, 3, 2});
  CHECK(F::nll_loss(logp, target).item<double>() ==
        Approx(F::nll_loss(logp.contiguous(), target).item<double>()).epsilon(1e-14));
  Tensor p = sigmoid(xt), q = sigmoid(tt);
  CHECK(F::binary_cross_entropy(p, q).item<double>() ==
        Approx(F::binary_cross_entropy_with_logits(xt, q).item<double>()).epsilon(1e-12));
  // smooth_l1_loss with beta 0 is l1_loss.
  CHECK(F::smooth_l1_loss(xt, tt, Reduction::Sum, 0.0).item<double>() ==
        Approx(F::l1_loss(xt, tt, Reduction::Sum).item<double>()).epsilon(1e-14));
}

TEST_CASE("the losses' gradients match finite differences", "[everyday_losses][grad]") {
  manual_seed(181);
  Tensor target = tensor<int64_t>({2, -100, 0, 3});
  Tensor w = tensor<double>({0.5, 1.5, 2.0, 0.75});
  for (Reduction red : {Reduction::None, Reduction::Mean, Reduction::Sum}) {
    INFO("reduction " << static_cast<int>(red));
    test::check_gradients(
        [&](const std::vector<Tensor>& x) { return nll_loss(x[0], target, w, red); },
        {randn({4, 4})});
    test::check_gradients(
        [&](const std::vector<Tensor>& x) {
          return cross_entropy(x[0], target, w, red, -100, 0.15);
        },
        {randn({4, 4})});
    test::check_gradients(
        [&](const std::vector<Tensor>& x) {
          return binary_cross_entropy_with_logits(x[0], x[1], w.reshape({4, 1}), w, red);
        },
        {randn({4, 4}) * 3.0, rand({4, 4})});
    test::check_gradients(
        [&](const std::vector<Tensor>& x) { return binary_cross_entropy(x[0], x[1], w, red); },
        {rand({3, 4}) * 0.8 + 0.1, rand({3, 4}) * 0.8 + 0.1});
    test::check_gradients(
        [&](const std::vector<Tensor>& x) { return smooth_l1_loss(x[0], x[1], red, 0.7); },
        {randn({3, 4}), randn({3, 1})});
  }
}

TEST_CASE("the losses' error messages", "[everyday_losses][errors]") {
  Tensor x = zeros({3, 4});
  // nll_loss
  REQUIRE_THROWS_WITH(nll_loss(x, tensor<int64_t>({0, 4, 1})),
                      Catch::Contains("[nll_loss] target 4 at position 1 is out of range for 4 "
                                      "classes (valid: 0 to 3, or ignore_index -100)"));
  REQUIRE_THROWS_WITH(nll_loss(x, tensor<int64_t>({0, -1, 1})),
                      Catch::Contains("[nll_loss] target -1 at position 1 is out of range"));
  REQUIRE_THROWS_WITH(nll_loss(x, tensor<int64_t>({0, 1})),
                      Catch::Contains("[nll_loss] target has shape [2] but input [3, 4] needs a "
                                      "target of shape [3]"));
  REQUIRE_THROWS_WITH(nll_loss(x, tensor<float>({0, 1, 1})),
                      Catch::Contains("[nll_loss] target must hold class indices as int64 or "
                                      "int32, got float32 [3]"));
  REQUIRE_THROWS_WITH(nll_loss(x, tensor<int64_t>({0, 1, 1}), ones({3})),
                      Catch::Contains("[nll_loss] weight must be 1-d with one value per class "
                                      "(4), got [3] (input [3, 4])"));
  REQUIRE_THROWS_WITH(nll_loss(scalar_tensor(1.0), scalar_tensor(0, kInt64)),
                      Catch::Contains("[nll_loss] input must be (C), (N, C) or (N, C, d...)"));
  REQUIRE_THROWS_WITH(nll_loss(zeros({2, 3, 4}), zeros({2, 5}, kInt64)),
                      Catch::Contains("needs a target of shape [2, 4]"));
  REQUIRE_THROWS_WITH(nll_loss(x, tensor<int64_t>({0, 1, 1}), ones({4}).requires_grad_()),
                      Catch::Contains("[nll_loss] weight requires grad, but the loss is not "
                                      "differentiable with respect to its weight"));
  REQUIRE_THROWS_WITH(nll_loss(zeros({2, 0}), tensor<int64_t>({0, 0})),
                      Catch::Contains("[nll_loss] target 0 at position 0 is out of range for 0 "
                                      "classes"));
  REQUIRE_THROWS_WITH(cross_entropy(x, tensor<int64_t>({0, 9, 1}), ones({4})),
                      Catch::Contains("[cross_entropy] target 9 at position 1 is out of range"));
  REQUIRE_THROWS_WITH(
      cross_entropy(x, tensor<int64_t>({0, 1, 1}), ones({4}), Reduction::Mean, -100, -0.5),
      Catch::Contains("[cross_entropy] label_smoothing must be in [0, 1]"));
  // binary_cross_entropy
  Tensor p = full({3, 4}, 0.5);
  REQUIRE_THROWS_WITH(binary_cross_entropy(p, full({4}, 0.5)),
                      Catch::Contains("[binary_cross_entropy] target [4] and input [3, 4] must "
                                      "have the same shape"));
  REQUIRE_THROWS_WITH(binary_cross_entropy(tensor<float>({0.5f, 1.5f}), tensor<float>({0, 1})),
                      Catch::Contains("[binary_cross_entropy] input values must be probabilities "
                                      "in [0, 1], got 1.5 at position 1 (input [2])"));
  REQUIRE_THROWS_WITH(
      binary_cross_entropy(tensor<float>({0.5f, NAN}), tensor<float>({0, 1})),
      Catch::Contains("[binary_cross_entropy] input values must be probabilities in [0, 1], got "
                      "nan at position 1"));
  REQUIRE_THROWS_WITH(binary_cross_entropy(tensor<float>({0.5f}), tensor<float>({-0.25f})),
                      Catch::Contains("[binary_cross_entropy] target values must be "
                                      "probabilities in [0, 1], got -0.25 at position 0"));
  REQUIRE_THROWS_WITH(binary_cross_entropy(p, p.to(kFloat64)),
                      Catch::Contains("[binary_cross_entropy] target is float64 but input is "
                                      "float32"));
  REQUIRE_THROWS_WITH(binary_cross_entropy(p, p, ones({2, 3, 4})),
                      Catch::Contains("[binary_cross_entropy] weight [2, 3, 4] cannot be "
                                      "broadcast to the input's shape [3, 4]"));
  REQUIRE_THROWS_WITH(binary_cross_entropy(p, p, ones({3})),
                      Catch::Contains("[binary_cross_entropy] weight [3] cannot be broadcast to "
                                      "the input's shape [3, 4]"));
  REQUIRE_THROWS_WITH(binary_cross_entropy(p, p, ones({4}).requires_grad_()),
                      Catch::Contains("[binary_cross_entropy] weight requires grad"));
  REQUIRE_THROWS_WITH(binary_cross_entropy(zeros({2}, kInt64), zeros({2}, kInt64)),
                      Catch::Contains("[binary_cross_entropy] input must be a floating-point "
                                      "tensor, got int64 [2]"));
  // binary_cross_entropy_with_logits
  REQUIRE_THROWS_WITH(binary_cross_entropy_with_logits(x, zeros({4})),
                      Catch::Contains("[binary_cross_entropy_with_logits] target [4] and input "
                                      "[3, 4] must have the same shape"));
  REQUIRE_THROWS_WITH(binary_cross_entropy_with_logits(x, x, {}, ones({5})),
                      Catch::Contains("[binary_cross_entropy_with_logits] pos_weight [5] cannot "
                                      "be broadcast to the input's shape [3, 4]"));
  REQUIRE_THROWS_WITH(binary_cross_entropy_with_logits(x, x, {}, ones({2, 3, 4})),
                      Catch::Contains("[binary_cross_entropy_with_logits] pos_weight [2, 3, 4] "
                                      "cannot be broadcast to the input's shape [3, 4]"));
  REQUIRE_THROWS_WITH(binary_cross_entropy_with_logits(x, x, {}, ones({4}).requires_grad_()),
                      Catch::Contains("[binary_cross_entropy_with_logits] pos_weight requires "
                                      "grad"));
  // l1 / smooth_l1 / huber
  REQUIRE_THROWS_WITH(l1_loss(x, zeros({3})),
                      Catch::Contains("[l1_loss] shapes [3, 4] and [3] cannot be broadcast"));
  REQUIRE_THROWS_WITH(l1_loss(zeros({2}, kInt64), zeros({2}, kInt32)),
                      Catch::Contains("[l1_loss] input and target must give a floating-point "
                                      "result, got int64 [2] and int32 [2]"));
  REQUIRE_THROWS_WITH(smooth_l1_loss(x, x, Reduction::Mean, -1.0),
                      Catch::Contains("[smooth_l1_loss] beta must be finite and >= 0, got -1"));
  REQUIRE_THROWS_WITH(huber_loss(x, x, Reduction::Mean, 0.0),
                      Catch::Contains("[huber_loss] delta must be finite and > 0, got 0"));
  REQUIRE_THROWS_WITH(huber_loss(x, Tensor()), Catch::Contains("[huber_loss]"));
}
