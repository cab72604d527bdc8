#pragma once
#include "module.hpp"

namespace gg::nn {

// In training mode zeroes each element with probability p and scales the rest by 1 / (1 - p);
// in eval mode returns its input unchanged.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  // x must be floating-point (gg::Error naming Dropout otherwise).
  Tensor forward(const Tensor& x);
  double p() const { return p_; }
  // "gg::nn::Dropout(p=0.5)" (libtorch also prints inplace=, an option this layer does not have).
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<Module> clone() const override;

 private:
  double p_;
};

}  // namespace gg::nn
