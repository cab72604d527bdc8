// Elementwise ops: validation, type promotion and autograd here; kernels in
// ops/kernels/elementwise_kernels.cpp (oneDNN for f32/bf16 where it fits, plain loops otherwise).
#include "ops/elementwise.hpp"

#include <cmath>

#include "autograd/node.hpp"
#include "core/accumulate.hpp"
#include "core/strided.hpp"
#include "ops/kernels/elementwise_kernels.hpp"
#include "ops/reduce.hpp"

namespace gg {

namespace {
using autograd::record;
using autograd::SavedTensor;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;
using kernels::BinaryOp;
using kernels::UnaryOp;

// `t` for a backward that needs it only for the gradient of `other`: undefined when `other`
// gets none (the node's needs are fixed when it is recorded).
SavedTensor saved_for(const Tensor& t, const Tensor& other) {
  return other.requires_grad() ? SavedTensor(t) : SavedTensor();
}

// Every binary op validates and promotes here, and the kernel trusts what it is given: both
// operands defined, the broadcast shape (the error names the op), and the result dtype.
Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  a.checked(name);
  b.checked(name);
  // Equal shapes (the common case) need no broadcast shape made.
  const bool same = a.shape() == b.shape();
  const Shape broadcast = same ? Shape() : broadcast_shapes(a.shape(), b.shape(), name);  // throws
  return kernels::binary(op, a, b, same ? a.shape() : broadcast,
                         binary_result_dtype(op, a.dtype(), b.dtype()));
}

// Likewise for the unary ops: integer inputs compute in Float32, except Neg, Abs and Sign.
Tensor unary_op(UnaryOp op, const Tensor& x, double scalar, const char* name) {
  x.checked(name);
  const bool keeps_int = op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Sign;
  return kernels::unary(op, x, scalar, is_floating(x.dtype()) || keeps_int ? x.dtype() : kFloat32);
}
}  // namespace

Tensor scalar_like(double value, const Tensor& like) {
  Dtype dtype = like.dtype();
  if (!is_floating(dtype) && value != std::trunc(value)) dtype = kFloat32;
  return scalar_tensor(value, dtype);
}

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_op(BinaryOp::Add, a, b, "add");
  return record("AddBackward", {a, b}, out, [](const Grads& g, const Needs&) {
    return Grads{g[0], g[0]};
  });
}

void accumulate_into(const Tensor& dst, const Tensor& src) { kernels::add_into(dst, src); }

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_op(BinaryOp::Sub, a, b, "sub");
  return record("SubBackward", {a, b}, out, [](const Grads& g, const Needs& needs) {
    return Grads{g[0], needs[1] ? neg(g[0]) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_op(BinaryOp::Mul, a, b, "mul");
  if (!autograd::needs_grad({a, b})) return out;
  // Each operand is saved only for the other's gradient: x * 0.125 must not keep x alive (in
  // attention it held the whole q/k/v projection buffer until backward).
  return record("MulBackward", {a, b}, out,
                [a = saved_for(a, b), b = saved_for(b, a)](const Grads& g, const Needs& needs) {
                  return Grads{needs[0] ? g[0] * b.unpack() : Tensor(),
                               needs[1] ? g[0] * a.unpack() : Tensor()};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_op(BinaryOp::Div, a, b, "div");
  if (!autograd::needs_grad({a, b})) return out;
  return record("DivBackward", {a, b}, out,
                [a = saved_for(a, b), sb = SavedTensor(b)](const Grads& g, const Needs& needs) {
                  const Tensor b = sb.unpack();
                  Tensor ga = needs[0] ? g[0] / b : Tensor();
                  Tensor gb = needs[1] ? neg(g[0] * a.unpack() / (b * b)) : Tensor();
                  return Grads{ga, gb};
                });
}

namespace {
// max/min: the gradient goes to a where it was chosen (ties to a), else to b.
Tensor extremum(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  Tensor out = binary_op(op, a, b, name);
  if (!autograd::needs_grad({a, b})) return out;
  Tensor mask = binary_op(op == BinaryOp::Max ? BinaryOp::Ge : BinaryOp::Le, a, b, name);
  return record(std::string(name) + "Backward", {a, b}, out, [mask](const Grads& g, const Needs&) {
    Tensor gm = g[0] * mask;
    return Grads{gm, g[0] - gm};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) {
  return extremum(BinaryOp::Max, a, b, "maximum");
}
Tensor minimum(const Tensor& a, const Tensor& b) {
  return extremum(BinaryOp::Min, a, b, "minimum");
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Eq, a, b, "eq"); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Gt, a, b, "gt"); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_op(BinaryOp::Lt, a, b, "lt"); }

namespace {
// where's broadcast (the errors name it) and promotion, for the op and its backward.
Tensor where_op(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const Shape shape =
      broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  return kernels::where(cond, a, b, shape, promote_types(a.dtype(), b.dtype()));
}
}  // namespace

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  // cond * a + (1 - cond) * b would turn 0 * inf into nan; select explicitly instead.
  Tensor out = where_op(cond, a, b);
  if (!autograd::needs_grad({a, b})) return out;
  return record("WhereBackward", {a, b}, out,
                [c = SavedTensor(cond)](const Grads& g, const Needs&) {
                  Tensor zero = scalar_like(0.0, g[0]), cond = c.unpack();
                  return Grads{where_op(cond, g[0], zero), where_op(cond, zero, g[0])};
                });
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

// ---- unary ------------------------------------------------------------------------------------

Tensor neg(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Neg, x, 0, "neg");
  return record("NegBackward", {x}, out,
                [](const Grads& g, const Needs&) { return Grads{neg(g[0])}; });
}

Tensor exp(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Exp, x, 0, "exp");
  return record("ExpBackward", {x}, out,
                [y = SavedTensor::output(out)](const Grads& g, const Needs&) {
                  return Grads{g[0] * y.unpack()};
                });
}

Tensor log(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Log, x, 0, "log");
  return record("LogBackward", {x}, out, [x = SavedTensor(x)](const Grads& g, const Needs&) {
    return Grads{g[0] / x.unpack()};
  });
}

Tensor sqrt(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Sqrt, x, 0, "sqrt");
  return record("SqrtBackward", {x}, out,
                [y = SavedTensor::output(out)](const Grads& g, const Needs&) {
                  return Grads{g[0] / (y.unpack() * 2.0)};
                });
}

Tensor pow(const Tensor& x, double exponent) {
  Tensor out = unary_op(UnaryOp::Pow, x, exponent, "pow");
  return record("PowBackward", {x}, out,
                [x = SavedTensor(x), exponent](const Grads& g, const Needs&) {
                  if (exponent == 0) return Grads{g[0] * 0.0};
                  return Grads{g[0] * pow(x.unpack(), exponent - 1) * exponent};
                });
}

Tensor tanh(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Tanh, x, 0, "tanh");
  return record("TanhBackward", {x}, out,
                [sy = SavedTensor::output(out)](const Grads& g, const Needs&) {
                  const Tensor y = sy.unpack();
                  return Grads{g[0] * (1.0 - y * y)};
                });
}

Tensor sigmoid(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Sigmoid, x, 0, "sigmoid");
  return record("SigmoidBackward", {x}, out,
                [sy = SavedTensor::output(out)](const Grads& g, const Needs&) {
                  const Tensor y = sy.unpack();
                  return Grads{g[0] * y * (1.0 - y)};
                });
}

Tensor relu(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Relu, x, 0, "relu");
  return record("ReluBackward", {x}, out,
                [sy = SavedTensor::output(out)](const Grads& g, const Needs&) {
                  const Tensor y = sy.unpack();
                  return Grads{g[0] * gt(y, scalar_like(0.0, y)).to(g[0].dtype())};
                });
}

Tensor gelu(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Gelu, x, 0, "gelu");
  return record("GeluBackward", {x}, out, [x = SavedTensor(x)](const Grads& g, const Needs&) {
    return Grads{kernels::gelu_backward(g[0], x.unpack())};
  });
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Abs, x, 0, "abs");
  return record("AbsBackward", {x}, out, [x = SavedTensor(x)](const Grads& g, const Needs&) {
    return Grads{g[0] * unary_op(UnaryOp::Sign, x.unpack(), 0, "sign")};
  });
}

Tensor Tensor::exp() const { return gg::exp(*this); }
Tensor Tensor::log() const { return gg::log(*this); }
Tensor Tensor::sqrt() const { return gg::sqrt(*this); }
Tensor Tensor::tanh() const { return gg::tanh(*this); }
Tensor Tensor::sigmoid() const { return gg::sigmoid(*this); }
Tensor Tensor::relu() const { return gg::relu(*this); }
Tensor Tensor::pow(double exponent) const { return gg::pow(*this, exponent); }
Tensor Tensor::neg() const { return gg::neg(*this); }
Tensor Tensor::operator-() const { return gg::neg(*this); }

}  // namespace gg
