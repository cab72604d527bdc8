// Neural-network ops: validation and autograd here, kernels in ops/kernels/
// (oneDNN softmax and layer_norm for Float32/BFloat16, plain loops otherwise).
#include "ops/nn_ops.hpp"

#include <algorithm>
#include <cmath>
#include <string_view>

#include "autograd/node.hpp"
#include "core/strided.hpp"
#include "ops/elementwise.hpp"
#include "ops/kernels/dropout_kernel.hpp"
#include "ops/kernels/layer_norm_kernels.hpp"
#include "ops/kernels/loss_kernels.hpp"
#include "ops/kernels/softmax_kernels.hpp"
#include "ops/reduce.hpp"

namespace gg {

namespace {
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

void check_floating(const Tensor& t, const char* op, const char* what) {
  GG_CHECK(is_floating(t.dtype()), "[{}] {} must be a floating-point tensor, got {} {}", op, what,
           dtype_name(t.dtype()), shape_str(t.shape()));
}

// A class-index loss viewed as [N, C, D] (D: the product of the trailing dims), its targets, and
// its class weights (empty when undefined).
struct ClassTargets {
  Shape shape3;
  std::vector<int64_t> target;
  std::vector<double> weight;
};

void check_not_requiring_grad(const Tensor& t, const char* op, const char* what) {
  GG_CHECK(!t.defined() || !autograd::needs_grad({t}),
           "[{}] {} requires grad, but the loss is not differentiable with respect to its {} (as "
           "in PyTorch)",
           op, what, what);
}

// What the class-index losses' checks say differently: how the first argument is called
// ("logits" reads as a plural), and whether it must have a class (cross_entropy's softmax over
// none is undefined; nll_loss reports the out-of-range targets instead).
struct ClassLoss {
  const char* op;
  const char* input_name;
  bool needs_classes;
};
constexpr ClassLoss kCrossEntropy{"cross_entropy", "logits", true};
constexpr ClassLoss kNllLoss{"nll_loss", "input", false};

// The one validator of cross_entropy and nll_loss: dtypes, the (C) / (N, C) / (N, C, d...) shape
// rule, the class weight and every target's range.
ClassTargets check_class_targets(const ClassLoss& loss, const Tensor& input, const Tensor& target,
                                 const Tensor& weight, int64_t ignore_index) {
  const char* op = loss.op;
  const char* name = loss.input_name;
  input.checked(op);
  target.checked(op);
  check_floating(input, op, name);
  GG_CHECK(target.dtype() == kInt64 || target.dtype() == kInt32,
           "[{}] target must hold class indices as int64 or int32, got {} {}", op,
           dtype_name(target.dtype()), shape_str(target.shape()));
  GG_CHECK(input.dim() >= 1, "[{}] {} must be (C), (N, C) or (N, C, d...), got 0-d", op, name);
  // (C) with a 0-d target is one sample: (1, C) with (1).
  const bool unbatched = input.dim() == 1;
  Shape shape = unbatched ? Shape{1, input.size(0)} : input.shape();
  Shape expected = shape;
  expected.erase(expected.begin() + 1);
  if (unbatched) expected.clear();
  const bool plural = std::string_view(name) == "logits";
  GG_CHECK(target.shape() == expected, "[{}] target has shape {} but {} {} {} a target of shape {}",
           op, shape_str(target.shape()), name, shape_str(input.shape()), plural ? "need" : "needs",
           shape_str(expected));
  ClassTargets r;
  const int64_t C = shape[1];
  GG_CHECK(!loss.needs_classes || C > 0, "[{}] {} {} {} no classes", op, name,
           shape_str(input.shape()), plural ? "have" : "has");
  r.shape3 = {shape[0], C, numel_of(Shape(shape.begin() + 2, shape.end()))};
  if (weight.defined()) {
    weight.checked(op);
    check_floating(weight, op, "weight");
    GG_CHECK(weight.dim() == 1 && weight.size(0) == C,
             "[{}] weight must be 1-d with one value per class ({}), got {} ({} {})", op, C,
             shape_str(weight.shape()), name, shape_str(input.shape()));
    check_not_requiring_grad(weight, op, "weight");
    r.weight = weight.detach().to(kFloat64).to_vector<double>();
  }
  r.target = target.to(kInt64).to_vector<int64_t>();
  for (size_t i = 0; i < r.target.size(); ++i) {
    const int64_t t = r.target[i];
    GG_CHECK(t == ignore_index || (t >= 0 && t < C),
             "[{}] target {} at position {} is out of range for {} classes (valid: 0 to {}, or "
             "ignore_index {})",
             op, t, i, C, C - 1, ignore_index);
  }
  return r;
}

// softmax and log_softmax: the kernel runs on a >= 1-d detached view; the node is on x itself.
Tensor softmax_impl(const Tensor& x, int64_t dim, bool log) {
  const char* op = log ? "log_softmax" : "softmax";
  x.checked(op);
  check_floating(x, op, "input");
  dim = wrap_dim(dim, x.dim(), op);
  Tensor src = x.dim() == 0 ? x.detach().reshape({1}) : x.detach();
  // Empty input: nothing to compute (the kernels looped over 2^40 empty rows).
  Tensor out = src.numel() == 0 ? empty(src.shape(), src.dtype()) : kernels::softmax(src, dim, log);
  if (x.dim() == 0) out = out.reshape({});
  if (!autograd::needs_grad({x})) return out;
  if (log) {
    // d/dx log_softmax: g - softmax(x) * sum(g)
    return record("LogSoftmaxBackward", {x}, out,
                  [sy = autograd::SavedTensor::output(out), dim](const Grads& g, const Needs&) {
                    const Tensor y = sy.unpack();
                    if (y.numel() == 0) return Grads{g[0]};  // (sum() would size [2^40, 1])
                    return Grads{g[0] - exp(y) * sum(g[0], dim, true)};
                  });
  }
  return record("SoftmaxBackward", {x}, out,
                [sy = autograd::SavedTensor::output(out), dim](const Grads& g, const Needs&) {
                  const Tensor y = sy.unpack();
                  if (y.numel() == 0) return Grads{g[0]};
                  return Grads{y * (g[0] - sum(g[0] * y, dim, true))};
                });
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, false); }
Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_impl(x, dim, true); }

Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight,
                  const Tensor& bias, double eps) {
  x.checked("layer_norm");
  check_floating(x, "layer_norm", "input");
  const int64_t k = static_cast<int64_t>(normalized_shape.size());
  GG_CHECK(k > 0, "[layer_norm] normalized_shape must have at least one dimension");
  const Shape& shape = x.shape();
  GG_CHECK(
      k <= x.dim() && std::equal(normalized_shape.begin(), normalized_shape.end(), shape.end() - k),
      "[layer_norm] normalized_shape {} must match the trailing dimensions of the input {}",
      shape_str(normalized_shape), shape_str(shape));
  for (const auto& [t, name] : {std::pair{weight, "weight"}, std::pair{bias, "bias"}}) {
    if (!t.defined()) continue;
    GG_CHECK(t.shape() == normalized_shape,
             "[layer_norm] {} has shape {} but normalized_shape is {}", name, shape_str(t.shape()),
             shape_str(normalized_shape));
    GG_CHECK(t.dtype() == x.dtype(), "[layer_norm] {} is {} but the input is {}", name,
             dtype_name(t.dtype()), dtype_name(x.dtype()));
  }
  GG_CHECK(eps >= 0 && std::isfinite(eps), "[layer_norm] eps must be finite and >= 0, got {}", eps);
  const int64_t cols = numel_of(normalized_shape);
  const bool grad = autograd::needs_grad({x, weight, bias});
  kernels::LayerNormOutput r = kernels::layer_norm(x, cols, weight, bias, eps, grad);
  if (!grad) return r.y;
  // The backward is a kernel: once differentiable.
  return autograd::once_differentiable(
      record("LayerNormBackward", {x, weight, bias}, r.y,
             [x = autograd::SavedTensor(x), w = autograd::SavedTensor(weight), mean = r.mean,
              rstd = r.rstd, normalized_shape, cols](const Grads& g, const Needs& needs) {
               kernels::LayerNormGrads d = kernels::layer_norm_backward(
                   g[0], x.unpack(), mean, rstd, w.unpack(), cols, needs[0], needs[1], needs[2]);
               if (d.dweight.defined()) d.dweight = d.dweight.reshape(normalized_shape);
               if (d.dbias.defined()) d.dbias = d.dbias.reshape(normalized_shape);
               return Grads{d.dx, d.dweight, d.dbias};
             }));
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                     int64_t ignore_index, double label_smoothing) {
  GG_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
           "[cross_entropy] label_smoothing must be in [0, 1], got {}", label_smoothing);
  ClassTargets c = check_class_targets(kCrossEntropy, logits, target, Tensor(), ignore_index);
  // One node for log_softmax + nll: its backward is a single pass over the saved logp.
  Tensor logp = kernels::softmax(logits.detach().reshape(c.shape3), 1, true);
  kernels::NllOutput nll =
      kernels::nll_loss(logp, c.target, reduction, ignore_index, label_smoothing);
  Tensor loss = reduction == Reduction::None ? nll.loss.reshape(target.shape()) : nll.loss;
  if (!autograd::needs_grad({logits})) return loss;
  // The backward is a kernel: once differentiable.
  return autograd::once_differentiable(
      record("CrossEntropyBackward", {logits}, loss,
             [shape = logits.shape(), logp, t = std::move(c.target), reduction, ignore_index,
              label_smoothing, count = nll.count,
              st = autograd::SavedTensor(target)](const Grads& g, const Needs&) {
               st.check();  // t is a copy of target: checked, as in PyTorch
               return Grads{kernels::cross_entropy_backward(g[0], logp, t, reduction, ignore_index,
                                                            label_smoothing, count)
                                .reshape(shape)};
             }));
}

Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  input.checked("mse_loss");
  target.checked("mse_loss");
  check_floating(input, "mse_loss", "input");
  check_floating(target, "mse_loss", "target");
  // PyTorch broadcasts here with a warning; a mismatch is nearly always a bug, so we refuse it.
  GG_CHECK(input.shape() == target.shape(),
           "[mse_loss] input {} and target {} must have the same shape", shape_str(input.shape()),
           shape_str(target.shape()));
  Tensor diff = input - target;
  Tensor sq = diff * diff;
  switch (reduction) {
    case Reduction::None:
      return sq;
    case Reduction::Sum:
      return sum(sq);
    case Reduction::Mean:
      break;
  }
  return mean(sq);
}

Tensor dropout(const Tensor& x, double p, bool training) {
  x.checked("dropout");
  GG_CHECK(p >= 0 && p <= 1, "[dropout] probability p must be in [0, 1], got {}", p);
  check_floating(x, "dropout", "input");
  if (!training || p == 0) return x;
  return x * kernels::dropout_mask(x.shape(), x.dtype(), p);
}

// ---- more losses -------------------------------------------------------------------------------

namespace {

// One node for an elementwise loss on {input, target}: the kernel computes the losses (and their
// reduction), the backward multiplies the incoming gradient by the elementwise derivatives.
Tensor record_pointwise_loss(const char* name, kernels::PointwiseLossArgs args, const Tensor& input,
                             const Tensor& target, const Shape& shape, Dtype dtype,
                             Reduction reduction) {
  if (args.weight.defined()) args.weight = args.weight.detach();
  if (args.pos_weight.defined()) args.pos_weight = args.pos_weight.detach();
  Tensor x = input.detach(), t = target.detach();
  Tensor loss = kernels::pointwise_loss(args, x, t, shape, dtype, reduction);
  if (!autograd::needs_grad({input, target})) return loss;
  const double n = static_cast<double>(numel_of(shape));
  // Every tensor the backward reads is saved (and checked) through a SavedTensor.
  const autograd::SavedTensor sw(args.weight), spw(args.pos_weight);
  args.weight = Tensor();
  args.pos_weight = Tensor();
  // The elementwise derivatives come from a kernel on detached operands: differentiable again
  // only for L1, whose derivative (a sign) has a zero derivative itself.
  const bool once = args.kind != kernels::PointwiseLoss::L1;
  Tensor out =
      record(name, {input, target}, loss,
             [args = std::move(args), sx = autograd::SavedTensor(x), st = autograd::SavedTensor(t),
              sw, spw, shape, dtype, reduction, n](const Grads& g, const Needs& needs) {
               kernels::PointwiseLossArgs a = args;
               a.weight = sw.unpack();
               a.pos_weight = spw.unpack();
               const Tensor x = sx.unpack(), t = st.unpack();
               const Tensor scaled = reduction == Reduction::Mean ? g[0] / n : g[0];
               Grads out(2);
               for (size_t i = 0; i < 2; ++i) {
                 if (needs[i])
                   out[i] = scaled * kernels::pointwise_loss_grad(a, x, t, shape, dtype, i == 1);
               }
               return out;
             });
  return once ? autograd::once_differentiable(out) : out;
}

// input - target style losses: shapes broadcast (PyTorch warns), dtypes promote to a float.
struct PointwiseOperands {
  Shape shape;
  Dtype dtype;
};
PointwiseOperands check_difference_loss(const char* op, const Tensor& input, const Tensor& target) {
  input.checked(op);
  target.checked(op);
  const Dtype dtype = promote_types(input.dtype(), target.dtype());
  GG_CHECK(is_floating(dtype),
           "[{}] input and target must give a floating-point result, got {} {} and {} {}", op,
           dtype_name(input.dtype()), shape_str(input.shape()), dtype_name(target.dtype()),
           shape_str(target.shape()));
  return {broadcast_shapes(input.shape(), target.shape(), op), dtype};
}

// weight or pos_weight of the binary cross-entropies: a float broadcasting to `shape`.
void check_loss_weight(const char* op, const char* what, const Tensor& w, const Shape& shape) {
  if (!w.defined()) return;
  w.checked(op);
  check_floating(w, op, what);
  const Shape& ws = w.shape();
  bool fits = ws.size() <= shape.size();
  for (size_t i = 1; fits && i <= ws.size(); ++i) {
    const int64_t have = ws[ws.size() - i], want = shape[shape.size() - i];
    fits = have == 1 || have == want;
  }
  GG_CHECK(fits, "[{}] {} {} cannot be broadcast to the input's shape {}", op, what, shape_str(ws),
           shape_str(shape));
  check_not_requiring_grad(w, op, what);
}

void check_same_shape(const char* op, const Tensor& input, const Tensor& target) {
  GG_CHECK(input.shape() == target.shape(),
           "[{}] target {} and input {} must have the same shape (as in PyTorch)", op,
           shape_str(target.shape()), shape_str(input.shape()));
}

// PyTorch's binary_cross_entropy refuses values outside [0, 1] (and NaN).
void check_probabilities(const char* op, const char* what, const Tensor& t) {
  std::vector<double> v = t.detach().to(kFloat64).to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    GG_CHECK(v[i] >= 0 && v[i] <= 1,
             "[{}] {} values must be probabilities in [0, 1], got {} at position {} ({} {})", op,
             what, v[i], i, what, shape_str(t.shape()));
  }
}

// nll_loss on targets already validated (c): the kernel and one node. The weighted cross_entropy
// calls it with the targets it validated itself, rather than nll_loss validating them again.
Tensor nll_loss_on(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                   ClassTargets c, Reduction reduction, int64_t ignore_index) {
  kernels::NllOutput r = kernels::nll_loss(log_probs.detach().reshape(c.shape3), c.target,
                                           reduction, ignore_index, 0.0, c.weight);
  Tensor loss = reduction == Reduction::None ? r.loss.reshape(target.shape()) : r.loss;
  if (!autograd::needs_grad({log_probs})) return loss;
  const double divisor = reduction == Reduction::Mean ? r.weight_sum : 1.0;
  // d loss / d log_probs is the incoming gradient times a constant factor, so the backward is a
  // product of ops (and differentiable again with respect to the incoming gradient).
  return record("NllLossBackward", {log_probs}, loss,
                [shape = log_probs.shape(), dtype = log_probs.dtype(), c = std::move(c), reduction,
                 ignore_index, divisor, st = autograd::SavedTensor(target),
                 sw = autograd::SavedTensor(weight)](const Grads& g, const Needs&) {
                  // The backward reads copies of target and weight (in c): checked, as PyTorch
                  // refuses them modified in place after the forward.
                  st.check();
                  sw.check();
                  Tensor factor = kernels::nll_loss_grad_factor(c.shape3, dtype, c.target,
                                                                ignore_index, c.weight, divisor);
                  Tensor gv = reduction == Reduction::None
                                  ? g[0].reshape({c.shape3[0], 1, c.shape3[2]})
                                  : g[0];
                  return Grads{(gv * factor).reshape(shape)};
                });
}
}  // namespace

Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight,
                Reduction reduction, int64_t ignore_index) {
  return nll_loss_on(log_probs, target, weight,
                     check_class_targets(kNllLoss, log_probs, target, weight, ignore_index),
                     reduction, ignore_index);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight,
                     Reduction reduction, int64_t ignore_index, double label_smoothing) {
  if (!weight.defined())
    return cross_entropy(logits, target, reduction, ignore_index, label_smoothing);
  GG_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
           "[cross_entropy] label_smoothing must be in [0, 1], got {}", label_smoothing);
  ClassTargets c = check_class_targets(kCrossEntropy, logits, target, weight, ignore_index);
  // PyTorch's definition, composed of differentiable ops: (1 - s) * nll_loss(log_softmax) plus
  // s / C times the weighted smoothing term -sum_c weight[c] * logp[c], reduced like nll_loss.
  const int64_t class_dim = logits.dim() == 1 ? 0 : 1;
  Tensor logp = log_softmax(logits, class_dim);
  if (label_smoothing == 0)
    return nll_loss_on(logp, target, weight, std::move(c), reduction, ignore_index);
  Tensor nll = nll_loss_on(logp, target, weight, c, reduction, ignore_index);
  Shape wshape(logits.dim(), 1);
  wshape[class_dim] = c.shape3[1];
  std::vector<double> keep(c.target.size());
  double weight_sum = 0;
  for (size_t i = 0; i < keep.size(); ++i) {
    keep[i] = c.target[i] == ignore_index ? 0.0 : 1.0;
    if (keep[i] != 0) weight_sum += c.weight[c.target[i]];
  }
  Tensor smooth = sum(logp * weight.detach().reshape(wshape).to(logp.dtype()), class_dim) *
                  tensor<double>(keep, target.shape()).to(logp.dtype());
  smooth = neg(smooth);
  if (reduction == Reduction::Sum) smooth = sum(smooth);
  if (reduction == Reduction::Mean) smooth = sum(smooth) / weight_sum;
  return (1.0 - label_smoothing) * nll +
         label_smoothing / static_cast<double>(c.shape3[1]) * smooth;
}

Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight,
                            Reduction reduction) {
  const char* op = "binary_cross_entropy";
  input.checked(op);
  target.checked(op);
  check_floating(input, op, "input");
  GG_CHECK(target.dtype() == input.dtype(),
           "[{}] target is {} but input is {}: they must have the same dtype (as in PyTorch)", op,
           dtype_name(target.dtype()), dtype_name(input.dtype()));
  check_same_shape(op, input, target);
  check_loss_weight(op, "weight", weight, input.shape());
  check_probabilities(op, "input", input);
  check_probabilities(op, "target", target);
  return record_pointwise_loss("BinaryCrossEntropyBackward",
                               {kernels::PointwiseLoss::Bce, 0.0, weight, Tensor()}, input, target,
                               input.shape(), input.dtype(), reduction);
}

Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight, const Tensor& pos_weight,
                                        Reduction reduction) {
  const char* op = "binary_cross_entropy_with_logits";
  input.checked(op);
  target.checked(op);
  check_same_shape(op, input, target);
  PointwiseOperands o = check_difference_loss(op, input, target);
  check_loss_weight(op, "weight", weight, input.shape());
  check_loss_weight(op, "pos_weight", pos_weight, input.shape());
  return record_pointwise_loss("BinaryCrossEntropyWithLogitsBackward",
                               {kernels::PointwiseLoss::BceWithLogits, 0.0, weight, pos_weight},
                               input, target, o.shape, o.dtype, reduction);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  PointwiseOperands o = check_difference_loss("l1_loss", input, target);
  return record_pointwise_loss("L1LossBackward", {kernels::PointwiseLoss::L1}, input, target,
                               o.shape, o.dtype, reduction);
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction reduction, double beta) {
  PointwiseOperands o = check_difference_loss("smooth_l1_loss", input, target);
  GG_CHECK(beta >= 0 && std::isfinite(beta),
           "[smooth_l1_loss] beta must be finite and >= 0, got {}", beta);
  return record_pointwise_loss("SmoothL1LossBackward", {kernels::PointwiseLoss::SmoothL1, beta},
                               input, target, o.shape, o.dtype, reduction);
}

Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction, double delta) {
  PointwiseOperands o = check_difference_loss("huber_loss", input, target);
  GG_CHECK(delta > 0 && std::isfinite(delta), "[huber_loss] delta must be finite and > 0, got {}",
           delta);
  return record_pointwise_loss("HuberLossBackward", {kernels::PointwiseLoss::Huber, delta}, input,
                               target, o.shape, o.dtype, reduction);
}

}  // namespace gg
