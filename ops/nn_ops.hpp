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

}  // namespace gg
