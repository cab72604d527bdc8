#pragma once
// Binary elementwise ops (arithmetic and comparisons) with NumPy broadcasting on oneDNN's binary
// primitive, for Float32 and BFloat16 operands. ops/kernels/elementwise_kernels.cpp routes here
// and sends everything this declines to the plain loops (ops/reference/elementwise.hpp).
#include "core/tensor.hpp"
#include "ops/op_kinds.hpp"

namespace gg::onednn {

// Whether binary() takes these operands at all: Add, Sub, Mul, Div, Eq, Lt, Le, Gt, Ge on
// Float32/BFloat16 operands. Max and Min are not: oneDNN's binary_max/min drop a NaN in src0
// (max(NaN, 1) = 1), where the reference loop (and PyTorch) propagate it.
bool binary_supported(BinaryOp op, Dtype a, Dtype b);

// out = a op b. `out` is a new contiguous tensor of the broadcast shape with dtype
// binary_result_dtype(op, a, b), not overlapping a or b. Operands may be broadcast on
// either side, strided or transposed, and of different float dtypes (0-d tensors count as [1]);
// they are swapped, negated or copied so that oneDNN's jit kernel runs (see binary.cpp). Declined
// (false, having written nothing the caller needs; the caller runs the loop): a broadcast operand
// that can only be src0 and is not a scalar (div, or both operands broadcast), and broadcast
// patterns oneDNN only has ref:any for. Results equal the loop's exactly (one f32 operation and
// one rounding to the output dtype), except that bf16 outputs below FLT_MIN may be flushed to 0.
// Zero-size problems return true.
bool binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out);

// dst += src in place, for dst and src contiguous, of one shape and dtype. The add above
// with src0 = dst, which it then reads in place (oneDNN's binary runs in place when src0 and dst
// are one memory). Results as binary's. False when declined (the caller runs the loop).
bool add_into(const Tensor& dst, const Tensor& src);

}  // namespace gg::onednn
