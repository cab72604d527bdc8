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
struct NllOutput {
  Tensor loss;
  int64_t count = 0;  // non-ignored positions
};
NllOutput nll_loss(const Tensor& logp, const std::vector<int64_t>& target, Reduction reduction,
                   int64_t ignore_index, double smoothing);
// d loss / d logits of cross_entropy = nll_loss(log_softmax(logits, 1)) in one pass, from the
// saved logp: w * (softmax - (1 - smoothing) * onehot(target) - smoothing / C) per position,
// w = grad (None) or grad / count (Mean); 0 where ignored. Shape and dtype of logp.
Tensor cross_entropy_backward(const Tensor& grad, const Tensor& logp,
                              const std::vector<int64_t>& target, Reduction reduction,
                              int64_t ignore_index, double smoothing, int64_t count);

}  // namespace gg::kernels
