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
  // Checks the input against the layer (dtype, trailing dims) and names LayerNorm in the error.
  Tensor forward(const Tensor& x);
  void reset_parameters();
  // "gg::nn::LayerNorm([4], eps=1e-05, elementwise_affine=true)", as libtorch prints it.
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<Module> clone() const override;

  const Shape& normalized_shape() const { return normalized_shape_; }
  double eps() const { return eps_; }

  Tensor weight;  // undefined without elementwise_affine
  Tensor bias;

 private:
  Shape normalized_shape_;
  double eps_;
};

}  // namespace gg::nn
