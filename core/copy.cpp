#include "core/copy.hpp"

#include <cstring>

#include "autograd/node.hpp"
#include "core/strided.hpp"
#include "ops/onednn/reorder.hpp"

namespace gg {

void copy_(const Tensor& dst, const Tensor& src) {
  dst.checked("copy_");
  src.checked("copy_");
  Shape src_strides = broadcast_strides(src, dst.shape());
  if (src.dtype() == dst.dtype() && src.shape() == dst.shape() && src.is_contiguous() &&
      dst.is_contiguous()) {
    if (src.raw_data() != dst.raw_data())
      std::memmove(dst.raw_data(), src.raw_data(), dst.numel() * dst.element_size());
    return;
  }
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

Tensor Tensor::clone() const {
  const TensorImpl& t = checked("clone");
  Tensor out = empty(t.shape, t.dtype);
  copy_(out, *this);
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
  Tensor out = empty(t.shape, dtype);
  copy_(out, *this);
  if (!is_floating(dtype)) return out;  // integer results end the graph
  Dtype from = t.dtype;
  return autograd::record("ToCopyBackward", {*this}, out,
                          [from](const std::vector<Tensor>& g, const std::vector<bool>&) {
                            return std::vector<Tensor>{g[0].to(from)};
                          });
}

}  // namespace gg
