#include "ops/kernels/index_kernels.hpp"

#include <cstring>

#include "core/copy.hpp"
#include "core/strided.hpp"
#include "ops/reference/nn.hpp"

namespace gg::kernels {

using reference::Split3;
using reference::split_at;

Tensor index_select(const Tensor& x, int64_t dim, const std::vector<int64_t>& index) {
  Tensor xc = as_contiguous(x);
  Shape shape = x.shape();
  shape[dim] = static_cast<int64_t>(index.size());
  Tensor out = empty(shape, x.dtype());
  const Split3 split = split_at(x.shape(), dim);
  const int64_t outer = split.outer, n = split.n, inner = split.inner;
  const size_t row_bytes = static_cast<size_t>(inner) * x.element_size();
  if (row_bytes == 0 || out.numel() == 0) return out;  // (2^40 empty outer rows: no loop)
  const auto* src = static_cast<const uint8_t*>(xc.raw_data());
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  const int64_t k = static_cast<int64_t>(index.size());
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < k; ++i)
      std::memcpy(dst + (o * k + i) * row_bytes, src + (o * n + index[i]) * row_bytes, row_bytes);
  return out;
}

Tensor index_add(const Shape& shape, int64_t dim, const std::vector<int64_t>& index,
                 const Tensor& src) {
  Tensor out = zeros(shape, src.dtype());
  Tensor sc = as_contiguous(src);
  const Split3 split = split_at(shape, dim);
  const int64_t outer = split.outer, n = split.n, inner = split.inner;
  const int64_t k = static_cast<int64_t>(index.size());
  if (sc.numel() == 0) return out;  // nothing to add, however many empty rows
  dispatch(src.dtype(), [&]<class T>() {
    using A = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* ps = sc.data_ptr<T>();
    T* po = out.data_ptr<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < k; ++i) {
        T* d = po + (o * n + index[i]) * inner;
        const T* s = ps + (o * k + i) * inner;
        for (int64_t j = 0; j < inner; ++j) d[j] = convert<T>(convert<A>(d[j]) + convert<A>(s[j]));
      }
    }
  });
  return out;
}

}  // namespace gg::kernels
