#include "nn/dropout.hpp"

#include "ops/nn_ops.hpp"

namespace gg::nn {

Dropout::Dropout(double p) : p_(p) {
  GG_CHECK(p >= 0 && p <= 1, "[Dropout] probability p must be in [0, 1], got {}", p);
}

Tensor Dropout::forward(const Tensor& x) { return dropout(x, p_, is_training()); }

}  // namespace gg::nn
