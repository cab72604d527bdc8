#include "ops/kernels/elementwise_kernels.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numbers>
#include <type_traits>

#include "core/copy.hpp"
#include "core/parallel.hpp"
#include "core/strided.hpp"
#include "ops/onednn/binary.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/eltwise.hpp"
#include "ops/onednn/reorder.hpp"
#include "ops/reference/elementwise.hpp"

namespace gg::kernels {

namespace {
// A BFloat16 operand as Float32 (others as they are), for ops that compute bf16 through f32.
Tensor through_f32(const Tensor& t) { return t.dtype() == kBFloat16 ? as_dtype(t, kFloat32) : t; }
}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, const Shape& shape, Dtype out_dtype) {
  const int64_t n = numel_of(shape);  // once: it checks every size for overflow
  if (n >= onednn::kMinElements &&
      (onednn::bf16_through_f32(a.dtype()) || onednn::bf16_through_f32(b.dtype()))) {
    // No bf16 binary on this CPU: the Float32 op (oneDNN at this size), rounded once. (Smaller
    // problems take the loop, which computes bf16 in float as the f32 loop does.)
    const Tensor fa = through_f32(a), fb = through_f32(b);
    Tensor out = binary(op, fa, fb, shape, binary_result_dtype(op, fa.dtype(), fb.dtype()));
    return as_dtype(out, out_dtype);
  }
  if (onednn::binary_supported(op, a.dtype(), b.dtype()) && n >= onednn::kMinElements) {
    Tensor out = empty(shape, out_dtype);
    if (onednn::binary(op, a, b, out)) return out;
  }
  return reference::binary(op, a, b, out_dtype);
}

Tensor unary(UnaryOp op, const Tensor& x, double scalar, Dtype out_dtype) {
  if (x.numel() >= onednn::kMinElements && onednn::bf16_through_f32(x.dtype()))
    return as_dtype(unary(op, through_f32(x), scalar, kFloat32), out_dtype);  // as binary above
  if (onednn::unary_supported(op, x.dtype()) && x.numel() >= onednn::kMinElements) {
    Tensor out = empty(x.shape(), out_dtype);
    if (onednn::unary(op, x, scalar, out)) return out;
  }
  return reference::unary(op, x, scalar, out_dtype);
}

Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi, Dtype out_dtype) {
  const bool nan_bound = (lo && std::isnan(*lo)) || (hi && std::isnan(*hi));
  if (x.dtype() == out_dtype && !nan_bound && x.numel() >= onednn::kMinElements) {
    // Bounds in the dtype's float (as the loop computes in float), absent ones infinite.
    constexpr float kInf = std::numeric_limits<float>::infinity();
    const float flo = lo ? static_cast<float>(*lo) : -kInf,
                fhi = hi ? static_cast<float>(*hi) : kInf;
    if (onednn::bf16_through_f32(x.dtype()))  // clip is exact: rounding once changes nothing
      return as_dtype(clamp(through_f32(x), lo, hi, kFloat32), out_dtype);
    Tensor out = empty(x.shape(), out_dtype);
    if (onednn::clamp(x, flo, fhi, out)) return out;
  }
  return reference::clamp(x, lo, hi, out_dtype);
}

Tensor isclose(const Tensor& a, const Tensor& b, const Shape& shape, double rtol, double atol,
               bool equal_nan) {
  return reference::isclose(a, b, shape, rtol, atol, equal_nan);
}

Tensor gelu_backward(const Tensor& grad, const Tensor& x) {
  if (onednn::bf16_through_f32(x.dtype()))  // one Float32 pass, rounded once (as binary above)
    return as_dtype(gelu_backward(through_f32(grad), through_f32(x)), x.dtype());
  if (x.numel() >= onednn::kMinElements) {
    Tensor out = empty(x.shape(), x.dtype());
    if (onednn::gelu_backward(x, grad, out)) return out;
  }
  // gelu'(x) in x's dtype (Float32 for integers, as every unary op but Neg, Abs and Sign), then
  // the product with the promotion and broadcast that mul gives.
  const Tensor d = unary(UnaryOp::GeluGrad, x, 0, is_floating(x.dtype()) ? x.dtype() : kFloat32);
  const Shape shape = grad.shape() == d.shape()
                          ? grad.shape()
                          : broadcast_shapes(grad.shape(), d.shape(), "gelu_backward");
  return binary(BinaryOp::Mul, grad, d, shape,
                binary_result_dtype(BinaryOp::Mul, grad.dtype(), d.dtype()));
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b, const Shape& shape,
             Dtype dtype) {
  Tensor out = empty(shape, dtype);
  Tensor ca = as_dtype(a, dtype), cb = as_dtype(b, dtype);
  Shape sc = broadcast_strides(cond, shape), sa = broadcast_strides(ca, shape),
        sb = broadcast_strides(cb, shape);
  dispatch(dtype, [&]<class T>() {
    const T* pa = static_cast<const T*>(ca.raw_data());
    const T* pb = static_cast<const T*>(cb.raw_data());
    T* po = static_cast<T*>(out.raw_data());
    const void* pc = cond.raw_data();
    for_each_strided<4>(shape, {out.strides().data(), sc.data(), sa.data(), sb.data()},
                        {0, 0, 0, 0}, [&](const std::array<int64_t, 4>& o) {
                          po[o[0]] =
                              load_as_double(pc, cond.dtype(), o[1]) != 0 ? pa[o[2]] : pb[o[3]];
                        });
  });
  return out;
}

// add_into runs on all threads from this many elements (below, a fork costs more than it saves).
constexpr int64_t kParallelAddElements = int64_t{1} << 16;

namespace {
// d += s on n contiguous bf16 elements, in float and rounded once (what the f32 add gives),
// through small float blocks so that every step vectorises (the per-element conversions of the
// generic loop are out-of-line calls): the bf16 gradient accumulation where oneDNN has no bf16.
// d += s on n contiguous floats, the gradient accumulation of every leaf after its first backward
// (a third of the tiny grouped_mm workload's backward outside oneDNN). The baseline build has
// 4-wide SSE2 floats: an AVX2 clone does twice as many per instruction, with the same IEEE adds
// (the same bits). Chosen by hand as nn/optim/adam_update.cpp chooses its clones, so that
// ONEDNN_MAX_CPU_ISA caps it too.
[[gnu::always_inline]] inline void add_f32_body(float* d, const float* s, int64_t n) {
  for (int64_t i = 0; i < n; ++i) d[i] += s[i];
}
[[gnu::target("avx2")]] void add_f32_avx2(float* d, const float* s, int64_t n) {
  add_f32_body(d, s, n);
}
void add_f32_baseline(float* d, const float* s, int64_t n) { add_f32_body(d, s, n); }

using AddF32 = void (*)(float*, const float*, int64_t);
AddF32 add_f32() {
  static const AddF32 chosen = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && onednn::isa_at_least(dnnl::cpu_isa::avx2)
               ? &add_f32_avx2
               : &add_f32_baseline;
  }();
  return chosen;
}

void add_into_bf16(BFloat16* d, const BFloat16* s, int64_t n) {
  constexpr int64_t kBlock = 512;
  auto add = [&](int64_t begin, int64_t end) {
    float a[kBlock], b[kBlock];
    for (int64_t i = begin; i < end; i += kBlock) {
      const int64_t m = std::min(kBlock, end - i);
      convert_bf16_to_f32(d + i, a, m);
      convert_bf16_to_f32(s + i, b, m);
      for (int64_t j = 0; j < m; ++j) a[j] += b[j];
      convert_f32_to_bf16(a, d + i, m);
    }
  };
  for_chunks(n, kParallelAddElements, add);
}
}  // namespace

void add_into(const Tensor& dst, const Tensor& src) {
  GG_CHECK(dst.shape() == src.shape() && dst.dtype() == src.dtype() && dst.is_contiguous() &&
               is_floating(dst.dtype()),
           "[add_into] needs a contiguous destination and a source of its shape and floating "
           "dtype, got {} {} and {} {}",
           dtype_name(dst.dtype()), shape_str(dst.shape()), dtype_name(src.dtype()),
           shape_str(src.shape()));
  // The loop below converts bf16 one element at a time (out-of-line calls): bf16 gradients take
  // oneDNN's jit add in place from the size the add op does. For f32 the loop is as fast, and a
  // primitive call costs ~2 us more (a fifth of the mixed workload's backward).
  if (dst.dtype() == kBFloat16 && src.dtype() == kBFloat16 && dst.numel() >= onednn::kMinElements &&
      onednn::add_into(dst, src))
    return;
  if (dst.dtype() == kBFloat16 && src.is_contiguous()) {
    add_into_bf16(static_cast<BFloat16*>(dst.raw_data()),
                  static_cast<const BFloat16*>(src.raw_data()), dst.numel());
    return;
  }
  dispatch(dst.dtype(), [&]<class T>() {
    using A = reference::Acc<T>;
    T* d = static_cast<T*>(dst.raw_data());
    const T* s = static_cast<const T*>(src.raw_data());
    if (src.is_contiguous()) {  // the common case: one loop the compiler vectorizes
      auto add = [&](int64_t begin, int64_t end) {
        if constexpr (std::is_same_v<T, float>) {
          add_f32()(d + begin, s + begin, end - begin);
        } else {
          for (int64_t i = begin; i < end; ++i)
            d[i] = convert<T>(convert<A>(d[i]) + convert<A>(s[i]));
        }
      };
      // Big gradients (a layer's weights) are split over the threads.
      for_chunks(dst.numel(), kParallelAddElements, add);
      return;
    }
    const Shape dst_strides = contiguous_strides(dst.shape());
    for_each_strided<2>(dst.shape(), {dst_strides.data(), src.strides().data()}, {0, 0},
                        [&](const std::array<int64_t, 2>& o) {
                          d[o[0]] = convert<T>(convert<A>(d[o[0]]) + convert<A>(s[o[1]]));
                        });
  });
}

}  // namespace gg::kernels
