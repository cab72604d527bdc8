// Elementwise ops: validation, type promotion and autograd here; kernels in
// ops/kernels/elementwise_kernels.cpp (oneDNN for f32/bf16 where it fits, plain loops otherwise).
#include "ops/elementwise.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

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
  return record("AddBackward", a, b, std::move(out), [](const Grads& g, const Needs&) {
    return Grads{g[0], g[0]};
  });
}

void accumulate_into(const Tensor& dst, const Tensor& src) { kernels::add_into(dst, src); }

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_op(BinaryOp::Sub, a, b, "sub");
  return record("SubBackward", a, b, std::move(out), [](const Grads& g, const Needs& needs) {
    return Grads{g[0], needs[1] ? neg(g[0]) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_op(BinaryOp::Mul, a, b, "mul");
  if (!autograd::needs_grad({a, b})) return out;
  // Each operand is saved only for the other's gradient: x * 0.125 must not keep x alive (in
  // attention it held the whole q/k/v projection buffer until backward).
  return record("MulBackward", a, b, std::move(out),
                [a = saved_for(a, b), b = saved_for(b, a)](const Grads& g, const Needs& needs) {
                  return Grads{needs[0] ? g[0] * b.unpack() : Tensor(),
                               needs[1] ? g[0] * a.unpack() : Tensor()};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_op(BinaryOp::Div, a, b, "div");
  if (!autograd::needs_grad({a, b})) return out;
  return record("DivBackward", a, b, std::move(out),
                [a = saved_for(a, b), sb = SavedTensor(b)](const Grads& g, const Needs& needs) {
                  const Tensor b = sb.unpack();
                  Tensor ga = needs[0] ? g[0] / b : Tensor();
                  Tensor gb = needs[1] ? neg(g[0] * a.unpack() / (b * b)) : Tensor();
                  return Grads{ga, gb};
                });
}

namespace {
// max/min: the gradient goes to the operand that was chosen; ties split it in halves, as
// PyTorch's maximum and minimum do (and so clamp with tensor bounds, which is made of them).
Tensor extremum(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  Tensor out = binary_op(op, a, b, name);
  if (!autograd::needs_grad({a, b})) return out;
  Tensor chosen = binary_op(op == BinaryOp::Max ? BinaryOp::Gt : BinaryOp::Lt, a, b, name);
  Tensor share = chosen + binary_op(BinaryOp::Eq, a, b, name) * 0.5;  // 1, 1/2 or 0 for a
  return record(std::string(name) + "Backward", {a, b}, out, [share](const Grads& g, const Needs&) {
    Tensor ga = g[0] * share;
    return Grads{ga, g[0] - ga};
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
  cond.checked("where");
  a.checked("where");
  b.checked("where");
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
                  // Through where itself (not the kernel), so that with create_graph the
                  // gradients keep g's history.
                  return Grads{where(cond, g[0], zero), where(cond, zero, g[0])};
                });
}

// The scalar takes the tensor's dtype (Float32 for a fractional scalar and an integer tensor), as
// a Python scalar does in torch.where.
Tensor where(const Tensor& cond, const Tensor& a, double b) {
  a.checked("where");
  return where(cond, a, scalar_like(b, a));
}
Tensor where(const Tensor& cond, double a, const Tensor& b) {
  b.checked("where");
  return where(cond, scalar_like(a, b), b);
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
  // The derivative is a kernel: not differentiable again.
  return autograd::once_differentiable(
      record("GeluBackward", {x}, out, [x = SavedTensor(x)](const Grads& g, const Needs&) {
        return Grads{kernels::gelu_backward(g[0], x.unpack())};
      }));
}

Tensor abs(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Abs, x, 0, "abs");
  return record("AbsBackward", {x}, out, [x = SavedTensor(x)](const Grads& g, const Needs&) {
    return Grads{g[0] * unary_op(UnaryOp::Sign, x.unpack(), 0, "sign")};
  });
}

Tensor sin(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Sin, x, 0, "sin");
  return record("SinBackward", {x}, out, [x = SavedTensor(x)](const Grads& g, const Needs&) {
    return Grads{g[0] * cos(x.unpack())};
  });
}

Tensor cos(const Tensor& x) {
  Tensor out = unary_op(UnaryOp::Cos, x, 0, "cos");
  return record("CosBackward", {x}, out, [x = SavedTensor(x)](const Grads& g, const Needs&) {
    return Grads{neg(g[0] * sin(x.unpack()))};
  });
}

// ---- clamp ------------------------------------------------------------------------------------

namespace {
bool is_integral_value(double v) { return std::isfinite(v) && v == std::trunc(v); }

// The dtype clamp computes in: x's, or Float32 for integer x and a bound that is not an integer
// (as a Python float scalar promotes an integer tensor). Integer bounds must fit the dtype.
Dtype clamp_dtype(const Tensor& x, std::optional<double> lo, std::optional<double> hi) {
  const Dtype dtype = x.dtype();
  if (is_floating(dtype)) return dtype;
  if ((lo && !is_integral_value(*lo)) || (hi && !is_integral_value(*hi))) return kFloat32;
  const DtypeTraits& traits = dtype_traits(dtype);
  for (auto [name, bound] : {std::pair{"min", lo}, std::pair{"max", hi}}) {
    GG_CHECK(!bound || (*bound >= static_cast<double>(traits.exact_min) &&
                        *bound <= static_cast<double>(traits.exact_max)),
             "[clamp] {} = {} is out of the range of {} (input {})", name, *bound,
             dtype_name(dtype), describe(x));
  }
  return dtype;
}
}  // namespace

Tensor clamp(const Tensor& x, std::optional<double> min, std::optional<double> max) {
  x.checked("clamp");
  GG_CHECK(min || max, "[clamp] at least one of min and max must be given (input {})", describe(x));
  Tensor out = kernels::clamp(x, min, max, clamp_dtype(x, min, max));
  if (!autograd::needs_grad({x})) return out;
  // The gradient passes where min < x < max, strictly: PyTorch 2.15 gives 0 at the bounds.
  return record("ClampBackward", {x}, out,
                [sx = SavedTensor(x), min, max](const Grads& g, const Needs&) {
                  const Tensor x = sx.unpack();
                  Tensor pass;
                  if (min) pass = gt(x, scalar_like(*min, x));
                  if (max) {
                    Tensor below = lt(x, scalar_like(*max, x));
                    pass = pass.defined() ? pass * below : below;
                  }
                  return Grads{g[0] * pass.to(g[0].dtype())};
                });
}

Tensor clamp_min(const Tensor& x, double min) { return clamp(x, min, std::nullopt); }
Tensor clamp_max(const Tensor& x, double max) { return clamp(x, std::nullopt, max); }

Tensor clamp(const Tensor& x, const Tensor& min, const Tensor& max) {
  x.checked("clamp");
  GG_CHECK(min.defined() || max.defined(),
           "[clamp] at least one of min and max must be a defined tensor (input {})", describe(x));
  // Validated here so that the errors name clamp, not maximum or minimum.
  Shape shape = x.shape();
  if (min.defined()) shape = broadcast_shapes(shape, min.shape(), "clamp");
  if (max.defined()) shape = broadcast_shapes(shape, max.shape(), "clamp");
  // minimum(maximum(x, min), max): PyTorch's result for min > max (max), its dtype promotion of
  // all three, and its gradients (ties at a bound split between x and the bound).
  Tensor y = min.defined() ? maximum(x, min) : x;
  return max.defined() ? minimum(y, max) : y;
}

// ---- remainder and fmod -------------------------------------------------------------------------

namespace {
// Whether any element of an integer tensor is 0.
bool any_zero(const Tensor& t) {
  const Tensor zero_mask = eq(t, scalar_tensor(0, t.dtype())).contiguous();
  const float* p = zero_mask.data_ptr<float>();
  return std::any_of(p, p + zero_mask.numel(), [](float v) { return v != 0; });
}

// remainder and fmod: the op, its integer division check, and one node; d/da = 1,
// d/db = -round(a / b) with round = floor (remainder) or trunc (fmod).
Tensor modulo(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  a.checked(name);
  b.checked(name);
  const Shape shape =
      a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), name);
  const Dtype dtype = binary_result_dtype(op, a.dtype(), b.dtype());
  GG_CHECK(is_floating(dtype) || numel_of(shape) == 0 || !any_zero(b),
           "[{}] integer division by zero: the divisor holds a 0 (a {}, b {})", name, describe(a),
           describe(b));
  Tensor out = kernels::binary(op, a, b, shape, dtype);
  if (!autograd::needs_grad({a, b})) return out;
  const UnaryOp round = op == BinaryOp::Remainder ? UnaryOp::Floor : UnaryOp::Trunc;
  // a and b are read only for b's gradient: both are kept only when b requires grad.
  return record(
      std::string(op == BinaryOp::Remainder ? "Remainder" : "Fmod") + "Backward", {a, b}, out,
      [a = saved_for(a, b), b = saved_for(b, b), round, name](const Grads& g, const Needs& needs) {
        Tensor gb;
        if (needs[1]) gb = neg(g[0] * unary_op(round, a.unpack() / b.unpack(), 0, name));
        return Grads{needs[0] ? g[0] : Tensor(), gb};
      });
}
}  // namespace

Tensor remainder(const Tensor& a, const Tensor& b) {
  return modulo(BinaryOp::Remainder, a, b, "remainder");
}
Tensor remainder(const Tensor& a, double b) {
  a.checked("remainder");
  return remainder(a, scalar_like(b, a));
}
Tensor fmod(const Tensor& a, const Tensor& b) { return modulo(BinaryOp::Fmod, a, b, "fmod"); }
Tensor fmod(const Tensor& a, double b) {
  a.checked("fmod");
  return fmod(a, scalar_like(b, a));
}

// ---- masked_fill --------------------------------------------------------------------------------

namespace {
void check_mask(const Tensor& x, const Tensor& mask) {
  x.checked("masked_fill");
  mask.checked("masked_fill");
  // Each of the mask's dims, matched from the right, is 1 or the input's size.
  bool fits = mask.dim() <= x.dim();
  for (int64_t i = 1; fits && i <= mask.dim(); ++i)
    fits = mask.size(-i) == 1 || mask.size(-i) == x.size(-i);
  GG_CHECK(fits, "[masked_fill] the mask must broadcast to the input's shape (input {}, mask {})",
           describe(x), describe(mask));
}

// value as a 0-d tensor of x's dtype: truncated toward zero for integers, as PyTorch converts it,
// and refused when the integer dtype cannot hold it.
Tensor fill_value(const Tensor& x, double value) {
  const Dtype dtype = x.dtype();
  if (!is_floating(dtype)) {
    const DtypeTraits& traits = dtype_traits(dtype);
    const double v = std::trunc(value);
    GG_CHECK(std::isfinite(v) && v >= static_cast<double>(traits.exact_min) &&
                 v <= static_cast<double>(traits.exact_max),
             "[masked_fill] value {} cannot be converted to {} without overflow (input {})", value,
             dtype_name(dtype), describe(x));
    value = v;
  }
  return scalar_tensor(value, dtype);
}
}  // namespace

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  check_mask(x, mask);
  Tensor out = kernels::where(mask, fill_value(x, value), x, x.shape(), x.dtype());
  return record("MaskedFillBackward", {x}, out,
                [mask = SavedTensor(mask)](const Grads& g, const Needs&) {
                  return Grads{where(mask.unpack(), 0.0, g[0])};
                });
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, const Tensor& value) {
  check_mask(x, mask);
  value.checked("masked_fill");
  GG_CHECK(value.dim() == 0,
           "[masked_fill] value must be a 0-d tensor, got {} dimension(s) (value {}, input {})",
           value.dim(), describe(value), describe(x));
  const Tensor filled = is_floating(x.dtype()) ? value.detach().to(x.dtype())
                                               : fill_value(x, value.to(kFloat64).item<double>());
  Tensor out = kernels::where(mask, filled, x, x.shape(), x.dtype());
  if (!autograd::needs_grad({x, value})) return out;
  return record("MaskedFillBackward", {x, value}, out,
                [sm = SavedTensor(mask)](const Grads& g, const Needs& needs) {
                  const Tensor mask = sm.unpack();
                  return Grads{needs[0] ? where(mask, 0.0, g[0]) : Tensor(),
                               needs[1] ? where(mask, g[0], 0.0).sum() : Tensor()};
                });
}

// ---- comparisons of whole tensors ---------------------------------------------------------------

namespace {
bool all_nonzero(const Tensor& mask) {
  const Tensor m = mask.contiguous();
  const float* p = m.data_ptr<float>();
  return std::all_of(p, p + m.numel(), [](float v) { return v != 0; });
}
}  // namespace

Tensor isclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  a.checked("isclose");
  b.checked("isclose");
  GG_CHECK(a.dtype() == b.dtype(), "[isclose] a and b must have one dtype, got a {} and b {}",
           describe(a), describe(b));
  GG_CHECK(rtol >= 0 && atol >= 0,
           "[isclose] rtol and atol must be non-negative, got rtol = {} and atol = {}", rtol, atol);
  const Shape shape =
      a.shape() == b.shape() ? a.shape() : broadcast_shapes(a.shape(), b.shape(), "isclose");
  return kernels::isclose(a, b, shape, rtol, atol, equal_nan);
}

bool allclose(const Tensor& a, const Tensor& b, double rtol, double atol, bool equal_nan) {
  return all_nonzero(isclose(a, b, rtol, atol, equal_nan));
}

bool equal(const Tensor& a, const Tensor& b) {
  a.checked("equal");
  b.checked("equal");
  if (a.shape() != b.shape()) return false;
  return all_nonzero(eq(a, b));  // eq promotes: equal values of two dtypes are equal, as in torch
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
