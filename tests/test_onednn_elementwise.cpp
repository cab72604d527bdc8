// The oneDNN elementwise backends (ops/onednn/{binary,eltwise,reduction,reorder}) against their
// oracles: the reference loops of ops/reference/elementwise (binary, unary), gg::convert
// (reorder) and double sums (reduction), on random shapes with broadcasting on either side,
// transposed, sliced and expanded inputs, bf16, zero-size and 0-d tensors; plus the routing of
// the public ops and the primitive cache.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <random>
#include <vector>

#include "core/copy.hpp"
#include "core/strided.hpp"
#include "ops/elementwise.hpp"
#include "ops/kernels/elementwise_kernels.hpp"
#include "ops/onednn/binary.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/eltwise.hpp"
#include "ops/onednn/reduction.hpp"
#include "ops/onednn/reorder.hpp"
#include "ops/reduce.hpp"
#include "ops/reference/elementwise.hpp"

namespace {

using gg::Dtype;
using gg::Shape;
using gg::Tensor;
using gg::kernels::BinaryOp;
using gg::kernels::UnaryOp;
namespace reference = gg::reference;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Every element of a (possibly strided) tensor as double, in row-major order, read directly
// from storage so that no copy kernel is involved.
std::vector<double> values(const Tensor& t) {
  std::vector<double> out;
  out.reserve(static_cast<size_t>(t.numel()));
  const void* base = t.raw_data();
  gg::for_each_strided<1>(t.shape(), {t.strides().data()}, {0},
                          [&](const std::array<int64_t, 1>& o) {
                            out.push_back(gg::load_as_double(base, t.dtype(), o[0]));
                          });
  return out;
}

// A float tensor of `dtype` holding `v` (each value rounded to dtype by BFloat16/Half's own
// constructors), in a layout: 0 contiguous, 1 transposed (last two dims), 2 sliced (last dim
// narrowed out of a wider tensor). Layouts 1 and 2 fall back to contiguous where impossible.
Tensor make(const std::vector<float>& v, const Shape& shape, Dtype dtype, int layout = 0) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  Shape storage_shape = shape;
  if (layout == 1 && nd >= 2) std::swap(storage_shape[nd - 1], storage_shape[nd - 2]);
  if (layout == 2 && nd >= 1) storage_shape[nd - 1] += 3;
  Tensor base = gg::empty(storage_shape, dtype);
  Tensor view = base;
  if (layout == 1 && nd >= 2) view = base.transpose(-1, -2);
  if (layout == 2 && nd >= 1) view = base.narrow(-1, 1, shape[nd - 1]);
  int64_t i = 0;
  void* data = view.raw_data();
  gg::for_each_strided<1>(view.shape(), {view.strides().data()}, {0},
                          [&](const std::array<int64_t, 1>& o) {
                            gg::store_from_double(data, dtype, o[0], v[static_cast<size_t>(i++)]);
                          });
  return view;
}

// Values on a grid of halves (so that comparisons see ties) with an occasional NaN.
std::vector<float> grid_values(int64_t n, std::mt19937& rng, bool nans = true) {
  std::uniform_int_distribution<int> grid(-6, 6);
  std::uniform_int_distribution<int> pick(0, 19);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = nans && pick(rng) == 0 ? kNaN : 0.5f * static_cast<float>(grid(rng));
  return v;
}

std::vector<float> normal_values(int64_t n, std::mt19937& rng, float scale = 1.f) {
  std::normal_distribution<float> normal(0.f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = normal(rng);
  return v;
}

// Distance in units in the last place between two floats (0 for two NaNs).
int64_t ulp_distance(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : INT64_MAX;
  auto key = [](float f) {
    int64_t i = std::bit_cast<int32_t>(f);
    return i < 0 ? INT32_MIN - i : i;  // monotonic in f, with -0 == +0
  };
  return std::llabs(key(static_cast<float>(a)) - key(static_cast<float>(b)));
}

// Bit-equal as doubles (f32/bf16 widen exactly), NaN matching NaN, signed zeros compared.
void require_identical(const Tensor& got, const Tensor& want) {
  REQUIRE(got.dtype() == want.dtype());
  REQUIRE(got.shape() == want.shape());
  std::vector<double> g = values(got), w = values(want);
  auto same = [](double x, double y) {
    return std::isnan(y) ? std::isnan(x) : x == y && std::signbit(x) == std::signbit(y);
  };
  size_t i = 0;
  while (i < g.size() && same(g[i], w[i])) ++i;
  if (i == g.size()) return;
  INFO("element " << i << ": got " << g[i] << ", want " << w[i]);
  REQUIRE(same(g[i], w[i]));
}

const char* op_name(BinaryOp op) {
  static const char* names[] = {"add", "sub", "mul", "div", "max", "min",
                                "eq",  "gt",  "lt",  "ge",  "le"};
  return names[static_cast<int>(op)];
}

const BinaryOp kBinaryOps[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul,
                               BinaryOp::Div, BinaryOp::Eq,  BinaryOp::Gt,
                               BinaryOp::Lt,  BinaryOp::Ge,  BinaryOp::Le};
const std::pair<Dtype, Dtype> kDtypePairs[] = {{gg::kFloat32, gg::kFloat32},
                                               {gg::kBFloat16, gg::kBFloat16},
                                               {gg::kFloat32, gg::kBFloat16},
                                               {gg::kBFloat16, gg::kFloat32}};

// Whether oneDNN computes these dtypes here: bf16 only from AVX512_CORE up (context.hpp); below
// it the backends decline bf16 and the ops compute it through f32 (test_bf16_through_f32.cpp).
bool onednn_has(Dtype a, Dtype b = gg::kFloat32) {
  return gg::onednn::native_bf16() || (a != gg::kBFloat16 && b != gg::kBFloat16);
}

// Runs op on oneDNN and on the loop; returns whether oneDNN ran (its result must then be
// identical: one f32 operation and one rounding, like the loop).
bool check_binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  Dtype dtype = gg::kernels::binary_result_dtype(op, a.dtype(), b.dtype());
  Tensor want = reference::binary(op, a, b, dtype);
  Tensor got = gg::empty(want.shape(), dtype);
  INFO(op_name(op) << " " << gg::dtype_name(a.dtype()) << gg::shape_str(a.shape()) << " strides "
                   << gg::shape_str(a.strides()) << " with " << gg::dtype_name(b.dtype())
                   << gg::shape_str(b.shape()) << " strides " << gg::shape_str(b.strides()));
  bool ran = gg::onednn::binary(op, a, b, got);
  if (ran) require_identical(got, want);
  return ran;
}

}  // namespace

TEST_CASE("onednn binary equals the loop on fixed broadcast and layout cases", "[onednn][binary]") {
  std::mt19937 rng(7);
  struct Case {
    Shape a, b;
    int layout_a, layout_b;
    // 1: declined for div (its broadcast src0, not a scalar, cannot be swapped away); 2: declined
    // for all ops (both broadcast: materialising either with a stride-0 reorder is slower than
    // the loop).
    int declined = 0;
  };
  const Case cases[] = {
      {{37, 53}, {37, 53}, 0, 0},       // same shape: one flat run
      {{8, 16, 33}, {16, 1}, 0, 0},     // src1 broadcast: middle dims
      {{8, 16, 33}, {33}, 0, 0},        // a row
      {{8, 16, 33}, {}, 0, 0},          // a 0-d scalar
      {{8, 16, 33}, {8, 1, 33}, 0, 0},  // middle dim broadcast
      {{16, 1}, {8, 16, 33}, 0, 0, 1},  // src0 broadcast
      {{}, {8, 16, 33}, 0, 0},          // scalar on the left: 2 - x, 2 / x
      {{17, 1}, {1, 23}, 0, 0, 2},      // both broadcast
      {{40, 30}, {40, 30}, 1, 0},       // transposed a
      {{40, 30}, {40, 30}, 0, 1},       // transposed b
      {{40, 30}, {40, 30}, 1, 1},       // both transposed
      {{6, 40, 30}, {30}, 2, 2},        // sliced rows and a sliced row vector
      {{6, 40, 30}, {40, 1}, 1, 0},     // transposed a with a broadcast b
      {{}, {}, 0, 0},                   // 0-d with 0-d: treated as [1]
      {{1}, {}, 0, 0},
  };
  for (const auto& [da, db] : kDtypePairs) {
    for (BinaryOp op : kBinaryOps) {
      for (const Case& c : cases) {
        Tensor a = make(grid_values(gg::numel_of(c.a), rng), c.a, da, c.layout_a);
        Tensor b = make(grid_values(gg::numel_of(c.b), rng), c.b, db, c.layout_b);
        INFO(op_name(op) << " " << gg::dtype_name(da) << gg::shape_str(c.a) << " layout "
                         << c.layout_a << " with " << gg::dtype_name(db) << gg::shape_str(c.b)
                         << " layout " << c.layout_b);
        const bool runs =
            (c.declined == 0 || (c.declined == 1 && op != BinaryOp::Div)) && onednn_has(da, db);
        CHECK(check_binary(op, a, b) == runs);
      }
    }
  }
}

TEST_CASE("onednn binary equals the loop on random shapes", "[onednn][binary]") {
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> ndim_d(0, 4), size_d(1, 7), coin(0, 3), layout_d(0, 2);
  int runs = 0, total = 0;
  for (int iter = 0; iter < 400; ++iter) {
    const int nd = ndim_d(rng);
    Shape out(static_cast<size_t>(nd));
    for (auto& s : out) s = size_d(rng);
    // Each operand: some dims broadcast (1), sometimes leading dims dropped.
    auto operand_shape = [&] {
      Shape s = out;
      for (auto& d : s)
        if (coin(rng) == 0) d = 1;
      if (!s.empty() && coin(rng) == 0) s.erase(s.begin());
      return s;
    };
    Shape sa = operand_shape(), sb = operand_shape();
    const auto [da, db] = kDtypePairs[iter % 4];
    const BinaryOp op = kBinaryOps[static_cast<size_t>(iter / 4) % std::size(kBinaryOps)];
    Tensor a = make(grid_values(gg::numel_of(sa), rng), sa, da, layout_d(rng));
    Tensor b = make(grid_values(gg::numel_of(sb), rng), sb, db, layout_d(rng));
    if (!onednn_has(da, db)) {
      CHECK_FALSE(check_binary(op, a, b));
      continue;
    }
    runs += check_binary(op, a, b);
    ++total;
  }
  // The declined rest are broadcast patterns oneDNN only has ref:any for (e.g. [A, B, C, D]
  // with [1, B, 1, D]); the loop runs them.
  INFO(runs << " of " << total << " ran on oneDNN");
  REQUIRE(runs >= total * 8 / 10);
}

TEST_CASE("onednn binary: zero-size, NaN comparisons, exact sub with a scalar on the left",
          "[onednn][binary]") {
  // Zero-size: nothing to run, reported as done.
  Tensor a = gg::empty({0, 5}), b = gg::ones({5});
  Tensor out = gg::empty({0, 5});
  REQUIRE(gg::onednn::binary(BinaryOp::Add, a, b, out));

  // oneDNN's own gt/ge say true for NaN; ours must not.
  Tensor x = gg::tensor<float>({kNaN, 1.f, kNaN, 2.f, 3.f, -kInf}, {6});
  Tensor y = gg::tensor<float>({1.f, kNaN, kNaN, 2.f, 1.f, -kInf}, {6});
  for (BinaryOp op : {BinaryOp::Gt, BinaryOp::Ge, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Eq}) {
    Tensor got = gg::empty({6});
    REQUIRE(gg::onednn::binary(op, x, y, got));
    require_identical(got, reference::binary(op, x, y, gg::kFloat32));
  }
  // 0 - x with the scalar broadcast on the left runs as (-x) + 0: signed zeros must match
  // a - b exactly (-0 - +0 = -0, 1 - 1 = +0).
  Tensor lhs = gg::tensor<float>({-0.f}, {});
  Tensor rhs = gg::tensor<float>({0.f, -0.f, 1.f, -1.f, kInf, kNaN, 3.5f, -0.f}, {8});
  Tensor got = gg::empty({8});
  REQUIRE(gg::onednn::binary(BinaryOp::Sub, lhs, rhs, got));
  require_identical(got, reference::binary(BinaryOp::Sub, lhs, rhs, gg::kFloat32));
  Tensor one = gg::tensor<float>({1.f}, {});
  REQUIRE(gg::onednn::binary(BinaryOp::Sub, one, gg::full({8}, 1.0), got));
  require_identical(got, gg::zeros({8}));

  // Max/Min are declined: oneDNN drops a NaN in src0.
  REQUIRE_FALSE(gg::onednn::binary_supported(BinaryOp::Max, gg::kFloat32, gg::kFloat32));
  REQUIRE_FALSE(gg::onednn::binary_supported(BinaryOp::Min, gg::kFloat32, gg::kFloat32));
  REQUIRE_FALSE(gg::onednn::binary_supported(BinaryOp::Add, gg::kFloat64, gg::kFloat32));
}

namespace {

struct UnaryCase {
  UnaryOp op;
  double scalar;
  const char* name;
  int64_t f32_ulps;  // max ulps vs the loop in f32 (-1: use abs_tol instead)
  double abs_tol;    // times max(1, |x|), for ops where ulps mean nothing (gelu's tail)
  bool positive;     // inputs must be positive (non-integer powers)
  // Below AVX2 (no FMA) oneDNN's exp polynomial is less accurate: the max ulps there (measured
  // with ONEDNN_MAX_CPU_ISA=SSE41 and AVX: 9 for exp and sigmoid), if more than f32_ulps.
  int64_t f32_ulps_without_fma = 0;
};

int64_t f32_ulps_here(const UnaryCase& c) {
  const bool fma = gg::onednn::isa_at_least(dnnl::cpu_isa::avx2);
  return fma ? c.f32_ulps : std::max(c.f32_ulps, c.f32_ulps_without_fma);
}

const UnaryCase kUnaryCases[] = {
    {UnaryOp::Neg, 0, "neg", 0, 0, false},       {UnaryOp::Abs, 0, "abs", 0, 0, false},
    {UnaryOp::Sqrt, 0, "sqrt", 0, 0, true},      {UnaryOp::Exp, 0, "exp", 4, 0, false, 10},
    {UnaryOp::Tanh, 0, "tanh", 3, 0, false},     {UnaryOp::Sigmoid, 0, "sigmoid", 4, 0, false, 10},
    {UnaryOp::Gelu, 0, "gelu", -1, 1e-6, false}, {UnaryOp::Pow, 2, "pow 2", 1, 0, false},
    {UnaryOp::Pow, 3, "pow 3", 1, 0, false},     {UnaryOp::Pow, -1, "pow -1", 1, 0, false},
    {UnaryOp::Pow, 0.5, "pow 0.5", 1, 0, true},  {UnaryOp::Pow, 1.5, "pow 1.5", 1, 0, true},
    {UnaryOp::Pow, 2.7, "pow 2.7", 1, 0, true},  {UnaryOp::Pow, -0.5, "pow -0.5", 1, 0, true},
    {UnaryOp::Pow, 0, "pow 0", 0, 0, false},
};

// Compares oneDNN's unary result with the loop's within the case's tolerance (bf16: one ulp of
// bf16, the f32 results differing by a few f32 ulps before the one rounding).
void check_unary_values(const UnaryCase& c, const Tensor& x, const Tensor& got, const Tensor& want,
                        int64_t* max_ulps) {
  std::vector<double> xs = values(x), g = values(got), w = values(want);
  const bool bf16 = x.dtype() == gg::kBFloat16;
  auto ok = [&](size_t i) {
    if (std::isnan(w[i]) || std::isnan(g[i])) return std::isnan(w[i]) == std::isnan(g[i]);
    const int64_t ulps = ulp_distance(g[i], w[i]);
    *max_ulps = std::max(*max_ulps, ulps);
    if (bf16) return ulps <= 65536;  // one bf16 ulp: the low 16 bits of the f32 pattern are 0
    if (c.f32_ulps == 0) return ulps == 0 && std::signbit(g[i]) == std::signbit(w[i]);
    if (c.f32_ulps > 0) return ulps <= f32_ulps_here(c);
    return g[i] == w[i] || std::fabs(g[i] - w[i]) <= c.abs_tol * std::max(1.0, std::fabs(xs[i]));
  };
  size_t i = 0;
  while (i < g.size() && ok(i)) ++i;
  if (i == g.size()) return;
  INFO(c.name << " " << gg::dtype_name(x.dtype()) << " at x = " << xs[i] << ": got " << g[i]
              << ", want " << w[i] << " (" << ulp_distance(g[i], w[i]) << " ulps)");
  REQUIRE(ok(i));
}

}  // namespace

TEST_CASE("onednn unary equals the loop within the measured tolerances", "[onednn][eltwise]") {
  std::mt19937 rng(3);
  const Shape shapes[] = {{4099}, {64, 129}, {0, 3}, {}};
  for (const UnaryCase& c : kUnaryCases) {
    for (Dtype dtype : {gg::kFloat32, gg::kBFloat16}) {
      int64_t max_ulps = 0;
      for (const Shape& shape : shapes) {
        for (int layout : {0, 1, 2}) {
          std::vector<float> v = normal_values(gg::numel_of(shape), rng, 3.f);
          if (c.positive)
            for (auto& e : v) e = std::fabs(e) + 1e-3f;
          Tensor x = make(v, shape, dtype, layout);
          Tensor want = reference::unary(c.op, x, c.scalar, dtype);
          Tensor got = gg::empty(shape, dtype);
          INFO(c.name << " " << gg::dtype_name(dtype) << " " << gg::shape_str(shape) << " layout "
                      << layout);
          REQUIRE(gg::onednn::unary(c.op, x, c.scalar, got) == onednn_has(dtype));
          if (onednn_has(dtype)) check_unary_values(c, x, got, want, &max_ulps);
        }
      }
      // An expanded (stride-0) input is declined: gathering it (simple:any) is slower than the
      // loop.
      Tensor row = make(normal_values(64, rng), {1, 64}, dtype);
      Tensor got = gg::empty({50, 64}, dtype);
      REQUIRE_FALSE(gg::onednn::unary(c.op, row.expand({50, 64}), c.scalar, got));
    }
  }
}

TEST_CASE("onednn unary on special values", "[onednn][eltwise]") {
  // Repeated so that both the vector body and the tail of the jit kernel see each value.
  const std::vector<float> specials = {kNaN, kInf, -kInf, 0.f, -0.f, 1.f, -1.f, 20.f, -20.f, 1e-3f};
  std::vector<float> v;
  for (int r = 0; r < 37; ++r) v.insert(v.end(), specials.begin(), specials.end());
  const int64_t n = static_cast<int64_t>(v.size());
  for (const UnaryCase& c : kUnaryCases) {
    // Known, documented edges: pow(x, 0.5) is sqrt (pow(-inf, .5) = NaN, not inf; pow(-0, .5) =
    // -0) and other non-integer powers of -inf; exp of huge negatives is flushed below FLT_MIN.
    if (c.op == UnaryOp::Pow && c.scalar != std::trunc(c.scalar)) continue;
    Tensor x = gg::tensor<float>(v, {n});
    Tensor want = reference::unary(c.op, x, c.scalar, gg::kFloat32);
    Tensor got = gg::empty({n});
    REQUIRE(gg::onednn::unary(c.op, x, c.scalar, got));
    int64_t max_ulps = 0;
    check_unary_values(c, x, got, want, &max_ulps);
  }
  // Declined: log (inaccurate near 1), relu (drops NaN), sign and gelu' (no algorithm), f64.
  for (UnaryOp op : {UnaryOp::Log, UnaryOp::Relu, UnaryOp::Sign, UnaryOp::GeluGrad})
    REQUIRE_FALSE(gg::onednn::unary_supported(op, gg::kFloat32));
  REQUIRE_FALSE(gg::onednn::unary_supported(UnaryOp::Exp, gg::kFloat64));
}

TEST_CASE("onednn gelu backward matches a double oracle, NaN and infinities included",
          "[onednn][eltwise]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 3.f);
  const std::vector<float> specials = {kNaN, kInf, -kInf, 0.f, -0.f, 1.f, -1.f, 20.f, -20.f, 1e-3f};
  std::vector<float> xs, gs;
  for (int i = 0; i < 1 << 16; ++i) {
    xs.push_back(normal(rng));
    gs.push_back(normal(rng));
  }
  for (int r = 0; r < 37; ++r) {  // in the vector body and the tail
    for (float v : specials) {
      xs.push_back(v);
      gs.push_back(1.5f);
    }
  }
  const int64_t n = static_cast<int64_t>(xs.size());
  Tensor x = gg::tensor<float>(xs, {n}), g = gg::tensor<float>(gs, {n});
  Tensor got = gg::empty({n});
  REQUIRE(gg::onednn::gelu_backward(x, g, got));
  const std::vector<float> out = got.to_vector<float>();
  double worst = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double xi = xs[static_cast<size_t>(i)], gi = gs[static_cast<size_t>(i)];
    double want = gi * (0.5 * std::erfc(-xi / std::sqrt(2.0)) +
                        xi * std::exp(-xi * xi / 2) / std::sqrt(2 * std::numbers::pi));
    if (std::isinf(xi)) want = xi > 0 ? gi : 0.0;  // the limits: x*phi(x) -> 0
    if (std::isnan(want)) {
      REQUIRE(std::isnan(out[static_cast<size_t>(i)]));
      continue;
    }
    // gelu' is at most ~1.13 in magnitude: an absolute bound relative to |grad|.
    const double err = std::abs(out[static_cast<size_t>(i)] - want) / std::max(1.0, std::abs(gi));
    worst = std::max(worst, err);
  }
  INFO("worst error " << worst);
  CHECK(worst < 1e-6);
  // Declined: another dtype, mismatched shapes, a strided operand.
  Tensor d = gg::empty({n}, gg::kFloat64);
  CHECK_FALSE(gg::onednn::gelu_backward(x.to(gg::kFloat64), g.to(gg::kFloat64), d));
  Tensor square = gg::randn({64, 64});
  CHECK_FALSE(gg::onednn::gelu_backward(square, square.transpose(0, 1), gg::empty({64, 64})));
}

TEST_CASE("sum over a short dim that is not the last: float rows added in order", "[reduction]") {
  // The loop for [outer, n <= 16, inner] f32 (MoE's combine over top-k): each output is the
  // float sum of its n inputs in order, which the oracle computes the same way.
  std::mt19937 rng(21);
  for (const Shape& shape : {Shape{512, 2, 64}, Shape{300, 3, 7}, Shape{5, 16, 33, 9}}) {
    for (int64_t dim : {int64_t{0}, int64_t{1}}) {
      Tensor x = make(normal_values(gg::numel_of(shape), rng), shape, gg::kFloat32);
      if (shape[static_cast<size_t>(dim)] > 16) continue;
      INFO(gg::shape_str(shape) << " dim " << dim);
      const std::vector<float> v = x.to_vector<float>();
      const int64_t n = shape[static_cast<size_t>(dim)];
      int64_t inner = 1;
      for (size_t d = static_cast<size_t>(dim) + 1; d < shape.size(); ++d) inner *= shape[d];
      const int64_t outer = x.numel() / (n * inner);
      const std::vector<float> got = gg::sum(x, dim).contiguous().to_vector<float>();
      REQUIRE(static_cast<int64_t>(got.size()) == outer * inner);
      int64_t bad = 0;
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t j = 0; j < inner; ++j) {
          float want = v[static_cast<size_t>(o * n * inner + j)];
          for (int64_t k = 1; k < n; ++k) want += v[static_cast<size_t>((o * n + k) * inner + j)];
          bad += got[static_cast<size_t>(o * inner + j)] != want;
        }
      }
      CHECK(bad == 0);
    }
  }
}

TEST_CASE("onednn sum over a dim matches a double oracle", "[onednn][reduction]") {
  std::mt19937 rng(5);
  struct Case {
    Shape shape;
    int64_t dim;
    int layout;
  };
  const Case cases[] = {
      {{37, 4099}, 1, 0}, {{37, 4099}, 0, 0},   {{5, 6, 7}, 0, 0}, {{5, 6, 7}, 1, 0},
      {{5, 6, 7}, 2, 0},  {{5, 6, 7}, 2, 1},    {{5, 6, 7}, 1, 1}, {{40, 30}, 1, 2},
      {{40, 30}, 0, 2},   {{3, 1, 4}, 1, 0},    {{1, 9}, 1, 0},    {{4097}, 0, 0},
      {{0, 5}, 1, 0},     {{2, 1, 1, 3}, 3, 0},
  };
  for (Dtype dtype : {gg::kFloat32, gg::kBFloat16}) {
    for (const Case& c : cases) {
      Tensor x = make(normal_values(gg::numel_of(c.shape), rng), c.shape, dtype, c.layout);
      Shape kept = c.shape;
      kept[static_cast<size_t>(c.dim)] = 1;
      Tensor got = gg::empty(kept, dtype);
      INFO(gg::dtype_name(dtype) << " " << gg::shape_str(c.shape) << " dim " << c.dim << " layout "
                                 << c.layout);
      REQUIRE(gg::onednn::sum_dim(x, c.dim, got) == onednn_has(dtype));
      if (!onednn_has(dtype)) continue;
      // The oracle: the double-accumulating loop on a Float64 copy, and sum(|x|) for the bound.
      Tensor x64 = x.to(gg::kFloat64);
      std::vector<double> want = values(gg::sum(x64, c.dim, true));
      std::vector<double> scale = values(gg::sum(gg::abs(x64), c.dim, true));
      std::vector<double> g = values(got);
      auto ok = [&](size_t i) {
        const double tol = dtype == gg::kFloat32
                               ? 1e-6 * scale[i] + 1e-30
                               : std::ldexp(std::fabs(want[i]), -8) + 1e-6 * scale[i];
        return std::fabs(g[i] - want[i]) <= tol;
      };
      size_t i = 0;
      while (i < g.size() && ok(i)) ++i;
      if (i < g.size()) {
        INFO("output " << i << ": got " << g[i] << ", want " << want[i]);
        REQUIRE(ok(i));
      }
    }
  }
  // An expanded input (stride 0 along the reduced dim) is declined, like any broadcast source.
  Tensor row = make(normal_values(33, rng), {1, 33}, gg::kFloat32);
  REQUIRE_FALSE(gg::onednn::sum_dim(row.expand({20, 33}), 0, gg::empty({1, 33})));
  // A reduced dim of size 0 is left to the loop (zeros); other dtypes are declined.
  REQUIRE_FALSE(gg::onednn::sum_dim(gg::empty({3, 0}), 1, gg::empty({3, 1})));
  REQUIRE_FALSE(
      gg::onednn::sum_dim(gg::ones({3, 4}, gg::kFloat64), 1, gg::empty({3, 1}, gg::kFloat64)));
}

namespace {

// Source values for the conversion test: specials, rounding ties and saturation points of every
// destination, subnormals of f32/bf16/f16, and random values across magnitudes.
std::vector<double> conversion_values(Dtype from, std::mt19937& rng) {
  std::vector<double> v;
  if (gg::is_floating(from)) {
    v = {kNaN,   -kNaN,        kInf,         -kInf,     0.0,           -0.0,         0.5,
         1.5,    2.5,          -2.5,         126.5,     127.5,         -128.5,       128,
         -129,   65504,        65519.99,     65520,     -65536,        1e-40,        -3e-39,
         1e-7,   6e-8,         3e-8,         1.0039062, 1.0117188,     3.0e38,       1e30,
         -1e-45, 2147483520.0, 2147483648.0, -3e9,      1.00048828125, 1.00146484375};
    std::normal_distribution<double> normal;
    std::uniform_int_distribution<int> exponent(-140, 120);
    while (v.size() < 6000) v.push_back(std::ldexp(normal(rng), exponent(rng)));
  } else {
    v = {0,        1,        -1,       127,          128,           -128,  -129,  255,   256,
         16777217, 16777219, 33554435, 2147483647.0, -2147483648.0, 65505, 65519, 65520, -70000};
    std::uniform_int_distribution<int32_t> any(INT32_MIN, INT32_MAX);
    std::uniform_int_distribution<int32_t> small(-300, 300);
    while (v.size() < 6000) v.push_back(v.size() % 2 ? any(rng) : small(rng));
  }
  return v;
}

// What gg::convert gives for every element of src, into a tensor of dtype `to`.
Tensor convert_oracle(const Tensor& src, Dtype to) {
  Tensor out = gg::empty(src.shape(), to);
  gg::dispatch(src.dtype(), [&]<class From>() {
    gg::dispatch(to, [&]<class To>() {
      const From* in = src.data_ptr<From>();
      To* o = out.data_ptr<To>();
      for (int64_t i = 0; i < src.numel(); ++i) o[i] = gg::convert<To>(in[i]);
    });
  });
  return out;
}

}  // namespace

TEST_CASE("onednn reorder conversions equal gg::convert", "[onednn][reorder]") {
  std::mt19937 rng(9);
  const Dtype types[] = {gg::kFloat32, gg::kBFloat16, gg::kFloat16, gg::kInt8, gg::kInt32};
  for (Dtype from : types) {
    std::vector<double> v = conversion_values(from, rng);
    const int64_t n = static_cast<int64_t>(v.size());
    // The source holds v converted to `from` by convert itself (saturating for the int types).
    Tensor src = convert_oracle(gg::tensor<double>(v, {n}), from);
    for (Dtype to : types) {
      INFO(gg::dtype_name(from) << " -> " << gg::dtype_name(to));
      // float -> int differs (NaN, s32 saturation); Float16 loses the sign of -0.
      const bool expected = !(gg::is_floating(from) && !gg::is_floating(to)) &&
                            from != gg::kFloat16 && to != gg::kFloat16 && onednn_has(from, to);
      REQUIRE(gg::onednn::reorder_matches_convert(from, to) == expected);
      if (!expected) continue;
      Tensor want = convert_oracle(src, to);
      // Contiguous, and transposed into a transposed destination.
      Tensor got = gg::empty({n}, to);
      bool ran = gg::onednn::reorder(got, src);
      if (from == gg::kFloat32 && to == gg::kBFloat16) {
        // oneDNN flushes subnormal sources: declined while there are any, identical without.
        REQUIRE_FALSE(ran);
        float* p = src.data_ptr<float>();
        for (int64_t i = 0; i < n; ++i)
          if (std::fpclassify(p[i]) == FP_SUBNORMAL) p[i] = 0;
        want = convert_oracle(src, to);
        ran = gg::onednn::reorder(got, src);
      }
      if (from != to && (from == gg::kInt32 && (to == gg::kBFloat16 || to == gg::kFloat16))) {
        REQUIRE_FALSE(ran);  // oneDNN has no s32 -> bf16/f16 reorder: the loop runs
        continue;
      }
      REQUIRE(ran);
      require_identical(got.to(gg::kFloat64), want.to(gg::kFloat64));
      Tensor src2 = src.reshape({n / 40, 40}).transpose(0, 1);
      Tensor got2 = gg::empty({n / 40, 40}, to).transpose(0, 1);
      // f32 -> bf16 needs a dense source (to scan it for subnormals).
      const bool dense_only = from == gg::kFloat32 && to == gg::kBFloat16;
      REQUIRE(gg::onednn::reorder(got2, src2) == !dense_only);
      if (dense_only) continue;
      require_identical(got2.to(gg::kFloat64),
                        want.reshape({n / 40, 40}).transpose(0, 1).to(gg::kFloat64));
    }
  }
  // Broadcast sources are declined (simple:any is slower than the loop); zero-size is done.
  Tensor row = gg::tensor<int32_t>({1, -2, 300}, {3});
  REQUIRE_FALSE(gg::onednn::reorder(gg::empty({4, 3}, gg::kInt8), row));
  REQUIRE(gg::onednn::reorder(gg::empty({0, 3}), gg::empty({0, 3}, gg::kInt32)));
}

TEST_CASE("copy_ and Tensor::to keep convert's semantics on large tensors", "[onednn][reorder]") {
  // Above onednn::kMinElements copy_ uses the reorder where it matches convert, else the loop:
  // float -> int keeps NaN -> 0 and saturates Int32 at INT_MAX.
  const int64_t n = 2 * gg::onednn::kMinElements;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = static_cast<float>(i % 7) - 3.5f;
  v[0] = kNaN;
  v[1] = 3e9f;
  v[2] = -kInf;
  Tensor x = gg::tensor<float>(v, {n});
  std::vector<int32_t> i32 = x.to(gg::kInt32).to_vector<int32_t>();
  REQUIRE(i32[0] == 0);
  REQUIRE(i32[1] == INT32_MAX);
  REQUIRE(i32[2] == INT32_MIN);
  REQUIRE(i32[3] == 0);  // 3 % 7 - 3.5 = -0.5: half to even
  REQUIRE(i32[5] == 2);  // 1.5
  std::vector<int8_t> i8 = x.to(gg::kInt8).to_vector<int8_t>();
  REQUIRE(i8[0] == 0);
  REQUIRE(i8[1] == 127);
  require_identical(x.to(gg::kBFloat16), convert_oracle(x, gg::kBFloat16));
  Tensor xt = x.reshape({n / 64, 64}).t();
  require_identical(xt.contiguous(), xt);
  require_identical(xt.to(gg::kBFloat16),
                    convert_oracle(x, gg::kBFloat16).reshape({n / 64, 64}).t());
}

TEST_CASE("public ops route f32/bf16 to oneDNN above the size threshold, with cached primitives",
          "[onednn][routing]") {
  std::mt19937 rng(13);
  const Shape shape = {128, 64};  // 8192 elements >= onednn::kMinElements
  Tensor a = make(normal_values(8192, rng), shape, gg::kFloat32);
  Tensor b = make(normal_values(64, rng), {64}, gg::kFloat32);
  Tensor c = make(normal_values(8192, rng), shape, gg::kBFloat16, 1);

  auto run_all = [&] {
    require_identical(gg::add(a, b), reference::binary(BinaryOp::Add, a, b, gg::kFloat32));
    require_identical(gg::mul(c, c), reference::binary(BinaryOp::Mul, c, c, gg::kBFloat16));
    require_identical(2.0 - a,
                      reference::binary(BinaryOp::Sub, gg::scalar_like(2.0, a), a, gg::kFloat32));
    require_identical(gg::gt(a, b), reference::binary(BinaryOp::Gt, a, b, gg::kFloat32));
    require_identical(gg::sqrt(gg::abs(a)),
                      reference::unary(UnaryOp::Sqrt, gg::abs(a), 0, gg::kFloat32));
    gg::exp(a);
    gg::sum(a, 0);
    gg::sum(c, 1);
    a.to(gg::kBFloat16);
  };
  run_all();  // builds whatever the earlier tests did not
  const auto before = gg::onednn::cache_stats();
  run_all();
  run_all();
  const auto after = gg::onednn::cache_stats();
  REQUIRE(after.misses == before.misses);  // nothing rebuilt for a key already seen
  REQUIRE(after.hits >= before.hits + 2 * 10);

  // The same problem through the backends directly: one miss at most, then only hits.
  Tensor out = gg::empty({7, 9});
  Tensor p = gg::ones({7, 9}), q = gg::ones({9});
  REQUIRE(gg::onednn::binary(BinaryOp::Div, p, q, out));
  const auto first = gg::onednn::cache_stats();
  for (int i = 0; i < 5; ++i) REQUIRE(gg::onednn::binary(BinaryOp::Div, p, q, out));
  const auto second = gg::onednn::cache_stats();
  REQUIRE(second.misses == first.misses);
  REQUIRE(second.hits == first.hits + 5);
}

TEST_CASE("public ops keep NaN semantics where oneDNN's would differ", "[onednn][routing]") {
  const int64_t n = 2 * gg::onednn::kMinElements;
  Tensor x = gg::zeros({n}), y = gg::ones({n});
  x.data_ptr<float>()[5] = kNaN;
  y.data_ptr<float>()[6] = kNaN;
  std::vector<float> mx = gg::maximum(x, y).to_vector<float>();
  REQUIRE(std::isnan(mx[5]));
  REQUIRE(std::isnan(mx[6]));
  REQUIRE(mx[7] == 1.f);
  std::vector<float> mn = gg::minimum(x, y).to_vector<float>();
  REQUIRE(std::isnan(mn[5]));
  REQUIRE(std::isnan(mn[6]));
  REQUIRE(std::isnan(gg::relu(x).to_vector<float>()[5]));
  std::vector<float> gt = gg::gt(x, y).to_vector<float>();
  REQUIRE(gt[5] == 0.f);
  REQUIRE(gt[6] == 0.f);
  REQUIRE(gg::log(gg::ones({n})).to_vector<float>()[0] == 0.f);  // the loop: exactly 0
}
