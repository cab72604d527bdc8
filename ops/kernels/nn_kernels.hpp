#pragma once
// Kernels of the nn and shape ops, without autograd or validation (ops/nn_ops.cpp and
// ops/shape_ops.cpp validate and record). Softmax and layer_norm run on oneDNN for Float32 and
// BFloat16; the plain loops of ops/reference/nn.hpp run every float dtype and are the tests'
// oracle.
#include <cstdint>
#include <vector>

#include "../../core/tensor.hpp"
#include "../loss_reduction.hpp"
#include "../reference/nn.hpp"

namespace gg::kernels {

// (log_)softmax of x along dim, as a new contiguous tensor of x's dtype (x: a float dtype, any
// strides, at least 1-d).
Tensor softmax(const Tensor& x, int64_t dim, bool log);

// Layer norm as reference::layer_norm computes it (see there), on oneDNN where it fits.
using reference::LayerNormOutput;
LayerNormOutput layer_norm(const Tensor& x, int64_t cols, const Tensor& weight, const Tensor& bias,
                           double eps, bool stats);
// Gradients of layer_norm for the inputs asked for (the others are undefined): dx like x,
// dweight and dbias [cols], all of grad's dtype.
struct LayerNormGrads {
  Tensor dx, dweight, dbias;
};
LayerNormGrads layer_norm_backward(const Tensor& grad, const Tensor& x, const Tensor& mean,
                                   const Tensor& rstd, const Tensor& weight, int64_t cols,
                                   bool need_dx, bool need_dweight, bool need_dbias);

// out = x with dim restricted to the rows in `index` (each already checked to be in range).
Tensor index_select(const Tensor& x, int64_t dim, const std::vector<int64_t>& index);
// A zero tensor of `shape` (dtype of src) with src's rows added at the rows in `index` along
// dim (repeated indices accumulate): the gradient of index_select.
Tensor index_add(const Shape& shape, int64_t dim, const std::vector<int64_t>& index,
                 const Tensor& src);

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

// Dropout's mask: 0 with probability p, else 1 / (1 - p); draws from gg::global_generator().
Tensor dropout_mask(const Shape& shape, Dtype dtype, double p);

}  // namespace gg::kernels
