#include "nn/layer_norm.hpp"

#include "nn/init.hpp"
#include "ops/nn_ops.hpp"

namespace gg::nn {

LayerNorm::LayerNorm(Shape normalized_shape, double eps, bool elementwise_affine)
    : normalized_shape_(std::move(normalized_shape)), eps_(eps) {
  GG_CHECK(!normalized_shape_.empty(), "[LayerNorm] normalized_shape must not be empty");
  for (int64_t d : normalized_shape_)
    GG_CHECK(d > 0, "[LayerNorm] normalized_shape must be positive, got {}",
             shape_str(normalized_shape_));
  GG_CHECK(eps >= 0, "[LayerNorm] eps must be >= 0, got {}", eps);
  if (elementwise_affine) {
    weight = register_parameter("weight", empty(normalized_shape_));
    bias = register_parameter("bias", empty(normalized_shape_));
  }
  reset_parameters();
}

void LayerNorm::reset_parameters() {
  if (weight.defined()) init::ones_(weight);
  if (bias.defined()) init::zeros_(bias);
}

Tensor LayerNorm::forward(const Tensor& x) {
  return layer_norm(x, normalized_shape_, weight, bias, eps_);
}

}  // namespace gg::nn
