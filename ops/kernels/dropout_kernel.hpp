#pragma once
// Dropout's mask, without autograd (ops/nn_ops.cpp validates p and multiplies).
#include <cstdint>

#include "../../core/tensor.hpp"

namespace gg::kernels {

// Dropout's mask: 0 with probability p, else 1 / (1 - p); draws from gg::global_generator().
Tensor dropout_mask(const Shape& shape, Dtype dtype, double p);

}  // namespace gg::kernels
