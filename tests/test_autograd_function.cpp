// The public autograd API (autograd/function.hpp): custom functions checked against central
// differences and closed-form derivatives, several roots in one backward, and the errors a wrong
// backward or a wrong call gets. Only the umbrella header: this is what users write.
#include <catch2/catch.hpp>
#include <vector>

#include "groupgrad.hpp"
#include "test_support.hpp"

using namespace gg;
using autograd::AutogradContext;
using test::outcome;
using test::values;

namespace {

// y = x^3, saving its input.
struct Cube : autograd::Function<Cube> {
  static constexpr const char* name = "CubeBackward";
  static Tensor forward(AutogradContext* ctx, const Tensor& x) {
    ctx->save_for_backward({x});
    return x * x * x;
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, const std::vector<Tensor>& grads) {
    const Tensor x = ctx->get_saved_variables()[0];
    return {grads[0] * 3.0 * x * x};
  }
};

// Two outputs (a * b and a + scale * b) from two tensors and a non-tensor argument in between.
struct MulAndAxpy : autograd::Function<MulAndAxpy> {
  static std::vector<Tensor> forward(AutogradContext* ctx, const Tensor& a, double scale,
                                     const Tensor& b) {
    ctx->save_for_backward({a, b, full({}, scale, kFloat64)});
    return {a * b, a + b * scale};
  }
  static std::vector<Tensor> backward(AutogradContext* ctx, const std::vector<Tensor>& grads) {
    const std::vector<Tensor>& s = ctx->get_saved_variables();
    const double scale = s[2].item<double>();
    Tensor ga, gb;
    if (ctx->needs_input_grad(0)) ga = grads[0] * s[1] + grads[1];
    if (ctx->needs_input_grad(2)) gb = grads[0] * s[0] + grads[1] * scale;
    CHECK_FALSE(ctx->needs_input_grad(1));  // the double
    return {ga, Tensor(), gb};
  }
};

struct TooFewGradients : autograd::Function<TooFewGradients> {
  static constexpr const char* name = "TooFewGradientsBackward";
  static Tensor forward(AutogradContext*, const Tensor& a, const Tensor& b) { return a * b; }
  static std::vector<Tensor> backward(AutogradContext*, const std::vector<Tensor>& grads) {
    return {grads[0]};
  }
};

struct WrongShape : autograd::Function<WrongShape> {
  static constexpr const char* name = "WrongShapeBackward";
  static Tensor forward(AutogradContext*, const Tensor& x) { return x * 2.0; }
  static std::vector<Tensor> backward(AutogradContext*, const std::vector<Tensor>&) {
    return {ones({5, 7}, kFloat64)};
  }
};

struct GradientForADouble : autograd::Function<GradientForADouble> {
  static Tensor forward(AutogradContext*, const Tensor& x, double s) { return x * s; }
  static std::vector<Tensor> backward(AutogradContext*, const std::vector<Tensor>& grads) {
    return {grads[0], grads[0]};
  }
};

// Returns its input as it is: the caller's tensor must keep being a leaf.
struct Identity : autograd::Function<Identity> {
  static Tensor forward(AutogradContext*, const Tensor& x) { return x; }
  static std::vector<Tensor> backward(AutogradContext*, const std::vector<Tensor>& grads) {
    return {grads[0]};
  }
};

}  // namespace

TEST_CASE("custom function: gradient matches central differences and 3x^2",
          "[autograd][function]") {
  test::check_gradients([](const std::vector<Tensor>& in) { return Cube::apply(in[0]); },
                        {randn({3, 4}, kFloat64)});

  Tensor x = tensor<double>({-2.0, 0.5, 3.0}, {3}).requires_grad_();
  Cube::apply(x).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{12.0, 0.75, 27.0});
}

TEST_CASE("custom function: several outputs, a non-tensor argument, needs_input_grad",
          "[autograd][function]") {
  test::check_gradients(
      [](const std::vector<Tensor>& in) {
        std::vector<Tensor> y = MulAndAxpy::apply(in[0], 0.25, in[1]);
        return y[0] * 2.0 + y[1];
      },
      {randn({2, 3}, kFloat64), randn({2, 3}, kFloat64)});

  // Only b requires grad: a's gradient is not asked for (and not computed).
  Tensor a = tensor<double>({1.0, 2.0}, {2});
  Tensor b = tensor<double>({3.0, 4.0}, {2}).requires_grad_();
  std::vector<Tensor> y = MulAndAxpy::apply(a, 0.5, b);
  (y[0] + y[1]).sum().backward();
  CHECK(values(b.grad()) == std::vector<double>{1.5, 2.5});
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("custom function: without grad it records nothing", "[autograd][function]") {
  Tensor x = randn({3}, kFloat64).requires_grad_();
  {
    NoGradGuard no_grad;
    CHECK_FALSE(Cube::apply(x).requires_grad());
  }
  CHECK_FALSE(Cube::apply(randn({3}, kFloat64)).requires_grad());
  CHECK(Cube::apply(x).requires_grad());
}

TEST_CASE("custom function: returning an input leaves the input a leaf", "[autograd][function]") {
  Tensor x = tensor<double>({1.0, 2.0}, {2}).requires_grad_();
  Tensor y = Identity::apply(x);
  (y * 3.0).sum().backward();
  CHECK(values(x.grad()) == std::vector<double>{3.0, 3.0});
  x.set_grad(Tensor());
  (x * 2.0).sum().backward();  // x still a leaf: its gradient lands in x.grad()
  CHECK(values(x.grad()) == std::vector<double>{2.0, 2.0});
}

TEST_CASE("custom function: a wrong backward is a gg::Error naming the function",
          "[autograd][function][errors]") {
  Tensor a = randn({2}, kFloat64).requires_grad_();
  Tensor b = randn({2}, kFloat64).requires_grad_();
  CHECK_THAT(outcome([&] { TooFewGradients::apply(a, b).sum().backward(); }),
             Catch::Contains("[TooFewGradientsBackward] backward returned 1 gradient(s)") &&
                 Catch::Contains("one per argument of forward (2)"));
  CHECK_THAT(outcome([&] { WrongShape::apply(a).sum().backward(); }),
             Catch::Contains("WrongShapeBackward returned a gradient of shape [5, 7]") &&
                 Catch::Contains("shape [2]"));
  CHECK_THAT(outcome([&] { GradientForADouble::apply(a, 2.0).sum().backward(); }),
             Catch::Contains("defined gradient for argument 1, which is not a tensor"));
}

TEST_CASE("autograd::backward: several roots at once", "[autograd][function]") {
  Tensor x = tensor<double>({1.0, 2.0, 3.0}, {3}).requires_grad_();
  Tensor shared = x * x;  // reached from both roots: its node runs once, with the summed gradient
  Tensor y1 = shared.sum();
  Tensor y2 = shared * 2.0;
  autograd::backward({y1, y2}, {Tensor(), full({3}, 0.5, kFloat64)});
  // d/dx [sum(x^2) + sum(0.5 * 2 x^2)] = 2x + 2x
  CHECK(values(x.grad()) == std::vector<double>{4.0, 8.0, 12.0});

  x.set_grad(Tensor());
  Tensor z = (x * 3.0).sum();
  autograd::backward({z}, {}, /*retain_graph=*/true);
  autograd::backward({z});
  CHECK(values(x.grad()) == std::vector<double>{6.0, 6.0, 6.0});
  CHECK_THAT(outcome([&] { autograd::backward({z}); }), Catch::Contains("a second time"));
}

TEST_CASE("autograd::backward: misuse is a gg::Error", "[autograd][function][errors]") {
  Tensor x = randn({3}, kFloat64).requires_grad_();
  Tensor y = x * 2.0;
  CHECK_THAT(outcome([&] { autograd::backward({y}); }),
             Catch::Contains("only for one-element tensors") && Catch::Contains("shape [3]"));
  CHECK_THAT(outcome([&] {
               autograd::backward({y}, {ones({3}), ones({3})});
             }),
             Catch::Contains("got 1 tensors but 2 grad_tensors"));
  CHECK_THAT(outcome([&] { autograd::backward({y}, {ones({4}, kFloat64)}); }),
             Catch::Contains("grad_tensors[0] must match tensors[0]"));
  CHECK_THAT(outcome([&] { autograd::backward({randn({1})}); }),
             Catch::Contains("does not require grad"));
  CHECK_THAT(outcome([&] { autograd::backward({Tensor()}); }),
             Catch::Contains("tensors[0] is an undefined tensor"));
}
