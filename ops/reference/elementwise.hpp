#pragma once
// The plain elementwise loops: every dtype, any strides, NumPy broadcasting. They run what oneDNN
// does not (Float64, Float16, integers, small problems) and are the oracle that the tests compare
// the oneDNN paths with. They trust their inputs: the ops validate and decide the out dtype.
#include <cstdint>
#include <optional>
#include <type_traits>

#include "core/tensor.hpp"
#include "ops/op_kinds.hpp"

namespace gg::reference {

// Compute type of the loops: double for f64, float for the other floats, int64 for integers.
template <class T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double,
                               std::conditional_t<std::is_integral_v<T>, int64_t, float>>;

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, Dtype out_dtype);
// `scalar` is the exponent for Pow.
Tensor unary(UnaryOp op, const Tensor& x, double scalar, Dtype out_dtype);
// min(max(x, lo), hi) in out_dtype (x's, or Float32 for integer x with a fractional bound); an
// absent bound is no bound; NaN in x or a bound gives NaN; lo > hi gives hi (PyTorch's clamp).
Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi, Dtype out_dtype);
// A Float32 mask: 1 where |a - b| <= atol + rtol |b|, or a == b, or (equal_nan) both are NaN.
// a and b have one dtype and broadcast to shape.
Tensor isclose(const Tensor& a, const Tensor& b, const Shape& shape, double rtol, double atol,
               bool equal_nan);

}  // namespace gg::reference
