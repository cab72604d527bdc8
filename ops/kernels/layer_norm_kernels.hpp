#pragma once
// Layer norm forward and backward without autograd or validation (ops/nn_ops.cpp validates and
// records). The forward runs on oneDNN for Float32 and BFloat16 and on the plain loop of
// ops/reference/nn.hpp for the other float dtypes; the backward is one loop for every dtype.
#include <cstdint>

#include "../../core/tensor.hpp"
#include "../reference/nn.hpp"

namespace gg::kernels {

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

}  // namespace gg::kernels
