#include "ops/kernels/softmax_kernels.hpp"

#include "core/copy.hpp"
#include "core/strided.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/softmax.hpp"
#include "ops/reference/nn.hpp"

namespace gg::kernels {

using reference::Split3;
using reference::split_at;

namespace {
// t with dims a and b swapped: the view transpose() makes, without its node.
Tensor transposed(const Tensor& t, int64_t a, int64_t b) {
  Shape shape = t.shape(), strides = t.strides();
  std::swap(shape[a], shape[b]);
  std::swap(strides[a], strides[b]);
  return as_strided_view(t, std::move(shape), std::move(strides), t.storage_offset());
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim, bool log) {
  if (x.numel() == 0) return empty(x.shape(), x.dtype());  // (2^40 empty rows: no loop over them)
  if (onednn::bf16_through_f32(x.dtype()))                 // no bf16 softmax on this CPU
    return as_dtype(softmax(as_dtype(x, kFloat32), dim, log), kBFloat16);
  if (!onednn::softmax_supported(x.dtype())) return reference::softmax(x, dim, log);
  const Split3 split = split_at(x.shape(), dim);
  const int64_t outer = split.outer, n = split.n, inner = split.inner;
  if (inner != 1) {
    // oneDNN runs a non-last axis with ref:any (~20x slower than its jit kernel on the last
    // axis, and slower than our loop); moving the axis last costs two copies and wins.
    const int64_t last = x.dim() - 1;
    Tensor moved = softmax(as_contiguous(transposed(x, dim, last)), last, log);
    return as_contiguous(transposed(moved, dim, last));
  }
  Tensor xc = as_contiguous(x);
  Tensor out = empty(x.shape(), x.dtype());
  onednn::softmax(xc.raw_data(), out.raw_data(), x.dtype(), outer, n, 1, log);
  return out;
}

}  // namespace gg::kernels
