// The Tensor methods that forward to elementwise and softmax ops (declared on Tensor in core, as
// the other math methods are; see docs/architecture.md on names declared low and defined high).
#include "core/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/nn_ops.hpp"

namespace gg {

Tensor Tensor::abs() const { return gg::abs(*this); }
Tensor Tensor::sin() const { return gg::sin(*this); }
Tensor Tensor::cos() const { return gg::cos(*this); }
Tensor Tensor::clamp(std::optional<double> min, std::optional<double> max) const {
  return gg::clamp(*this, min, max);
}
Tensor Tensor::clamp(const Tensor& min, const Tensor& max) const {
  return gg::clamp(*this, min, max);
}
Tensor Tensor::clamp_min(double min) const { return gg::clamp_min(*this, min); }
Tensor Tensor::clamp_max(double max) const { return gg::clamp_max(*this, max); }
Tensor Tensor::softmax(int64_t dim) const { return gg::softmax(*this, dim); }
Tensor Tensor::log_softmax(int64_t dim) const { return gg::log_softmax(*this, dim); }
Tensor Tensor::remainder(const Tensor& other) const { return gg::remainder(*this, other); }
Tensor Tensor::remainder(double other) const { return gg::remainder(*this, other); }
Tensor Tensor::fmod(const Tensor& other) const { return gg::fmod(*this, other); }
Tensor Tensor::fmod(double other) const { return gg::fmod(*this, other); }
Tensor Tensor::masked_fill(const Tensor& mask, double value) const {
  return gg::masked_fill(*this, mask, value);
}
Tensor Tensor::masked_fill(const Tensor& mask, const Tensor& value) const {
  return gg::masked_fill(*this, mask, value);
}
Tensor Tensor::isclose(const Tensor& other, double rtol, double atol, bool equal_nan) const {
  return gg::isclose(*this, other, rtol, atol, equal_nan);
}
bool Tensor::allclose(const Tensor& other, double rtol, double atol, bool equal_nan) const {
  return gg::allclose(*this, other, rtol, atol, equal_nan);
}
bool Tensor::equal(const Tensor& other) const { return gg::equal(*this, other); }

}  // namespace gg
