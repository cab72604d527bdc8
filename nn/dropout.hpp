#pragma once
#include "module.hpp"

namespace gg::nn {

// In training mode zeroes each element with probability p and scales the rest by 1 / (1 - p);
// in eval mode returns its input unchanged.
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5);
  Tensor forward(const Tensor& x);
  double p() const { return p_; }

 private:
  double p_;
};

}  // namespace gg::nn
