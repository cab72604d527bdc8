#include "nn/layer_norm.hpp"

#include <algorithm>

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
  GG_CHECK(x.defined(), "[LayerNorm] input is an undefined tensor");
  GG_CHECK(x.is_floating_point(), "[LayerNorm] input must be floating-point, got {}", describe(x));
  const auto k = static_cast<int64_t>(normalized_shape_.size());
  GG_CHECK(x.dim() >= k &&
               std::equal(normalized_shape_.begin(), normalized_shape_.end(), x.shape().end() - k),
           "[LayerNorm] input must end in normalized_shape {} ([*, {}), got {}",
           shape_str(normalized_shape_),
           shape_str(normalized_shape_).substr(1),  // "2, 3]": the sizes after "[*, "
           describe(x));
  GG_CHECK(!weight.defined() || x.dtype() == weight.dtype(),
           "[LayerNorm] input is {} but the weight is {} (input {}, weight {}); convert one of "
           "them (module.to(dtype) or input.to(dtype))",
           dtype_name(x.dtype()), dtype_name(weight.dtype()), describe(x), describe(weight));
  return layer_norm(x, normalized_shape_, weight, bias, eps_);
}

void LayerNorm::pretty_print(std::ostream& stream) const {
  // eps in the stream's default format, as libtorch prints it (1e-05).
  stream << "gg::nn::LayerNorm(" << shape_str(normalized_shape_) << ", eps=" << eps_
         << ", elementwise_affine=" << (weight.defined() ? "true" : "false") << ")";
}

std::shared_ptr<Module> LayerNorm::clone() const {
  auto copy = std::make_shared<LayerNorm>(normalized_shape_, eps_, weight.defined());
  clone_state_into(*copy);
  return copy;
}

}  // namespace gg::nn
