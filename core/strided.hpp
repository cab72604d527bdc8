#pragma once
// Strided iteration shared by the copy and reference kernels: visits every index of a shape and
// hands the callback one element offset per operand. Broadcast operands have stride 0.
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "dtype.hpp"
#include "tensor.hpp"

namespace gg {

// Strides of t aligned to out_shape (which t broadcasts to): 0 where t is broadcast.
Shape broadcast_strides(const Tensor& t, const Shape& out_shape);
// NumPy broadcasting of two shapes; throws "[op] shapes [..] and [..] cannot be broadcast".
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

template <size_t N, class F>
void for_each_strided(const Shape& shape, const std::array<const int64_t*, N>& strides,
                      std::array<int64_t, N> offsets, F&& f) {
  const int64_t ndim = static_cast<int64_t>(shape.size());
  for (int64_t d = 0; d < ndim; ++d)
    if (shape[d] == 0) return;
  if (ndim == 0) {
    f(offsets);
    return;
  }
  std::array<int64_t, kMaxTensorDims> counter{};  // no tensor or view has more dims
  const int64_t inner = shape[ndim - 1];
  std::array<int64_t, N> inner_stride;
  for (size_t i = 0; i < N; ++i) inner_stride[i] = strides[i][ndim - 1];
  while (true) {
    std::array<int64_t, N> o = offsets;
    for (int64_t j = 0; j < inner; ++j) {
      f(o);
      for (size_t i = 0; i < N; ++i) o[i] += inner_stride[i];
    }
    int64_t d = ndim - 2;
    for (; d >= 0; --d) {
      ++counter[d];
      for (size_t i = 0; i < N; ++i) offsets[i] += strides[i][d];
      if (counter[d] < shape[d]) break;
      for (size_t i = 0; i < N; ++i) offsets[i] -= strides[i][d] * shape[d];
      counter[d] = 0;
    }
    if (d < 0) return;
  }
}

// Converts one value between element types: float -> int rounds to nearest (ties to even),
// saturates, and maps NaN to 0.
template <class To, class From>
inline To convert(From v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (std::is_integral_v<To>) {
    double x;
    if constexpr (std::is_integral_v<From>) {
      if constexpr (sizeof(From) <= sizeof(To)) return static_cast<To>(v);
      x = static_cast<double>(v);
    } else if constexpr (std::is_same_v<From, double>) {
      x = v;
    } else {
      x = static_cast<double>(static_cast<float>(v));
    }
    if (std::isnan(x)) return To(0);
    constexpr double lo = static_cast<double>(std::numeric_limits<To>::min());
    constexpr double hi = static_cast<double>(std::numeric_limits<To>::max());
    if (x <= lo) return std::numeric_limits<To>::min();
    if (x >= hi) return std::numeric_limits<To>::max();
    return static_cast<To>(std::nearbyint(x));
  } else if constexpr (std::is_same_v<To, double>) {
    if constexpr (std::is_integral_v<From> || std::is_same_v<From, float>) {
      return static_cast<double>(v);
    } else {
      return static_cast<double>(static_cast<float>(v));
    }
  } else if constexpr (std::is_same_v<To, float>) {
    return static_cast<float>(v);
  } else {  // BFloat16 / Half: through float (from double: one rounding to float first)
    return To(static_cast<float>(v));
  }
}

// Reads element `offset` of a buffer of dtype `dtype` as double (for dtype-generic reference code).
double load_as_double(const void* base, Dtype dtype, int64_t offset);
void store_from_double(void* base, Dtype dtype, int64_t offset, double value);

}  // namespace gg
