#include "ops/kernels/index_kernels.hpp"

#include <algorithm>
#include <array>
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

namespace {
// x's strides with dim's set to 0: the walk over index's shape then lands on the row start.
Shape without_dim(const Tensor& t, int64_t dim) {
  Shape s = t.strides();
  s[dim] = 0;
  return s;
}
}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  Tensor out = empty(index.shape(), x.dtype());
  if (out.numel() == 0) return out;
  const Shape out_strides = contiguous_strides(out.shape()), x_strides = without_dim(x, dim);
  const int64_t step = x.stride(dim);
  const int64_t* pi = static_cast<const int64_t*>(index.raw_data());
  dispatch(x.dtype(), [&]<class T>() {
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = out.data_ptr<T>();
    for_each_strided<3>(
        index.shape(), {out_strides.data(), index.strides().data(), x_strides.data()}, {0, 0, 0},
        [&](const std::array<int64_t, 3>& o) { po[o[0]] = px[o[2] + pi[o[1]] * step]; });
  });
  return out;
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = empty(x.shape(), x.dtype());
  copy_(out, x);
  if (index.numel() == 0) return out;
  const Shape out_strides = without_dim(out, dim);
  const int64_t step = out.stride(dim);
  const int64_t* pi = static_cast<const int64_t*>(index.raw_data());
  dispatch(x.dtype(), [&]<class T>() {
    // 16-bit floats add in float and round once per addition.
    using A = std::conditional_t<std::is_integral_v<T> || std::is_same_v<T, double>, T, float>;
    const T* ps = static_cast<const T*>(src.raw_data());
    T* po = out.data_ptr<T>();
    for_each_strided<3>(index.shape(),
                        {out_strides.data(), index.strides().data(), src.strides().data()},
                        {0, 0, 0}, [&](const std::array<int64_t, 3>& o) {
                          T& d = po[o[0] + pi[o[1]] * step];
                          d = convert<T>(convert<A>(d) + convert<A>(ps[o[2]]));
                        });
  });
  return out;
}

Tensor flip(const Tensor& x, const std::vector<bool>& flipped) {
  Tensor out = empty(x.shape(), x.dtype());
  if (out.numel() == 0) return out;
  // Read x with negated strides along the flipped dims, starting from their last element.
  Shape strides = x.strides();
  int64_t start = 0;
  for (size_t d = 0; d < strides.size(); ++d) {
    if (!flipped[d]) continue;
    start += (x.shape()[d] - 1) * strides[d];
    strides[d] = -strides[d];
  }
  const Shape out_strides = contiguous_strides(out.shape());
  dispatch(x.dtype(), [&]<class T>() {
    const T* px = static_cast<const T*>(x.raw_data());
    T* po = out.data_ptr<T>();
    for_each_strided<2>(x.shape(), {out_strides.data(), strides.data()}, {0, start},
                        [&](const std::array<int64_t, 2>& o) { po[o[0]] = px[o[1]]; });
  });
  return out;
}

Tensor triangle(const Tensor& x, int64_t diagonal, bool lower) {
  Tensor out = empty(x.shape(), x.dtype());
  copy_(out, x);
  const int64_t rows = x.size(-2), cols = x.size(-1);
  if (out.numel() == 0) return out;
  const int64_t batches = out.numel() / (rows * cols);
  // Beyond these bounds every row is all kept or all zero; clamped, i + diagonal cannot overflow.
  diagonal = std::clamp(diagonal, -rows, cols);
  const size_t es = out.element_size();
  auto* base = static_cast<uint8_t*>(out.raw_data());
  // Row i keeps columns j with j - i <= diagonal (tril) or j - i >= diagonal (triu); the others
  // become zero, whose bytes are all zero in every dtype.
  auto clamp = [&](int64_t j) { return std::min(std::max(j, int64_t{0}), cols); };
  for (int64_t b = 0; b < batches; ++b) {
    for (int64_t i = 0; i < rows; ++i) {
      uint8_t* row = base + static_cast<size_t>((b * rows + i) * cols) * es;
      const int64_t from = lower ? clamp(i + diagonal + 1) : 0;
      const int64_t to = lower ? cols : clamp(i + diagonal);
      if (to > from) std::memset(row + from * es, 0, static_cast<size_t>(to - from) * es);
    }
  }
  return out;
}

}  // namespace gg::kernels
