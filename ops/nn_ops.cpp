// Neural-network ops: validation and autograd here, kernels in ops/kernels/
// (oneDNN softmax and layer_norm for Float32/BFloat16, plain loops otherwise).
#include "ops/nn_ops.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/node.hpp"
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
  return record("LayerNormBackward", {x, weight, bias}, r.y,
                [x = autograd::SavedTensor(x), w = autograd::SavedTensor(weight), mean = r.mean,
                 rstd = r.rstd, normalized_shape, cols](const Grads& g, const Needs& needs) {
                  kernels::LayerNormGrads d = kernels::layer_norm_backward(
                      g[0], x.unpack(), mean, rstd, w.unpack(), cols, needs[0], needs[1], needs[2]);
                  if (d.dweight.defined()) d.dweight = d.dweight.reshape(normalized_shape);
                  if (d.dbias.defined()) d.dbias = d.dbias.reshape(normalized_shape);
                  return Grads{d.dx, d.dweight, d.dbias};
                });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction,
                     int64_t ignore_index, double label_smoothing) {
  logits.checked("cross_entropy");
  target.checked("cross_entropy");
  check_floating(logits, "cross_entropy", "logits");
  GG_CHECK(target.dtype() == kInt64 || target.dtype() == kInt32,
           "[cross_entropy] target must hold class indices as int64 or int32, got {} {}",
           dtype_name(target.dtype()), shape_str(target.shape()));
  GG_CHECK(logits.dim() >= 1,
           "[cross_entropy] logits must be (C), (N, C) or (N, C, d...), got 0-d");
  GG_CHECK(label_smoothing >= 0 && label_smoothing <= 1,
           "[cross_entropy] label_smoothing must be in [0, 1], got {}", label_smoothing);
  // (C) with a 0-d target is one sample: (1, C) with (1).
  const bool unbatched = logits.dim() == 1;
  Shape lshape = unbatched ? Shape{1, logits.size(0)} : logits.shape();
  Shape expected = lshape;
  expected.erase(expected.begin() + 1);
  if (unbatched) expected.clear();
  GG_CHECK(target.shape() == expected,
           "[cross_entropy] target has shape {} but logits {} need a target of shape {}",
           shape_str(target.shape()), shape_str(logits.shape()), shape_str(expected));
  const int64_t N = lshape[0], C = lshape[1];
  const int64_t D = numel_of(Shape(lshape.begin() + 2, lshape.end()));
  GG_CHECK(C > 0, "[cross_entropy] logits {} have no classes", shape_str(logits.shape()));
  std::vector<int64_t> t = target.to(kInt64).to_vector<int64_t>();
  for (size_t i = 0; i < t.size(); ++i) {
    GG_CHECK(t[i] == ignore_index || (t[i] >= 0 && t[i] < C),
             "[cross_entropy] target {} at position {} is out of range for {} classes (valid: 0 to "
             "{}, or ignore_index {})",
             t[i], i, C, C - 1, ignore_index);
  }
  // One node for log_softmax + nll: its backward is a single pass over the saved logp.
  Tensor logp = kernels::softmax(logits.detach().reshape({N, C, D}), 1, true);
  kernels::NllOutput nll = kernels::nll_loss(logp, t, reduction, ignore_index, label_smoothing);
  Tensor loss = reduction == Reduction::None ? nll.loss.reshape(target.shape()) : nll.loss;
  if (!autograd::needs_grad({logits})) return loss;
  return record("CrossEntropyBackward", {logits}, loss,
                [shape = logits.shape(), logp, t = std::move(t), reduction, ignore_index,
                 label_smoothing, count = nll.count](const Grads& g, const Needs&) {
                  return Grads{kernels::cross_entropy_backward(g[0], logp, t, reduction,
                                                               ignore_index, label_smoothing, count)
                                   .reshape(shape)};
                });
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

}  // namespace gg
