#pragma once
// Strided copies with dtype conversion on oneDNN's reorder, and the strided-layout helpers that
// the other elementwise backends (binary, eltwise, reduction) share: dimension coalescing and
// memory descriptors.
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace gg::onednn {

// Whether oneDNN's reorder from `from` to `to` can give exactly gg::convert's results (measured
// on oneDNN 2.6.3, see reorder.cpp): both dtypes among Float32, BFloat16, Int8, Int32, and not
// float -> integer (oneDNN maps NaN to 127 / INT_MIN and mis-saturates s32). Float16 is left out
// (its reorder turns -0 into +0). Float32 -> BFloat16 qualifies, but reorder() declines sources
// holding subnormals (oneDNN flushes them to 0).
bool reorder_matches_convert(Dtype from, Dtype to);

// dst = src converted to dst's dtype, src of dst's shape. dst may be any non-overlapping strided
// view with non-negative strides. Returns false, having written nothing, when oneDNN has no
// (fast) reorder for the pair or layout: pairs failing reorder_matches_convert, broadcast
// (stride-0) sources, f32 -> bf16 from a strided source or one holding subnormals. The caller
// then runs the loop. Zero-size copies return true.
bool reorder(const Tensor& dst, const Tensor& src);

// The same on raw memory: `shape` with per-operand element strides (src strides may be 0).
bool reorder(const Shape& shape, Dtype src_dtype, const Shape& src_strides, const void* src,
             Dtype dst_dtype, const Shape& dst_strides, void* dst);

// ---- Strided layouts shared by the elementwise backends --------------------------------------

// An iteration space and, per operand, element strides over it (0 where it is broadcast).
struct StridedProblem {
  Shape shape;
  std::vector<Shape> strides;
};

// Drops size-1 dims and merges adjacent dims that every operand walks as one run, so that
// equivalent problems share cache entries and oneDNN sees the fewest dims; a 0-d problem becomes
// [1]. Dim `keep` (if >= 0) is never dropped or merged with a neighbour; its new index is
// returned (else -1).
int64_t coalesce(StridedProblem& p, int64_t keep = -1);

// Row-major strides of `shape` with broadcast (stride-0) dims treated as size 1.
Shape dense_strides(const Shape& shape, const Shape& strides);
// Whether `strides` is the row-major layout of `shape` (dims with stride 0 count as size 1).
bool is_dense(const Shape& shape, const Shape& strides);
// `shape` with every stride-0 dim set to 1: how oneDNN describes a broadcast operand.
Shape broadcast_dims(const Shape& shape, const Shape& strides);

// A plain memory descriptor (throws dnnl::error for layouts oneDNN rejects).
dnnl::memory::desc plain_desc(const Shape& dims, const Shape& strides, Dtype dtype);

// Problems with fewer elements stay on the loops (the routing in elementwise_kernels.cpp,
// reduce.cpp and copy.cpp checks it; the backends themselves take any size). oneDNN costs about
// 2.5 us per call (cache lookup, memory objects, execute, wait; 3.3 us on two threads), so f32
// add/mul break even with the loop near 1000 elements and exp/tanh near 300 (measured).
inline constexpr int64_t kMinElements = 2048;

// DNNL_MAX_NDIMS: problems with more dims (after coalescing) stay on the loops.
inline constexpr size_t kMaxDims = 12;

}  // namespace gg::onednn
