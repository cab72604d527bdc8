// grouped_mm: every form and layout against a naive double-precision loop (values and gradients,
// property style over random group counts and sizes including 0 and 1), central differences in
// Float64, out_dtype, the tape (one node per call), the primitive cache, parallel and concurrent
// use, and one test per validation rule. PyTorch fixtures are in test_grouped_mm_fixtures.cpp.
#include <algorithm>
#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <groupgrad/groupgrad.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "autograd/node.hpp"
#include "ops/kernels/grouped_mm_kernel.hpp"
#include "ops/onednn/context.hpp"
#include "test_support.hpp"

namespace {

namespace F = gg::nn::functional;
using Catch::Contains;
using gg::Shape;
using gg::Tensor;
using Vec = std::vector<double>;
using TL = std::vector<Tensor>;

// ==== helpers ====================================================================================

Vec values(const Tensor& t) {
  gg::NoGradGuard guard;
  return t.detach().to(gg::kFloat64).contiguous().to_vector<double>();
}

int64_t prod(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// y[M, N] = a[M, K] @ w[K, N] (+ b[N]), row-major, in double.
Vec naive_mm(const Vec& a, const Vec& w, const Vec* b, int64_t M, int64_t K, int64_t N) {
  Vec y(static_cast<size_t>(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double acc = b ? (*b)[j] : 0.0;
      for (int64_t k = 0; k < K; ++k) acc += a[i * K + k] * w[k * N + j];
      y[i * N + j] = acc;
    }
  return y;
}

Vec transpose(const Vec& a, int64_t rows, int64_t cols) {
  Vec t(a.size());
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) t[j * rows + i] = a[i * cols + j];
  return t;
}

Vec column_sums(const Vec& a, int64_t rows, int64_t cols) {
  Vec s(static_cast<size_t>(cols), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) s[j] += a[i * cols + j];
  return s;
}

// |got - want| <= tol * (1 + |want|) everywhere, with the first failure in the message.
void check_close(const Vec& got, const Vec& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::fabs(got[i] - want[i]) <= tol * (1 + std::fabs(want[i])))) {
      INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
      REQUIRE(false);
    }
  }
}

void check_grad(const Tensor& leaf, const Vec& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(leaf.grad().defined());
  REQUIRE(leaf.grad().shape() == leaf.shape());
  REQUIRE(leaf.grad().dtype() == leaf.dtype());
  check_close(values(leaf.grad()), want, tol, what);
}

double tolerance(gg::Dtype d) {
  switch (d) {
    case gg::kFloat64:
      return 1e-10;
    case gg::kFloat32:
      return 1e-4;
    default:
      return 3e-2;  // bfloat16, float16
  }
}

// A random leaf that requires grad; `transposed` makes it a non-contiguous (transposed) view of
// its storage, `permuted` (3-D) a layout that cannot be flattened without a copy.
Tensor leaf(Shape shape, gg::Dtype dtype, bool transposed = false) {
  Tensor t;
  if (transposed && shape.size() == 2) {
    t = gg::randn({shape[1], shape[0]}, dtype).t().detach();
  } else if (transposed && shape.size() == 3) {
    t = gg::randn({shape[2], shape[1], shape[0]}, dtype).permute({2, 1, 0}).detach();
  } else {
    t = gg::randn(shape, dtype);
  }
  return t.requires_grad_();
}

// ==== list form against the naive loop ===========================================================

struct ListGroup {
  Shape input_shape;  // [k], [p, k] or [a, b, k]
  int64_t m;
  bool transposed, bias;
};

// Runs one list call, checks outputs, backpropagates from a random subset of outputs and checks
// every gradient (the unused outputs' groups must get zeros).
void check_list(const std::vector<ListGroup>& groups, gg::Dtype dtype, std::mt19937& rng,
                const std::string& label) {
  const size_t G = groups.size();
  std::vector<Tensor> xs, ws, bs;
  bool any_bias = false;
  for (const ListGroup& g : groups) {
    const int64_t k = g.input_shape.back();
    xs.push_back(leaf(g.input_shape, dtype, g.transposed));
    ws.push_back(leaf({k, g.m}, dtype, g.transposed));
    bs.push_back(g.bias ? leaf({g.m}, dtype) : Tensor());
    any_bias |= g.bias;
  }
  if (!any_bias && rng() % 2) bs.clear();  // also the form without a bias list
  std::vector<Tensor> out = F::grouped_mm(xs, ws, F::GroupedMMOptions{.bias = bs});
  REQUIRE(out.size() == G);

  const double tol = tolerance(dtype);
  std::vector<Tensor> roots, root_grads;
  std::vector<Vec> R(G);
  std::vector<bool> used(G);
  for (size_t i = 0; i < G; ++i) {
    const ListGroup& g = groups[i];
    const int64_t k = g.input_shape.back();
    const int64_t rows = prod(Shape(g.input_shape.begin(), g.input_shape.end() - 1));
    Shape out_shape = g.input_shape;
    out_shape.back() = g.m;
    INFO(label << " group " << i);
    REQUIRE(out[i].shape() == out_shape);
    REQUIRE(out[i].dtype() == dtype);
    Vec b = bs.empty() || !bs[i].defined() ? Vec() : values(bs[i]);
    Vec want = naive_mm(values(xs[i]), values(ws[i]), b.empty() ? nullptr : &b, rows, k, g.m);
    check_close(values(out[i]), want, tol, label + " output");
    used[i] = rng() % 4 != 0 || i == 0;
    if (used[i]) {
      Tensor r = gg::randn(out_shape, dtype);
      R[i] = values(r);
      roots.push_back(out[i]);
      root_grads.push_back(r);
    }
  }
  if (roots.empty()) return;
  gg::autograd::run_backward(roots, root_grads, false);
  for (size_t i = 0; i < G; ++i) {
    const ListGroup& g = groups[i];
    const int64_t k = g.input_shape.back();
    const int64_t rows = prod(Shape(g.input_shape.begin(), g.input_shape.end() - 1));
    const Vec r = used[i] ? R[i] : Vec(static_cast<size_t>(rows * g.m), 0.0);
    const Vec x = values(xs[i]), w = values(ws[i]);
    INFO(label << " group " << i << (used[i] ? " (used)" : " (unused output)"));
    check_grad(xs[i], naive_mm(r, transpose(w, k, g.m), nullptr, rows, g.m, k), tol, "grad input");
    check_grad(ws[i], naive_mm(transpose(x, rows, k), r, nullptr, k, rows, g.m), tol, "grad mat2");
    if (!bs.empty() && bs[i].defined())
      check_grad(bs[i], column_sums(r, rows, g.m), tol, "grad bias");
  }
}

std::vector<ListGroup> random_list_groups(std::mt19937& rng, int64_t max_groups) {
  std::uniform_int_distribution<int64_t> size(0, 6);
  const int64_t G = std::uniform_int_distribution<int64_t>(0, max_groups)(rng);
  std::vector<ListGroup> groups;
  for (int64_t i = 0; i < G; ++i) {
    ListGroup g;
    const int64_t k = rng() % 8 ? 1 + size(rng) : 0;  // k = 0 now and then: output = bias
    switch (rng() % 4) {
      case 0:
        g.input_shape = {k};
        break;
      case 1:
      case 2:
        g.input_shape = {size(rng), k};
        break;
      default:
        g.input_shape = {static_cast<int64_t>(1 + rng() % 3), size(rng), k};
        break;
    }
    g.m = rng() % 8 ? 1 + size(rng) : 0;
    g.transposed = rng() % 3 == 0;
    g.bias = rng() % 2 == 0;
    groups.push_back(g);
  }
  return groups;
}

TEST_CASE("grouped_mm list form matches a naive loop (values and gradients)", "[grouped_mm]") {
  std::mt19937 rng(1234);
  gg::manual_seed(7);
  for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32}) {
    for (int trial = 0; trial < 60; ++trial) {
      auto groups = random_list_groups(rng, 7);
      check_list(groups, dtype, rng,
                 fmt::format("{} trial {} G={}", gg::dtype_name(dtype), trial, groups.size()));
    }
  }
}

TEST_CASE("grouped_mm list form in BFloat16 and Float16", "[grouped_mm]") {
  std::mt19937 rng(99);
  gg::manual_seed(8);
  for (gg::Dtype dtype : {gg::kBFloat16, gg::kFloat16}) {
    for (int trial = 0; trial < 10; ++trial) {
      auto groups = random_list_groups(rng, 4);
      check_list(groups, dtype, rng, fmt::format("{} trial {}", gg::dtype_name(dtype), trial));
    }
  }
}

TEST_CASE("grouped_mm list form: the seed's shapes, groups of one row and of zero rows",
          "[grouped_mm]") {
  std::mt19937 rng(5);
  gg::manual_seed(9);
  for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32}) {
    check_list(
        {{{100, 50}, 64, false, true}, {{100, 75}, 128, false, true}, {{100, 30}, 32, false, true}},
        dtype, rng, "grouped linear");
    check_list({{{1, 5}, 3, false, true}, {{0, 7}, 4, false, true}, {{1, 1}, 1, true, false}},
               dtype, rng, "p = 1 and p = 0");
    std::vector<ListGroup> heads(8, ListGroup{{320, 64}, 64, false, false});
    check_list(heads, dtype, rng, "8 uniform heads");
    std::vector<ListGroup> tiny(64, ListGroup{{16, 32}, 32, false, false});
    check_list(tiny, dtype, rng, "64 tiny groups");
  }
}

// ==== packed form against the naive loop =========================================================

enum class Layout { k2d3d, k3d2d, k2d2d, k3d3d };
const char* name(Layout l) {
  switch (l) {
    case Layout::k2d3d:
      return "2d3d";
    case Layout::k3d2d:
      return "3d2d";
    case Layout::k2d2d:
      return "2d2d";
    case Layout::k3d3d:
      return "3d3d";
  }
  return "?";
}

struct PackedCase {
  Layout layout;
  int64_t G, M, K, N;          // per-group sizes; the split dim uses `sizes`
  std::vector<int64_t> sizes;  // group extents along the split dim (2d3d: M, 3d2d: N, 2d2d: K)
  int64_t tail;                // extra rows/columns past offs[-1]
  bool bias, int64_offs, transposed;
};

struct PackedTensors {
  Tensor input, mat2, bias, offs;
};

PackedTensors make_packed(const PackedCase& c, gg::Dtype dtype) {
  std::vector<int64_t> ends;  // cumulative group sizes; the tail lies past the last
  int64_t at = 0;
  for (int64_t s : c.sizes) ends.push_back(at += s);
  const int64_t total = at + c.tail;
  PackedTensors t;
  switch (c.layout) {
    case Layout::k2d3d:
      t.input = leaf({total, c.K}, dtype, c.transposed);
      t.mat2 = leaf({c.G, c.K, c.N}, dtype, c.transposed);
      if (c.bias) t.bias = leaf({c.G, c.N}, dtype);
      break;
    case Layout::k3d2d:
      t.input = leaf({c.G, c.M, c.K}, dtype, c.transposed);
      t.mat2 = leaf({c.K, total}, dtype, c.transposed);
      if (c.bias) t.bias = leaf({total}, dtype);
      break;
    case Layout::k2d2d:
      t.input = leaf({c.M, total}, dtype, c.transposed);
      t.mat2 = leaf({total, c.N}, dtype, c.transposed);
      if (c.bias) t.bias = leaf({c.G, c.N}, dtype);
      break;
    case Layout::k3d3d:
      t.input = leaf({c.G, c.M, c.K}, dtype, c.transposed);
      t.mat2 = leaf({c.G, c.K, c.N}, dtype, c.transposed);
      if (c.bias) t.bias = leaf({c.G, c.N}, dtype);
      break;
  }
  if (c.layout != Layout::k3d3d) {
    t.offs = c.int64_offs ? gg::tensor<int64_t>(ends)
                          : gg::tensor<int32_t>(std::vector<int32_t>(ends.begin(), ends.end()));
  }
  return t;
}

// The naive packed result and gradients (of sum(output * r)), with groupgrad's semantics: zero
// past offs[-1], bias not added there.
struct PackedExpected {
  Vec out, gx, gw, gb;
};

PackedExpected naive_packed(const PackedCase& c, const Vec& x, const Vec& w, const Vec* b,
                            const Vec& r) {
  PackedExpected e;
  std::vector<int64_t> begin, end;
  int64_t at = 0;
  for (int64_t s : c.sizes) {
    begin.push_back(at);
    end.push_back(at += s);
  }
  const int64_t total = at + c.tail;
  const int64_t G = c.G, M = c.M, K = c.K, N = c.N;
  switch (c.layout) {
    case Layout::k2d3d: {  // x [total, K], w [G, K, N], out [total, N], b [G, N]
      e.out.assign(total * N, 0);
      e.gx.assign(total * K, 0);
      e.gw.assign(G * K * N, 0);
      e.gb.assign(G * N, 0);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = begin[g]; i < end[g]; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = b ? (*b)[g * N + j] : 0;
            for (int64_t k = 0; k < K; ++k) acc += x[i * K + k] * w[(g * K + k) * N + j];
            e.out[i * N + j] = acc;
            const double rr = r[i * N + j];
            e.gb[g * N + j] += rr;
            for (int64_t k = 0; k < K; ++k) {
              e.gx[i * K + k] += rr * w[(g * K + k) * N + j];
              e.gw[(g * K + k) * N + j] += x[i * K + k] * rr;
            }
          }
      break;
    }
    case Layout::k3d2d: {  // x [G, M, K], w [K, total], out [M, total], b [total]
      e.out.assign(M * total, 0);
      e.gx.assign(G * M * K, 0);
      e.gw.assign(K * total, 0);
      e.gb.assign(total, 0);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = begin[g]; j < end[g]; ++j) {
            double acc = b ? (*b)[j] : 0;
            for (int64_t k = 0; k < K; ++k) acc += x[(g * M + i) * K + k] * w[k * total + j];
            e.out[i * total + j] = acc;
            const double rr = r[i * total + j];
            e.gb[j] += rr;
            for (int64_t k = 0; k < K; ++k) {
              e.gx[(g * M + i) * K + k] += rr * w[k * total + j];
              e.gw[k * total + j] += x[(g * M + i) * K + k] * rr;
            }
          }
      break;
    }
    case Layout::k2d2d: {  // x [M, total], w [total, N], out [G, M, N], b [G, N]
      e.out.assign(G * M * N, 0);
      e.gx.assign(M * total, 0);
      e.gw.assign(total * N, 0);
      e.gb.assign(G * N, 0);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = b ? (*b)[g * N + j] : 0;
            for (int64_t k = begin[g]; k < end[g]; ++k) acc += x[i * total + k] * w[k * N + j];
            e.out[(g * M + i) * N + j] = acc;
            const double rr = r[(g * M + i) * N + j];
            e.gb[g * N + j] += rr;
            for (int64_t k = begin[g]; k < end[g]; ++k) {
              e.gx[i * total + k] += rr * w[k * N + j];
              e.gw[k * N + j] += x[i * total + k] * rr;
            }
          }
      break;
    }
    case Layout::k3d3d: {  // x [G, M, K], w [G, K, N], out [G, M, N], b [G, N]
      e.out.assign(G * M * N, 0);
      e.gx.assign(G * M * K, 0);
      e.gw.assign(G * K * N, 0);
      e.gb.assign(G * N, 0);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = b ? (*b)[g * N + j] : 0;
            for (int64_t k = 0; k < K; ++k) acc += x[(g * M + i) * K + k] * w[(g * K + k) * N + j];
            e.out[(g * M + i) * N + j] = acc;
            const double rr = r[(g * M + i) * N + j];
            e.gb[g * N + j] += rr;
            for (int64_t k = 0; k < K; ++k) {
              e.gx[(g * M + i) * K + k] += rr * w[(g * K + k) * N + j];
              e.gw[(g * K + k) * N + j] += x[(g * M + i) * K + k] * rr;
            }
          }
      break;
    }
  }
  return e;
}

void check_packed(const PackedCase& c, gg::Dtype dtype, const std::string& label) {
  INFO(label);
  PackedTensors t = make_packed(c, dtype);
  Tensor out = F::grouped_mm(t.input, t.mat2, {.offs = t.offs, .bias = t.bias});
  Tensor r = gg::randn(out.shape(), dtype);
  const Vec b = t.bias.defined() ? values(t.bias) : Vec();
  PackedExpected e =
      naive_packed(c, values(t.input), values(t.mat2), t.bias.defined() ? &b : nullptr, values(r));
  const double tol = tolerance(dtype);
  REQUIRE(out.dtype() == dtype);
  check_close(values(out), e.out, tol, "output");
  out.backward(r);
  check_grad(t.input, e.gx, tol, "grad input");
  check_grad(t.mat2, e.gw, tol, "grad mat2");
  if (t.bias.defined()) check_grad(t.bias, e.gb, tol, "grad bias");
}

PackedCase random_packed(std::mt19937& rng, Layout layout) {
  std::uniform_int_distribution<int64_t> size(0, 6);
  PackedCase c;
  c.layout = layout;
  c.G = std::uniform_int_distribution<int64_t>(layout == Layout::k3d3d ? 0 : 0, 5)(rng);
  c.M = 1 + size(rng);
  c.K = 1 + size(rng);
  c.N = 1 + size(rng);
  if (rng() % 6 == 0) c.M = 0;
  if (layout != Layout::k3d3d) {
    for (int64_t g = 0; g < c.G; ++g) c.sizes.push_back(rng() % 4 == 0 ? 0 : size(rng));
    c.tail = rng() % 3 == 0 ? size(rng) : 0;
  } else {
    c.tail = 0;
  }
  c.bias = rng() % 2 == 0;
  c.int64_offs = rng() % 2 == 0;
  c.transposed = rng() % 3 == 0;
  return c;
}

TEST_CASE("grouped_mm packed layouts match a naive loop (values and gradients)", "[grouped_mm]") {
  std::mt19937 rng(4321);
  gg::manual_seed(10);
  for (Layout layout : {Layout::k2d3d, Layout::k3d2d, Layout::k2d2d, Layout::k3d3d}) {
    for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32}) {
      for (int trial = 0; trial < 40; ++trial) {
        PackedCase c = random_packed(rng, layout);
        check_packed(c, dtype,
                     fmt::format("{} {} trial {} G={} M={} K={} N={} tail={} bias={}", name(layout),
                                 gg::dtype_name(dtype), trial, c.G, c.M, c.K, c.N, c.tail, c.bias));
      }
    }
  }
}

TEST_CASE("grouped_mm packed layouts: uniform groups, empty groups, BFloat16", "[grouped_mm]") {
  gg::manual_seed(11);
  for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32, gg::kBFloat16}) {
    const std::string d(gg::dtype_name(dtype));
    // Equal groups (one batched primitive) with bias, and a mix of empty groups and a tail.
    check_packed({Layout::k2d3d, 4, 0, 16, 24, {8, 8, 8, 8}, 0, true, false, false}, dtype,
                 d + " 2d3d uniform");
    check_packed({Layout::k2d3d, 5, 0, 16, 24, {0, 9, 0, 3, 0}, 4, true, true, true}, dtype,
                 d + " 2d3d ragged");
    check_packed({Layout::k3d2d, 3, 12, 16, 0, {8, 8, 8}, 0, true, false, false}, dtype,
                 d + " 3d2d uniform");
    check_packed({Layout::k3d2d, 4, 12, 16, 0, {5, 0, 9, 0}, 3, true, false, true}, dtype,
                 d + " 3d2d ragged");
    check_packed({Layout::k2d2d, 3, 12, 0, 10, {8, 8, 8}, 0, true, true, false}, dtype,
                 d + " 2d2d uniform");
    check_packed({Layout::k2d2d, 4, 12, 0, 10, {7, 0, 4, 0}, 5, true, false, true}, dtype,
                 d + " 2d2d ragged");
    check_packed({Layout::k3d3d, 4, 12, 16, 10, {}, 0, true, false, true}, dtype, d + " 3d3d");
  }
}

// ==== central differences in Float64 =============================================================

// d loss / d t for loss() = sum(output * r), by central differences on every element of t.
Vec numeric_grad(const Tensor& t, const std::function<double()>& loss) {
  const double h = 1e-6;
  Vec g(static_cast<size_t>(t.numel()));
  double* base = t.data_ptr<double>();
  const Shape& shape = t.shape();
  const Shape& strides = t.strides();
  for (int64_t flat = 0; flat < t.numel(); ++flat) {
    int64_t rem = flat, offset = 0;
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      offset += (rem % shape[d]) * strides[d];
      rem /= shape[d];
    }
    const double saved = base[offset];
    base[offset] = saved + h;
    const double up = loss();
    base[offset] = saved - h;
    const double down = loss();
    base[offset] = saved;
    g[flat] = (up - down) / (2 * h);
  }
  return g;
}

double dot(const Tensor& a, const Tensor& b) {
  Vec x = values(a), y = values(b);
  double s = 0;
  for (size_t i = 0; i < x.size(); ++i) s += x[i] * y[i];
  return s;
}

TEST_CASE("grouped_mm gradients agree with central differences in Float64", "[grouped_mm]") {
  gg::manual_seed(12);
  SECTION("list form with 1-D, 2-D (transposed), 3-D inputs, sparse bias and an empty group") {
    std::vector<Tensor> xs{leaf({4}, gg::kFloat64), leaf({3, 5}, gg::kFloat64, true),
                           leaf({2, 2, 3}, gg::kFloat64, true), leaf({0, 2}, gg::kFloat64)};
    std::vector<Tensor> ws{leaf({4, 3}, gg::kFloat64), leaf({5, 2}, gg::kFloat64, true),
                           leaf({3, 4}, gg::kFloat64), leaf({2, 3}, gg::kFloat64)};
    std::vector<Tensor> bs{leaf({3}, gg::kFloat64), Tensor(), leaf({4}, gg::kFloat64),
                           leaf({3}, gg::kFloat64)};
    std::vector<Tensor> out = F::grouped_mm(xs, ws, bs);
    std::vector<Tensor> rs;
    for (const Tensor& o : out) rs.push_back(gg::randn(o.shape(), gg::kFloat64));
    gg::autograd::run_backward(out, rs, false);
    auto loss = [&] {
      gg::NoGradGuard guard;
      std::vector<Tensor> o = F::grouped_mm(xs, ws, bs);
      double s = 0;
      for (size_t i = 0; i < o.size(); ++i) s += dot(o[i], rs[i]);
      return s;
    };
    for (size_t i = 0; i < xs.size(); ++i) {
      INFO("group " << i);
      check_grad(xs[i], numeric_grad(xs[i], loss), 1e-6, "input");
      check_grad(ws[i], numeric_grad(ws[i], loss), 1e-6, "mat2");
      if (bs[i].defined()) check_grad(bs[i], numeric_grad(bs[i], loss), 1e-6, "bias");
    }
  }
  SECTION("every packed layout, with bias, an empty group and a tail past offs[-1]") {
    const std::vector<PackedCase> cases{
        {Layout::k2d3d, 3, 0, 3, 4, {2, 0, 3}, 2, true, false, true},
        {Layout::k3d2d, 3, 3, 4, 0, {2, 0, 3}, 2, true, true, true},
        {Layout::k2d2d, 3, 3, 0, 4, {2, 0, 3}, 2, true, false, true},
        {Layout::k3d3d, 3, 2, 3, 4, {}, 0, true, false, true}};
    for (const PackedCase& c : cases) {
      INFO(name(c.layout));
      PackedTensors t = make_packed(c, gg::kFloat64);
      Tensor out = F::grouped_mm(t.input, t.mat2, {.offs = t.offs, .bias = t.bias});
      Tensor r = gg::randn(out.shape(), gg::kFloat64);
      out.backward(r);
      auto loss = [&] {
        gg::NoGradGuard guard;
        return dot(F::grouped_mm(t.input, t.mat2, {.offs = t.offs, .bias = t.bias}), r);
      };
      check_grad(t.input, numeric_grad(t.input, loss), 1e-6, "input");
      check_grad(t.mat2, numeric_grad(t.mat2, loss), 1e-6, "mat2");
      check_grad(t.bias, numeric_grad(t.bias, loss), 1e-6, "bias");
    }
  }
}

// ==== out_dtype ==================================================================================

TEST_CASE("grouped_mm out_dtype is applied after the bias and stays differentiable for floats",
          "[grouped_mm]") {
  gg::manual_seed(13);
  for (gg::Dtype in : {gg::kFloat32, gg::kFloat64, gg::kBFloat16}) {
    for (gg::Dtype out_dtype : {gg::kFloat32, gg::kFloat64, gg::kBFloat16, gg::kFloat16}) {
      INFO(gg::dtype_name(in) << " -> " << gg::dtype_name(out_dtype));
      std::vector<Tensor> xs{leaf({5, 6}, in), leaf({3, 4}, in, true)};
      std::vector<Tensor> ws{leaf({6, 7}, in), leaf({4, 2}, in)};
      std::vector<Tensor> bs{leaf({7}, in), Tensor()};
      std::vector<Tensor> out = F::grouped_mm(xs, ws, bs, out_dtype);
      const double tol = std::max(tolerance(in), tolerance(out_dtype));
      std::vector<Tensor> rs;
      for (size_t i = 0; i < 2; ++i) {
        REQUIRE(out[i].dtype() == out_dtype);
        REQUIRE(out[i].requires_grad());
        Vec b = bs[i].defined() ? values(bs[i]) : Vec();
        const int64_t P = xs[i].size(0), K = xs[i].size(1), N = ws[i].size(1);
        check_close(values(out[i]),
                    naive_mm(values(xs[i]), values(ws[i]), b.empty() ? nullptr : &b, P, K, N), tol,
                    "output");
        rs.push_back(gg::randn(out[i].shape(), out_dtype));
      }
      gg::autograd::run_backward(out, rs, false);
      for (size_t i = 0; i < 2; ++i) {
        const int64_t P = xs[i].size(0), K = xs[i].size(1), N = ws[i].size(1);
        // The cast's backward brings the gradient back to the input dtype first.
        Vec r = values(rs[i].to(in));
        check_grad(xs[i], naive_mm(r, transpose(values(ws[i]), K, N), nullptr, P, N, K), tol, "dx");
        check_grad(ws[i], naive_mm(transpose(values(xs[i]), P, K), r, nullptr, K, P, N), tol, "dw");
        if (bs[i].defined()) check_grad(bs[i], column_sums(r, P, N), tol, "db");
      }
    }
  }
}

TEST_CASE("grouped_mm packed 2D x 3D with out_dtype BFloat16 and bias", "[grouped_mm]") {
  gg::manual_seed(17);
  {
    Tensor x = leaf({10, 8}, gg::kFloat32), w = leaf({2, 8, 4}, gg::kFloat32),
           b = leaf({2, 4}, gg::kFloat32);
    Tensor offs = gg::tensor<int32_t>({4, 9});
    Tensor out = F::grouped_mm(x, w, {.offs = offs, .bias = b, .out_dtype = gg::kBFloat16});
    REQUIRE(out.dtype() == gg::kBFloat16);
    PackedCase c{Layout::k2d3d, 2, 0, 8, 4, {4, 5}, 1, true, false, false};
    Tensor r = gg::randn(out.shape(), gg::kBFloat16);
    Vec bv = values(b);
    PackedExpected e = naive_packed(c, values(x), values(w), &bv, values(r));
    check_close(values(out), e.out, 2e-2, "output");
    out.backward(r);
    check_grad(x, e.gx, 1e-4, "dx");
    check_grad(w, e.gw, 1e-4, "dw");
    check_grad(b, e.gb, 1e-4, "db");
  }
}

TEST_CASE("grouped_mm out_dtype Int8 rounds to nearest, saturates and takes no grad",
          "[grouped_mm]") {
  for (gg::Dtype in : {gg::kFloat32, gg::kFloat64, gg::kBFloat16}) {
    INFO(gg::dtype_name(in));
    // x @ w + b = [[1.25, -2.75, 200], [-300, 0.4, 126.6]]: exact in every input dtype.
    Tensor x = gg::tensor<float>({1, 0, 0, 1}, {2, 2}).to(in).requires_grad_();
    Tensor w = gg::tensor<float>({1.25f, -3.75f, 150, -300, 0.5f, 126.5f}, {2, 3}).to(in);
    Tensor b = gg::tensor<float>({0, 1, 50}).to(in);
    std::vector<Tensor> out = F::grouped_mm({x, x}, {w, w}, {b, Tensor()}, gg::kInt8);
    REQUIRE(out[0].dtype() == gg::kInt8);
    REQUIRE_FALSE(out[0].requires_grad());
    // 1.25 -> 1, -2.75 -> -3, 200 -> 127, -300 -> -128, 1.5 -> 2 (ties to even), 176.5 -> 127
    CHECK(out[0].to_vector<int8_t>() == std::vector<int8_t>{1, -3, 127, -128, 2, 127});
    CHECK(out[1].to_vector<int8_t>() == std::vector<int8_t>{1, -4, 127, -128, 0, 126});
    Tensor packed = F::grouped_mm(x.unsqueeze(0), w.unsqueeze(0),
                                  {.bias = b.unsqueeze(0), .out_dtype = gg::kInt8});
    CHECK(packed.to_vector<int8_t>() == std::vector<int8_t>{1, -3, 127, -128, 2, 127});
    CHECK_FALSE(packed.requires_grad());
  }
}

TEST_CASE("grouped_mm accepts integer inputs (reference kernel) and mixed per-group dtypes",
          "[grouped_mm]") {
  Tensor x = gg::tensor<int32_t>({1, 2, 3, 4}, {2, 2});
  Tensor w = gg::tensor<int32_t>({5, 6, 7, 8}, {2, 2});
  std::vector<Tensor> out = F::grouped_mm(TL{x}, TL{w});
  CHECK(out[0].to_vector<int32_t>() == std::vector<int32_t>{19, 22, 43, 50});
  gg::manual_seed(14);
  Tensor a = gg::randn({3, 4}), b = gg::randn({4, 2});
  std::vector<Tensor> mixed = F::grouped_mm({a, a.to(gg::kFloat64)}, {b, b.to(gg::kFloat64)});
  CHECK(mixed[0].dtype() == gg::kFloat32);
  CHECK(mixed[1].dtype() == gg::kFloat64);
  check_close(values(mixed[0]), values(mixed[1]), 1e-5, "f32 vs f64 group");
}

// ==== tape, cache, parallel execution ============================================================

TEST_CASE("grouped_mm records one tape node per call", "[grouped_mm]") {
  gg::manual_seed(15);
  std::vector<Tensor> xs{leaf({3, 4}, gg::kFloat32), leaf({2, 5}, gg::kFloat32)};
  std::vector<Tensor> ws{leaf({4, 2}, gg::kFloat32), leaf({5, 3}, gg::kFloat32)};
  std::vector<Tensor> out = F::grouped_mm(xs, ws);
  REQUIRE(out[0].grad_fn() != nullptr);
  CHECK(out[0].grad_fn() == out[1].grad_fn());
  CHECK(out[0].grad_fn()->name() == "GroupedMmBackward");
  CHECK(out[0].grad_fn()->num_outputs() == 2);
  CHECK(out[0].grad_fn()->next_edges().size() == 6);  // inputs, mat2s, biases
  // Without grad mode nothing is recorded.
  gg::NoGradGuard guard;
  CHECK(F::grouped_mm(xs, ws)[0].grad_fn() == nullptr);
}

// Calls f twice with forward and backward, and returns the primitive cache traffic of the first
// and of the second call.
std::pair<gg::onednn::CacheStats, gg::onednn::CacheStats> cache_traffic(
    const std::function<void()>& f) {
  auto s0 = gg::onednn::cache_stats();
  f();
  auto s1 = gg::onednn::cache_stats();
  f();
  auto s2 = gg::onednn::cache_stats();
  return {{s1.hits - s0.hits, s1.misses - s0.misses}, {s2.hits - s1.hits, s2.misses - s1.misses}};
}

void forward_backward(const std::vector<Tensor>& xs, const std::vector<Tensor>& ws, bool backward) {
  // Fresh grads each time: accumulating into an existing grad would run (and count) an add.
  for (const Tensor& t : xs) t.set_grad(Tensor());
  for (const Tensor& t : ws) t.set_grad(Tensor());
  std::vector<Tensor> out = F::grouped_mm(xs, ws);
  if (!backward) return;
  std::vector<Tensor> grads;
  for (const Tensor& o : out) grads.push_back(gg::ones(o.shape()));
  gg::autograd::run_backward(out, grads, false);
}

TEST_CASE("grouped_mm builds one primitive per distinct shape and none on a second call",
          "[grouped_mm]") {
  gg::manual_seed(16);
  // Shapes no other test uses, so that the first call's misses are this call's. Groups too big
  // to pack (see below): each runs on its own, one primitive per distinct shape.
  std::vector<Tensor> xs, ws;
  for (int64_t p : {201, 211, 201, 223, 211}) {
    xs.push_back(leaf({p, 67}, gg::kFloat32));
    ws.push_back(leaf({67, 71}, gg::kFloat32));
  }
  // Below AVX512_CORE these plain f32 products (no bias) skip the primitive and run oneDNN's
  // dnnl_sgemm (onednn/matmul.cpp), which has nothing to cache: no primitive at all.
  const uint64_t per = gg::onednn::brgemm_isa() ? 1 : 0;
  auto [first, second] = cache_traffic([&] { forward_backward(xs, ws, false); });
  CHECK(first.misses ==
        3 * per);  // p = 201, 211, 223 (hits vary: equal groups may build side by side)
  CHECK(second.misses == 0);
  CHECK(second.hits == 5 * per);
  // Backward builds its primitives once too: dX = dY W^T and dW = X^T dY per distinct shape.
  auto [first_bwd, second_bwd] = cache_traffic([&] { forward_backward(xs, ws, true); });
  CHECK(first_bwd.misses == 6 * per);
  CHECK(second_bwd.misses == 0);
  CHECK(second_bwd.hits == 15 * per);
}

TEST_CASE("grouped_mm packs small equal groups of separate tensors into one batched primitive",
          "[grouped_mm]") {
  gg::manual_seed(18);
  // 5 groups of one shape and 2 of another, each a separate allocation, small enough to copy.
  std::vector<Tensor> xs, ws;
  for (int64_t p : {13, 13, 17, 13, 13, 17, 13}) {
    xs.push_back(leaf({p, 11}, gg::kFloat32));
    ws.push_back(leaf({11, 7}, gg::kFloat32));
  }
  auto [first, second] = cache_traffic([&] { forward_backward(xs, ws, true); });
  if (!gg::onednn::brgemm_isa()) {  // below AVX512_CORE: one dnnl_sgemm call per group instead
    CHECK(first.misses + first.hits + second.misses + second.hits == 0);
    return;
  }
  CHECK(first.misses == 6);  // (forward, dX, dW) x 2 shapes
  CHECK(second.misses == 0);
  CHECK(second.hits == 6);  // one batched call per shape for forward, dX and dW
}

TEST_CASE("grouped_mm: small batches go to one thread for a while after a stalled region",
          "[grouped_mm]") {
  namespace K = gg::kernels;
  gg::manual_seed(29);
  std::vector<Tensor> xs, ws;
  for (int i = 0; i < 64; ++i) {  // 2.1 MFLOP: split over the threads on a quiet machine
    xs.push_back(gg::randn({16, 32}));
    ws.push_back(gg::randn({32, 32}));
  }
  gg::NoGradGuard no_grad;
  F::grouped_mm(xs, ws);  // builds the primitives
  K::set_small_batches_alone(false);
  CHECK_FALSE(K::small_batches_alone());
  K::note_small_batch_region(200'000);  // 0.2 ms: a quiet region
  CHECK_FALSE(K::small_batches_alone());
  K::note_small_batch_region(5'000'000);  // 5 ms: a thread waited a time slice
  CHECK(K::small_batches_alone());
  // Alone: one primitive for the whole batch, on this thread (built for one thread on first use).
  const auto before = gg::onednn::cache_stats();
  const std::vector<Tensor> ys = F::grouped_mm(xs, ws);
  const auto after = gg::onednn::cache_stats();
  // (Below AVX512_CORE the groups are dnnl_sgemm calls, no primitive.)
  CHECK(after.hits + after.misses - before.hits - before.misses ==
        (gg::onednn::brgemm_isa() ? 1u : 0u));
  for (int i : {0, 37, 63})
    check_close(values(ys[i]), naive_mm(values(xs[i]), values(ws[i]), nullptr, 16, 32, 32), 1e-4,
                fmt::format("group {}", i));
  K::set_small_batches_alone(false);
}

TEST_CASE("grouped_mm list form: small equal groups, copied into batches, in every dtype",
          "[grouped_mm]") {
  // The kernel copies scattered small operands into per-thread batches (forward, dX and dW);
  // backward reads the operands forward saved, so one modified in place in between is refused.
  gg::manual_seed(23);
  std::mt19937 rng(23);
  for (gg::Dtype dtype : {gg::kFloat32, gg::kBFloat16, gg::kFloat16}) {
    std::vector<ListGroup> small(12, ListGroup{{6, 8}, 5, false, true});
    check_list(small, dtype, rng, fmt::format("12 small {} groups", gg::dtype_name(dtype)));
    std::vector<ListGroup> transposed(5, ListGroup{{4, 3}, 7, true, false});
    check_list(transposed, dtype, rng,
               fmt::format("5 transposed {} groups", gg::dtype_name(dtype)));
  }
  for (const bool modify_mat2 : {false, true}) {
    std::vector<Tensor> xs, ws, grads;
    for (int i = 0; i < 6; ++i) {
      xs.push_back(leaf({4, 8}, gg::kFloat32));
      ws.push_back(leaf({8, 3}, gg::kFloat32));
      grads.push_back(gg::ones({4, 3}));
    }
    const std::vector<Tensor> ys = F::grouped_mm(xs, ws);
    (modify_mat2 ? ws : xs)[4].detach().mul_(2);
    CHECK_THAT(gg::test::outcome([&] { gg::autograd::backward(ys, grads); }),
               Catch::Contains("GroupedMmBackward") &&
                   Catch::Contains("modified by an in-place operation") &&
                   Catch::Contains("expected version 0"));
    for (const Tensor& t : xs) CHECK_FALSE(t.grad().defined());
    for (const Tensor& t : ws) CHECK_FALSE(t.grad().defined());
  }
}

TEST_CASE("grouped_mm's tiny workload repeated: cached primitives only, gradients added in place",
          "[grouped_mm]") {
  gg::manual_seed(19);
  // The bench's tiny workload (64 x [16, 32] @ [32, 32]) forward and backward three times without
  // clearing the grads, as a training loop that accumulates would.
  std::vector<Tensor> xs, ws, grads;
  for (int i = 0; i < 64; ++i) {
    xs.push_back(leaf({16, 32}, gg::kFloat32));
    ws.push_back(leaf({32, 32}, gg::kFloat32));
    grads.push_back(gg::randn({16, 32}));
  }
  // Small batches switch to one thread when a region stalls (a loaded machine, as CI's ctest -j2
  // can be), and one-thread primitives are built apart: pinned to one thread, the counts below do
  // not depend on the load.
  auto step = [&] {
    gg::kernels::set_small_batches_alone(true);
    gg::autograd::run_backward(F::grouped_mm(xs, ws), grads, false);
  };
  step();
  const void* x_grad = xs[5].grad().raw_data();
  const void* w_grad = ws[63].grad().raw_data();
  const int64_t live = gg::Storage::live_count();
  auto [second, third] = cache_traffic(step);
  // Every call: one batched primitive each for the outputs, dX and dW, none built. Below
  // AVX512_CORE every group is a dnnl_sgemm call instead: no primitive at all.
  const uint64_t batches = gg::onednn::brgemm_isa() ? 3 : 0;
  CHECK(second.misses == 0);
  CHECK(second.hits == batches);
  CHECK(third.misses == 0);
  CHECK(third.hits == batches);
  // The grads are the same tensors, added to in place; nothing else stays alive.
  CHECK(xs[5].grad().raw_data() == x_grad);
  CHECK(ws[63].grad().raw_data() == w_grad);
  CHECK(gg::Storage::live_count() == live);
  // And they hold three times one call's gradient.
  for (int i : {0, 5, 63}) {
    const Vec r = values(grads[i]), x = values(xs[i]), w = values(ws[i]);
    Vec dx = naive_mm(r, transpose(w, 32, 32), nullptr, 16, 32, 32);
    Vec dw = naive_mm(transpose(x, 16, 32), r, nullptr, 32, 16, 32);
    for (double& v : dx) v *= 3;
    for (double& v : dw) v *= 3;
    check_grad(xs[i], dx, 1e-4, "grad input");
    check_grad(ws[i], dw, 1e-4, "grad mat2");
  }
  gg::kernels::set_small_batches_alone(false);
}

TEST_CASE("grouped_mm runs 3D x 3D as one batched primitive", "[grouped_mm]") {
  {
    Tensor x = gg::randn({6, 23, 19}), w = gg::randn({6, 19, 17});
    auto b0 = gg::onednn::cache_stats();
    F::grouped_mm(x, w);
    auto b1 = gg::onednn::cache_stats();
    CHECK(b1.misses - b0.misses == 1);
    CHECK(b1.hits == b0.hits);
    F::grouped_mm(x, w);
    CHECK(gg::onednn::cache_stats().misses == b1.misses);
  }
}

TEST_CASE("grouped_mm runs 2D x 3D with equal groups as one batched primitive", "[grouped_mm]") {
  {
    Tensor x = gg::randn({4 * 21, 13}), w = gg::randn({4, 13, 11});
    Tensor offs = gg::tensor<int64_t>({21, 42, 63, 84});
    auto b0 = gg::onednn::cache_stats();
    F::grouped_mm(x, w, {.offs = offs});
    auto b1 = gg::onednn::cache_stats();
    CHECK(b1.misses - b0.misses + b1.hits - b0.hits == 1);
  }
}

TEST_CASE("grouped_mm is safe to call from several threads at once", "[grouped_mm]") {
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &ok] {
      std::mt19937 rng(100 + t);
      std::vector<Tensor> xs, ws;
      for (int g = 0; g < 12; ++g) {
        const int64_t p = 1 + rng() % 20, k = 1 + rng() % 20, m = 1 + rng() % 20;
        xs.push_back(gg::full({p, k}, 0.5 + t));
        ws.push_back(gg::full({k, m}, 0.25));
      }
      bool good = true;
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<Tensor> out = F::grouped_mm(xs, ws);
        for (size_t g = 0; g < out.size(); ++g) {
          const double want = (0.5 + t) * 0.25 * static_cast<double>(xs[g].size(1));
          for (float v : out[g].to_vector<float>()) good &= std::fabs(v - want) < 1e-4;
        }
      }
      ok[t] = good ? 1 : 0;
    });
  }
  for (auto& th : threads) th.join();
  CHECK(ok == std::vector<int>{1, 1, 1, 1});
}

// ==== validation: one test per rule ==============================================================

TEST_CASE("grouped_mm validation: list lengths", "[grouped_mm][validation]") {
  std::vector<Tensor> xs{gg::randn({2, 3}), gg::randn({2, 3})};
  std::vector<Tensor> ws{gg::randn({3, 4})};
  REQUIRE_THROWS_WITH(F::grouped_mm(xs, ws),
                      Contains("[grouped_mm] list lengths differ: 2 input tensors but 1 mat2"));
}

TEST_CASE("grouped_mm validation: bias list length", "[grouped_mm][validation]") {
  std::vector<Tensor> xs{gg::randn({2, 3}), gg::randn({2, 3})};
  std::vector<Tensor> ws{gg::randn({3, 4}), gg::randn({3, 4})};
  REQUIRE_THROWS_WITH(
      F::grouped_mm(xs, ws, TL{gg::randn({4})}),
      Contains("[grouped_mm] bias list length differs: 1 bias entries for 2 groups"));
}

TEST_CASE("grouped_mm validation: inner dimensions", "[grouped_mm][validation]") {
  std::vector<Tensor> xs{gg::randn({100, 50}), gg::randn({100, 75}), gg::randn({100, 75})};
  std::vector<Tensor> ws{gg::randn({50, 64}), gg::randn({75, 128}), gg::randn({50, 64})};
  REQUIRE_THROWS_WITH(F::grouped_mm(xs, ws),
                      Contains("[grouped_mm] group 2: input has k=75 but mat2 has k=50 (input "
                               "[100, 75], mat2 [50, 64])"));
  // Packed: every layout checks input's last dim against mat2's rows.
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({8, 5}), gg::randn({2, 4, 3}), {.offs = gg::tensor<int32_t>({4, 8})}),
      Contains("2D x 3D: input has k=5 but mat2 has k=4 (input [8, 5], mat2 [2, 4, 3])"));
  REQUIRE_THROWS_WITH(F::grouped_mm(gg::randn({2, 3, 5}), gg::randn({2, 3, 4})),
                      Contains("3D x 3D: input has k=5 but mat2 has k=3"));
}

TEST_CASE("grouped_mm validation: bias shape", "[grouped_mm][validation]") {
  std::vector<Tensor> xs{gg::randn({4, 3}), gg::randn({4, 5})};
  std::vector<Tensor> ws{gg::randn({3, 2}), gg::randn({5, 6})};
  REQUIRE_THROWS_WITH(
      F::grouped_mm(xs, ws, TL{Tensor(), gg::randn({5})}),
      Contains("[grouped_mm] group 1: bias must have shape [6] (mat2's m), got [5] (input [4, 5], "
               "mat2 [5, 6], bias [5])"));
  REQUIRE_THROWS_WITH(F::grouped_mm(gg::randn({8, 5}), gg::randn({2, 5, 3}),
                                    {.offs = gg::tensor<int32_t>({4, 8}), .bias = gg::randn({3})}),
                      Contains("[grouped_mm] 2D x 3D: bias must have shape [2, 3], got [3]"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({2, 4, 5}), gg::randn({5, 6}),
                    {.offs = gg::tensor<int32_t>({2, 6}), .bias = gg::randn({2, 3})}),
      Contains("[grouped_mm] 3D x 2D: bias must have shape [6], got [2, 3]"));
}

TEST_CASE("grouped_mm validation: dtypes of input and mat2 differ", "[grouped_mm][validation]") {
  std::vector<Tensor> xs{gg::randn({2, 3}), gg::randn({2, 3})};
  std::vector<Tensor> ws{gg::randn({3, 4}), gg::randn({3, 4}, gg::kFloat64)};
  REQUIRE_THROWS_WITH(F::grouped_mm(xs, ws),
                      Contains("[grouped_mm] group 1: input and mat2 dtypes differ: input is "
                               "float32, mat2 is float64 (input [2, 3], mat2 [3, 4])"));
  REQUIRE_THROWS_WITH(F::grouped_mm(gg::randn({2, 3, 4}, gg::kBFloat16), gg::randn({2, 4, 5})),
                      Contains("[grouped_mm] input and mat2 dtypes differ: input is bfloat16, "
                               "mat2 is float32 (input [2, 3, 4], mat2 [2, 4, 5])"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(TL{gg::randn({2, 3})}, TL{gg::randn({3, 4})}, TL{gg::randn({4}, gg::kFloat64)}),
      Contains("group 0: input and bias dtypes differ"));
}

TEST_CASE("grouped_mm validation: offs must be a 1-D integer tensor", "[grouped_mm][validation]") {
  Tensor x = gg::randn({8, 5}), w = gg::randn({2, 5, 3});
  REQUIRE_THROWS_WITH(
      F::grouped_mm(x, w, {.offs = gg::tensor<float>({4, 8})}),
      Contains("[grouped_mm] offs must be a 1-D Int32 or Int64 tensor, got float32 [2]"));
  REQUIRE_THROWS_WITH(F::grouped_mm(x, w, {.offs = gg::tensor<int32_t>({4, 8}, {1, 2})}),
                      Contains("offs must be a 1-D Int32 or Int64 tensor, got int32 [1, 2]"));
}

TEST_CASE("grouped_mm validation: offs decreasing", "[grouped_mm][validation]") {
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({8, 5}), gg::randn({3, 5, 3}),
                    {.offs = gg::tensor<int64_t>({4, 7, 6})}),
      Contains("[grouped_mm] group 2: offs must be non-decreasing, but offs[2]=6 < offs[1]=7 "
               "(input [8, 5], mat2 [3, 5, 3])"));
}

TEST_CASE("grouped_mm validation: offs negative", "[grouped_mm][validation]") {
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({3, 8}), gg::randn({8, 3}), {.offs = gg::tensor<int32_t>({-1, 8})}),
      Contains("[grouped_mm] group 0: offs[0]=-1 is negative (input [3, 8], mat2 [8, 3])"));
}

TEST_CASE("grouped_mm validation: offs past the dimension it splits", "[grouped_mm][validation]") {
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({8, 5}), gg::randn({2, 5, 3}), {.offs = gg::tensor<int32_t>({4, 9})}),
      Contains("[grouped_mm] group 1: offs[1]=9 is past M_total (input rows)=8 (input [8, 5], mat2 "
               "[2, 5, 3])"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({2, 4, 5}), gg::randn({5, 6}), {.offs = gg::tensor<int32_t>({3, 7})}),
      Contains("group 1: offs[1]=7 is past N_total (mat2 columns)=6"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({4, 5}), gg::randn({5, 6}), {.offs = gg::tensor<int32_t>({3, 6})}),
      Contains("group 1: offs[1]=6 is past K_total (input columns)=5"));
}

TEST_CASE("grouped_mm validation: offs given for 3D x 3D or missing for the others",
          "[grouped_mm][validation]") {
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({2, 3, 4}), gg::randn({2, 4, 5}),
                    {.offs = gg::tensor<int32_t>({1, 2})}),
      Contains("[grouped_mm] 3D x 3D takes no offs (the groups are the leading dim), got offs [2] "
               "(input [2, 3, 4], mat2 [2, 4, 5])"));
  REQUIRE_THROWS_WITH(F::grouped_mm(gg::randn({8, 4}), gg::randn({2, 4, 5})),
                      Contains("[grouped_mm] 2D x 3D needs offs (cumulative end offsets splitting "
                               "M_total (input rows)) (input [8, 4], mat2 [2, 4, 5])"));
  REQUIRE_THROWS_WITH(F::grouped_mm(gg::randn({2, 3, 4}), gg::randn({4, 5})),
                      Contains("[grouped_mm] 3D x 2D needs offs"));
  REQUIRE_THROWS_WITH(F::grouped_mm(gg::randn({3, 4}), gg::randn({4, 5})),
                      Contains("[grouped_mm] 2D x 2D needs offs"));
}

TEST_CASE("grouped_mm validation: group count mismatch", "[grouped_mm][validation]") {
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({8, 4}), gg::randn({3, 4, 5}), {.offs = gg::tensor<int32_t>({4, 8})}),
      Contains("[grouped_mm] 2D x 3D: group count mismatch, offs has G=2 but mat2 has G=3 (input "
               "[8, 4], mat2 [3, 4, 5])"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({3, 2, 4}), gg::randn({4, 6}), {.offs = gg::tensor<int32_t>({3, 6})}),
      Contains("[grouped_mm] 3D x 2D: group count mismatch, offs has G=2 but input has G=3"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({3, 2, 4}), gg::randn({2, 4, 5})),
      Contains("[grouped_mm] 3D x 3D: group count mismatch, input has G=3 but mat2 has G=2"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({3, 2, 4}), gg::randn({3, 4, 5}), {.bias = gg::randn({2, 5})}),
      Contains("[grouped_mm] 3D x 3D: group count mismatch, bias has G=2 but there are 3 groups"));
}

TEST_CASE("grouped_mm validation: requires_grad on an integer tensor", "[grouped_mm][validation]") {
  // requires_grad_() refuses integer tensors, so this can only come from a tensor whose flag was
  // set behind the API's back; grouped_mm still refuses it before doing any work.
  Tensor x = gg::tensor<int32_t>({1, 2, 3, 4}, {2, 2});
  Tensor w = gg::tensor<int32_t>({1, 2, 3, 4}, {2, 2});
  x.impl()->requires_grad = true;
  REQUIRE_THROWS_WITH(F::grouped_mm({w, x}, {w, w}),
                      Contains("[grouped_mm] group 1: input is int32 but requires grad; only "
                               "floating tensors can require grad (input [2, 2], mat2 [2, 2])"));
  Tensor w3 = gg::tensor<int32_t>({1, 2, 3, 4}, {1, 2, 2});
  w3.impl()->requires_grad = true;
  REQUIRE_THROWS_WITH(F::grouped_mm(w3, w3.detach()),
                      Contains("[grouped_mm] input is int32 but requires grad"));
}

TEST_CASE("grouped_mm validation: undefined tensors, ranks, and an empty list",
          "[grouped_mm][validation]") {
  REQUIRE_THROWS_WITH(
      F::grouped_mm({gg::randn({2, 3}), Tensor()}, {gg::randn({3, 4}), gg::randn({3, 4})}),
      Contains(
          "[grouped_mm] group 1: input is an undefined tensor (input undefined, mat2 [3, 4])"));
  REQUIRE_THROWS_WITH(F::grouped_mm(TL{gg::randn({2, 3})}, TL{Tensor()}),
                      Contains("[grouped_mm] group 0: mat2 is an undefined tensor"));
  REQUIRE_THROWS_WITH(F::grouped_mm(TL{gg::randn({2, 3})}, TL{gg::randn({2, 3, 4})}),
                      Contains("[grouped_mm] group 0: mat2 must be 2-D [k, m], got 3-D"));
  REQUIRE_THROWS_WITH(F::grouped_mm(TL{gg::scalar_tensor(1)}, TL{gg::randn({1, 4})}),
                      Contains("[grouped_mm] group 0: input must have at least 1 dimension"));
  REQUIRE_THROWS_WITH(F::grouped_mm(Tensor(), gg::randn({2, 3, 4})),
                      Contains("[grouped_mm] input is an undefined tensor"));
  REQUIRE_THROWS_WITH(
      F::grouped_mm(gg::randn({2, 2, 3, 4}), gg::randn({2, 4, 5})),
      Contains("[grouped_mm] input must be 2-D or 3-D for the packed form, got 4-D"));
  // An empty list is not an error: there is nothing to compute.
  CHECK(F::grouped_mm(std::vector<Tensor>{}, std::vector<Tensor>{}).empty());
}

TEST_CASE("grouped_mm validation happens before any work", "[grouped_mm][validation]") {
  // Group 0 is valid and would be computed first; the bad group 1 must stop the call before it
  // writes anything or records a node (no cache traffic either).
  Tensor x0 = gg::randn({5, 3}).requires_grad_();
  auto before = gg::onednn::cache_stats();
  REQUIRE_THROWS_AS(F::grouped_mm({x0, gg::randn({2, 4})}, {gg::randn({3, 2}), gg::randn({3, 2})}),
                    gg::Error);
  auto after = gg::onednn::cache_stats();
  CHECK(after.hits == before.hits);
  CHECK(after.misses == before.misses);
}

}  // namespace

namespace {

TEST_CASE("grouped_mm reads expanded (stride 0), sliced and shared operands", "[grouped_mm]") {
  gg::manual_seed(19);
  for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32}) {
    INFO(gg::dtype_name(dtype));
    const double tol = tolerance(dtype);
    // List: an input broadcast over its rows, a column slice, and one weight shared by two groups.
    Tensor row = leaf({1, 5}, dtype), wide = leaf({4, 9}, dtype), w = leaf({5, 3}, dtype);
    Tensor w2 = leaf({4, 2}, dtype);
    std::vector<Tensor> xs{row.expand({6, 5}), wide.narrow(1, 2, 4), row.expand({2, 5})};
    std::vector<Tensor> out = F::grouped_mm(xs, TL{w, w2, w});
    const Vec wv = values(w), w2v = values(w2);
    check_close(values(out[0]), naive_mm(values(xs[0]), wv, nullptr, 6, 5, 3), tol, "expanded");
    check_close(values(out[1]), naive_mm(values(xs[1]), w2v, nullptr, 4, 4, 2), tol, "slice");
    check_close(values(out[2]), naive_mm(values(xs[2]), wv, nullptr, 2, 5, 3), tol, "shared w");
    std::vector<Tensor> rs;
    for (const Tensor& o : out) rs.push_back(gg::randn(o.shape(), dtype));
    gg::autograd::run_backward(out, rs, false);
    // d row = column sums over the broadcast rows of dY W^T, from both groups that read it.
    Vec g0 = naive_mm(values(rs[0]), transpose(wv, 5, 3), nullptr, 6, 3, 5);
    Vec g2 = naive_mm(values(rs[2]), transpose(wv, 5, 3), nullptr, 2, 3, 5);
    Vec want_row = column_sums(g0, 6, 5), extra = column_sums(g2, 2, 5);
    for (size_t j = 0; j < 5; ++j) want_row[j] += extra[j];
    check_grad(row, want_row, tol, "grad of the expanded row");
    Vec want_w = naive_mm(transpose(values(xs[0]), 6, 5), values(rs[0]), nullptr, 5, 6, 3);
    Vec want_w2 = naive_mm(transpose(values(xs[2]), 2, 5), values(rs[2]), nullptr, 5, 2, 3);
    for (size_t j = 0; j < want_w.size(); ++j) want_w[j] += want_w2[j];
    check_grad(w, want_w, tol, "grad of the shared weight");
    // Packed 3D x 3D with one weight expanded over the groups.
    Tensor x3 = leaf({3, 4, 5}, dtype), wshared = leaf({5, 2}, dtype);
    Tensor y = F::grouped_mm(x3, wshared.unsqueeze(0).expand({3, 5, 2}));
    Tensor r = gg::randn(y.shape(), dtype);
    y.backward(r);
    check_close(values(y), naive_mm(values(x3), values(wshared), nullptr, 12, 5, 2), tol,
                "3d3d expanded mat2");
    check_grad(wshared, naive_mm(transpose(values(x3), 12, 5), values(r), nullptr, 5, 12, 2), tol,
               "grad of the expanded mat2");
  }
}

// y.sum().backward() hands grouped_mm's backward an expanded gradient (every stride 0).
// PyTorch 2.15's F.grouped_mm rejects it ("Invalid strides/sizes"); gg must keep accepting it in
// every form, with the gradients of a dense ones gradient.
TEST_CASE("grouped_mm backward takes the expanded gradient of y.sum().backward()", "[grouped_mm]") {
  gg::manual_seed(23);
  for (gg::Dtype dtype : {gg::kFloat32, gg::kFloat64, gg::kBFloat16}) {
    INFO(gg::dtype_name(dtype));
    const double tol = dtype == gg::kBFloat16 ? 2e-2 : tolerance(dtype);
    // Records the strides of the gradient that reaches y, so the test knows it was expanded.
    auto expect_expanded = [](const Tensor& y, bool& seen) {
      y.register_hook([&seen](const Tensor& g) {
        seen = g.numel() > 1 && std::all_of(g.strides().begin(), g.strides().end(),
                                            [](int64_t s) { return s == 0; });
        return Tensor();
      });
    };
    // The gradients for a ones gradient: dX = ones @ W^T, dW = X^T @ ones, dbias = rows.
    auto ones_vec = [](int64_t n) { return Vec(static_cast<size_t>(n), 1.0); };
    SECTION("list form, with biases, 16 equal groups and an odd one") {
      std::vector<Tensor> xs, ws, bs;
      std::vector<std::array<int64_t, 3>> dims(16, {16, 32, 32});
      dims.push_back({5, 3, 7});
      for (const auto& [m, k, n] : dims) {
        xs.push_back(leaf({m, k}, dtype));
        ws.push_back(leaf({k, n}, dtype));
        bs.push_back(leaf({n}, dtype));
      }
      std::vector<Tensor> out = F::grouped_mm(xs, ws, {.bias = bs});
      Tensor loss = out[0].sum();
      for (size_t i = 1; i < out.size(); ++i) loss = loss + out[i].sum();
      std::vector<char> flags(out.size(), 0);
      for (size_t i = 0; i < out.size(); ++i)
        out[i].register_hook([&flags, i](const Tensor& g) {
          flags[i] =
              std::all_of(g.strides().begin(), g.strides().end(), [](int64_t s) { return s == 0; });
          return Tensor();
        });
      loss.backward();
      for (size_t i = 0; i < dims.size(); ++i) {
        const auto [m, k, n] = dims[i];
        INFO("group " << i);
        CHECK(flags[i] == 1);
        const Vec ones = ones_vec(m * n);
        check_grad(xs[i], naive_mm(ones, transpose(values(ws[i]), k, n), nullptr, m, n, k), tol,
                   "grad input");
        check_grad(ws[i], naive_mm(transpose(values(xs[i]), m, k), ones, nullptr, k, m, n), tol,
                   "grad mat2");
        check_grad(bs[i], Vec(static_cast<size_t>(n), static_cast<double>(m)), tol, "grad bias");
      }
    }
    SECTION("packed 2D x 3D with offs") {
      Tensor x = leaf({10, 4}, dtype), w = leaf({3, 4, 6}, dtype);
      Tensor y = F::grouped_mm(x, w, {.offs = gg::tensor<int32_t>({3, 3, 10})});
      bool seen = false;
      expect_expanded(y, seen);
      y.sum().backward();
      CHECK(seen);
      const Vec xv = values(x), wv = values(w);
      Vec want_x, want_w;
      const int64_t ends[] = {0, 3, 3, 10};
      for (int64_t g = 0; g < 3; ++g) {
        const int64_t rows = ends[g + 1] - ends[g];
        const Vec wg(wv.begin() + g * 24, wv.begin() + (g + 1) * 24);
        const Vec xg(xv.begin() + ends[g] * 4, xv.begin() + ends[g + 1] * 4);
        const Vec dx = naive_mm(ones_vec(rows * 6), transpose(wg, 4, 6), nullptr, rows, 6, 4);
        const Vec dw = naive_mm(transpose(xg, rows, 4), ones_vec(rows * 6), nullptr, 4, rows, 6);
        want_x.insert(want_x.end(), dx.begin(), dx.end());
        want_w.insert(want_w.end(), dw.begin(), dw.end());
      }
      check_grad(x, want_x, tol, "grad input");
      check_grad(w, want_w, tol, "grad mat2 (the empty group's is zero)");
    }
    SECTION("packed 3D x 3D") {
      Tensor x = leaf({4, 5, 3}, dtype), w = leaf({4, 3, 2}, dtype);
      Tensor y = F::grouped_mm(x, w);
      bool seen = false;
      expect_expanded(y, seen);
      y.sum().backward();
      CHECK(seen);
      const Vec xv = values(x), wv = values(w);
      Vec want_x, want_w;
      for (int64_t g = 0; g < 4; ++g) {
        const Vec wg(wv.begin() + g * 6, wv.begin() + (g + 1) * 6);
        const Vec xg(xv.begin() + g * 15, xv.begin() + (g + 1) * 15);
        const Vec dx = naive_mm(ones_vec(10), transpose(wg, 3, 2), nullptr, 5, 2, 3);
        const Vec dw = naive_mm(transpose(xg, 5, 3), ones_vec(10), nullptr, 3, 5, 2);
        want_x.insert(want_x.end(), dx.begin(), dx.end());
        want_w.insert(want_w.end(), dw.begin(), dw.end());
      }
      check_grad(x, want_x, tol, "grad input");
      check_grad(w, want_w, tol, "grad mat2");
    }
  }
}

}  // namespace
