#include "ops/reference/elementwise.hpp"

#include <cmath>
#include <functional>
#include <limits>

#include "core/copy.hpp"
#include "core/parallel.hpp"
#include "core/strided.hpp"

namespace gg::reference {

namespace {

// A contiguous unary loop runs on all threads from this many elements (sin and cos have no oneDNN
// eltwise in 2.6, and cost ~10 ns an element; below this a fork costs more than it saves).
constexpr int64_t kParallelUnaryElements = int64_t{1} << 15;

// Integer +, -, * and negation wrap around in two's complement, as PyTorch's do (signed overflow
// is undefined behaviour in C++, so they go through uint64_t; found by tests/fuzz/fuzz_ops).
template <class A, class Op>
A wrapping(A x, A y, Op op) {
  if constexpr (std::is_integral_v<A>) {
    return static_cast<A>(op(static_cast<uint64_t>(x), static_cast<uint64_t>(y)));
  } else {
    return op(x, y);
  }
}

// x mod y with the sign of y (Remainder, Python's %) or of x (Fmod, C's fmod). Integer y = 0 is
// refused by the op before any loop runs (0 here); x % -1 is 0 without the overflow of
// INT64_MIN % -1.
template <class A>
A modulo(BinaryOp op, A x, A y) {
  A r;
  if constexpr (std::is_integral_v<A>) {
    if (y == 0 || y == -1) return 0;
    r = x % y;
  } else {
    r = std::fmod(x, y);
  }
  if (op == BinaryOp::Remainder && r != 0 && ((r < 0) != (y < 0))) r += y;
  return r;
}

template <class A>
A apply_binary(BinaryOp op, A x, A y) {
  switch (op) {
    case BinaryOp::Add:
      return wrapping(x, y, std::plus<>());
    case BinaryOp::Sub:
      return wrapping(x, y, std::minus<>());
    case BinaryOp::Mul:
      return wrapping(x, y, std::multiplies<>());
    case BinaryOp::Div:
      if constexpr (std::is_integral_v<A>)
        return y == 0 ? 0 : x / y;  // unreachable: Div promotes
      else
        return x / y;
    case BinaryOp::Max:
      return (x >= y || x != x) ? x : y;  // NaN propagates
    case BinaryOp::Min:
      return (x <= y || x != x) ? x : y;
    case BinaryOp::Eq:
      return x == y;
    case BinaryOp::Gt:
      return x > y;
    case BinaryOp::Lt:
      return x < y;
    case BinaryOp::Ge:
      return x >= y;
    case BinaryOp::Le:
      return x <= y;
    case BinaryOp::Remainder:
    case BinaryOp::Fmod:
      return modulo(op, x, y);
  }
  return 0;
}

template <class A>
A apply_unary(UnaryOp op, A x, double scalar) {
  switch (op) {
    case UnaryOp::Neg:
      if constexpr (std::is_integral_v<A>)
        return wrapping(A(0), x, std::minus<>());
      else
        return -x;  // (0 - x would turn -(+0) into +0)
    case UnaryOp::Abs:
      if constexpr (std::is_floating_point_v<A>)
        return std::fabs(x);  // abs(-0) = +0
      else
        return x < 0 ? wrapping(A(0), x, std::minus<>()) : x;
    case UnaryOp::Sign:
      return static_cast<A>((x > 0) - (x < 0));
    default:
      break;
  }
  if constexpr (std::is_integral_v<A>) {
    return 0;  // unreachable: other ops promote integers to float
  } else {
    constexpr A inv_sqrt2 = static_cast<A>(0.70710678118654752440);
    constexpr A inv_sqrt_2pi = static_cast<A>(0.39894228040143267794);
    switch (op) {
      case UnaryOp::Exp:
        return std::exp(x);
      case UnaryOp::Log:
        return std::log(x);
      case UnaryOp::Sqrt:
        return std::sqrt(x);
      case UnaryOp::Pow:
        return std::pow(x, static_cast<A>(scalar));
      case UnaryOp::Tanh:
        return std::tanh(x);
      case UnaryOp::Sigmoid:
        return x >= 0 ? 1 / (1 + std::exp(-x)) : std::exp(x) / (1 + std::exp(x));
      case UnaryOp::Relu:
        return x > 0 ? x : (x != x ? x : A(0));
      case UnaryOp::Gelu:
        return x * A(0.5) * (1 + std::erf(x * inv_sqrt2));
      case UnaryOp::GeluGrad:  // d/dx x*Phi(x) = Phi(x) + x*phi(x)
        return A(0.5) * (1 + std::erf(x * inv_sqrt2)) + x * inv_sqrt_2pi * std::exp(-x * x / 2);
      case UnaryOp::Sin:
        return std::sin(x);
      case UnaryOp::Cos:
        return std::cos(x);
      case UnaryOp::Floor:
        return std::floor(x);
      case UnaryOp::Trunc:
        return std::trunc(x);
      default:
        return 0;
    }
  }
}
}  // namespace

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b, Dtype out_dtype) {
  Tensor out = empty(broadcast_shapes(a.shape(), b.shape(), "binary"), out_dtype);
  const Shape& shape = out.shape();
  // Both operands are converted to the compute dtype first (no copy when they already have it),
  // so the loop is instantiated per (compute, out) pair, not per (compute, a, b, out) tuple:
  // 49 loops instead of 2401, which took minutes to compile.
  const Dtype compute = is_comparison(op) ? promote_types(a.dtype(), b.dtype()) : out_dtype;
  // (as_dtype makes no new handle when there is nothing to convert: the ops of a chain are
  // dominated by such fixed costs.)
  const Tensor ca = as_dtype(a, compute), cb = as_dtype(b, compute);
  // An operand of the output's shape is read with its own strides (no broadcast strides to make).
  auto strides_of = [&](const Tensor& t, Shape& made) -> const Shape& {
    return t.shape() == shape ? t.strides() : (made = broadcast_strides(t, shape));
  };
  Shape made_a, made_b;
  const Shape &sa = strides_of(ca, made_a), &sb = strides_of(cb, made_b);
  dispatch(compute, [&]<class C>() {
    using A = Acc<C>;
    dispatch(out_dtype, [&]<class TO>() {
      const C* pa = static_cast<const C*>(ca.raw_data());
      const C* pb = static_cast<const C*>(cb.raw_data());
      TO* po = static_cast<TO*>(out.raw_data());
      if (&sa == &ca.strides() && &sb == &cb.strides() && ca.is_contiguous() &&
          cb.is_contiguous()) {
        // Equal shapes, both dense (the common case, and most of a small op's time in the
        // strided walk): one flat loop, with the op fixed in the loop for the four arithmetic ops.
        const int64_t n = out.numel();
        auto flat = [&](auto f) {
          for (int64_t i = 0; i < n; ++i)
            po[i] = convert<TO>(f(convert<A>(pa[i]), convert<A>(pb[i])));
        };
        if constexpr (std::is_same_v<C, TO>) {
          switch (op) {
            case BinaryOp::Add:
              return flat([](A x, A y) { return apply_binary<A>(BinaryOp::Add, x, y); });
            case BinaryOp::Sub:
              return flat([](A x, A y) { return apply_binary<A>(BinaryOp::Sub, x, y); });
            case BinaryOp::Mul:
              return flat([](A x, A y) { return apply_binary<A>(BinaryOp::Mul, x, y); });
            case BinaryOp::Div:
              return flat([](A x, A y) { return apply_binary<A>(BinaryOp::Div, x, y); });
            default:
              break;
          }
        }
        return flat([op](A x, A y) { return apply_binary<A>(op, x, y); });
      }
      for_each_strided<3>(shape, {out.strides().data(), sa.data(), sb.data()}, {0, 0, 0},
                          [&](const std::array<int64_t, 3>& o) {
                            A x = convert<A>(pa[o[1]]);
                            A y = convert<A>(pb[o[2]]);
                            po[o[0]] = convert<TO>(apply_binary<A>(op, x, y));
                          });
    });
  });
  return out;
}

Tensor unary(UnaryOp op, const Tensor& x, double scalar, Dtype out_dtype) {
  Tensor out = empty(x.shape(), out_dtype);
  dispatch(out_dtype, [&]<class TO>() {
    using A = Acc<TO>;
    dispatch(x.dtype(), [&]<class TX>() {
      const TX* px = static_cast<const TX*>(x.raw_data());
      TO* po = static_cast<TO*>(out.raw_data());
      if (x.is_contiguous()) {  // one flat run, split over the threads when it is long
        for_chunks(x.numel(), kParallelUnaryElements, [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i)
            po[i] = convert<TO>(apply_unary<A>(op, convert<A>(px[i]), scalar));
        });
        return;
      }
      for_each_strided<2>(x.shape(), {out.strides().data(), x.strides().data()}, {0, 0},
                          [&](const std::array<int64_t, 2>& o) {
                            po[o[0]] =
                                convert<TO>(apply_unary<A>(op, convert<A>(px[o[1]]), scalar));
                          });
    });
  });
  return out;
}

Tensor clamp(const Tensor& x, std::optional<double> lo, std::optional<double> hi, Dtype out_dtype) {
  Tensor out = empty(x.shape(), out_dtype);
  dispatch(out_dtype, [&]<class TO>() {
    using A = Acc<TO>;
    // The op has checked that integer bounds fit out_dtype; a missing bound is no bound.
    const bool has_lo = lo.has_value(), has_hi = hi.has_value();
    const A a_lo = has_lo ? static_cast<A>(*lo) : A(0), a_hi = has_hi ? static_cast<A>(*hi) : A(0);
    // min(max(x, lo), hi) as PyTorch: NaN in x or in a bound gives NaN; lo > hi gives hi.
    auto f = [&](A v) -> A {
      if constexpr (std::is_floating_point_v<A>) {
        if (v != v || (has_lo && a_lo != a_lo) || (has_hi && a_hi != a_hi))
          return std::numeric_limits<A>::quiet_NaN();
      }
      if (has_lo && v < a_lo) v = a_lo;
      if (has_hi && v > a_hi) v = a_hi;
      return v;
    };
    dispatch(x.dtype(), [&]<class TX>() {
      const TX* px = static_cast<const TX*>(x.raw_data());
      TO* po = static_cast<TO*>(out.raw_data());
      for_each_strided<2>(x.shape(), {out.strides().data(), x.strides().data()}, {0, 0},
                          [&](const std::array<int64_t, 2>& o) {
                            po[o[0]] = convert<TO>(f(convert<A>(px[o[1]])));
                          });
    });
  });
  return out;
}

Tensor isclose(const Tensor& a, const Tensor& b, const Shape& shape, double rtol, double atol,
               bool equal_nan) {
  Tensor out = empty(shape, kFloat32);
  const Shape sa = broadcast_strides(a, shape), sb = broadcast_strides(b, shape);
  float* po = static_cast<float*>(out.raw_data());
  dispatch(a.dtype(), [&]<class T>() {
    using A = Acc<T>;
    const T* pa = static_cast<const T*>(a.raw_data());
    const T* pb = static_cast<const T*>(b.raw_data());
    for_each_strided<3>(shape, {out.strides().data(), sa.data(), sb.data()}, {0, 0, 0},
                        [&](const std::array<int64_t, 3>& o) {
                          const A x = convert<A>(pa[o[1]]), y = convert<A>(pb[o[2]]);
                          bool close = x == y;  // exact, and infinities of one sign
                          if (!close) {
                            // |x - y| <= atol + rtol |y| in double: no integer overflow, and
                            // infinities or NaNs that are not equal are not close.
                            const double dx = static_cast<double>(x), dy = static_cast<double>(y);
                            if (equal_nan && dx != dx && dy != dy)
                              close = true;
                            else if (std::isfinite(dx) && std::isfinite(dy))
                              close = std::fabs(dx - dy) <= atol + rtol * std::fabs(dy);
                          }
                          po[o[0]] = close ? 1.f : 0.f;
                        });
  });
  return out;
}

}  // namespace gg::reference
