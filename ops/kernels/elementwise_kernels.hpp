#pragma once
// Elementwise kernels without autograd: broadcasting, promotion, and the choice between oneDNN
// (Float32/BFloat16, where a primitive fits) and the plain loops (every dtype).
#include "../../core/tensor.hpp"

namespace gg::kernels {

enum class BinaryOp { Add, Sub, Mul, Div, Max, Min, Eq, Gt, Lt, Ge, Le };
enum class UnaryOp { Neg, Exp, Log, Sqrt, Pow, Tanh, Sigmoid, Relu, Gelu, GeluGrad, Abs, Sign };

bool is_comparison(BinaryOp op);
// Result dtype of a binary op: promoted; Div of integers gives Float32; comparisons give Float32.
Dtype binary_result_dtype(BinaryOp op, Dtype a, Dtype b);

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

// The plain loops, also the oracle that tests compare the oneDNN paths with.
namespace reference {
Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, Dtype out_dtype);
Tensor unary(UnaryOp op, const Tensor& x, double scalar, Dtype out_dtype);
}  // namespace reference

}  // namespace gg::kernels
