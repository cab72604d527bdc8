#pragma once
// Elementwise kernels without autograd: the choice between oneDNN (Float32/BFloat16, where a
// primitive fits) and the plain loops (every dtype). binary and unary take the shape and dtype
// that the op (ops/elementwise.cpp) validated and decided.
#include <optional>

#include "../../core/tensor.hpp"
#include "../op_kinds.hpp"

namespace gg::kernels {

// The op kinds live in ops/op_kinds.hpp (the oneDNN backends share them); these keep the
// kernels:: spellings working.
using gg::binary_result_dtype;
using gg::BinaryOp;
using gg::is_comparison;
using gg::UnaryOp;

// The kernels trust their inputs: the op (ops/elementwise.cpp) has checked that they are defined,
// that a and b broadcast to `shape`, and decided out_dtype (binary_result_dtype; for unary, x's
// dtype or Float32).
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const Shape& shape, Dtype out_dtype);
// `scalar` is the exponent for Pow.
Tensor unary(UnaryOp op, const Tensor& x, double scalar, Dtype out_dtype);
// min(max(x, lo), hi), an absent bound being none (PyTorch's clamp: NaN propagates, lo > hi gives
// hi): oneDNN's clip for f32/bf16 where it fits, else the loop. The op decided out_dtype and
// checked that integer bounds fit it.
Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi, Dtype out_dtype);
// isclose's Float32 mask of a and b (one dtype, broadcast to shape): the plain loop.
Tensor isclose(const Tensor& a, const Tensor& b, const Shape& shape, double rtol, double atol,
               bool equal_nan);
// grad * gelu'(x), GeluBackward's gradient: one oneDNN pass for contiguous Float32 operands,
// else Mul of grad and the GeluGrad loop.
Tensor gelu_backward(const Tensor& grad, const Tensor& x);
// a where cond is nonzero, else b, all broadcast to `shape`, in dtype (the op promoted a and b).
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape, Dtype dtype);
// dst += src in place, for the engine's gradient accumulation: same shape and floating dtype, dst
// contiguous. The sum is the one binary(Add) computes (in float for the 16-bit floats), element
// for element.
void add_into(const Tensor& dst, const Tensor& src);

}  // namespace gg::kernels
