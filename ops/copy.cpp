// Copies and conversions: copy_ with its fast paths, and the differentiable clone, contiguous
// and to (declared on Tensor in core/tensor.hpp, defined here above autograd and the oneDNN
// backend).
#include "core/copy.hpp"

#include <cstring>

#include "autograd/node.hpp"
#include "core/parallel.hpp"
#include "core/strided.hpp"
#include "ops/onednn/reorder.hpp"

namespace gg {

namespace {
// Contiguous bf16 <-> f32 conversion, the hot path of every op that computes bf16 through f32
// (ops/onednn/context.hpp, native_bf16): vectorised, on all threads from 64K elements (below, a
// fork costs more than it saves). Equal to the element loop, and faster than oneDNN's reorder
// call for small tensors; oneDNN has no f32 -> bf16 reorder below AVX512_CORE at all.
constexpr int64_t kParallelConvertElements = int64_t{1} << 16;

// dst = src for a contiguous pair of bf16 and f32 tensors (false, doing nothing, for others).
bool convert_bf16_f32(const Tensor& dst, const Tensor& src) {
  if (src.shape() != dst.shape() || !src.is_contiguous() || !dst.is_contiguous()) return false;
  if (src.dtype() == kBFloat16 && dst.dtype() == kFloat32) {
    const auto* in = static_cast<const BFloat16*>(src.raw_data());
    auto* out = static_cast<float*>(dst.raw_data());
    for_chunks(dst.numel(), kParallelConvertElements,
               [&](int64_t b, int64_t e) { convert_bf16_to_f32(in + b, out + b, e - b); });
    return true;
  }
  if (src.dtype() == kFloat32 && dst.dtype() == kBFloat16) {
    const auto* in = static_cast<const float*>(src.raw_data());
    auto* out = static_cast<BFloat16*>(dst.raw_data());
    for_chunks(dst.numel(), kParallelConvertElements,
               [&](int64_t b, int64_t e) { convert_f32_to_bf16(in + b, out + b, e - b); });
    return true;
  }
  return false;
}
}  // namespace

void copy_(const Tensor& dst, const Tensor& src) {
  dst.checked("copy_");
  src.checked("copy_");
  Shape src_strides = broadcast_strides(src, dst.shape());  // the shape error first
  // A write into dst's storage: tensors saved for backward on it are now stale (autograd checks).
  dst.impl()->storage->bump_version();
  if (src.dtype() == dst.dtype() && src.shape() == dst.shape() && src.is_contiguous() &&
      dst.is_contiguous()) {
    if (src.raw_data() != dst.raw_data())
      std::memmove(dst.raw_data(), src.raw_data(), dst.numel() * dst.element_size());
    return;
  }
  if (convert_bf16_f32(dst, src)) return;
  // oneDNN's reorder where it gives exactly convert's results (ops/onednn/reorder.hpp).
  if (dst.numel() >= onednn::kMinElements &&
      onednn::reorder_matches_convert(src.dtype(), dst.dtype()) && onednn::reorder(dst, src))
    return;
  dispatch(dst.dtype(), [&]<class To>() {
    dispatch(src.dtype(), [&]<class From>() {
      To* out = static_cast<To*>(dst.raw_data());
      const From* in = static_cast<const From*>(src.raw_data());
      for_each_strided<2>(
          dst.shape(), {dst.strides().data(), src_strides.data()}, {0, 0},
          [&](const std::array<int64_t, 2>& o) { out[o[0]] = convert<To>(in[o[1]]); });
    });
  });
}

namespace {
// A new contiguous tensor of t's shape and `dtype` holding t's values.
Tensor copied(const Tensor& t, Dtype dtype) {
  Tensor out = empty(t.shape(), dtype);
  copy_(out, t);
  return out;
}
}  // namespace

Tensor as_contiguous(const Tensor& t) { return t.is_contiguous() ? t : copied(t, t.dtype()); }

Tensor as_dtype(const Tensor& t, Dtype dtype) { return t.dtype() == dtype ? t : copied(t, dtype); }

Tensor Tensor::clone() const {
  const TensorImpl& t = checked("clone");
  Tensor out = copied(*this, t.dtype);
  return autograd::record("CloneBackward", {*this}, out,
                          [](const std::vector<Tensor>& g, const std::vector<bool>&) {
                            return std::vector<Tensor>{g[0]};
                          });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::to(Dtype dtype) const {
  const TensorImpl& t = checked("to");
  if (t.dtype == dtype) return *this;
  Tensor out = copied(*this, dtype);
  if (!is_floating(dtype)) return out;  // integer results end the graph
  Dtype from = t.dtype;
  return autograd::record("ToCopyBackward", {*this}, out,
                          [from](const std::vector<Tensor>& g, const std::vector<bool>&) {
                            return std::vector<Tensor>{g[0].to(from)};
                          });
}

}  // namespace gg
