#pragma once
// Unary elementwise ops on oneDNN's eltwise primitive, for Float32 and BFloat16 tensors.
// ops/kernels/elementwise_kernels.cpp routes here, and the rest to ops/reference/elementwise.cpp.
//
// Accuracy against the loop (std:: functions in float), measured on oneDNN 2.6.3 jit:avx512_core
// over 2^20 random inputs per op (tests/test_onednn_elementwise.cpp holds the tolerances):
//   neg, abs, sqrt        exact (bit-equal)
//   pow                   <= 1 ulp for the exponents tried (2, 3, 0.5, -1, 1.5, 2.7, -2, 4, 0.25)
//   exp                   <= 3 ulp (rel 2.2e-7) while exp(x) is a normal float; below
//                         x = -87 (results under ~3e-38) oneDNN flushes to 0 (abs error < 1.2e-38).
//                         oneDNN's exp(NaN) is +inf: a second pass puts the NaNs back.
//   tanh                  <= 2 ulp; sigmoid (logistic) <= 3 ulp
//   gelu (erf form)       abs error <= 4e-7 against exact gelu (the float loop itself is off by
//                         up to 4.5e-7: 1 + erf(x) cancels for x < -3, so ulps mean nothing there)
// bf16 results are the f32 results rounded once, so they match the loop to within one bf16 ulp.
// Not routed here:
//   log   oneDNN's is off by up to 3.5e-6 absolute near x = 1 (log(1) = -1.43e-6, not 0) and
//         treats subnormal inputs as FLT_MIN.
//   relu  oneDNN's relu (and clip) turn NaN into 0; the loop (and PyTorch) propagate NaN.
//         (clamp does take clip, with a second pass that puts the NaNs back, as for exp.)
//   sin, cos: no eltwise algorithm in oneDNN 2.6 (the loop runs them, on all threads).
//   sign, gelu's derivative: no eltwise algorithm.
// Edge cases that differ: pow(x, 0.5) runs as sqrt, so pow(-inf, 0.5) is NaN (std::pow: +inf)
// and pow(-0, 0.5) is -0 (std::pow: +0).
#include "core/tensor.hpp"
#include "ops/op_kinds.hpp"

namespace gg::onednn {

// Whether unary() takes this op and dtype at all (see above).
bool unary_supported(UnaryOp op, Dtype dtype);

// out = op(x) (`scalar` is Pow's exponent). out: a new contiguous tensor of x's shape and dtype.
// x may be strided (it is first copied into out by a reorder, then the op runs in place).
// Returns false, leaving nothing the caller needs, when oneDNN cannot run it (other ops and
// dtypes, broadcast (stride-0) inputs, whose gather is slower than the loop); zero-size is true.
bool unary(UnaryOp op, const Tensor& x, double scalar, const Tensor& out);

// out = min(max(x, lo), hi) with eltwise_clip (exact), for Float32 and BFloat16 x, lo <= hi (no
// NaN bound; an absent bound is an infinite one); NaNs of x are put back after clip. Same
// contract as unary(); false when the dtype or bounds do not fit.
bool clamp(const Tensor& x, float lo, float hi, const Tensor& out);

// out = grad * gelu'(x) (erf form) in one pass, for GeluBackward. x, grad: contiguous Float32
// of one shape (else false, nothing done); out: a new contiguous tensor of that shape.
bool gelu_backward(const Tensor& x, const Tensor& grad, const Tensor& out);

}  // namespace gg::onednn
