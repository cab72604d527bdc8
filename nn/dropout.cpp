#include "nn/dropout.hpp"

#include "ops/nn_ops.hpp"

namespace gg::nn {

Dropout::Dropout(double p) : p_(p) {
  GG_CHECK(p >= 0 && p <= 1, "[Dropout] probability p must be in [0, 1], got {}", p);
}

Tensor Dropout::forward(const Tensor& x) {
  GG_CHECK(x.defined(), "[Dropout] input is an undefined tensor");
  GG_CHECK(x.is_floating_point(), "[Dropout] input must be floating-point, got {}", describe(x));
  return dropout(x, p_, is_training());
}

void Dropout::pretty_print(std::ostream& stream) const {
  stream << "gg::nn::Dropout(p=" << p_ << ")";  // the stream's formatting, as libtorch
}

std::shared_ptr<Module> Dropout::clone() const {
  auto copy = std::make_shared<Dropout>(p_);
  clone_state_into(*copy);
  return copy;
}

}  // namespace gg::nn
