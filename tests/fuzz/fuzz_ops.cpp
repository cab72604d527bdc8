// Fuzzes the tensor/ops API broadly: one random op per input, from every family (unary and binary
// elementwise with broadcasting and scalars, reductions, softmax, layer_norm, the losses, dropout,
// matmul/linear, cat/stack/split/chunk/index_select, embedding, conversions, factories, the
// everyday elementwise ops (sin, clamp, remainder, masked_fill, isclose, ...),
// causal_mask, attention and MoE on tiny weights), on random shapes (0, small, 2^20, 2^40, 2^62,
// INT64_MAX, negative) and random dtypes, then backward when the result is small and requires grad.
//
// The rule: every call ends in a result or a gg::Error (anything else is a finding), an op on an
// empty input returns at once (libFuzzer's -timeout catches a loop over 2^40 empty rows), and the
// shape oracles hold: elementwise ops keep the broadcast shape, reductions drop (or keep) the dim.
// Operands bigger than kMaterializeCap elements are stride-0 expansions (no memory), so huge shapes
// cost nothing until an op has to allocate its output, which the allocation rule refuses.
#include <cmath>
#include <limits>
#include <optional>
#include <string>

#include "core/strided.hpp"
#include "fuzz_common.hpp"
#include "groupgrad.hpp"

namespace {

using namespace gg;
using gg::fuzz::check;
using gg::fuzz::overflows;
namespace F = gg::nn::functional;

constexpr int64_t kMaterializeCap = 4096;
// Non-empty operands hold at most this many elements (stride-0 expansions above
// kMaterializeCap): a reduction over 2^40 real elements is legitimate work, not a hang, and a
// fuzzer that asks for it only times out (found in CI: sum of a [2^30]-element expansion under
// ASan). Huge shapes stay in play as empty tensors, overflowing or negative shapes, and as the
// outputs ops are asked to allocate (refused by the allocation rule).
constexpr int64_t kWorkCap = int64_t{1} << 22;
constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

class Gen {
 public:
  explicit Gen(FuzzedDataProvider& p) : p_(p) {}

  int64_t size() {
    static constexpr int64_t kSizes[] = {
        0, 1, 2, 3, 4, 5, 7, int64_t{1} << 20, int64_t{1} << 40, int64_t{1} << 62, kMax, -1};
    const size_t n = sizeof(kSizes) / sizeof(kSizes[0]);
    // Small sizes most of the time, so that valid calls also run their kernels.
    return p_.ConsumeIntegralInRange<int>(0, 3) != 0
               ? kSizes[p_.ConsumeIntegralInRange<size_t>(0, 6)]
               : kSizes[p_.ConsumeIntegralInRange<size_t>(0, n - 1)];
  }
  Shape shape(int max_rank = 4) {
    Shape s(static_cast<size_t>(p_.ConsumeIntegralInRange<int>(0, max_rank)));
    for (int64_t& v : s) v = size();
    return s;
  }
  Dtype dtype() {
    static constexpr Dtype kDtypes[] = {kFloat32, kFloat64, kBFloat16, kFloat16,
                                        kInt8,    kInt32,   kInt64};
    return p_.ConsumeBool() ? kFloat32 : kDtypes[p_.ConsumeIntegralInRange<int>(0, 6)];
  }
  int64_t dim() { return p_.ConsumeIntegralInRange<int64_t>(-5, 5); }
  double scalar() {
    static constexpr double kValues[] = {0.0, 1.0, -2.5, 0.5, 1e30, -1e-30};
    return p_.ConsumeBool() ? kValues[p_.ConsumeIntegralInRange<int>(0, 5)]
                            : std::numeric_limits<double>::quiet_NaN();
  }
  bool flag() { return p_.ConsumeBool(); }
  int pick(int n) { return p_.ConsumeIntegralInRange<int>(0, n - 1); }

  // A tensor of `s`: real values when small, a stride-0 expansion of one value when huge, or
  // whatever error making it throws (a negative or overflowing shape). Floating tensors may
  // require grad.
  Tensor tensor(const Shape& s, Dtype dtype) {
    Tensor t;
    bool ok = fuzz::result_or_error([&] {
      const int64_t n = numel_of(s);
      if (n <= kMaterializeCap) {
        t = is_floating(dtype) ? randn(s, dtype) : randint(-3, 4, s, dtype);
      } else if (n <= kWorkCap) {
        t = full(Shape(s.size(), 1), 0.5, dtype).expand(s);
      } else {
        fail("[fuzz_ops] {} elements: more work than a fuzz input may ask for", n);
      }
    });
    if (!ok) {
      // An invalid shape: the error was the outcome; go on with a small tensor.
      t = randn({2, 3}, dtype == kInt8 || dtype == kInt32 || dtype == kInt64 ? kFloat32 : dtype);
    }
    if (is_floating(t.dtype()) && flag()) t = t.detach().requires_grad_();
    return t;
  }
  Tensor tensor() { return tensor(shape(), dtype()); }
  Tensor index(int64_t hi) {
    std::vector<int64_t> v(static_cast<size_t>(p_.ConsumeIntegralInRange<int>(0, 6)));
    for (int64_t& i : v) i = p_.ConsumeIntegralInRange<int64_t>(-1, std::max<int64_t>(hi, 0));
    return gg::tensor<int64_t>(v);
  }

 private:
  FuzzedDataProvider& p_;
};

// The shape a reduction over `dim` gives (when the dim is valid).
Shape reduced(const Shape& s, int64_t dim, bool keepdim) {
  Shape out = s;
  const int64_t n = static_cast<int64_t>(s.size());
  if (n == 0) return out;
  const int64_t d = dim < 0 ? dim + n : dim;
  if (keepdim)
    out[static_cast<size_t>(d)] = 1;
  else
    out.erase(out.begin() + d);
  return out;
}
bool valid_dim(int64_t dim, size_t rank) {
  const int64_t n = static_cast<int64_t>(rank);
  return rank == 0 ? (dim == 0 || dim == -1) : (dim >= -n && dim < n);
}

// One op on generated operands; returns its result (undefined if the op has none).
Tensor run_op(Gen& g) {
  switch (g.pick(26)) {
    case 0: {  // unary
      const Tensor x = g.tensor();
      Tensor y;
      switch (g.pick(11)) {
        case 0:
          y = exp(x);
          break;
        case 1:
          y = log(x);
          break;
        case 2:
          y = sqrt(x);
          break;
        case 3:
          y = tanh(x);
          break;
        case 4:
          y = sigmoid(x);
          break;
        case 5:
          y = relu(x);
          break;
        case 6:
          y = gelu(x);
          break;
        case 7:
          y = abs(x);
          break;
        case 8:
          y = neg(x);
          break;
        case 9:
          y = pow(x, g.scalar());
          break;
        default:
          y = x.to(g.dtype());
          break;
      }
      check(y.shape() == x.shape(), "a unary op changed the shape");
      return y;
    }
    case 1: {  // binary, broadcasting
      const Tensor a = g.tensor(), b = g.flag() ? g.tensor() : g.tensor(a.shape(), g.dtype());
      Tensor y;
      switch (g.pick(9)) {
        case 0:
          y = a + b;
          break;
        case 1:
          y = a - b;
          break;
        case 2:
          y = a * b;
          break;
        case 3:
          y = a / b;
          break;
        case 4:
          y = maximum(a, b);
          break;
        case 5:
          y = minimum(a, b);
          break;
        case 6:
          y = eq(a, b);
          break;
        case 7:
          y = gt(a, b);
          break;
        default:
          y = where(lt(a, b), a, b);
          break;
      }
      check(y.shape() == broadcast_shapes(a.shape(), b.shape(), "fuzz"),
            "a binary op's shape is not the broadcast shape");
      return y;
    }
    case 2: {  // with a scalar
      const Tensor x = g.tensor();
      const double s = g.scalar();
      switch (g.pick(4)) {
        case 0:
          return x + s;
        case 1:
          return s - x;
        case 2:
          return x * s;
        default:
          return s / x;
      }
    }
    case 3: {  // reductions
      const Tensor x = g.tensor();
      const int64_t dim = g.dim();
      const bool keepdim = g.flag();
      Tensor y;
      switch (g.pick(6)) {
        case 0:
          return x.sum();
        case 1:
          return x.mean();
        case 2:
          y = x.sum(dim, keepdim);
          break;
        case 3:
          y = x.mean(dim, keepdim);
          break;
        case 4:
          y = max(x, dim, keepdim);
          break;
        default:
          y = argmax(x, dim, keepdim);
          break;
      }
      check(valid_dim(dim, x.shape().size()), "a reduction accepted an invalid dim");
      check(y.shape() == reduced(x.shape(), dim, keepdim), "a reduction's shape is wrong");
      return y;
    }
    case 4: {  // softmax
      const Tensor x = g.tensor();
      const Tensor y = g.flag() ? softmax(x, g.dim()) : log_softmax(x, g.dim());
      check(y.shape() == x.shape(), "softmax changed the shape");
      return y;
    }
    case 5: {  // layer_norm over the trailing dims
      const Tensor x = g.tensor();
      const size_t k = static_cast<size_t>(g.pick(3));
      Shape norm(x.shape().end() - static_cast<int64_t>(std::min(k, x.shape().size())),
                 x.shape().end());
      const Tensor w = g.flag() ? g.tensor(norm, x.dtype()) : Tensor();
      return layer_norm(x, norm, w, Tensor(), 1e-5);
    }
    case 6: {  // cross_entropy
      const Tensor logits = g.tensor();
      Shape ts = logits.shape();
      if (ts.size() >= 2) ts.erase(ts.begin() + 1);
      if (ts.size() == 1 && logits.dim() == 1) ts.clear();
      const Tensor target = g.tensor(ts, g.flag() ? kInt64 : g.dtype());
      return cross_entropy(logits, target, static_cast<Reduction>(g.pick(3)), -100,
                           g.flag() ? 0.0 : 0.1);
    }
    case 7: {
      const Tensor a = g.tensor();
      return mse_loss(a, g.tensor(a.shape(), g.dtype()), static_cast<Reduction>(g.pick(3)));
    }
    case 8:
      return dropout(g.tensor(), g.flag() ? 0.5 : g.scalar(), g.flag());
    case 9:
      return matmul(g.tensor(), g.tensor());
    case 10: {
      const Tensor x = g.tensor();
      return F::linear(x, g.tensor(g.shape(2), x.dtype()),
                       g.flag() ? g.tensor(g.shape(1), x.dtype()) : Tensor());
    }
    case 11: {  // cat / stack
      const Tensor a = g.tensor();
      std::vector<Tensor> list{a, g.flag() ? g.tensor(a.shape(), a.dtype()) : g.tensor()};
      return g.flag() ? cat(list, g.dim()) : stack(list, g.dim());
    }
    case 12: {  // split / chunk: the pieces' sizes add up to the dim
      const Tensor x = g.tensor();
      const int64_t dim = g.dim(), n = g.size();
      const std::vector<Tensor> pieces = g.flag() ? split(x, n, dim) : chunk(x, n, dim);
      int64_t total = 0;
      for (const Tensor& p : pieces) total += p.size(dim);
      check(total == x.size(dim), "split/chunk pieces do not add up to the dim");
      return pieces.empty() ? Tensor() : pieces.back();
    }
    case 13: {
      const Tensor x = g.tensor();
      const int64_t dim = g.dim();
      return index_select(
          x, dim, g.index(x.dim() > 0 && valid_dim(dim, x.shape().size()) ? x.size(dim) : 3));
    }
    case 14: {
      const Tensor w = g.tensor(g.shape(2), g.dtype());
      return F::embedding(g.index(w.dim() > 0 ? w.size(0) : 3), w);
    }
    case 15: {
      const Tensor x = g.tensor();
      switch (g.pick(4)) {
        case 0:
          return x.contiguous();
        case 1:
          return x.clone();
        case 2:
          return x.reshape(g.shape());
        default:
          return x.flatten(g.dim(), g.dim());
      }
    }
    case 16: {
      const Tensor m = nn::MultiheadAttention::causal_mask(g.size(), g.size(), g.dtype());
      return m;
    }
    case 17: {  // factories
      const Shape s = g.shape();
      switch (g.pick(6)) {
        case 0:
          return zeros(s, g.dtype());
        case 1:
          return ones(s, g.dtype());
        case 2:
          return full(s, g.scalar(), g.dtype());
        case 3:
          return randn(s, g.dtype());
        case 4:
          return rand(s, g.dtype());
        default:
          return arange(0.0, static_cast<double>(g.size()), 1.0, g.dtype());
      }
    }
    case 18: {  // attention on tiny weights, with huge or empty batch and sequence
      static nn::MultiheadAttention mha(4, 2);
      const Tensor q = g.tensor({g.size(), g.size(), g.flag() ? 4 : g.size()}, kFloat32);
      const Tensor k = g.flag() ? q : g.tensor({q.size(0), g.size(), 4}, kFloat32);
      return std::get<0>(mha.forward(q, k, k, {.is_causal = g.flag()}));
    }
    case 19: {  // MoE with embed dims that may be 0
      const int64_t E = g.pick(3), H = g.pick(3) + 1, NE = g.pick(3) + 1;
      const Tensor x = g.tensor({g.size(), E}, kFloat32);
      return F::moe_feed_forward(x, g.pick(static_cast<int>(NE)) + 1, zeros({NE, E}), {},
                                 zeros({NE, H, E}), {}, zeros({NE, E, H}), {})
          .output;
    }
    case 20: {
      const Tensor x = g.tensor();
      return x.transpose(g.dim(), g.dim()).contiguous();
    }
    case 21: {  // nll_loss, the binary cross-entropies, l1 / smooth_l1 / huber (issue 18)
      const Tensor x = g.tensor();
      const Tensor t =
          g.flag() ? g.tensor(x.shape(), g.flag() ? x.dtype() : g.dtype()) : g.tensor();
      const Tensor w = g.flag() ? g.tensor(g.shape(2), x.dtype()) : Tensor();
      const auto reduction = static_cast<Reduction>(g.pick(3));
      switch (g.pick(6)) {
        case 0: {
          Shape ts = x.shape();
          if (ts.size() >= 2) ts.erase(ts.begin() + 1);
          if (ts.size() == 1 && x.dim() == 1) ts.clear();
          const Tensor target = g.tensor(ts, g.flag() ? kInt64 : kInt32);
          return nll_loss(x, target, w, reduction, g.flag() ? -100 : -1);
        }
        case 1:
          return binary_cross_entropy(g.flag() ? sigmoid(x) : x, t, w, reduction);
        case 2:
          return binary_cross_entropy_with_logits(
              x, t, w, g.flag() ? g.tensor(g.shape(1), x.dtype()) : Tensor(), reduction);
        case 3:
          return l1_loss(x, t, reduction);
        case 4:
          return smooth_l1_loss(x, t, reduction, g.flag() ? 1.0 : g.scalar());
        default:
          return huber_loss(x, t, reduction, g.flag() ? 1.0 : g.scalar());
      }
    }
    case 22: {  // everyday elementwise (issue 18): sin/cos, clamp, remainder/fmod, masked_fill,
                // isclose/allclose/equal, where with a scalar
      const Tensor a = g.tensor(), b = g.flag() ? g.tensor() : g.tensor(a.shape(), g.dtype());
      // (made after the op: an op's own broadcast error is the outcome to see)
      auto both = [&] { return broadcast_shapes(a.shape(), b.shape(), "fuzz"); };
      Tensor y;
      switch (g.pick(10)) {
        case 0:
          y = g.flag() ? sin(a) : cos(a);
          check(y.shape() == a.shape(), "sin/cos changed the shape");
          return y;
        case 1: {
          const bool lo = g.flag(), hi = g.flag();
          y = clamp(a, lo ? std::optional<double>(g.scalar()) : std::nullopt,
                    hi ? std::optional<double>(g.scalar()) : std::nullopt);
          check(lo || hi, "clamp accepted no bounds");
          check(y.shape() == a.shape(), "clamp changed the shape");
          return y;
        }
        case 2:
          y = clamp(a, g.flag() ? b : Tensor(), g.flag() ? g.tensor() : Tensor());
          return y;
        case 3:
          y = g.flag() ? remainder(a, b) : fmod(a, b);
          check(y.shape() == both(), "remainder/fmod's shape is not the broadcast shape");
          return y;
        case 4:
          return g.flag() ? remainder(a, g.scalar()) : fmod(a, g.scalar());
        case 5:
          y = masked_fill(a, b, g.scalar());
          check(y.shape() == a.shape() && y.dtype() == a.dtype(),
                "masked_fill changed the input's shape or dtype");
          return y;
        case 6:
          y = masked_fill(a, b, g.tensor(Shape{}, g.dtype()));
          check(y.shape() == a.shape(), "masked_fill changed the input's shape");
          return y;
        case 7:
          y = isclose(a, b, g.flag() ? 1e-5 : g.scalar(), g.flag() ? 1e-8 : g.scalar(), g.flag());
          check(y.shape() == both() && a.dtype() == b.dtype(), "isclose's shape or dtype rule");
          return y;
        case 8:
          if (g.flag()) return scalar_tensor(allclose(a, b) ? 1.0 : 0.0);
          return scalar_tensor(equal(a, b) ? 1.0 : 0.0);
        default:
          y = g.flag() ? where(b, a, g.scalar()) : where(b, g.scalar(), a);
          check(y.shape() == both(), "where's shape is not the broadcast shape");
          return y;
      }
    }
    case 23: {  // whole-tensor and multi-dim reductions, topk, gather/scatter_add, flip, tril
      const Tensor x = g.tensor();
      const int64_t dim = g.dim();
      switch (g.pick(9)) {
        case 0:
          return g.flag() ? max(x) : x.min();
        case 1:
          return g.flag() ? argmax(x) : x.argmin(dim, g.flag());
        case 2: {
          const Shape dims = g.flag() ? Shape{dim} : Shape{dim, g.dim()};
          const bool keepdim = g.flag();
          const Tensor y = g.flag() ? sum(x, dims, keepdim) : mean(x, dims, keepdim);
          if (keepdim) check(y.dim() == x.dim(), "a keepdim reduction changed the rank");
          return y;
        }
        case 3: {
          const auto [values, indices] = topk(x, g.size(), dim, g.flag());
          check(values.shape() == indices.shape(), "topk's values and indices differ in shape");
          return values;
        }
        case 4: {
          const Tensor index = g.tensor(g.shape(), g.flag() ? kInt64 : kInt32);
          const Tensor y = gather(x, dim, index);
          check(y.shape() == index.shape(), "gather's output does not have the index's shape");
          return y;
        }
        case 5: {
          const Tensor index = g.tensor(g.shape(), g.flag() ? kInt64 : kInt32);
          const Tensor y = scatter_add(x, dim, index, g.tensor(index.shape(), x.dtype()));
          check(y.shape() == x.shape(), "scatter_add changed the shape");
          return y;
        }
        case 6: {
          // (2^20 views of a stride-0 expansion are legitimate work, not a finding: see kWorkCap.)
          if (x.dim() > 0 && valid_dim(dim, x.shape().size()) && x.size(dim) > kMaterializeCap)
            return Tensor();
          const std::vector<Tensor> pieces = unbind(x, dim);
          check(static_cast<int64_t>(pieces.size()) == x.size(dim),
                "unbind's pieces do not match the dim");
          return pieces.empty() ? Tensor() : pieces.back();
        }
        case 7: {
          const Tensor y = flip(x, g.flag() ? Shape{dim} : Shape{dim, g.dim()});
          check(y.shape() == x.shape(), "flip changed the shape");
          return y;
        }
        default: {
          const Tensor y = g.flag() ? tril(x, g.dim()) : triu(x, g.size());
          check(y.shape() == x.shape(), "tril/triu changed the shape");
          return y;
        }
      }
    }
    case 24: {  // in-place ops (issue 18): the result is written into x itself
      Tensor x = g.tensor().clone();
      const Tensor other = g.flag() ? g.tensor() : g.tensor(x.shape(), g.dtype());
      const Shape before = x.shape();
      switch (g.pick(7)) {
        case 0:
          x.add_(other, g.scalar());
          break;
        case 1:
          x.sub_(other);
          break;
        case 2:
          x.mul_(other);
          break;
        case 3:
          x.div_(other);
          break;
        case 4:
          x.copy_(other);
          break;
        case 5: {  // clamp_: each bound present or not
          const bool lo = g.flag(), hi = g.flag();
          x.clamp_(lo ? std::optional<double>(g.scalar()) : std::nullopt,
                   hi ? std::optional<double>(g.scalar()) : std::nullopt);
          check(lo || hi, "clamp_ accepted no bounds");
          break;
        }
        default:
          x.fill_(g.scalar());
          break;
      }
      check(x.shape() == before, "an in-place op changed the tensor's shape");
      return x;
    }
    default: {
      const Tensor x = g.tensor();
      const Shape s = g.shape();
      if (numel_of(s) > kWorkCap) return x.expand(s);  // a view: no work (see kWorkCap)
      return x.expand(s).sum();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  Gen gen(provider);
  manual_seed(provider.ConsumeIntegral<uint16_t>());
  Tensor y;
  const bool ok = fuzz::result_or_error([&] { y = run_op(gen); });
  if (ok && y.defined() && y.requires_grad() && is_floating(y.dtype()) &&
      y.numel() <= kMaterializeCap) {
    fuzz::result_or_error([&] { y.backward(ones(y.shape(), y.dtype())); });
  }
  return 0;
}
