#pragma once
// Elementwise ops with NumPy broadcasting and type promotion. All differentiable for float dtypes.
#include <optional>

#include "../core/tensor.hpp"

namespace gg {

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);  // true division: integers give float32
// Elementwise max/min (NaN propagates); at ties the gradient is split in halves, as in PyTorch.
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor gelu(const Tensor& x);  // exact (erf) form, PyTorch's default
Tensor abs(const Tensor& x);
// sin and cos, differentiable; integer inputs give Float32, as in PyTorch.
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);

// clamp(x, min, max) = min(max(x, min), max) as torch.clamp: at least one bound (std::nullopt is
// none); NaN in x or a bound gives NaN; min > max gives max. Integer x keeps its dtype (Float32
// when a bound is fractional; an integer bound outside the dtype's range throws). The gradient
// passes where min < x < max strictly (PyTorch 2.15 gives 0 at the bounds).
Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max);
Tensor clamp_min(const Tensor& x, double min);  // clamp(x, min, std::nullopt)
Tensor clamp_max(const Tensor& x, double max);  // clamp(x, std::nullopt, max)
// Tensor bounds, broadcast with x (an undefined Tensor is no bound; one must be defined); the
// dtype is promoted over all three; differentiable in x and both bounds (ties split the gradient).
Tensor clamp(const Tensor& x, const Tensor& min, const Tensor& max);

// remainder: a - b * floor(a / b), with the sign of b (Python's %, torch.remainder); fmod: with the
// sign of a (C's fmod, torch.fmod). Broadcasting and promotion as the arithmetic ops; integers stay
// integers, and an integer 0 in b throws. Gradients: d/da = 1, d/db = -floor(a / b) (remainder)
// or -trunc(a / b) (fmod).
Tensor remainder(const Tensor& a, const Tensor& b);
Tensor remainder(const Tensor& a, double b);
Tensor fmod(const Tensor& a, const Tensor& b);
Tensor fmod(const Tensor& a, double b);

// x with `value` where mask is nonzero (any dtype: there is no bool dtype, and gg::eq/gt/lt give
// Float32 0/1 masks). mask broadcasts to x's shape, which the result keeps, in x's dtype (an
// integer x truncates the value, and throws if it cannot hold it). The gradient to x is 0 where
// filled; a 0-d tensor value (torch requires 0-d too) gets the sum of the gradient there.
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor masked_fill(const Tensor& x, const Tensor& mask, const Tensor& value);

// A Float32 mask (no grad): 1 where |a - b| <= atol + rtol * |b|, or a == b, or both NaN with
// equal_nan. a and b broadcast and must have one dtype (as in torch); rtol, atol >= 0.
Tensor isclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8,
               bool equal_nan = false);
// Whether isclose holds everywhere (true for empty tensors).
bool allclose(const Tensor& a, const Tensor& b, double rtol = 1e-5, double atol = 1e-8,
              bool equal_nan = false);
// torch.equal: same shape and equal values (compared after promotion, so int 1 equals float 1.0;
// NaN equals nothing). Different shapes give false, not an error.
bool equal(const Tensor& a, const Tensor& b);

// Comparisons give Float32 masks of 0 and 1 (no grad), broadcasting like the arithmetic ops.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
// where(cond, a, b): a where cond != 0, else b; cond, a and b broadcast together and a and b are
// promoted, as torch.where; differentiable in a and b.
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// A scalar operand takes the other's dtype (Float32 if it is fractional and the tensor integer).
Tensor where(const Tensor& cond, const Tensor& a, double b);
Tensor where(const Tensor& cond, double a, const Tensor& b);

// A scalar as a 0-d tensor of the dtype an op with `like` should compute in.
Tensor scalar_like(double value, const Tensor& like);

}  // namespace gg
