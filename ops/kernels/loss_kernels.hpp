#pragma once
// The negative log-likelihood and cross-entropy kernels, without autograd or validation
// (ops/nn_ops.cpp checks the targets and records).
#include <cstdint>
#include <vector>

#include "../../core/tensor.hpp"
#include "../loss_reduction.hpp"

namespace gg::kernels {

// Negative log-likelihood with label smoothing over log-probabilities logp [N, C, D] (D = the
// product of the trailing dims, 1 for [N, C]) and class targets [N * D] (already checked against
// C, or equal to ignore_index): per position
//   loss = -(1 - smoothing) * logp[target] - smoothing / C * sum_c logp[c],  0 where ignored.
// Returns losses of shape [N * D] for Reduction::None, else a 0-d sum (Sum) or the sum over the
// count of non-ignored positions (Mean, NaN when there are none), in logp's dtype.
// With class weights (one per class, or empty for all 1) each position's loss is scaled by
// weight[target], and Mean divides by the sum of weight[target] over the non-ignored positions
// (PyTorch's nll_loss; smoothing must then be 0).
struct NllOutput {
  Tensor loss;
  int64_t count = 0;        // non-ignored positions
  double weight_sum = 0.0;  // sum of weight[target] over them (== count without weights)
};
NllOutput nll_loss(const Tensor& logp, const std::vector<int64_t>& target, Reduction reduction,
                   int64_t ignore_index, double smoothing, const std::vector<double>& weight = {});
// d nll_loss / d logp [N, C, D] without the incoming gradient: -weight[target] / divisor at each
// non-ignored position's target class, 0 elsewhere, in `dtype` (divisor: the weight sum for Mean,
// 1 otherwise). The op multiplies it by the incoming gradient.
Tensor nll_loss_grad_factor(const Shape& shape, Dtype dtype, const std::vector<int64_t>& target,
                            int64_t ignore_index, const std::vector<double>& weight,
                            double divisor);
// d loss / d logits of cross_entropy = nll_loss(log_softmax(logits, 1)) in one pass, from the
// saved logp: w * (softmax - (1 - smoothing) * onehot(target) - smoothing / C) per position,
// w = grad (None) or grad / count (Mean); 0 where ignored. Shape and dtype of logp.
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logp,
                              const std::vector<int64_t>& target, Reduction reduction,
                              int64_t ignore_index, double smoothing, int64_t count);

// The elementwise losses of input x and target t (broadcast together to `shape`), per element:
//   L1            |x - t|
//   SmoothL1      0.5 (x - t)^2 / beta where |x - t| < beta, else |x - t| - 0.5 beta (beta 0: L1)
//   Huber         0.5 (x - t)^2 where |x - t| < delta, else delta (|x - t| - 0.5 delta)
//   Bce           -w (t max(log x, -100) + (1 - t) max(log(1 - x), -100))
//   BceWithLogits w ((1 - t) x + (1 + (pw - 1) t) softplus(-x)), softplus(-x) = log1p(exp(-|x|))
//                 + max(-x, 0), which never overflows
// `param` is beta or delta; weight w and pos_weight pw are undefined (1) or broadcast to `shape`.
enum class PointwiseLoss { L1, SmoothL1, Huber, Bce, BceWithLogits };
struct PointwiseLossArgs {
  PointwiseLoss kind = PointwiseLoss::L1;
  double param = 0.0;
  Tensor weight = {}, pos_weight = {};
};
// The losses, computed in double and returned in `dtype`: per element (None, shape `shape`), or
// their 0-d sum (Sum) or mean (Mean; NaN when there are no elements).
Tensor pointwise_loss(const PointwiseLossArgs& args, const Tensor& x, const Tensor& t,
                      const Shape& shape, Dtype dtype, Reduction reduction);
// d loss / d x (or d loss / d t when wrt_target) per element, shape `shape`, in `dtype`.
Tensor pointwise_loss_grad(const PointwiseLossArgs& args, const Tensor& x, const Tensor& t,
                           const Shape& shape, Dtype dtype, bool wrt_target);

}  // namespace gg::kernels
