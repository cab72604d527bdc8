#pragma once
// Neural-network ops: normalisations, softmax, losses, dropout.
#include "../core/tensor.hpp"
#include "loss_reduction.hpp"

namespace gg {

Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
// Normalises over the trailing dims given by normalized_shape; weight/bias optional (undefined).
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight = {},
                  const Tensor& bias = {}, double eps = 1e-5);

// logits (N, C) or (N, C, d...) and Int64/Int32 class targets (N) or (N, d...);
// ignore_index targets contribute nothing; label_smoothing as in PyTorch.
Tensor cross_entropy(const Tensor& logits, const Tensor& target,
                     Reduction reduction = Reduction::Mean, int64_t ignore_index = -100,
                     double label_smoothing = 0.0);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// Zeroes elements with probability p and scales the rest by 1/(1-p) when training.
Tensor dropout(const Tensor& x, double p, bool training);

// ---- more losses, with PyTorch's semantics (torch.nn.functional) -------------------------------

// cross_entropy with a class weight (C) as PyTorch: each position's loss is scaled by
// weight[target] (the smoothing term by weight[c]) and Mean divides by the sum of weight[target]
// over the non-ignored positions. An undefined weight is the overload above.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight,
                     Reduction reduction = Reduction::Mean, int64_t ignore_index = -100,
                     double label_smoothing = 0.0);
// Negative log-likelihood of log-probabilities (C) with a 0-d target, (N, C) with (N), or
// (N, C, d...) with (N, d...); Int64/Int32 targets (PyTorch takes Int64 only). loss = -weight[t] *
// log_probs[t]; Mean divides by the sum of weight[t] over targets != ignore_index (NaN if none).
// weight: undefined or (C), not differentiable; gradients flow to log_probs.
Tensor nll_loss(const Tensor& log_probs, const Tensor& target, const Tensor& weight = {},
                Reduction reduction = Reduction::Mean, int64_t ignore_index = -100);
// -weight * (target * log(input) + (1 - target) * log(1 - input)), logs clamped at -100 as
// PyTorch. input and target: same shape and floating dtype, values in [0, 1] (else gg::Error);
// weight broadcasts to the input's shape and is not differentiable. Gradients to input and target.
Tensor binary_cross_entropy(const Tensor& input, const Tensor& target, const Tensor& weight = {},
                            Reduction reduction = Reduction::Mean);
// binary_cross_entropy(sigmoid(input), target) in a form that never overflows (any logits):
// weight * ((1 - target) * x + (1 + (pos_weight - 1) * target) * log(1 + exp(-x))). input and
// target have the same shape (dtypes promote); weight and pos_weight broadcast to it (pos_weight
// (C) along the last dim) and are not differentiable. Gradients to input and target.
Tensor binary_cross_entropy_with_logits(const Tensor& input, const Tensor& target,
                                        const Tensor& weight = {}, const Tensor& pos_weight = {},
                                        Reduction reduction = Reduction::Mean);
// |input - target|; input and target broadcast (PyTorch warns) and promote. Gradients to both
// (0 where they are equal, as PyTorch).
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);
// 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = input - target, broadcast as l1_loss);
// beta = 0 is l1_loss; a negative beta is a gg::Error.
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target,
                      Reduction reduction = Reduction::Mean, double beta = 1.0);
// 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta) (d = input - target, broadcast as
// l1_loss); delta must be > 0. The dtypes promote (PyTorch keeps the input's dtype).
Tensor huber_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean,
                  double delta = 1.0);

}  // namespace gg
