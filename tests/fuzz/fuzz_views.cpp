// Fuzzes the view ops (reshape, view, flatten, transpose, t, permute, narrow, select, expand,
// squeeze, unsqueeze, contiguous) with random arguments, chained, on a tensor whose elements are
// 0, 1, 2, ... (Float64, requiring grad). A shadow model holds, for each element of the current
// view, which element of the base it shows; it decides whether each call is valid (then it must
// succeed) or not (then it must throw gg::Error), and the view's values and, after backward, the
// base's gradient are checked against it exactly.
#include <functional>
#include <limits>
#include <numeric>
#include <optional>

#include "fuzz_common.hpp"
#include "groupgrad.hpp"

namespace {

using namespace gg;
using gg::fuzz::check;
using gg::fuzz::overflows;

constexpr int64_t kCap = 4096;  // the shadow follows views of at most this many elements
constexpr int64_t kHuge = int64_t{1} << 40;

enum class Verdict { kValid, kInvalid, kEither };

// For each element of a view (row-major), the base element it shows; or opaque (too big).
struct Shadow {
  Shape shape;
  std::vector<int64_t> idx;
  bool opaque = false;
};

// The true product of sizes, saturated at kHuge * kHuge (no overflow).
int64_t product(const Shape& s) {
  __int128 n = 1;
  for (int64_t v : s) {
    n *= v;
    if (n > (__int128)std::numeric_limits<int64_t>::max())
      return std::numeric_limits<int64_t>::max();
  }
  return static_cast<int64_t>(n);
}

// Builds a new shadow of shape `shape` whose element at multi-index j shows old element
// old_index(j) (a multi-index of the old shape).
template <class Fn>
Shadow remap(const Shadow& old, Shape shape, Fn&& old_index) {
  Shadow out{std::move(shape), {}, false};
  const int64_t n = product(out.shape);
  if (old.opaque || n > kCap) {
    out.opaque = true;
    return out;
  }
  const Shape old_strides = contiguous_strides(old.shape);
  Shape j(out.shape.size(), 0);
  out.idx.reserve(static_cast<size_t>(n));
  for (int64_t e = 0; e < n; ++e) {
    const Shape o = old_index(j);
    int64_t flat = 0;
    for (size_t d = 0; d < o.size(); ++d) flat += o[d] * old_strides[d];
    out.idx.push_back(old.idx[static_cast<size_t>(flat)]);
    for (size_t d = j.size(); d-- > 0;) {  // next multi-index
      if (++j[d] < out.shape[d]) break;
      j[d] = 0;
    }
  }
  return out;
}

Shadow same_elements(const Shadow& old, Shape shape) {
  Shadow out{std::move(shape), old.idx, old.opaque};
  if (!out.opaque && product(out.shape) > kCap) out.opaque = true;
  return out;
}

std::optional<int64_t> wrap(int64_t d, int64_t n) {
  const int64_t lo = n == 0 ? -1 : -n, hi = n == 0 ? 0 : n - 1;
  if (d < lo || d > hi) return std::nullopt;
  return d < 0 ? d + std::max<int64_t>(n, 1) : d;
}

class Fuzz {
 public:
  explicit Fuzz(FuzzedDataProvider& p) : p_(p) {}

  int64_t size() {
    switch (p_.ConsumeIntegralInRange<int>(0, 19)) {
      case 17:
        return -1;
      case 18:
        return p_.PickValueInArray<int64_t>({-2, std::numeric_limits<int64_t>::min()});
      case 19:
        return p_.PickValueInArray<int64_t>(
            {int64_t{1} << 31, kHuge, int64_t{1} << 62, std::numeric_limits<int64_t>::max()});
      default:
        return p_.ConsumeIntegralInRange<int64_t>(0, 6);
    }
  }
  int64_t dim(int64_t n) {
    if (p_.ConsumeIntegralInRange<int>(0, 15) == 0)
      return p_.PickValueInArray<int64_t>({-100, 100, std::numeric_limits<int64_t>::min()});
    return p_.ConsumeIntegralInRange<int64_t>(-n - 1, n);
  }
  int64_t index(int64_t size) {
    if (p_.ConsumeIntegralInRange<int>(0, 15) == 0)
      return p_.PickValueInArray<int64_t>(
          {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), -kHuge});
    const int64_t edge = std::min(size, kHuge) + 1;
    return p_.ConsumeIntegralInRange<int64_t>(-edge, edge);
  }
  Shape shape(int64_t max_rank) {
    Shape s(static_cast<size_t>(p_.ConsumeIntegralInRange<int64_t>(0, max_rank)));
    for (int64_t& v : s) v = size();
    return s;
  }

  void run() {
    Shape base_shape(static_cast<size_t>(p_.ConsumeIntegralInRange<int>(0, 4)));
    for (int64_t& v : base_shape) v = p_.ConsumeIntegralInRange<int64_t>(0, 4);
    const int64_t n = numel_of(base_shape);
    base_ = arange(static_cast<double>(n), kFloat64).reshape(base_shape).detach();
    base_.requires_grad_();
    Tensor t = base_;
    Shadow s{base_shape, std::vector<int64_t>(static_cast<size_t>(n)), false};
    std::iota(s.idx.begin(), s.idx.end(), 0);

    const int steps = p_.ConsumeIntegralInRange<int>(1, 8);
    for (int step = 0; step < steps && p_.remaining_bytes() > 0; ++step) {
      Tensor next;
      std::optional<Shadow> want;  // the shadow if valid
      Verdict v = Verdict::kInvalid;
      const std::string op = apply(t, s, next, want, v);
      if (op.empty()) continue;  // skipped: not a view op on a big tensor
      if (want && want->shape.size() > kMaxTensorDims) {
        // Views have the 16-dimension limit of new tensors: every view op rejects more.
        want.reset();
        v = Verdict::kInvalid;
      }
      const bool ok = gg::fuzz::result_or_error([&] { next = call_(); });
      check(!(ok && v == Verdict::kInvalid), op + ": an invalid call succeeded");
      check(ok || v != Verdict::kValid, op + ": a valid call threw");
      if (!ok) continue;
      check(next.shape().size() <= kMaxTensorDims, op + ": a view with more than 16 dimensions");
      if (want) {
        check(next.shape() == want->shape,
              fmt::format("{}: shape {} but the model says {}", op, shape_str(next.shape()),
                          shape_str(want->shape)));
      } else {  // an outcome the model leaves open (huge sizes): follow the result
        want = Shadow{next.shape(), s.idx, s.opaque || product(next.shape()) > kCap};
        if (!want->opaque)
          check(product(next.shape()) == static_cast<int64_t>(s.idx.size()),
                op + ": element count changed");
      }
      t = next;
      s = *want;
      if (!s.opaque) check_values(t, s, op);
    }
    if (!s.opaque && t.numel() > 0) check_backward(t, s);
  }

 private:
  // Chooses an op and its arguments; sets call_ and, when the model knows, the verdict and the
  // resulting shadow. Returns the op's description, or "" to skip.
  std::string apply(const Tensor& t, const Shadow& s, Tensor& /*next*/, std::optional<Shadow>& want,
                    Verdict& v) {
    const int64_t n = static_cast<int64_t>(s.shape.size());
    const bool small = !s.opaque;
    switch (p_.ConsumeIntegralInRange<int>(0, 12)) {
      case 0:
      case 1: {  // reshape / view
        const bool is_view = p_.ConsumeBool();
        Shape target = shape(5);
        if (!small && !is_view) return "";
        call_ = [=] { return is_view ? t.view(target) : t.reshape(target); };
        const int64_t numel = product(s.shape);
        int64_t infer = -1, known = 1;
        int minus = 0;
        bool negative = false;
        for (size_t i = 0; i < target.size(); ++i) {
          if (target[i] == -1) {
            ++minus;
            infer = static_cast<int64_t>(i);
          } else if (target[i] < 0) {
            negative = true;
          }
        }
        Shape resolved = target, known_sizes;
        for (int64_t x : target)
          if (x != -1) known_sizes.push_back(x);
        if (minus > 1 || negative || overflows(known_sizes)) {
          v = Verdict::kInvalid;
        } else {
          known = product(known_sizes);
          const bool inferable = infer < 0 || (known != 0 && numel % known == 0);
          if (infer >= 0 && inferable) resolved[infer] = numel / known;
          if (!inferable || overflows(resolved) || product(resolved) != numel) {
            v = Verdict::kInvalid;
          } else {
            v = is_view ? Verdict::kEither : Verdict::kValid;  // view() may refuse to copy
            want = same_elements(s, resolved);
          }
        }
        return fmt::format("{}({})", is_view ? "view" : "reshape", shape_str(target));
      }
      case 2: {  // transpose
        const int64_t a = dim(n), b = dim(n);
        call_ = [=] { return t.transpose(a, b); };
        const auto wa = wrap(a, n), wb = wrap(b, n);
        if (wa && wb) {
          v = Verdict::kValid;
          if (n == 0) {
            want = s;
          } else {
            Shape sh = s.shape;
            std::swap(sh[*wa], sh[*wb]);
            want = remap(s, sh, [&](Shape j) {
              std::swap(j[*wa], j[*wb]);
              return j;
            });
          }
        }
        return fmt::format("transpose({}, {})", a, b);
      }
      case 3: {  // permute
        Shape dims(static_cast<size_t>(p_.ConsumeIntegralInRange<int64_t>(0, 1) == 0
                                           ? n
                                           : p_.ConsumeIntegralInRange<int64_t>(0, 5)));
        std::iota(dims.begin(), dims.end(), 0);
        for (size_t i = dims.size(); i > 1; --i)
          std::swap(dims[i - 1], dims[p_.ConsumeIntegralInRange<size_t>(0, i - 1)]);
        for (int64_t& d : dims)
          if (p_.ConsumeIntegralInRange<int>(0, 9) == 0) d = dim(n);
        call_ = [=] { return t.permute(dims); };
        bool ok = static_cast<int64_t>(dims.size()) == n;
        std::vector<int64_t> wrapped;
        std::vector<bool> used(static_cast<size_t>(n), false);
        for (int64_t d : dims) {
          const auto w = wrap(d, n);
          if (!ok || !w || n == 0 || used[*w]) {
            ok = false;
            break;
          }
          used[*w] = true;
          wrapped.push_back(*w);
        }
        if (n == 0 && dims.empty()) ok = true;
        if (ok) {
          v = Verdict::kValid;
          Shape sh(static_cast<size_t>(n));
          for (int64_t i = 0; i < n; ++i) sh[i] = s.shape[wrapped[i]];
          want = remap(s, sh, [&](const Shape& j) {
            Shape o(static_cast<size_t>(n));
            for (int64_t i = 0; i < n; ++i) o[wrapped[i]] = j[i];
            return o;
          });
        }
        return fmt::format("permute({})", shape_str(dims));
      }
      case 4: {  // narrow
        const int64_t d = dim(n);
        const auto w = wrap(d, n);
        const int64_t size = w && n > 0 ? s.shape[*w] : 3;
        int64_t start = index(size), length = index(size);
        call_ = [=] { return t.narrow(d, start, length); };
        if (n > 0 && w) {
          int64_t st = start;
          if (st < 0 && st >= -size) st += size;
          if (st >= 0 && length >= 0 && st <= size && length <= size - st) {
            v = Verdict::kValid;
            Shape sh = s.shape;
            sh[*w] = length;
            want = remap(s, sh, [&](Shape j) {
              j[*w] += st;
              return j;
            });
          }
        }
        return fmt::format("narrow({}, {}, {})", d, start, length);
      }
      case 5: {  // select
        const int64_t d = dim(n);
        const auto w = wrap(d, n);
        const int64_t size = w && n > 0 ? s.shape[*w] : 3;
        const int64_t i = index(size);
        call_ = [=] { return t.select(d, i); };
        if (n > 0 && w && i >= -size && i < size) {
          v = Verdict::kValid;
          const int64_t at = i < 0 ? i + size : i;
          Shape sh = s.shape;
          sh.erase(sh.begin() + *w);
          want = remap(s, sh, [&](Shape j) {
            j.insert(j.begin() + *w, at);
            return j;
          });
        }
        return fmt::format("select({}, {})", d, i);
      }
      case 6: {  // expand
        Shape target;
        const int64_t lead = p_.ConsumeIntegralInRange<int64_t>(0, 2);
        for (int64_t i = 0; i < lead; ++i) target.push_back(size());
        for (int64_t have : s.shape) {
          const int r = p_.ConsumeIntegralInRange<int>(0, 5);
          target.push_back(r == 0 ? -1 : r == 1 ? size() : have == 1 ? size() : have);
        }
        if (p_.ConsumeIntegralInRange<int>(0, 15) == 0 && !target.empty()) target.pop_back();
        call_ = [=] { return t.expand(target); };
        if (target.size() >= s.shape.size()) {
          const size_t L = target.size() - s.shape.size();
          Shape resolved = target;
          bool ok = true;
          for (size_t i = 0; i < target.size(); ++i) {
            if (i < L) {
              ok = ok && target[i] >= 0;
            } else {
              const int64_t have = s.shape[i - L];
              if (target[i] == -1) resolved[i] = have;
              ok = ok && (have == resolved[i] || (have == 1 && resolved[i] >= 0));
            }
          }
          if (ok && !overflows(resolved)) {
            v = Verdict::kValid;
            want = remap(s, resolved, [&](const Shape& j) {
              Shape o(j.begin() + static_cast<int64_t>(L), j.end());
              for (size_t d = 0; d < o.size(); ++d)
                if (s.shape[d] == 1) o[d] = 0;
              return o;
            });
          }
        }
        return fmt::format("expand({})", shape_str(target));
      }
      case 7: {  // squeeze()
        call_ = [=] { return t.squeeze(); };
        Shape sh;
        for (int64_t x : s.shape)
          if (x != 1) sh.push_back(x);
        v = Verdict::kValid;
        want = same_elements(s, sh);
        return "squeeze()";
      }
      case 8: {  // squeeze(d)
        const int64_t d = dim(n);
        call_ = [=] { return t.squeeze(d); };
        if (const auto w = wrap(d, n)) {
          v = Verdict::kValid;
          Shape sh = s.shape;
          if (n > 0 && sh[*w] == 1) sh.erase(sh.begin() + *w);
          want = same_elements(s, sh);
        }
        return fmt::format("squeeze({})", d);
      }
      case 9: {  // unsqueeze(d)
        const int64_t d = dim(n + 1);
        call_ = [=] { return t.unsqueeze(d); };
        if (const auto w = wrap(d, n + 1)) {
          v = Verdict::kValid;
          Shape sh = s.shape;
          sh.insert(sh.begin() + *w, 1);
          want = same_elements(s, sh);
        }
        return fmt::format("unsqueeze({})", d);
      }
      case 10: {  // flatten
        if (!small) return "";
        const int64_t a = dim(n), b = dim(n);
        call_ = [=] { return t.flatten(a, b); };
        if (n == 0) {
          v = Verdict::kValid;
          want = same_elements(s, {1});
        } else if (const auto wa = wrap(a, n), wb = wrap(b, n); wa && wb && *wa <= *wb) {
          v = Verdict::kValid;
          Shape sh(s.shape.begin(), s.shape.begin() + *wa);
          sh.push_back(product(Shape(s.shape.begin() + *wa, s.shape.begin() + *wb + 1)));
          sh.insert(sh.end(), s.shape.begin() + *wb + 1, s.shape.end());
          want = same_elements(s, sh);
        }
        return fmt::format("flatten({}, {})", a, b);
      }
      case 11: {  // t()
        call_ = [=] { return t.t(); };
        if (n <= 2) {
          v = Verdict::kValid;
          want = n < 2 ? s : remap(s, {s.shape[1], s.shape[0]}, [](const Shape& j) {
            return Shape{j[1], j[0]};
          });
        }
        return "t()";
      }
      default: {  // contiguous
        if (!small) return "";
        call_ = [=] { return t.contiguous(); };
        v = Verdict::kValid;
        want = s;
        return "contiguous()";
      }
    }
    return "";
  }

  void check_values(const Tensor& t, const Shadow& s, const std::string& op) {
    const std::vector<double> got = t.to_vector<double>();
    check(got.size() == s.idx.size(), op + ": element count differs from the model");
    for (size_t i = 0; i < got.size(); ++i)
      check(got[i] == static_cast<double>(s.idx[i]),
            fmt::format("{}: element {} is {} but the model says {}", op, i, got[i], s.idx[i]));
  }

  // loss = sum(view * w) with w = 1, 2, 3, ...: the base's gradient is w scattered (added) back
  // through the model's index map.
  void check_backward(const Tensor& t, const Shadow& s) {
    const int64_t n = static_cast<int64_t>(s.idx.size());
    const Tensor w = arange(1.0, static_cast<double>(n + 1), 1.0, kFloat64).reshape(t.shape());
    (t * w).sum().backward();
    std::vector<double> want(static_cast<size_t>(base_.numel()), 0.0);
    for (int64_t i = 0; i < n; ++i) want[s.idx[i]] += static_cast<double>(i + 1);
    const Tensor g = base_.grad();
    check(g.defined() && g.shape() == base_.shape(), "backward: the base's grad is missing");
    check(g.to_vector<double>() == want, "backward: the base's gradient is wrong");
  }

  FuzzedDataProvider& p_;
  Tensor base_;
  std::function<Tensor()> call_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  Fuzz(provider).run();
  return 0;
}
