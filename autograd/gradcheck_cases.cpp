// The built-in gradcheck cases: one or more per differentiable op, registered explicitly by
// register_builtin_cases() (no static initializers: the static linker would drop them).
//
// Adding cases for another op family: write `void register_<family>_cases(Registry&)` (in your
// op's file or here), declare it below, and call it from register_builtin_cases(). Builders make
// small inputs (every element costs two forward calls) and keep them away from points where the
// op is not differentiable; mark `linear` what is affine in each input separately.
#include "nn/gradcheck_cases.hpp"

#include <cmath>

#include "autograd/gradcheck.hpp"
#include "core/random.hpp"
#include "ops/elementwise.hpp"
#include "ops/matmul.hpp"
#include "ops/nn_ops.hpp"
#include "ops/reduce.hpp"
#include "ops/shape_ops.hpp"

namespace gg::gradcheck {

// Op families registered from their own files (declared here, defined next to the op):
//   grouped_mm: ops/grouped_mm_gradcheck.cpp; nn modules: nn/gradcheck_cases.{hpp,cpp}.
// A new family adds its declaration (or header) and one call in register_builtin_cases().
void register_grouped_mm_cases(Registry& r);

namespace {

using V = std::vector<Tensor>;

void add(Registry& r, const char* family, const char* name, const char* description, bool linear,
         BuildFn build, ForwardFn forward, std::optional<Tolerance> f64 = std::nullopt,
         std::optional<Tolerance> f32 = std::nullopt) {
  r.register_case({.name = name,
                   .description = description,
                   .build = std::move(build),
                   .forward = std::move(forward),
                   .linear = linear,
                   .f64 = f64,
                   .f32 = f32,
                   .family = family});
}

// A case with one input x made by `make` and outputs f(x).
template <class Make, class F>
void unary(Registry& r, const char* name, const char* description, bool linear, Make make, F f) {
  add(
      r, "elementwise", name, description, linear,
      [make](const CaseOptions& o) {
        return Inputs{{"x", make(o.dtype)}};
      },
      [f](const V& x, const CaseOptions&) { return f(x[0]); });
}

void register_elementwise_cases(Registry& r) {
  const char* fam = "elementwise";
  add(
      r, fam, "add", "a + b, same shape, b non-contiguous", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::noncontiguous(gen::normal({3, 4}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] + x[1]}; });
  add(
      r, fam, "add_broadcast", "a [2, 3, 4] + b [3, 1]: broadcasting in both directions", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3, 4}, o.dtype)}, {"b", gen::normal({3, 1}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] + x[1], x[1] + x[0]};
      });
  add(
      r, fam, "add_scalar", "x + 2.5 and 2.5 + x", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] + 2.5, 2.5 + x[0]};
      });
  add(
      r, fam, "sub", "a [3, 4] - b [4] (broadcast)", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)}, {"b", gen::normal({4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] - x[1], x[1] - x[0]};
      });
  add(
      r, fam, "sub_scalar", "x - 1.5 and 1.5 - x", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] - 1.5, 1.5 - x[0]};
      });
  add(
      r, fam, "mul", "a * b, same shape", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)}, {"b", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] * x[1]}; });
  add(
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
  add(
      r, fam, "mul_scalar", "x * 1.5 and -0.5 * x", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] * 1.5, -0.5 * x[0]};
      });
  add(
      r, fam, "div", "a / b, same shape, b away from 0", false,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::away_from_zero({3, 4}, o.dtype, 0.5)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] / x[1]}; });
  add(
      r, fam, "div_broadcast", "a [2, 3] / b [3] and b / a", false,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::away_from_zero({2, 3}, o.dtype, 0.5)},
                      {"b", gen::away_from_zero({3}, o.dtype, 0.5)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0] / x[1], x[1] / x[0]};
      });
  add(
      r, fam, "div_scalar", "x / 2.5", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0] / 2.5}; });
  add(
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
  add(
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
  add(
      r, fam, "maximum_minimum", "maximum(a, b) and minimum(a, b), |a - b| >= 0.25", false,
      [](const CaseOptions& o) {
        Tensor a = gen::normal({3, 4}, kFloat64);
        Tensor b = (a + gen::away_from_zero({3, 4}, kFloat64)).detach();
        return Inputs{{"a", a.to(o.dtype).detach()}, {"b", b.to(o.dtype).detach()}};
      },
      [](const V& x, const CaseOptions&) {
        return V{maximum(x[0], x[1]), minimum(x[0], x[1])};
      });
  add(
      r, fam, "where", "where(cond, a, b) with a fixed random mask", true,
      [](const CaseOptions& o) {
        Tensor cond = gt(gen::normal({3, 4}, kFloat64), scalar_tensor(0.0, kFloat64));
        return Inputs{{"cond", cond, false},
                      {"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::normal({4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{where(x[0], x[1], x[2])}; });
}

void register_reduce_cases(Registry& r) {
  const char* fam = "reduce";
  add(
      r, fam, "sum", "x.sum() of [3, 4], and of a non-contiguous [4, 3]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].sum(), sum(x[1])};
      });
  add(
      r, fam, "sum_dim", "sum over dims 0, 1 and -1 (keepdim) of [2, 3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].sum(0), x[0].sum(1), x[0].sum(-1, true)};
      });
  add(
      r, fam, "mean", "x.mean() of [3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].mean(), mean(x[0])};
      });
  add(
      r, fam, "mean_dim", "mean over dims 0 (keepdim) and 2 of [2, 3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].mean(0, true), x[0].mean(2)};
      });
  add(
      r, fam, "max_dim", "max over dim 1 and dim 0 (keepdim) of [3, 5], no ties", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::distinct({3, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].max(1), max(x[0], 0, true), max_with_indices(x[0], -1).first};
      });
}

void register_matmul_cases(Registry& r) {
  const char* fam = "matmul";
  add(
      r, fam, "matmul_2d", "a [3, 4] @ b [4, 5], b non-contiguous (transposed)", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::noncontiguous(gen::normal({4, 5}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) { return V{matmul(x[0], x[1])}; });
  add(
      r, fam, "matmul_batched", "a [2, 3, 4] @ b [2, 4, 5]", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3, 4}, o.dtype)},
                      {"b", gen::normal({2, 4, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0].matmul(x[1])}; });
  add(
      r, fam, "matmul_broadcast",
      "batch broadcasting: a [2, 1, 3, 4] @ b [3, 4, 2], and c [3, 4] @ b", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 1, 3, 4}, o.dtype)},
                      {"b", gen::normal({3, 4, 2}, o.dtype)},
                      {"c", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{matmul(x[0], x[1]), matmul(x[2], x[1])};
      });
  add(
      r, fam, "matmul_1d",
      "1-d operands: u [4] . v [4], u @ m [4, 3], n [3, 4] @ v, t [2, 3, 4] @ v", true,
      [](const CaseOptions& o) {
        return Inputs{{"u", gen::normal({4}, o.dtype)},
                      {"v", gen::noncontiguous(gen::normal({4}, o.dtype))},
                      {"m", gen::normal({4, 3}, o.dtype)},
                      {"n", gen::normal({3, 4}, o.dtype)},
                      {"t", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{matmul(x[0], x[1]), matmul(x[0], x[2]), matmul(x[3], x[1]), matmul(x[4], x[1])};
      });
  add(
      r, "composite", "mlp", "sum(tanh(x @ w1 + b1) @ w2): a small MLP", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 3}, o.dtype)},
                      {"w1", gen::normal({3, 5}, o.dtype, 0.5)},
                      {"b1", gen::normal({5}, o.dtype)},
                      {"w2", gen::normal({5, 2}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{matmul(tanh(matmul(x[0], x[1]) + x[2]), x[3]).sum()};
      });
}

void register_view_cases(Registry& r) {
  const char* fam = "views";
  add(
      r, fam, "reshape", "reshape and view of [3, 4]; reshape of a non-contiguous [4, 3] (copies)",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].reshape({2, 6}), x[0].reshape({-1}), x[0].view({4, 3}), x[1].reshape({12}),
                 x[0].flatten()};
      });
  add(
      r, fam, "transpose", "transpose(0, 2) and transpose(-1, -2) of [2, 3, 4]; t() of [3, 4]",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}, {"y", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].transpose(0, 2), x[0].transpose(-1, -2), x[1].t()};
      });
  add(
      r, fam, "permute", "permute({1, 2, 0}) of [2, 3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].permute({1, 2, 0})};
      });
  add(
      r, fam, "narrow", "narrow(1, 1, 3) and narrow(0, -2, 2) of [4, 5]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].narrow(1, 1, 3), x[0].narrow(0, -2, 2)};
      });
  add(
      r, fam, "select", "select(0, 1) and select(1, -1) of [3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].select(0, 1), x[0].select(1, -1)};
      });
  add(
      r, fam, "expand", "[3, 1] expanded to [2, 3, 4]; a 0-d tensor expanded to [2, 2]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 1}, o.dtype)}, {"s", gen::normal({}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].expand({2, 3, 4}), x[1].expand({2, 2}), x[0].expand({-1, 5})};
      });
  add(
      r, fam, "squeeze_unsqueeze",
      "squeeze(1), squeeze(), unsqueeze(0), unsqueeze(-1) of [3, 1, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 1, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].squeeze(1), x[0].squeeze(), x[0].unsqueeze(0), x[0].unsqueeze(-1)};
      });
  add(
      r, fam, "view_chain", "views of views: transpose, narrow, reshape, select, then * 2", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 6}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        Tensor v = x[0].transpose(0, 1).narrow(0, 1, 4).reshape({2, 2, 4}).select(2, 1);
        return V{v * 2.0, x[0].t().contiguous(), x[0].clone()};
      });
}

void register_conversion_cases(Registry& r) {
  const char* fam = "conversion";
  // The f64 -> f32 round trip is piecewise constant at the scale of float32's ulp: a step of 1e-2
  // makes the rounding error negligible (it is linear in between).
  add(
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
  add(
      r, fam, "to_bfloat16", "x.to(bfloat16).to(x.dtype): gradient through a bfloat16 round trip",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0].to(kBFloat16).to(x[0].dtype())}; },
      Tolerance{0.5, 1e-3, 5e-2}, Tolerance{0.5, 1e-3, 5e-2});
}

void register_nn_op_cases(Registry& r) {
  const char* fam = "nn";
  add(
      r, fam, "softmax", "softmax over dims -1 and 0 of [3, 5]; over dim 1 of a non-contiguous x",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 5}, o.dtype, 2.0)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{softmax(x[0], -1), softmax(x[0], 0), softmax(x[1], 1)};
      });
  add(
      r, fam, "log_softmax", "log_softmax over dims 1 and -1 of [2, 3, 4]", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype, 2.0)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{log_softmax(x[0], 1), log_softmax(x[0], -1)};
      });
  add(
      r, fam, "layer_norm", "layer_norm of [3, 6] over [6] with weight and bias, and without",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 6}, o.dtype)},
                      {"weight", gen::normal({6}, o.dtype)},
                      {"bias", gen::normal({6}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{layer_norm(x[0], {6}, x[1], x[2]), layer_norm(x[0], {6})};
      });
  add(
      r, fam, "layer_norm_2d", "layer_norm of [2, 3, 4] over [3, 4] with a weight only", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)},
                      {"weight", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{layer_norm(x[0], {3, 4}, x[1])};
      });
  add(
      r, fam, "cross_entropy",
      "cross_entropy of logits [4, 5]: mean, sum, none, label_smoothing 0.1, an ignored target",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"logits", gen::normal({4, 5}, o.dtype, 2.0)},
                      {"target", tensor<int64_t>({3, 0, 4, 1}), false},
                      {"target_ignored", tensor<int64_t>({2, -100, 0, 4}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{cross_entropy(x[0], x[1]),
                 cross_entropy(x[0], x[1], Reduction::Sum),
                 cross_entropy(x[0], x[1], Reduction::None),
                 cross_entropy(x[0], x[1], Reduction::Mean, -100, 0.1),
                 cross_entropy(x[0], x[2]),
                 cross_entropy(x[0], x[2], Reduction::Sum, -100, 0.2)};
      });
  add(
      r, fam, "cross_entropy_spatial", "cross_entropy of logits [2, 3, 4] (N, C, d) and of [5] (C)",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"logits", gen::normal({2, 3, 4}, o.dtype, 2.0)},
                      {"target", tensor<int32_t>({0, 2, 1, 1, 2, 2, 0, 1}, {2, 4}), false},
                      {"single", gen::normal({5}, o.dtype)},
                      {"single_target", tensor<int64_t>({3}, {}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{cross_entropy(x[0], x[1]), cross_entropy(x[0], x[1], Reduction::None),
                 cross_entropy(x[2], x[3])};
      });
  add(
      r, fam, "mse_loss", "mse_loss(input, target) with mean, sum and none; both differentiable",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"input", gen::normal({3, 4}, o.dtype)},
                      {"target", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{mse_loss(x[0], x[1]), mse_loss(x[0], x[1], Reduction::Sum),
                 mse_loss(x[0], x[1], Reduction::None)};
      });
  // The mask comes from the global generator: reseeding before each forward fixes it.
  add(
      r, fam, "dropout", "dropout(x, 0.4) with a fixed mask (reseeded), and in eval mode", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions& o) {
        manual_seed(o.seed + 1000);
        return V{dropout(x[0], 0.4, true), dropout(x[0], 0.4, false)};
      });
}

void register_shape_op_cases(Registry& r) {
  const char* fam = "shape";
  add(
      r, fam, "cat", "cat along dims 0 and 1, with a non-contiguous and an empty piece", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3}, o.dtype)},
                      {"b", gen::normal({1, 3}, o.dtype)},
                      {"c", gen::noncontiguous(gen::normal({2, 3}, o.dtype))},
                      {"e", gen::normal({0, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{cat({x[0], x[1], x[3], x[2]}, 0), cat({x[0], x[2]}, -1)};
      });
  add(
      r, fam, "stack", "stack along dims 0 and -1", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3}, o.dtype)},
                      {"b", gen::noncontiguous(gen::normal({2, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{stack({x[0], x[1]}), stack({x[1], x[0]}, -1)};
      });
  add(
      r, fam, "split", "split [5, 4] by size 2, by sizes {1, 3} on dim 1 (one piece unused), chunk",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({5, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        V out = split(x[0], 2);
        out.push_back(split(x[0], std::vector<int64_t>{1, 3}, 1)[1]);
        for (const Tensor& t : chunk(x[0], 2, 1)) out.push_back(t * 3.0);
        return out;
      });
  add(
      r, fam, "index_select", "rows {0, 3, 3, 1} (repeats) of [5, 3]; columns {2, 0} (int32)", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({5, 3}, o.dtype)},
                      {"rows", tensor<int64_t>({0, 3, 3, 1}), false},
                      {"cols", tensor<int32_t>({2, 0}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{index_select(x[0], 0, x[1]), index_select(x[0], 1, x[2])};
      });
}

}  // namespace

void register_builtin_cases(Registry& registry) {
  register_elementwise_cases(registry);
  register_reduce_cases(registry);
  register_matmul_cases(registry);
  register_view_cases(registry);
  register_conversion_cases(registry);
  register_nn_op_cases(registry);
  register_shape_op_cases(registry);
  register_grouped_mm_cases(registry);
  register_nn_module_cases(registry);
}

}  // namespace gg::gradcheck
