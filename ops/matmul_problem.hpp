#pragma once
// The description of one (batched) matmul on raw strided memory, which every matmul backend runs:
// onednn::matmul (ops/onednn/matmul.hpp) and reference::matmul (ops/reference/matmul.hpp) take
// it, ops/kernels/ builds it. It lives below all of them and depends on core only
// (tools/check_layers.py keeps it so).
#include <array>
#include <cstdint>
#include <string>

#include "../core/dtype.hpp"

namespace gg {

// One (batched) matmul problem on raw strided memory: dst[b] = src[b] @ wei[b] (+ bias[b]) for
// b < batch. Operands are 3-D [batch, rows, cols] with element strides; a batch stride of 0
// broadcasts (dst's may not, unless batch == 1). Transposed operands are just strides, e.g. wei
// strides {0, 1, K} for a shared [N, K] weight used as [K, N].
struct MatmulProblem {
  int64_t batch = 1, M = 0, K = 0, N = 0;
  Dtype src_dtype = kFloat32, wei_dtype = kFloat32, dst_dtype = kFloat32, bias_dtype = kFloat32;
  // src [batch, M, K], wei [batch, K, N], dst [batch, M, N]
  std::array<int64_t, 3> src_strides{}, wei_strides{}, dst_strides{};
  bool has_bias = false;
  int64_t bias_batch_stride = 0;  // bias is [batch or 1, 1, N], contiguous along N; 0 = shared
  bool accumulate = false;        // dst += result (oneDNN sum post-op) instead of dst = result
  // M or K comes from data and changes from call to call (grouped_mm's groups given by offs,
  // i.e. a router): an f32 problem then runs as pieces of few distinct sizes, so that a new
  // size builds no primitive (see ops/onednn/matmul.cpp). Not part of the cache key.
  bool sizes_vary = false;
};

// Throws gg::Error ("[matmul] ...") for a problem no kernel can run: negative sizes, or a dst
// batch stride of 0 with batch > 1 and a non-empty dst (every batch would write one matrix).
void check_matmul_problem(const MatmulProblem& p);
// "batch=2 M=3 K=4 N=5 float32 x float32 -> bfloat16, strides src [12, 4, 1] wei ..." (messages).
std::string to_string(const MatmulProblem& p);

}  // namespace gg
