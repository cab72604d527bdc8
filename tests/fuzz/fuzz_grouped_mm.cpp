// Fuzzes grouped_mm's argument handling, list and packed forms: shapes (including empty, huge and
// mismatched sizes), dtypes, offs values (negative, decreasing, past the end, wrong dtype/rank),
// bias patterns and strided operands, then backward when the call succeeded.
//
// A small model of docs/api.md's contract classifies every call before it runs:
//   kInvalid      the contract says it must throw gg::Error: it must;
//   kValid        it must succeed with the contract's output shape, and (float operands, small)
//                 the output must match a naive double-precision product;
//   kUnspecified  either outcome is fine (e.g. integer operands, out_dtype Int32).
// Huge sizes come from expand() (stride 0, no memory), so validation sees them for free. A call
// the model finds valid whose work would be huge is skipped: only invalid huge calls run.
#include <fmt/ranges.h>

#include <cmath>
#include <limits>
#include <string>

#include "fuzz_common.hpp"
#include "groupgrad.hpp"

namespace {

using namespace gg;
using gg::fuzz::overflows;
namespace F = gg::nn::functional;

enum class Verdict { kValid, kInvalid, kUnspecified };

constexpr int64_t kMaterializeCap = 4096;  // elements: bigger operands are stride-0 expansions
constexpr int64_t kWorkCap = int64_t{1} << 20;

int64_t sat_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}
int64_t sat_add(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<int64_t>::max() : r;
}
// Work bound of an operand: the product of its sizes, each counted at least once.
int64_t extent_of(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n = sat_mul(n, std::max<int64_t>(v, 1));
  return n;
}
int64_t sat_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t v : s) n = sat_mul(n, v);
  return n;
}

// Thrown when the fuzz input asks for an operand no tensor can be: that case is not run.
struct Skip {};

class Gen {
 public:
  explicit Gen(FuzzedDataProvider& p) : p_(p) {}

  int64_t size() {
    switch (p_.ConsumeIntegralInRange<int>(0, 15)) {
      case 13:
        return p_.PickValueInArray<int64_t>({7, 16, 33, 64});
      case 14:
        return p_.PickValueInArray<int64_t>({int64_t{1} << 31, int64_t{1} << 40, int64_t{1} << 62,
                                             std::numeric_limits<int64_t>::max()});
      default:
        return p_.ConsumeIntegralInRange<int64_t>(0, 5);
    }
  }
  Dtype dtype() {
    const int r = p_.ConsumeIntegralInRange<int>(0, 15);
    if (r < 8) return kFloat32;
    if (r < 11) return kFloat64;
    return p_.PickValueInArray({kBFloat16, kFloat16, kInt8, kInt32, kInt64});
  }
  bool chance(int percent) { return p_.ConsumeIntegralInRange<int>(0, 99) < percent; }
  int64_t pick(int64_t lo, int64_t hi) { return p_.ConsumeIntegralInRange<int64_t>(lo, hi); }
  FuzzedDataProvider& p() { return p_; }

  // An operand of this shape and dtype: real random values when small (contiguous, transposed or
  // narrowed), else a stride-0 expansion of one element. Maybe with a NaN or Inf in it.
  Tensor operand(const Shape& shape, Dtype dtype, bool* has_nonfinite) {
    if (overflows(shape)) throw Skip{};  // no tensor can have this shape (numel_of)
    const int64_t n = sat_numel(shape);
    if (n > kMaterializeCap) return zeros(Shape(shape.size(), 1), dtype).expand(shape);
    Tensor t;
    int layout = p_.ConsumeIntegralInRange<int>(0, 3);
    for (int64_t v : shape)  // huge sizes in an empty operand: no strided tricks
      if (v > kMaterializeCap) layout = 0;
    if (layout == 1 && shape.size() >= 2) {  // a transposed view
      Shape s = shape;
      std::swap(s[s.size() - 1], s[s.size() - 2]);
      t = values(s, dtype).transpose(-1, -2);
    } else if (layout == 2 && !shape.empty()) {  // a narrowed view of a wider tensor
      Shape s = shape;
      s.back() += 2;
      t = values(s, dtype).narrow(-1, 1, shape.back());
    } else {
      t = values(shape, dtype);
    }
    if (is_floating(dtype) && n > 0 && chance(5)) {
      const double bad = p_.PickValueInArray<double>({std::nan(""), INFINITY, -INFINITY});
      t = t.contiguous();
      dispatch(dtype, [&]<class T>() {
        if constexpr (!std::is_integral_v<T>) t.data_ptr<T>()[n / 2] = static_cast<T>(bad);
      });
      *has_nonfinite = true;
    }
    return t;
  }

 private:
  Tensor values(const Shape& shape, Dtype dtype) {
    return is_floating(dtype) ? randn(shape, dtype) : randint(-3, 4, shape, dtype);
  }
  FuzzedDataProvider& p_;
};

// More than gg::describe: the strides and requires_grad too, to replay a finding.
std::string describe_fully(const Tensor& t) {
  if (!t.defined()) return "undefined";
  return fmt::format("{} {} strides {}{}", dtype_name(t.dtype()), shape_str(t.shape()),
                     shape_str(t.strides()), t.requires_grad() ? " requires_grad" : "");
}

bool float_compute(Dtype d) { return d == kFloat32 || d == kFloat64; }

// Rows of a materialised tensor as doubles (row-major).
std::vector<double> doubles(const Tensor& t) {
  return t.contiguous().to(kFloat64).to_vector<double>();
}

double tolerance(Dtype in, Dtype out) { return (in == kFloat64 && out == kFloat64) ? 1e-9 : 1e-4; }

void check_close(double got, double want, double scale, double tol, const char* what) {
  if (std::isnan(want) && std::isnan(got)) return;
  const double err = std::abs(got - want);
  gg::fuzz::check(
      err <= tol * (scale + 1),
      fmt::format("{}: got {} but the naive product gives {} (scale {})", what, got, want, scale));
}

// ==== list form ==================================================================================

void list_case(Gen& gen) {
  const int64_t G = gen.pick(0, 4);
  std::vector<Tensor> xs, ws, bs;
  Verdict v = Verdict::kValid;
  auto invalid = [&] { v = Verdict::kInvalid; };
  auto unspecified = [&] {
    if (v == Verdict::kValid) v = Verdict::kUnspecified;
  };
  const Dtype base = gen.dtype();
  bool nonfinite = false;
  int64_t work = 0;
  const int bias_mode = static_cast<int>(gen.pick(0, 3));  // none, one per group, wrong count
  std::vector<Shape> out_shapes;
  for (int64_t g = 0; g < G; ++g) {
    const int64_t rank = gen.chance(5) ? 0 : gen.pick(1, 3);
    Shape xs_shape;
    for (int64_t d = 0; d < rank; ++d) xs_shape.push_back(gen.size());
    const int64_t k = rank > 0 ? xs_shape.back() : 1;
    const int64_t m = gen.size();
    Shape w_shape{gen.chance(90) ? k : gen.size(), m};
    if (gen.chance(4)) w_shape = gen.chance(50) ? Shape{k} : Shape{1, k, m};
    const Dtype xd = gen.chance(92) ? base : gen.dtype();
    const Dtype wd = gen.chance(92) ? base : gen.dtype();
    Tensor x = gen.chance(2) ? Tensor() : gen.operand(xs_shape, xd, &nonfinite);
    Tensor w = gen.chance(2) ? Tensor() : gen.operand(w_shape, wd, &nonfinite);
    if (!x.defined() || !w.defined() || rank == 0 || w_shape.size() != 2 || w_shape[0] != k ||
        xd != wd)
      invalid();
    if (!float_compute(xd) && xd != kBFloat16 && xd != kFloat16) unspecified();
    Tensor b;
    if (bias_mode == 1 && gen.chance(70)) {
      Shape b_shape{w_shape.size() == 2 ? w_shape[1] : m};
      if (gen.chance(8))
        b_shape =
            gen.chance(50) ? Shape{b_shape[0] == 0 ? 1 : b_shape[0] - 1} : Shape{1, b_shape[0]};
      const Dtype bd = gen.chance(92) ? xd : gen.dtype();
      b = gen.operand(b_shape, bd, &nonfinite);
      if (w_shape.size() == 2 && (b_shape != Shape{w_shape[1]} || bd != xd)) invalid();
    }
    if (x.defined() && is_floating(xd) && gen.chance(30)) x.requires_grad_();
    if (w.defined() && is_floating(wd) && gen.chance(30)) w.requires_grad_();
    if (b.defined() && is_floating(b.dtype()) && gen.chance(30)) b.requires_grad_();
    work = sat_add(work, sat_mul(extent_of(xs_shape), extent_of(w_shape)));
    Shape out = xs_shape;
    if (!out.empty()) out.back() = w_shape.back();
    out_shapes.push_back(out);
    xs.push_back(x);
    ws.push_back(w);
    bs.push_back(b);
  }
  if (bias_mode == 0) bs.clear();
  if (bias_mode == 3) {  // a bias list of the wrong length
    bs.resize(static_cast<size_t>(gen.chance(50) || G <= 1 ? G + 1 : G - 1));
    invalid();
  }
  std::optional<Dtype> out_dtype;
  if (gen.chance(15)) {
    out_dtype = gen.dtype();
    if (!is_floating(*out_dtype) && *out_dtype != kInt8) unspecified();
  }
  if (v != Verdict::kInvalid && work > kWorkCap) return;  // valid but huge: not run

  if (gg::fuzz::verbose()) {
    fmt::print(stderr, "list: {} groups, {} biases, out_dtype {}, verdict {}\n", G, bs.size(),
               out_dtype ? dtype_name(*out_dtype) : "-", static_cast<int>(v));
    for (int64_t g = 0; g < G; ++g)
      fmt::print(stderr, "  group {}: input {} mat2 {} bias {}\n", g, describe_fully(xs[g]),
                 describe_fully(ws[g]),
                 g < static_cast<int64_t>(bs.size()) ? describe_fully(bs[g]) : "-");
  }
  std::vector<Tensor> out;
  const bool ok = gg::fuzz::result_or_error([&] {
    out = F::grouped_mm(xs, ws, F::GroupedMMOptions{.bias = bs, .out_dtype = out_dtype});
  });
  gg::fuzz::check(!(ok && v == Verdict::kInvalid), "[list] an invalid call succeeded");
  gg::fuzz::check(ok || v != Verdict::kValid, "[list] a valid call threw");
  if (!ok) return;
  gg::fuzz::check(out.size() == static_cast<size_t>(G), "[list] wrong number of outputs");
  for (int64_t g = 0; g < G; ++g) {
    gg::fuzz::check(out[g].shape() == out_shapes[g],
                    fmt::format("[list] group {}: output shape {} but expected {}", g,
                                shape_str(out[g].shape()), shape_str(out_shapes[g])));
    gg::fuzz::check(out[g].dtype() == out_dtype.value_or(xs[g].dtype()), "[list] output dtype");
  }
  // Values against a naive product, for float32/float64 operands and float outputs.
  const Dtype od = out_dtype.value_or(base);
  if (!nonfinite && v == Verdict::kValid && float_compute(od)) {
    for (int64_t g = 0; g < G; ++g) {
      if (!float_compute(xs[g].dtype())) continue;
      const int64_t k = ws[g].size(0), m = ws[g].size(1);
      if (m == 0 || numel_of(out_shapes[g]) == 0) continue;
      const int64_t p = numel_of(out_shapes[g]) / m;
      const auto x = doubles(xs[g]), w = doubles(ws[g]), y = doubles(out[g]);
      const std::vector<double> b =
          bs.empty() || !bs[g].defined() ? std::vector<double>(m, 0.0) : doubles(bs[g]);
      for (int64_t r = 0; r < p; ++r)
        for (int64_t c = 0; c < m; ++c) {
          double want = b[c], scale = std::abs(b[c]);
          for (int64_t i = 0; i < k; ++i) {
            want += x[r * k + i] * w[i * m + c];
            scale += std::abs(x[r * k + i] * w[i * m + c]);
          }
          check_close(y[r * m + c], want, scale, tolerance(xs[g].dtype(), od), "[list] value");
        }
    }
  }
  // Backward through every output that can carry a gradient.
  if (is_floating(od)) {
    Tensor loss;
    for (const Tensor& o : out)
      if (o.requires_grad()) loss = loss.defined() ? loss + o.sum() : o.sum();
    if (loss.defined()) {
      gg::fuzz::result_or_error([&] { loss.backward(); });
      for (int64_t g = 0; g < G; ++g) {
        if (xs[g].requires_grad() && xs[g].grad().defined())
          gg::fuzz::check(xs[g].grad().shape() == xs[g].shape(), "[list] input grad shape");
        if (ws[g].requires_grad() && ws[g].grad().defined())
          gg::fuzz::check(ws[g].grad().shape() == ws[g].shape(), "[list] mat2 grad shape");
      }
    }
  }
}

// ==== packed form ================================================================================

void packed_case(Gen& gen) {
  Verdict v = Verdict::kValid;
  auto invalid = [&] { v = Verdict::kInvalid; };
  auto unspecified = [&] {
    if (v == Verdict::kValid) v = Verdict::kUnspecified;
  };
  bool nonfinite = false;
  const int layout = static_cast<int>(gen.pick(0, 3));  // 2Dx3D, 3Dx2D, 2Dx2D, 3Dx3D
  const bool in3 = layout == 1 || layout == 3, w3 = layout == 0 || layout == 3;
  int64_t G = gen.pick(0, 4);
  if (gen.chance(3)) G = gen.size();
  const int64_t K = gen.size(), M = gen.size(), N = gen.size();
  Shape in_shape = in3 ? Shape{G, M, K} : Shape{M, K};
  Shape w_shape = w3 ? Shape{G, K, N} : Shape{K, N};
  if (gen.chance(6)) in_shape[gen.pick(0, static_cast<int64_t>(in_shape.size()) - 1)] = gen.size();
  if (gen.chance(6)) w_shape[gen.pick(0, static_cast<int64_t>(w_shape.size()) - 1)] = gen.size();
  if (gen.chance(3)) in_shape.push_back(gen.size());  // 3-D/4-D: wrong rank sometimes
  if (gen.chance(3) && !w_shape.empty()) w_shape.pop_back();
  const Dtype dtype = gen.dtype();
  const Dtype wd = gen.chance(92) ? dtype : gen.dtype();
  Tensor input = gen.chance(2) ? Tensor() : gen.operand(in_shape, dtype, &nonfinite);
  Tensor mat2 = gen.chance(2) ? Tensor() : gen.operand(w_shape, wd, &nonfinite);
  if (!input.defined() || !mat2.defined()) invalid();
  const size_t ir = in_shape.size(), wr = w_shape.size();
  if ((ir != 2 && ir != 3) || (wr != 2 && wr != 3) || dtype != wd) invalid();
  if (v != Verdict::kInvalid && in_shape.back() != w_shape[wr - 2]) invalid();
  if (!float_compute(dtype) && dtype != kBFloat16 && dtype != kFloat16) unspecified();
  const int actual = ir == 2 ? (wr == 3 ? 0 : 2) : (wr == 3 ? 3 : 1);

  // offs: usually a proper split of the dimension it splits, sometimes broken.
  F::PackedGroupedMMOptions o;
  std::vector<int64_t> ends;
  const int64_t extent = actual == 0 ? in_shape[0] : actual == 1 ? w_shape.back() : in_shape.back();
  const bool give_offs = actual == 3 ? gen.chance(5) : !gen.chance(5);
  int64_t offs_len = 0;
  if (give_offs) {
    offs_len = gen.chance(90) ? G : gen.size();
    Dtype od = gen.chance(50) ? kInt32 : kInt64;
    if (gen.chance(5)) od = gen.dtype();
    const bool two_d = gen.chance(3);
    if (offs_len > 64) {  // a long offs is a stride-0 expansion (of zeros), up to 2^62 entries
      o.offs = zeros({1}, od).expand({offs_len});
      ends.assign(1, 0);
    } else {
      int64_t at = 0;
      for (int64_t g = 0; g < offs_len; ++g) {
        const int64_t room = std::max<int64_t>(0, std::min<int64_t>(extent, 64) - at);
        at += gen.pick(0, room / std::max<int64_t>(1, offs_len - g));
        int64_t e = at;
        if (gen.chance(3))
          e = gen.p().PickValueInArray<int64_t>(
              {-1, extent == std::numeric_limits<int64_t>::max() ? extent : extent + 1, at - 1,
               std::numeric_limits<int32_t>::max(), std::numeric_limits<int64_t>::min()});
        ends.push_back(e);
      }
      if (od == kInt32) {  // values an Int32 tensor can hold
        for (auto& e : ends)
          e = std::clamp<int64_t>(e, std::numeric_limits<int32_t>::min(),
                                  std::numeric_limits<int32_t>::max());
        o.offs = tensor<int32_t>(std::vector<int32_t>(ends.begin(), ends.end()), {offs_len});
      } else {
        o.offs = tensor<int64_t>(ends, {offs_len});
        if (od != kInt64) o.offs = o.offs.to(od);  // a wrong dtype: its values do not matter
      }
      if (two_d) o.offs = o.offs.reshape({1, offs_len});
    }
    if (od != kInt32 && od != kInt64) invalid();
    if (two_d) invalid();
  }
  int64_t groups = G;
  if (actual == 3) {
    if (give_offs) invalid();
    if (ir == 3 && wr == 3 && in_shape[0] != w_shape[0]) invalid();
    groups = ir == 3 ? in_shape[0] : 0;
  } else if (v != Verdict::kInvalid) {
    if (!give_offs) invalid();
    groups = offs_len;
    if (offs_len <= 64) {
      for (size_t g = 0; g < ends.size(); ++g)
        if (ends[g] < 0 || (g > 0 && ends[g] < ends[g - 1]) || ends[g] > extent) invalid();
    } else {
      unspecified();  // all zeros: valid if the group counts agree, but never run (huge)
    }
    if (actual == 0 && w_shape[0] != offs_len) invalid();
    if (actual == 1 && in_shape[0] != offs_len) invalid();
  }

  // bias: none, the contract's shape, or a wrong one.
  if (gen.chance(40) && wr >= 2) {
    Shape b_shape = actual == 1 ? Shape{w_shape.back()} : Shape{groups, w_shape.back()};
    if (gen.chance(10))
      b_shape = gen.chance(50) ? Shape{gen.size()} : Shape{gen.size(), gen.size()};
    const Dtype bd = gen.chance(92) ? dtype : gen.dtype();
    o.bias = gen.operand(b_shape, bd, &nonfinite);
    const Shape expected = actual == 1 ? Shape{w_shape.back()} : Shape{groups, w_shape.back()};
    if (b_shape != expected || bd != dtype) invalid();
  }
  if (gen.chance(15)) {
    o.out_dtype = gen.dtype();
    if (!is_floating(*o.out_dtype) && *o.out_dtype != kInt8) unspecified();
  }
  if (input.defined() && is_floating(dtype) && gen.chance(30)) input.requires_grad_();
  if (mat2.defined() && is_floating(wd) && gen.chance(30)) mat2.requires_grad_();
  if (o.bias.defined() && is_floating(o.bias.dtype()) && gen.chance(30)) o.bias.requires_grad_();

  int64_t work = sat_mul(sat_mul(extent_of(in_shape), extent_of(w_shape)),
                         std::max<int64_t>(1, std::max(offs_len, groups)));
  if (v != Verdict::kInvalid && work > kWorkCap) return;  // valid but huge: not run

  if (gg::fuzz::verbose())
    fmt::print(stderr, "packed: input {} mat2 {} offs {} {} bias {} out_dtype {}, verdict {}\n",
               describe_fully(input), describe_fully(mat2), describe_fully(o.offs),
               fmt::join(ends, ","), describe_fully(o.bias),
               o.out_dtype ? dtype_name(*o.out_dtype) : "-", static_cast<int>(v));
  Tensor out;
  const bool ok = gg::fuzz::result_or_error([&] { out = F::grouped_mm(input, mat2, o); });
  gg::fuzz::check(!(ok && v == Verdict::kInvalid), "[packed] an invalid call succeeded");
  gg::fuzz::check(ok || v != Verdict::kValid, "[packed] a valid call threw");
  if (!ok) return;
  const Shape expected = actual == 0   ? Shape{in_shape[0], w_shape[2]}
                         : actual == 1 ? Shape{in_shape[1], w_shape[1]}
                         : actual == 2 ? Shape{groups, in_shape[0], w_shape[1]}
                                       : Shape{groups, in_shape[1], w_shape[2]};
  gg::fuzz::check(out.shape() == expected,
                  fmt::format("[packed] output shape {} but expected {}", shape_str(out.shape()),
                              shape_str(expected)));
  const Dtype od = o.out_dtype.value_or(dtype);
  gg::fuzz::check(out.dtype() == od, "[packed] output dtype");

  if (!nonfinite && v == Verdict::kValid && float_compute(dtype) && float_compute(od) &&
      out.numel() > 0) {
    const auto x = doubles(input), w = doubles(mat2), y = doubles(out);
    const std::vector<double> b = o.bias.defined() ? doubles(o.bias) : std::vector<double>();
    const double tol = tolerance(dtype, od);
    auto begin = [&](int64_t g) { return g == 0 ? 0 : ends[g - 1]; };
    const int64_t end = ends.empty() ? 0 : ends.back();
    if (actual == 0) {  // (Mt, K) x (G, K, N) -> (Mt, N)
      const int64_t Mt = in_shape[0], k = in_shape[1], n = w_shape[2];
      for (int64_t r = 0; r < Mt; ++r) {
        int64_t g = 0;
        while (g < groups && r >= ends[g]) ++g;
        for (int64_t c = 0; c < n; ++c) {
          double want = 0, scale = 0;
          if (r < end) {
            want = b.empty() ? 0 : b[g * n + c];
            for (int64_t i = 0; i < k; ++i) {
              want += x[r * k + i] * w[(g * k + i) * n + c];
              scale += std::abs(x[r * k + i] * w[(g * k + i) * n + c]);
            }
          }
          check_close(y[r * n + c], want, scale + std::abs(want), tol, "[packed 2Dx3D] value");
        }
      }
    } else if (actual == 1) {  // (G, M, K) x (K, Nt) -> (M, Nt)
      const int64_t m = in_shape[1], k = in_shape[2], nt = w_shape[1];
      for (int64_t c = 0; c < nt; ++c) {
        int64_t g = 0;
        while (g < groups && c >= ends[g]) ++g;
        for (int64_t r = 0; r < m; ++r) {
          double want = 0, scale = 0;
          if (c < end) {
            want = b.empty() ? 0 : b[c];
            for (int64_t i = 0; i < k; ++i) {
              want += x[(g * m + r) * k + i] * w[i * nt + c];
              scale += std::abs(x[(g * m + r) * k + i] * w[i * nt + c]);
            }
          }
          check_close(y[r * nt + c], want, scale + std::abs(want), tol, "[packed 3Dx2D] value");
        }
      }
    } else {  // 2Dx2D: (M, Kt) x (Kt, N) -> (G, M, N); 3Dx3D: (G, M, K) x (G, K, N) -> (G, M, N)
      const int64_t m = expected[1], n = expected[2];
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t r = 0; r < m; ++r)
          for (int64_t c = 0; c < n; ++c) {
            double want = b.empty() ? 0 : b[g * n + c], scale = std::abs(want);
            if (actual == 2) {
              const int64_t kt = in_shape[1];
              for (int64_t i = begin(g); i < ends[g]; ++i) {
                want += x[r * kt + i] * w[i * n + c];
                scale += std::abs(x[r * kt + i] * w[i * n + c]);
              }
            } else {
              const int64_t k = in_shape[2];
              for (int64_t i = 0; i < k; ++i) {
                want += x[(g * m + r) * k + i] * w[(g * k + i) * n + c];
                scale += std::abs(x[(g * m + r) * k + i] * w[(g * k + i) * n + c]);
              }
            }
            check_close(y[(g * m + r) * n + c], want, scale, tol, "[packed 2Dx2D/3Dx3D] value");
          }
    }
  }
  if (out.requires_grad()) {
    gg::fuzz::result_or_error([&] { out.sum().backward(); });
    if (input.requires_grad() && input.grad().defined())
      gg::fuzz::check(input.grad().shape() == input.shape(), "[packed] input grad shape");
    if (mat2.requires_grad() && mat2.grad().defined())
      gg::fuzz::check(mat2.grad().shape() == mat2.shape(), "[packed] mat2 grad shape");
    if (o.bias.defined() && o.bias.requires_grad() && o.bias.grad().defined())
      gg::fuzz::check(o.bias.grad().shape() == o.bias.shape(), "[packed] bias grad shape");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider provider(data, size);
  Gen gen(provider);
  manual_seed(provider.ConsumeIntegral<uint16_t>());
  try {
    if (provider.ConsumeBool())
      list_case(gen);
    else
      packed_case(gen);
  } catch (const Skip&) {
  }
  return 0;
}
