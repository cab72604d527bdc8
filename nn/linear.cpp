#include "nn/linear.hpp"

#include <cmath>

#include "nn/functional.hpp"
#include "nn/init.hpp"

namespace gg::nn {

Linear::Linear(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  GG_CHECK(in_features >= 0 && out_features >= 0,
           "[Linear] in_features and out_features must be >= 0, got {} and {}", in_features,
           out_features);
  weight = register_parameter("weight", empty({out_features, in_features}));
  if (bias) this->bias = register_parameter("bias", empty({out_features}));
  reset_parameters();
}

void Linear::reset_parameters() {
  const double bound = in_features_ > 0 ? 1.0 / std::sqrt(static_cast<double>(in_features_)) : 0.0;
  if (in_features_ > 0) {
    init::kaiming_uniform_(weight, std::sqrt(5.0));
  } else {
    init::zeros_(weight);
  }
  if (bias.defined()) init::uniform_(bias, -bound, bound);
}

Tensor Linear::forward(const Tensor& x) { return functional::linear(x, weight, bias); }

}  // namespace gg::nn
