#pragma once
// Elementwise kernels without autograd: broadcasting, promotion, and the choice between oneDNN
// (Float32/BFloat16, where a primitive fits) and the plain loops (every dtype).
#include "../../core/tensor.hpp"
#include "../op_kinds.hpp"

namespace gg::kernels {

// The op kinds live in ops/op_kinds.hpp (the oneDNN backends share them); these keep the
// kernels:: spellings working.
using gg::binary_result_dtype;
using gg::BinaryOp;
using gg::is_comparison;
using gg::UnaryOp;

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const char* name);
// `scalar` is the exponent for Pow. Integer inputs compute in Float32 (except Neg and Abs).
Tensor unary(UnaryOp op, const Tensor& x, double scalar, const char* name);
// grad * gelu'(x), GeluBackward's gradient: one oneDNN pass for contiguous Float32 operands,
// else Mul of grad and the GeluGrad loop.
Tensor gelu_backward(const Tensor& grad, const Tensor& x);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
// dst += src in place, for the engine's gradient accumulation: same shape and floating dtype, dst
// contiguous. The sum is the one binary(Add) computes (in float for the 16-bit floats), element
// for element.
void add_into(const Tensor& dst, const Tensor& src);

}  // namespace gg::kernels
