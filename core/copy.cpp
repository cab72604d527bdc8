#include "core/copy.hpp"

#include <cstring>

#include "core/strided.hpp"

namespace gg {

void strided_copy_(const Tensor& dst, const Tensor& src) {
  dst.checked("copy_");
  src.checked("copy_");
  Shape src_strides = broadcast_strides(src, dst.shape());
  if (src.dtype() == dst.dtype() && src.shape() == dst.shape() && src.is_contiguous() &&
      dst.is_contiguous()) {
    if (src.raw_data() != dst.raw_data())
      std::memmove(dst.raw_data(), src.raw_data(), dst.numel() * dst.element_size());
    return;
  }
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

}  // namespace gg
