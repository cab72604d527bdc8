// Everyday autograd (issue 18): in-place ops with PyTorch's autograd rules (leaf refusal, version
// counters, history rebasing, views), item<T> conversions, retain_grad and tensor hooks,
// autograd::grad with double backward, InferenceMode and the thread count. Oracles: PyTorch
// fixtures (tests/fixtures/everyday_autograd.json from make_autograd_fixtures.py), central
// differences and hand-computed gradients.
#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/copy.hpp"
#include "fixture_support.hpp"
#include "groupgrad.hpp"
#include "test_support.hpp"

using namespace gg;
using gg::test::outcome;
using gg::test::values;
using nlohmann::json;
using Vec = std::vector<double>;

namespace {

const json& fixture(const std::string& name) {
  return test::fixture("everyday_autograd.json").at("cases").at(name);
}

// A Float64 leaf of `shape` from the fixture's flat values.
Tensor leaf_of(const json& c, const char* key, Shape shape, bool requires_grad = true) {
  Tensor t = tensor<double>(c.at(key).get<Vec>(), std::move(shape));
  if (requires_grad) t.requires_grad_();
  return t;
}

void check_close(const Tensor& got, const json& c, const char* key, double tol = 1e-10) {
  INFO(key);
  REQUIRE(got.defined());
  const Vec g = values(got), w = c.at(key).get<Vec>();
  REQUIRE(g.size() == w.size());
  for (size_t i = 0; i < g.size(); ++i)
    CHECK(std::abs(g[i] - w[i]) <= tol * std::max(1.0, std::abs(w[i])));
}

struct Square : autograd::Function<Square> {
  static constexpr const char* name = "SquareBackward";
  static Tensor forward(autograd::AutogradContext* ctx, const Tensor& t) {
    ctx->save_for_backward({t});
    return t * t;
  }
  static std::vector<Tensor> backward(autograd::AutogradContext* ctx,
                                      const std::vector<Tensor>& g) {
    return {g[0] * 2.0 * ctx->get_saved_variables()[0]};
  }
};

}  // namespace

// ==== in-place ops ==============================================================================

TEST_CASE("in-place: values of every op, on floats and integers", "[everyday_autograd]") {
  Tensor a = tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor row = tensor<float>({1, 2, 4});
  a.add_(row, 2);  // 3 6 11 / 6 9 14
  a.sub_(1.5);     // 1.5 4.5 9.5 / 4.5 7.5 12.5
  a.mul_(row);     // 1.5 9 38 / 4.5 15 50
  a.div_(2);       // .75 4.5 19 / 2.25 7.5 25
  a.sub_(row, 0.5);
  a.add_(1).mul_(2).div_(row);
  CHECK(values(a) == Vec{2.5, 4.5, 9, 5.5, 7.5, 12});
  a.zero_();
  CHECK(values(a) == Vec{0, 0, 0, 0, 0, 0});
  a.fill_(-2.5);
  CHECK(values(a) == Vec{-2.5, -2.5, -2.5, -2.5, -2.5, -2.5});
  a.copy_(tensor<double>({7, 8, 9}));  // broadcast and cast
  CHECK(values(a) == Vec{7, 8, 9, 7, 8, 9});

  Tensor i = tensor<int64_t>({1, 2, 3});
  i.add_(tensor<int64_t>({10, 20, 30})).mul_(3).sub_(1);
  CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{32, 65, 98});
  i.copy_(tensor<float>({1.5f, -2.5f, 3.4f}));  // copy_ rounds to nearest as to() does
  CHECK(i.dtype() == kInt64);
  CHECK_THAT(outcome([&] { i.div_(2); }),
             Catch::Contains("[div_]") && Catch::Contains("float32") && Catch::Contains("int64"));
  CHECK_THAT(outcome([&] { i.add_(0.5); }), Catch::Contains("[add_]"));

  // Views write through to their base, and empty tensors are fine.
  Tensor base = zeros({2, 3});
  base.narrow(1, 1, 2).fill_(5);
  base.select(0, 1).add_(1);
  CHECK(values(base) == Vec{0, 5, 5, 1, 6, 6});
  Tensor empty_t = zeros({0, 3});
  empty_t.add_(1).mul_(2);
  CHECK(empty_t.numel() == 0);
  CHECK_THAT(outcome([&] {
               Tensor r = zeros({3});
               r.add_(zeros({2, 3}));
             }),
             Catch::Contains("[add_]") && Catch::Contains("[2, 3]") && Catch::Contains("[3]"));
}

TEST_CASE("in-place: a leaf that requires grad is refused with grad mode on, allowed without",
          "[everyday_autograd]") {
  Tensor w = ones({3}).requires_grad_();
  CHECK_THAT(outcome([&] { w.add_(1); }), Catch::Contains("[add_]") &&
                                              Catch::Contains("leaf tensor that requires grad") &&
                                              Catch::Contains("float32 [3]"));
  CHECK_THAT(outcome([&] { w.zero_(); }), Catch::Contains("[fill_]"));
  CHECK(values(w) == Vec{1, 1, 1});
  {
    NoGradGuard no_grad;
    w.mul_(3).sub_(tensor<float>({1, 2, 3}));
  }
  CHECK(values(w) == Vec{2, 1, 0});
  CHECK(w.is_leaf());
  CHECK(w.requires_grad());
  {
    InferenceMode guard;
    w.add_(1);
  }
  CHECK(values(w) == Vec{3, 2, 1});
}

TEST_CASE("in-place: history is rebased (PyTorch fixture)", "[everyday_autograd]") {
  const json c = fixture("rebase");
  Tensor x = leaf_of(c, "x", {2, 3}), w = leaf_of(c, "w", {2, 3}), b = leaf_of(c, "b", {3});
  const Tensor cc = leaf_of(c, "c", {2, 3}, false);
  Tensor y = x * 2;
  y.add_(1);
  y.mul_(w);
  y.sub_(b, 0.5);
  y.div_(abs(b.detach()) + 1);
  y.add_(x, -1.5);
  y.mul_(0.25);
  CHECK(autograd::node_name(*y.grad_fn()) == "MulBackward");
  (exp(y) * cc).sum().backward();
  check_close(y, c, "y");
  check_close(x.grad(), c, "grad_x");
  check_close(w.grad(), c, "grad_w");
  check_close(b.grad(), c, "grad_b");
}

TEST_CASE("in-place: copy_ and fill_ cut the old history (PyTorch fixture)",
          "[everyday_autograd]") {
  const json c = fixture("copy_fill");
  Tensor x = leaf_of(c, "x", {2, 3}), s = leaf_of(c, "s", {3});
  Tensor y = x * 3;
  y.copy_(s);
  y.mul_(x);
  Tensor z = x * 1;
  z.fill_(2.0);
  CHECK(z.requires_grad());
  (y.sum() + (z * x).sum()).backward();
  check_close(y, c, "y");
  check_close(x.grad(), c, "grad_x");
  check_close(s.grad(), c, "grad_s");
}

TEST_CASE("in-place: gradients match central differences", "[everyday_autograd]") {
  manual_seed(3);
  gg::test::check_gradients(
      [](const std::vector<Tensor>& in) {
        Tensor y = in[0] * 1.0;
        y.mul_(in[1]);
        y.add_(in[0], 2);
        y.div_(exp(in[1]));
        y.sub_(in[2]);             // broadcast [3] into [2, 3]
        Tensor z = tanh(y) * 1.0;  // tanh saves its output: modify a copy
        z.mul_(in[0]);
        return z;
      },
      {randn({2, 3}), randn({2, 3}), randn({3})});
}

TEST_CASE("in-place: a tensor saved for backward and modified afterwards makes backward throw",
          "[everyday_autograd]") {
  Tensor x = tensor<double>({0.5, 1.5}).requires_grad_();
  // The saved output of exp, modified through the tensor itself.
  Tensor y = exp(x);
  y.add_(1);
  CHECK_THAT(outcome([&] { y.sum().backward(); }),
             Catch::Contains("[backward]") && Catch::Contains("ExpBackward") &&
                 Catch::Contains("modified by an in-place operation") &&
                 Catch::Contains("is at version 1; expected version 0"));
  CHECK_FALSE(x.grad().defined());  // never a wrong gradient

  // A saved input modified through a detached alias (same storage, same version counter).
  Tensor w = tensor<double>({2, 3}).requires_grad_();
  Tensor loss = (x * w).sum();
  w.detach().mul_(10);
  CHECK_THAT(outcome([&] { loss.backward(); }),
             Catch::Contains("MulBackward") && Catch::Contains("expected version 0"));

  // An optimizer step (NoGradGuard) before the backward of the graph that saved the parameter.
  Tensor w2 = tensor<double>({2, 3}).requires_grad_();
  Tensor loss2 = (x * w2).sum();
  {
    NoGradGuard no_grad;
    w2.sub_(0.1);
  }
  CHECK_THAT(outcome([&] { loss2.backward(); }), Catch::Contains("MulBackward"));
  // copy_ (the free function optimizers and init use) bumps the version as well.
  Tensor w3 = tensor<double>({2, 3}).requires_grad_();
  Tensor loss3 = (x * w3).sum();
  copy_(w3, tensor<double>({1, 1}));
  CHECK_THAT(outcome([&] { loss3.backward(); }), Catch::Contains("MulBackward"));

  // The operand is the tensor itself: mul_ saved it, then wrote it (PyTorch refuses this too).
  Tensor zz = x * 1.0;
  zz.mul_(zz);
  CHECK_THAT(outcome([&] { zz.sum().backward(); }),
             Catch::Contains("MulBackward") && Catch::Contains("expected version"));

  // Modifying a tensor nobody saved is fine: add saves nothing.
  Tensor a = tensor<double>({1, 2}).requires_grad_();
  Tensor b = a * 1.0;
  Tensor s = (b + 1.0).sum();
  b.mul_(5);
  s.backward();
  CHECK(values(a.grad()) == Vec{1, 1});

  // A custom Function's saved tensors are checked too, naming the function.
  Tensor p = tensor<double>({1, 2}).requires_grad_();
  Tensor q = p * 1.0;
  Tensor out = Square::apply(q).sum();
  q.add_(1);
  CHECK_THAT(outcome([&] { out.backward(); }),
             Catch::Contains("SquareBackward") && Catch::Contains("version 1; expected version 0"));
}

namespace {
// Runs `backward` and checks that it threw the version error of a saved tensor naming `node`.
void check_saved_modified(const std::function<void()>& backward, const std::string& node) {
  INFO(node);
  CHECK_THAT(outcome(backward), Catch::Contains("[backward]") && Catch::Contains(node) &&
                                    Catch::Contains("modified by an in-place operation") &&
                                    Catch::Contains("is at version"));
}
}  // namespace

TEST_CASE("in-place: every op's saved inputs, masks and indices are checked",
          "[everyday_autograd]") {
  const Tensor leaf = tensor<double>({-0.7, 0.2, 0.9, 1.4, -1.1, 0.4}, {2, 3}).requires_grad_();
  SECTION("sin / cos: the input") {
    Tensor y = leaf * 1.0;
    Tensor loss = sin(y).sum();
    y.add_(1);
    check_saved_modified([&] { loss.backward(); }, "SinBackward");
    Tensor z = leaf * 1.0;
    Tensor loss2 = cos(z).sum();
    z.mul_(2);
    check_saved_modified([&] { loss2.backward(); }, "CosBackward");
    CHECK_FALSE(leaf.grad().defined());  // never a wrong gradient
  }
  SECTION("clamp: the input") {
    Tensor y = leaf * 1.0;
    Tensor loss = clamp(y, -0.5, 0.5).sum();
    y.mul_(2);
    check_saved_modified([&] { loss.backward(); }, "ClampBackward");
  }
  SECTION("masked_fill: the mask (scalar and tensor value)") {
    Tensor mask = gt(leaf.detach(), scalar_tensor(0.5, kFloat64));
    Tensor loss = masked_fill(leaf, mask, 0.0).sum();
    mask.fill_(1);
    check_saved_modified([&] { loss.backward(); }, "MaskedFillBackward");
    Tensor mask2 = gt(leaf.detach(), scalar_tensor(0.5, kFloat64));
    Tensor value = scalar_tensor(3.0, kFloat64).requires_grad_();
    Tensor loss2 = masked_fill(leaf, mask2, value).sum();
    mask2.zero_();
    check_saved_modified([&] { loss2.backward(); }, "MaskedFillBackward");
  }
  SECTION("gather and scatter_add: the index") {
    Tensor index = tensor<int64_t>({2, 0, 1, 1}, {2, 2});
    Tensor loss = gather(leaf, 1, index).sum();
    index.zero_();
    check_saved_modified([&] { loss.backward(); }, "GatherBackward");
    Tensor index2 = tensor<int64_t>({2, 0, 1, 1}, {2, 2});
    Tensor src = tensor<double>({1, 2, 3, 4}, {2, 2}).requires_grad_();
    Tensor loss2 = scatter_add(leaf, 1, index2, src).sum();
    index2.fill_(1);
    check_saved_modified([&] { loss2.backward(); }, "ScatterAddBackward");
  }
  SECTION("topk and whole-tensor max: indices, input and output") {
    auto [values_k, indices] = topk(leaf, 2, -1);
    Tensor loss = values_k.sum();
    indices.zero_();
    check_saved_modified([&] { loss.backward(); }, "TopkBackward");
    Tensor y = leaf * 1.0;
    Tensor m = y.max();
    y.add_(1);
    check_saved_modified([&] { m.backward(); }, "MaxBackward");
  }
  SECTION("nll_loss and cross_entropy: the target") {
    Tensor target = tensor<int64_t>({2, 0});
    Tensor loss = nll_loss(log_softmax(leaf, 1), target);
    target.fill_(1);
    check_saved_modified([&] { loss.backward(); }, "NllLossBackward");
    Tensor target2 = tensor<int64_t>({2, 0});
    Tensor loss2 = cross_entropy(leaf, target2);
    target2.zero_();
    check_saved_modified([&] { loss2.backward(); }, "CrossEntropyBackward");
  }
  SECTION("binary_cross_entropy_with_logits: input, target, weight, pos_weight") {
    const Tensor t0 = tensor<double>({0, 1, 0.5, 1, 0, 0.25}, {2, 3});
    Tensor y = leaf * 1.0;
    Tensor loss = binary_cross_entropy_with_logits(y, t0);
    y.add_(1);
    check_saved_modified([&] { loss.backward(); }, "BinaryCrossEntropyWithLogitsBackward");
    Tensor t = t0.clone();
    Tensor loss2 = binary_cross_entropy_with_logits(leaf, t);
    t.mul_(0.5);
    check_saved_modified([&] { loss2.backward(); }, "BinaryCrossEntropyWithLogitsBackward");
    Tensor pos_weight = tensor<double>({1, 2, 3});
    Tensor loss3 = binary_cross_entropy_with_logits(leaf, t0, {}, pos_weight);
    pos_weight.add_(1);
    check_saved_modified([&] { loss3.backward(); }, "BinaryCrossEntropyWithLogitsBackward");
    // binary_cross_entropy's weight
    Tensor p = sigmoid(leaf);
    Tensor weight = tensor<double>({1, 2, 3});
    Tensor loss4 = binary_cross_entropy(p, t0, weight);
    weight.mul_(2);
    check_saved_modified([&] { loss4.backward(); }, "BinaryCrossEntropyBackward");
  }
  SECTION("GroupedLinear batched 3-D forward: the input") {
    manual_seed(5);
    nn::GroupedLinear lin({3, 3}, {2, 2});
    Tensor x = randn({2, 4, 3});
    Tensor loss = lin.forward(x).sum();
    x.add_(1);
    check_saved_modified([&] { loss.backward(); }, "GroupedMmBackward");
  }
  SECTION("unmodified, the same graphs give their gradients") {
    Tensor index = tensor<int64_t>({2, 0, 1, 1}, {2, 2});
    Tensor target = tensor<int64_t>({2, 0});
    Tensor loss = sin(leaf).sum() + gather(leaf, 1, index).sum() +
                  nll_loss(log_softmax(leaf, 1), target) + clamp(leaf, -0.5, 0.5).sum();
    loss.backward();
    REQUIRE(leaf.grad().defined());
    CHECK(leaf.grad().shape() == Shape{2, 3});
  }
}

TEST_CASE("in-place: clamp_, clamp_min_ and clamp_max_ give gg::clamp's values",
          "[everyday_autograd]") {
  manual_seed(11);
  const Tensor x = randn({3, 4});
  Tensor a = x.clone(), b = x.clone(), c = x.clone();
  Tensor& r = a.clamp_(-0.3, 0.4);
  CHECK(&r == &a);
  CHECK(values(a) == values(clamp(x, -0.3, 0.4)));
  b.clamp_min_(0.1);
  CHECK(values(b) == values(clamp(x, 0.1, std::nullopt)));
  c.clamp_max_(-0.2);
  CHECK(values(c) == values(clamp(x, std::nullopt, -0.2)));
  // min > max gives max everywhere, as gg::clamp (and PyTorch)
  Tensor d = x.clone();
  d.clamp_(1.0, -1.0);
  CHECK(values(d) == Vec(12, -1.0));
  // integers with integer bounds stay integers; a non-integer bound is refused
  Tensor i = tensor<int64_t>({-5, 0, 7, 2});
  i.clamp_(-2, 3);
  CHECK(i.dtype() == kInt64);
  CHECK(values(i) == Vec{-2, 0, 3, 2});
  CHECK_THAT(outcome([&] { i.clamp_(0.5, std::nullopt); }),
             Catch::Contains("[clamp_]") && Catch::Contains("int64"));
  CHECK(values(i) == Vec{-2, 0, 3, 2});
  // a view writes through to its base (nothing requires grad)
  Tensor base = tensor<float>({-3, -1, 1, 3}, {2, 2});
  base.select(0, 1).clamp_(std::nullopt, 2.0);
  CHECK(values(base) == Vec{-3, -1, 1, 2});
  // empty tensors
  Tensor e = empty({0, 3});
  e.clamp_(0.0, 1.0);
  CHECK(e.shape() == Shape{0, 3});
  CHECK_THAT(outcome([&] { x.clone().clamp_(std::nullopt, std::nullopt); }),
             Catch::Contains("[clamp_] at least one of min and max"));
}

TEST_CASE("in-place: clamp_ refuses a leaf that requires grad and rebases history",
          "[everyday_autograd]") {
  Tensor w = tensor<double>({-2, 0.5, 3}).requires_grad_();
  CHECK_THAT(outcome([&] { w.clamp_(-1.0, 1.0); }),
             Catch::Contains("[clamp_]") && Catch::Contains("leaf tensor that requires grad"));
  CHECK(values(w) == Vec{-2, 0.5, 3});
  {
    NoGradGuard no_grad;
    w.clamp_min_(0.0);
  }
  CHECK(values(w) == Vec{0, 0.5, 3});
  CHECK(w.is_leaf());

  // By hand: y = clamp(2a, -1.5, 2), loss = sum(y^2): d/da = 8a strictly inside the bounds.
  Tensor a = tensor<double>({-2, -0.5, 0.3, 1.5, 3}).requires_grad_();
  Tensor y = a * 2.0;
  y.clamp_(-1.5, 2.0);
  CHECK(autograd::node_name(*y.grad_fn()) == "ClampBackward");
  CHECK(values(y) == Vec{-1.5, -1, 0.6, 2, 2});
  (y * y).sum().backward();
  const Vec ga = values(a.grad()), want{0, -4, 2.4, 0, 0};
  for (size_t k = 0; k < want.size(); ++k) CHECK(ga[k] == Approx(want[k]));

  // Central differences through a chain of in-place ops with clamp_ in it.
  manual_seed(4);
  gg::test::check_gradients(
      [](const std::vector<Tensor>& in) {
        Tensor z = in[0] * 1.0;
        z.clamp_(-0.5, 0.7);
        z.mul_(in[1]);
        z.clamp_max_(0.3);
        z.add_(in[0]);
        return z;
      },
      {randn({3, 4}), randn({3, 4})});
}

TEST_CASE("in-place: views that require grad are refused where the gradient could be wrong",
          "[everyday_autograd]") {
  Tensor x = tensor<double>({1, 2, 3, 4, 5, 6}, {2, 3}).requires_grad_();
  Tensor y = x * 2;
  Tensor v = y.narrow(1, 0, 2);
  CHECK_THAT(outcome([&] { v.mul_(2); }),
             Catch::Contains("[mul_]") && Catch::Contains("view") && Catch::Contains("CopySlices"));
  CHECK(values(y) == Vec{2, 4, 6, 8, 10, 12});  // refused before writing

  // The base modified after the view was taken: using the view is refused.
  Tensor s = y.select(0, 1);
  y.mul_(3);
  CHECK_THAT(outcome([&] { (void)(s * 2.0); }), Catch::Contains("view") &&
                                                    Catch::Contains("in-place") &&
                                                    Catch::Contains("take the view again"));
  // Taken again, it is correct: d/dx sum(select(3 * 2x, 0, 1)) = 6 on row 1.
  y.select(0, 1).sum().backward();
  CHECK(values(x.grad()) == Vec{0, 0, 0, 6, 6, 6});

  // A view nothing else shares (the base is gone) may be written: its history is complete.
  Tensor x2 = tensor<double>({1, 2, 3, 4}).requires_grad_();
  Tensor r = (x2 * 2).reshape({2, 2});
  r.add_(1);
  r.mul_(3.0);
  r.sum().backward();
  CHECK(values(x2.grad()) == Vec{6, 6, 6, 6});

  // Under NoGradGuard a view of a tensor that requires grad may be written (initialization).
  Tensor w = zeros({2, 3}).requires_grad_();
  {
    NoGradGuard no_grad;
    w.narrow(0, 1, 1).fill_(1);
  }
  CHECK(values(w) == Vec{0, 0, 0, 1, 1, 1});
}

// ==== item<T> ===================================================================================

TEST_CASE("item<T> converts any dtype to any arithmetic T as libtorch does",
          "[everyday_autograd]") {
  CHECK(scalar_tensor(2.75f).item<double>() == 2.75);
  CHECK(scalar_tensor(2.75f).item<int>() == 2);  // truncation toward zero
  CHECK(scalar_tensor(-2.75, kFloat64).item<int64_t>() == -2);
  CHECK(scalar_tensor(7, kInt64).item<float>() == 7.0f);
  CHECK(scalar_tensor(7, kInt32).item<double>() == 7.0);
  CHECK(scalar_tensor(-3, kInt8).item<long long>() == -3);
  CHECK(scalar_tensor(200, kInt64).item<uint8_t>() == 200);
  CHECK(scalar_tensor(0.5, kBFloat16).item<double>() == 0.5);
  CHECK(static_cast<float>(scalar_tensor(1.5).item<BFloat16>()) == 1.5f);
  CHECK(scalar_tensor(0.25, kFloat16).item<float>() == 0.25f);
  CHECK(scalar_tensor(0.1).item<bool>());
  CHECK_FALSE(scalar_tensor(0, kInt32).item<bool>());
  CHECK(tensor<float>({4.5f}, {1, 1}).item<int16_t>() == 4);
  CHECK(std::isnan(scalar_tensor(NAN).item<double>()));

  CHECK_THAT(outcome([] { (void)scalar_tensor(300, kInt64).item<int8_t>(); }),
             Catch::Contains("[item]") && Catch::Contains("300") && Catch::Contains("int8"));
  CHECK_THAT(outcome([] { (void)scalar_tensor(-1, kInt32).item<unsigned>(); }),
             Catch::Contains("uint32"));
  CHECK_THAT(outcome([] { (void)scalar_tensor(NAN).item<int>(); }), Catch::Contains("int32"));
  CHECK_THAT(outcome([] { (void)scalar_tensor(1e300, kFloat64).item<float>(); }),
             Catch::Contains("float"));
  CHECK_THAT(outcome([] { (void)scalar_tensor(1e19, kFloat64).item<int64_t>(); }),
             Catch::Contains("int64"));
  CHECK_THAT(outcome([] { (void)zeros({2}).item<double>(); }),
             Catch::Contains("[item]") && Catch::Contains("one-element") && Catch::Contains("[2]"));
  CHECK_THAT(outcome([] { (void)zeros({0}).item<int>(); }), Catch::Contains("one-element"));
}

// ==== retain_grad and hooks =====================================================================

TEST_CASE("hooks and retain_grad (PyTorch fixture)", "[everyday_autograd]") {
  const json c = fixture("hooks");
  Tensor x = leaf_of(c, "x", {4});
  Tensor y = x * 3.0;
  y.register_hook([](const Tensor& g) { return g * 2.0; });
  y.retain_grad();
  CHECK(y.retains_grad());
  x.register_hook([](const Tensor& g) { return g + 1.0; });
  x.retain_grad();  // no-op on a leaf
  CHECK_FALSE(x.retains_grad());
  (y * y).sum().backward();
  check_close(x.grad(), c, "grad_x");
  check_close(y.grad(), c, "grad_y");
}

TEST_CASE("hooks: order, void hooks, removal, post-accumulate hooks", "[everyday_autograd]") {
  Tensor x = tensor<double>({1, 2}).requires_grad_();
  Tensor y = x * 1.0;
  Vec seen;
  const unsigned h1 = y.register_hook([](const Tensor& g) { return g * 10.0; });
  y.register_hook([&](const Tensor& g) { seen = values(g); });  // void: observes
  const unsigned h3 = y.register_hook([](const Tensor& g) { return g + 1.0; });
  y.sum().backward(ones({}, kFloat64), true);
  CHECK(seen == Vec{10, 10});
  CHECK(values(x.grad()) == Vec{11, 11});

  y.remove_hook(h1);
  x.set_grad(Tensor());
  y.sum().backward();
  CHECK(seen == Vec{1, 1});
  CHECK(values(x.grad()) == Vec{2, 2});
  CHECK_THAT(outcome([&] { y.remove_hook(h1); }),
             Catch::Contains("[remove_hook]") && Catch::Contains(std::to_string(h1)));
  (void)h3;

  // Post-accumulate-grad hooks: after the leaf's grad holds the sum of this backward.
  Tensor w = tensor<double>({1, 2, 3}).requires_grad_();
  std::vector<Vec> after;
  const unsigned p = w.register_post_accumulate_grad_hook(
      [&](const Tensor& leaf) { after.push_back(values(leaf.grad())); });
  (w * 2.0 + w * w).sum().backward();  // two paths into w: the hook runs once per accumulation
  REQUIRE_FALSE(after.empty());
  CHECK(after.back() == Vec{4, 6, 8});
  CHECK(values(w.grad()) == Vec{4, 6, 8});
  w.remove_hook(p);
  after.clear();
  (w * 1.0).sum().backward();
  CHECK(after.empty());

  CHECK_THAT(outcome([] { (void)zeros({2}).register_hook([](const Tensor&) {}); }),
             Catch::Contains("[register_hook]") && Catch::Contains("does not require grad"));
  CHECK_THAT(outcome([&] { (void)y.register_post_accumulate_grad_hook([](const Tensor&) {}); }),
             Catch::Contains("leaf") && Catch::Contains("MulBackward"));
  CHECK_THAT(outcome([] { zeros({2}).retain_grad(); }),
             Catch::Contains("[retain_grad]") && Catch::Contains("does not require grad"));
  Tensor z = x * 2.0;
  z.register_hook([](const Tensor&) { return zeros({5}, kFloat64); });
  CHECK_THAT(outcome([&] { z.sum().backward(); }),
             Catch::Contains("hook") && Catch::Contains("[5]") && Catch::Contains("[2]"));
}

TEST_CASE("retain_grad follows a tensor through in-place ops, accumulates over backwards",
          "[everyday_autograd]") {
  Tensor x = tensor<double>({1, 2}).requires_grad_();
  Tensor y = x * 2.0;
  y.retain_grad();
  y.mul_(3);  // y's gradient is now that of the new value
  (y * y).sum().backward(Tensor(ones({}, kFloat64)), true);
  CHECK(values(y.grad()) == Vec{12, 24});  // 2 * (6x)
  (y * y).sum().backward();
  CHECK(values(y.grad()) == Vec{24, 48});
  CHECK(values(x.grad()) == Vec{144, 288});  // 2 * 36x per backward, twice
}

// ==== autograd::grad ============================================================================

TEST_CASE("autograd::grad: gradient penalty and second derivatives (PyTorch fixture)",
          "[everyday_autograd]") {
  const json c = fixture("penalty");
  Tensor x = leaf_of(c, "x", {3, 4}), W = leaf_of(c, "W", {4, 5}), v = leaf_of(c, "v", {5});
  Tensor out = (tanh(x.matmul(W)) * sigmoid(v)).sum();
  std::vector<Tensor> gx = autograd::grad({out}, {x}, {}, std::nullopt, /*create_graph=*/true);
  REQUIRE(gx.size() == 1);
  CHECK(gx[0].requires_grad());
  CHECK_FALSE(x.grad().defined());  // grad() does not accumulate
  check_close(gx[0], c, "gx");
  (gx[0] * gx[0]).sum().backward();
  check_close(x.grad(), c, "grad_x", 1e-9);
  check_close(W.grad(), c, "grad_W", 1e-9);
  check_close(v.grad(), c, "grad_v", 1e-9);

  const json s = fixture("second");
  Tensor t = leaf_of(s, "x", {5});
  Tensor f = (pow(t, 3) * exp(t) / (t * t + 1.0)).sum();
  std::vector<Tensor> g1 = autograd::grad({f}, {t}, {}, std::nullopt, true);
  check_close(g1[0], s, "g1");
  std::vector<Tensor> g2 = autograd::grad({g1[0].sum()}, {t});
  check_close(g2[0], s, "g2", 1e-9);
  CHECK_FALSE(g2[0].requires_grad());
}

namespace {
// penalty(true) builds a gradient penalty with create_graph; its gradient with respect to the
// Float64 leaf, by double backward, must match central differences of penalty(false).
void check_penalty_gradient(const Tensor& leaf, const std::function<Tensor(bool)>& penalty) {
  penalty(true).backward();
  const Vec analytic = values(leaf.grad());
  double* p = leaf.data_ptr<double>();
  const double eps = 1e-6;
  for (int64_t j = 0; j < leaf.numel(); ++j) {
    const double keep = p[j];
    p[j] = keep + eps;
    const double plus = penalty(false).item<double>();
    p[j] = keep - eps;
    const double minus = penalty(false).item<double>();
    p[j] = keep;
    CHECK(analytic[static_cast<size_t>(j)] ==
          Approx((plus - minus) / (2 * eps)).margin(1e-6).epsilon(1e-5));
  }
}
}  // namespace

TEST_CASE("autograd::grad: the penalty's gradient matches central differences",
          "[everyday_autograd]") {
  manual_seed(11);
  const Tensor x0 = randn({2, 3}, kFloat64), r = randn({2, 4}, kFloat64);
  Tensor W = randn({3, 4}, kFloat64).requires_grad_();
  // penalty(W) = |d/dx sum(r * sigmoid(x W) * x W)|^2
  auto penalty = [&](bool create) {
    Tensor x = x0.clone().requires_grad_();
    Tensor h = x.matmul(W);
    Tensor out = (r * sigmoid(h) * h).sum();
    Tensor g = autograd::grad({out}, {x}, {}, std::nullopt, create)[0];
    return (g * g).sum();
  };
  check_penalty_gradient(W, penalty);
}

TEST_CASE("autograd::grad: several inputs, non-leaf inputs, unused inputs, errors",
          "[everyday_autograd]") {
  Tensor a = tensor<double>({1, 2}).requires_grad_();
  Tensor b = tensor<double>({3, 4}).requires_grad_();
  Tensor unused = tensor<double>({5}).requires_grad_();
  Tensor h = a * b;  // a non-leaf input
  Tensor out = (h * h).sum();
  std::vector<Tensor> g = autograd::grad({out}, {a, h, b}, {}, true);
  CHECK(values(g[0]) == Vec{18, 64});  // 2 a b^2
  CHECK(values(g[1]) == Vec{6, 16});   // 2 h
  CHECK(values(g[2]) == Vec{6, 32});   // 2 a^2 b
  CHECK_FALSE(a.grad().defined());
  CHECK_FALSE(b.grad().defined());

  CHECK_THAT(outcome([&] {
               (void)autograd::grad({out}, {a, unused}, {}, true);
             }),
             Catch::Contains("[autograd::grad]") && Catch::Contains("inputs[1]") &&
                 Catch::Contains("allow_unused"));
  std::vector<Tensor> g2 = autograd::grad({out}, {unused, a}, {}, true, false, true);
  CHECK_FALSE(g2[0].defined());
  CHECK(values(g2[1]) == Vec{18, 64});
  // grad_outputs for a non-scalar output.
  std::vector<Tensor> g3 = autograd::grad({h}, {a}, {tensor<double>({1, -1})});
  CHECK(values(g3[0]) == Vec{3, -4});
  CHECK_THAT(outcome([&] { (void)autograd::grad({out}, {a}); }),
             Catch::Contains("a second time"));  // freed without retain_graph
  CHECK_THAT(outcome([&] { (void)autograd::grad({(a * 2.0).sum()}, {zeros({2})}); }),
             Catch::Contains("[autograd::grad]") && Catch::Contains("does not require grad"));
  CHECK_THAT(outcome([&] { (void)autograd::grad({a * 2.0}, {a}); }),
             Catch::Contains("[autograd::grad]") && Catch::Contains("one-element"));
  CHECK_THAT(outcome([&] { (void)autograd::grad({}, {a}); }),
             Catch::Contains("[autograd::grad]") && Catch::Contains("outputs is empty"));
}

TEST_CASE("autograd::grad: create_graph through a kernel backward throws, naming its node",
          "[everyday_autograd]") {
  manual_seed(5);
  const Tensor x0 = randn({2, 3}, kFloat64);
  const Tensor w = randn({3}, kFloat64), b = randn({3}, kFloat64);
  const Tensor target = tensor<int64_t>({2, 0});
  struct Case {
    const char* node;
    std::function<Tensor(const Tensor&)> f;  // a scalar from x, through the node
  };
  const std::vector<Case> cases = {
      {"GeluBackward", [](const Tensor& x) { return gelu(x).sum(); }},
      {"LayerNormBackward",
       [&](const Tensor& x) {
         Tensor y = layer_norm(x, {3}, w, b);
         return (y * y).sum();
       }},
      {"CrossEntropyBackward", [&](const Tensor& x) { return cross_entropy(x, target); }},
      {"NarrowBackward",
       [](const Tensor& x) {
         Tensor n = x.narrow(1, 1, 2);
         return (n * n).sum();
       }},
      {"SelectBackward", [](const Tensor& x) { return exp(x.select(0, 1)).sum(); }},
      {"MaxBackward", [](const Tensor& x) { return (max(x, 1) * 3.0).sum(); }},
      {"IndexSelectBackward",
       [](const Tensor& x) {
         return pow(index_select(x, 1, tensor<int64_t>({2, 0})), 2).sum();
       }},
      {"GroupedMmBackward",
       [&](const Tensor& x) {
         return gg::grouped_mm(std::vector<Tensor>{x.to(kFloat32)},
                               std::vector<Tensor>{w.to(kFloat32).reshape({3, 1})})[0]
             .sum();
       }},
      {"BinaryCrossEntropyWithLogitsBackward",
       [](const Tensor& x) { return binary_cross_entropy_with_logits(x, sigmoid(x.detach())); }},
      {"HuberLossBackward",
       [](const Tensor& x) {
         return huber_loss(x, zeros({2, 3}, kFloat64));
       }},
  };
  for (const Case& c : cases) {
    INFO(c.node);
    Tensor x = x0.clone().requires_grad_();
    CHECK(c.f(x).grad_fn() != nullptr);
    // First order is unaffected: grad() and backward() agree, and the gradient is not zero.
    const Tensor g = autograd::grad({c.f(x)}, {x})[0];
    CHECK_FALSE(g.requires_grad());
    c.f(x).backward();
    CHECK(values(x.grad()) == values(g));
    CHECK(values(g.abs().sum())[0] > 0);
    // create_graph reaches the node: a gg::Error naming it, not a gradient without history.
    CHECK_THAT(outcome([&] {
                 (void)autograd::grad({c.f(x)}, {x}, {}, std::nullopt, /*create_graph=*/true);
               }),
               Catch::Contains("[autograd::grad] create_graph: the backward of " +
                               std::string(c.node) + " is not differentiable") &&
                   Catch::Contains("second derivatives"));
  }

  // The node is refused only when create_graph's backward reaches it: the gradient with respect
  // to v does not run GeluBackward, and is differentiable again (d/dv sum (2 v)^2 = 8 v).
  Tensor x = x0.clone().requires_grad_();
  Tensor v = tensor<double>({1, -2}).requires_grad_();
  Tensor out = gelu(x).sum() + (v * v).sum();
  Tensor gv = autograd::grad({out}, {v}, {}, std::nullopt, /*create_graph=*/true)[0];
  CHECK(values(gv) == Vec{2, -4});
  CHECK(values(autograd::grad({(gv * gv).sum()}, {v})[0]) == Vec{8, -16});
  // l1_loss's derivative, a sign, has a zero derivative itself: create_graph is allowed.
  Tensor gl = autograd::grad({l1_loss(x * x, zeros({2, 3}, kFloat64), Reduction::Sum)}, {x}, {},
                             std::nullopt, true)[0];
  CHECK(gl.requires_grad());
}

TEST_CASE("autograd::grad: double backward through where matches central differences",
          "[everyday_autograd]") {
  manual_seed(12);
  Tensor x = randn({2, 3}, kFloat64).requires_grad_();
  const Tensor cond = gt(randn({2, 3}, kFloat64), zeros({2, 3}, kFloat64));
  // penalty(x) = |d/dx sum(sin(where(cond, x^3, 2 x)))|^2: the gradient reaching where's backward
  // (cos of its result) depends on x, and where's backward must keep that history.
  auto penalty = [&](bool create) {
    Tensor out = sin(where(cond, x * x * x, x * 2.0)).sum();
    Tensor g = autograd::grad({out}, {x}, {}, std::nullopt, create)[0];
    return (g * g).sum();
  };
  check_penalty_gradient(x, penalty);
}

// ==== InferenceMode and threads =================================================================

TEST_CASE("InferenceMode: no recording, nests, thread-local", "[everyday_autograd]") {
  Tensor w = ones({2}).requires_grad_();
  CHECK_FALSE(InferenceMode::is_enabled());
  {
    InferenceMode guard;
    CHECK(InferenceMode::is_enabled());
    CHECK_FALSE(GradMode::is_enabled());
    CHECK_FALSE((w * 2.0).requires_grad());
    {
      InferenceMode inner(false);
      CHECK_FALSE(InferenceMode::is_enabled());
      CHECK((w * 2.0).requires_grad());
    }
    CHECK(InferenceMode::is_enabled());
    bool other_thread = true;
    std::thread([&] {
      other_thread = InferenceMode::is_enabled() || !GradMode::is_enabled();
    }).join();
    CHECK_FALSE(other_thread);
  }
  CHECK_FALSE(InferenceMode::is_enabled());
  CHECK(GradMode::is_enabled());
  CHECK((w * 2.0).requires_grad());
}

TEST_CASE("set_num_threads / get_num_threads", "[everyday_autograd]") {
  const int before = get_num_threads();
  CHECK(before >= 1);
  set_num_threads(1);
  CHECK(get_num_threads() == 1);
  CHECK(values(matmul(ones({4, 4}), ones({4, 4})).sum()) == Vec{64});
  set_num_threads(2);
  CHECK(get_num_threads() == 2);
  set_num_threads(before);
  CHECK_THAT(outcome([] { set_num_threads(0); }),
             Catch::Contains("[set_num_threads]") && Catch::Contains("0"));
}

TEST_CASE("version counters: threads running forwards and grads on shared parameters",
          "[everyday_autograd]") {
  manual_seed(5);
  const Tensor w = randn({8, 8}, kFloat64).requires_grad_();
  const Tensor x = randn({4, 8}, kFloat64);
  const Vec expected = values(autograd::grad({tanh(x.matmul(w)).sum()}, {w})[0]);
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        Tensor h = tanh(x.matmul(w));
        if (values(autograd::grad({h.sum()}, {w})[0]) != expected) ++mismatches;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CHECK(mismatches == 0);
  CHECK_FALSE(w.grad().defined());
}
