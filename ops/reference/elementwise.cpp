#include "ops/reference/elementwise.hpp"

#include <cmath>
#include <functional>

#include "core/copy.hpp"
#include "core/strided.hpp"

namespace gg::reference {

namespace {

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
      for_each_strided<2>(x.shape(), {out.strides().data(), x.strides().data()}, {0, 0},
                          [&](const std::array<int64_t, 2>& o) {
                            po[o[0]] =
                                convert<TO>(apply_unary<A>(op, convert<A>(px[o[1]]), scalar));
                          });
    });
  });
  return out;
}

}  // namespace gg::reference
