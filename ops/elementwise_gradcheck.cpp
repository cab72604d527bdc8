// The elementwise family's gradcheck cases (autograd/gradcheck.hpp): arithmetic with broadcasting
// and scalars, the unary functions, where(); and the dtype conversions (to(), a round trip through
// float32 or bfloat16), which are elementwise too.
#include <vector>

#include "ops/elementwise.hpp"
#include "ops/gradcheck_cases.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

// A case with one input x made by `make` and outputs f(x).
template <class Make, class F>
void unary(Registry& r, const char* name, const char* description, bool linear, Make make, F f) {
  add_case(
      r, "elementwise", name, description, linear,
      [make](const CaseOptions& o) {
        return Inputs{{"x", make(o.dtype)}};
      },
      [f](const V& x, const CaseOptions&) { return f(x[0]); });
}

void register_conversion_cases(Registry& r) {
  const char* fam = "conversion";
  // The f64 -> f32 round trip is piecewise constant at the scale of float32's ulp: a step of 1e-2
  // makes the rounding error negligible (it is linear in between).
  add_case(
      r, fam, "to_float_chain",
      "x.to(other).to(x.dtype) and x.to(other), other = float32 for float64 and vice versa", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        Dtype other = x[0].dtype() == kFloat64 ? kFloat32 : kFloat64;
        return V{x[0].to(other).to(x[0].dtype()), x[0].to(other)};
      },
      Tolerance{1e-2, 1e-5, 1e-4});
  // bfloat16 keeps 8 significant bits: step by 0.5 and allow its rounding error.
  add_case(
      r, fam, "to_bfloat16", "x.to(bfloat16).to(x.dtype): gradient through a bfloat16 round trip",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0].to(kBFloat16).to(x[0].dtype())}; },
      Tolerance{0.5, 1e-3, 5e-2}, Tolerance{0.5, 1e-3, 5e-2});
}

}  // namespace

void register_elementwise_cases(Registry& r) {
  const char* fam = "elementwise";
  add_case(
      r, fam, "add", "a + b, same shape, b non-contiguous", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::noncontiguous(gen::normal({3, 4}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] + x[1]}; });
  add_case(
      r, fam, "add_broadcast", "a [2, 3, 4] + b [3, 1]: broadcasting in both directions", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3, 4}, o.dtype)}, {"b", gen::normal({3, 1}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] + x[1], x[1] + x[0]};
      });
  add_case(
      r, fam, "add_scalar", "x + 2.5 and 2.5 + x", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] + 2.5, 2.5 + x[0]};
      });
  add_case(
      r, fam, "sub", "a [3, 4] - b [4] (broadcast)", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)}, {"b", gen::normal({4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] - x[1], x[1] - x[0]};
      });
  add_case(
      r, fam, "sub_scalar", "x - 1.5 and 1.5 - x", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] - 1.5, 1.5 - x[0]};
      });
  add_case(
      r, fam, "mul", "a * b, same shape", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)}, {"b", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] * x[1]}; });
  add_case(
      r, fam, "mul_broadcast", "a [2, 3, 1] * b [4]; s [3] * a 0-d tensor t", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3, 1}, o.dtype)},
                      {"b", gen::normal({4}, o.dtype)},
                      {"s", gen::normal({3}, o.dtype)},
                      {"t", gen::normal({}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] * x[1], x[2] * x[3]};
      });
  add_case(
      r, fam, "mul_scalar", "x * 1.5 and -0.5 * x", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] * 1.5, -0.5 * x[0]};
      });
  add_case(
      r, fam, "div", "a / b, same shape, b away from 0", false,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::away_from_zero({3, 4}, o.dtype, 0.5)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] / x[1]}; });
  add_case(
      r, fam, "div_broadcast", "a [2, 3] / b [3] and b / a", false,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::away_from_zero({2, 3}, o.dtype, 0.5)},
                      {"b", gen::away_from_zero({3}, o.dtype, 0.5)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] / x[1], x[1] / x[0]};
      });
  add_case(
      r, fam, "div_scalar", "x / 2.5", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] / 2.5}; });
  add_case(
      r, fam, "rdiv_scalar", "2.5 / x, x away from 0", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::away_from_zero({2, 3}, o.dtype, 0.5)}};
      },
      [](const V& x, const CaseOptions&) { return V{2.5 / x[0]}; });

  unary(
      r, "neg", "-x and neg(x)", true,
      [](Dtype d) {
        return gen::normal({2, 3}, d);
      },
      [](const Tensor& x) {
        return V{-x, neg(x)};
      });
  unary(
      r, "exp", "exp(x), x non-contiguous", false,
      [](Dtype d) {
        return gen::noncontiguous(gen::normal({3, 4}, d));
      },
      [](const Tensor& x) { return V{exp(x)}; });
  unary(
      r, "log", "log(x), x in [0.5, 2]", false,
      [](Dtype d) {
        return gen::uniform({2, 3}, d, 0.5, 2);
      },
      [](const Tensor& x) { return V{log(x)}; });
  unary(
      r, "sqrt", "sqrt(x), x in [0.5, 2]", false,
      [](Dtype d) {
        return gen::uniform({2, 3}, d, 0.5, 2);
      },
      [](const Tensor& x) { return V{sqrt(x)}; });
  add_case(
      r, fam, "pow", "x^3 and x^2 for any x; y^2.5, y^-1.5 and y^0.5 for y in [0.5, 2]", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)},
                      {"y", gen::uniform({2, 3}, o.dtype, 0.5, 2)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{pow(x[0], 3), pow(x[0], 2), pow(x[1], 2.5), pow(x[1], -1.5), x[1].pow(0.5)};
      });
  unary(
      r, "tanh", "tanh(x)", false,
      [](Dtype d) {
        return gen::normal({2, 3}, d);
      },
      [](const Tensor& x) { return V{tanh(x)}; });
  unary(
      r, "sigmoid", "sigmoid(x)", false,
      [](Dtype d) {
        return gen::normal({2, 3}, d, 2.0);
      },
      [](const Tensor& x) { return V{sigmoid(x)}; });
  unary(
      r, "relu", "relu(x), |x| >= 0.25", false,
      [](Dtype d) {
        return gen::away_from_zero({3, 4}, d);
      },
      [](const Tensor& x) { return V{relu(x)}; });
  unary(
      r, "gelu", "gelu(x), exact erf form", false,
      [](Dtype d) {
        return gen::normal({3, 4}, d, 1.5);
      },
      [](const Tensor& x) { return V{gelu(x)}; });
  unary(
      r, "abs", "abs(x), |x| >= 0.25", false,
      [](Dtype d) {
        return gen::away_from_zero({3, 4}, d);
      },
      [](const Tensor& x) { return V{abs(x)}; });
  add_case(
      r, fam, "maximum_minimum", "maximum(a, b) and minimum(a, b), |a - b| >= 0.25", false,
      [](const CaseOptions& o) {
        Tensor a = gen::normal({3, 4}, kFloat64);
        Tensor b = (a + gen::away_from_zero({3, 4}, kFloat64)).detach();
        return Inputs{{"a", a.to(o.dtype).detach()}, {"b", b.to(o.dtype).detach()}};
      },
      [](const V& x, const CaseOptions&) {
        return V{maximum(x[0], x[1]), minimum(x[0], x[1])};
      });
  add_case(
      r, fam, "where", "where(cond, a, b) with a fixed random mask", true,
      [](const CaseOptions& o) {
        Tensor cond = gt(gen::normal({3, 4}, kFloat64), scalar_tensor(0.0, kFloat64));
        return Inputs{{"cond", cond, false},
                      {"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::normal({4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{where(x[0], x[1], x[2])}; });
  add_case(
      r, fam, "where_scalar", "where(cond, a, 0.5) and where(cond, -1.5, b)", true,
      [](const CaseOptions& o) {
        Tensor cond = gt(gen::normal({3, 4}, kFloat64), scalar_tensor(0.0, kFloat64));
        return Inputs{{"cond", cond, false},
                      {"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::normal({4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{where(x[0], x[1], 0.5), where(x[0], -1.5, x[2])};
      });
  unary(
      r, "sin", "sin(x) and x.sin(), x non-contiguous", false,
      [](Dtype d) {
        return gen::noncontiguous(gen::normal({3, 4}, d, 2.0));
      },
      [](const Tensor& x) {
        return V{sin(x), x.sin()};
      });
  unary(
      r, "cos", "cos(x) and x.cos()", false,
      [](Dtype d) {
        return gen::normal({3, 4}, d, 2.0);
      },
      [](const Tensor& x) {
        return V{cos(x), x.cos()};
      });
  // Values at least 0.1 from the bounds -1, 0 and 1 (clamp has a kink there).
  unary(
      r, "clamp", "clamp(x, -1, 1), clamp_min(x, 0), clamp_max(x, 0), x.clamp(-1)", false,
      [](Dtype d) {
        return tensor<double>({-2.1, -1.4, -0.6, -0.2, 0.3, 0.7, 1.3, 2.2}, {2, 4}).to(d);
      },
      [](const Tensor& x) {
        return V{clamp(x, -1.0, 1.0), clamp_min(x, 0.0), clamp_max(x, 0.0), x.clamp(-1.0)};
      });
  add_case(
      r, fam, "clamp_tensor", "clamp(x [3, 4], min [4], max [3, 1]) and clamp(x, {}, max)", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype, 1.5)},
                      {"min", gen::uniform({4}, o.dtype, -1.5, -0.5)},
                      {"max", gen::uniform({3, 1}, o.dtype, 0.5, 1.5)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{clamp(x[0], x[1], x[2]), clamp(x[0], Tensor(), x[2])};
      });
  // Quotients a / b away from integers (remainder and fmod jump there).
  add_case(
      r, fam, "remainder_fmod", "remainder(a, b), fmod(a, b), remainder(a, 2), fmod(a, -2)", false,
      [](const CaseOptions& o) {
        return Inputs{{"a", tensor<double>({-3.7, -2.2, -0.6, 0.4, 1.3, 2.9}, {2, 3}).to(o.dtype)},
                      {"b", tensor<double>({1.5, -1.5, 0.7, -0.7, 2.1, -1.1}, {2, 3}).to(o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{remainder(x[0], x[1]), fmod(x[0], x[1]), remainder(x[0], 2.0), x[0].fmod(-2.0)};
      });
  add_case(
      r, fam, "remainder_broadcast", "remainder(a [2, 3], b [3]) and fmod(b, a)", false,
      [](const CaseOptions& o) {
        return Inputs{{"a", tensor<double>({-3.7, -2.2, -0.6, 0.4, 1.3, 2.9}, {2, 3}).to(o.dtype)},
                      {"b", tensor<double>({1.5, -1.7, 0.7}, {3}).to(o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{remainder(x[0], x[1]), fmod(x[1], x[0])};
      });
  add_case(
      r, fam, "masked_fill", "masked_fill(x [3, 4], mask [4], 0-d value) and with 2.5", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)},
                      {"mask", tensor<float>({1, 0, 0, 1}), false},
                      {"value", gen::normal({}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{masked_fill(x[0], x[1], x[2]), x[0].masked_fill(x[1], 2.5)};
      });
  register_conversion_cases(r);
}

}  // namespace gg::gradcheck
