#pragma once
// Sums over one dimension on oneDNN's reduction primitive, for Float32 and BFloat16 tensors.
// ops/reduce.cpp routes here and keeps its plain loop (which accumulates in double) for the rest.
//
// oneDNN accumulates in f32 (bf16 inputs too) and writes the dtype of the input; its result
// differs from the double-accumulating loop by about 1e-7 * sum(|x|) for rows of a few thousand
// elements (measured: 2.2e-8 relative to sum(|x|) for rows of 4097 standard normals).
#include "core/tensor.hpp"

namespace gg::onednn {

// out = sum of x over `dim` (already wrapped, 0 <= dim < x.dim()). out: a new contiguous tensor of
// x's shape with dim set to 1, and x's dtype (Float32 or BFloat16). oneDNN 2.6.3's jit reduction
// only reduces the innermost dense dim; any other dim (or a strided x) is first transposed into a
// temporary by a reorder. Returns false, leaving nothing the caller needs, when oneDNN cannot run
// it (other dtypes, a reduced dim of size 0, a broadcast (stride-0) x); zero-size outputs return
// true.
bool sum_dim(const Tensor& x, int64_t dim, const Tensor& out);

}  // namespace gg::onednn
