#pragma once
#include "module.hpp"

namespace gg::nn {

// Normalises over the trailing dims `normalized_shape`, then scales by weight (ones) and shifts by
// bias (zeros) when elementwise_affine.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  explicit LayerNorm(int64_t dim, double eps = 1e-5, bool elementwise_affine = true)
      : LayerNorm(Shape{dim}, eps, elementwise_affine) {}
  Tensor forward(const Tensor& x);
  void reset_parameters();

  const Shape& normalized_shape() const { return normalized_shape_; }
  double eps() const { return eps_; }

  Tensor weight;  // undefined without elementwise_affine
  Tensor bias;

 private:
  Shape normalized_shape_;
  double eps_;
};

}  // namespace gg::nn
