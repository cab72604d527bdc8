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

Tensor Linear::forward(const Tensor& x) {
  GG_CHECK(x.defined(), "[Linear] input is an undefined tensor");
  GG_CHECK(x.dim() >= 1 && x.size(-1) == in_features_,
           "[Linear] input must be [*, in_features={}], got {} (input {}, weight {})", in_features_,
           x.dim() == 0 ? std::string("a 0-dim tensor")
                        : fmt::format("{} features in its last dim", x.size(-1)),
           describe(x), describe(weight));
  GG_CHECK(x.dtype() == weight.dtype(),
           "[Linear] input is {} but the weight is {} (input {}, weight {}); convert one of them "
           "(module.to(dtype) or input.to(dtype))",
           dtype_name(x.dtype()), dtype_name(weight.dtype()), describe(x), describe(weight));
  return functional::linear(x, weight, bias);
}

void Linear::pretty_print(std::ostream& stream) const {
  stream << fmt::format("gg::nn::Linear(in_features={}, out_features={}, bias={})", in_features_,
                        out_features_, bias.defined());
}

std::shared_ptr<Module> Linear::clone() const {
  auto copy = std::make_shared<Linear>(in_features_, out_features_, bias.defined());
  clone_state_into(*copy);
  return copy;
}

}  // namespace gg::nn
