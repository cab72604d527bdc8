// Packed grouped_mm with operands that are views rather than fresh tensors, against a naive loop
// over logical indices (so it cannot share a stride bug with the kernel):
//  - a non-contiguous bias (a narrowed, transposed, stride-0 expanded or every-other-element
//    view) in all four layouts, forward and the bias gradient. Regression test: the packed
//    forward used to read the bias rows at bias + g * N, i.e. as if contiguous (found by
//    tests/fuzz/fuzz_grouped_mm, fixed in dae1baa), which gave silently wrong outputs.
//  - a stride-0 (expanded) offs: every group ends at the same row, so the first group has them
//    all and the others are empty. read_offs checks one entry of such an offs, not G.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <groupgrad/groupgrad.hpp>
#include <string>
#include <vector>

namespace {

namespace F = gg::nn::functional;
using gg::Shape;
using gg::Tensor;

// Element at a logical index, whatever the view's strides (values read through at()).
double at(const Tensor& t, const Shape& index) {
  Tensor e = t;
  for (int64_t i : index) e = e.select(0, i);
  return e.to(gg::kFloat64).item<double>();
}

enum class Layout { k2d3d, k3d2d, k2d2d, k3d3d };

struct Case {
  Layout layout;
  Tensor input, mat2, bias;
  std::vector<int64_t> ends;  // offs values (none for 3D x 3D)
};

// The packed contract of docs/api.md, one output element at a time.
Tensor naive(const Case& c) {
  const Tensor &x = c.input, &w = c.mat2, &b = c.bias;
  const int64_t groups = static_cast<int64_t>(c.ends.size());
  auto begin = [&](int64_t g) { return g == 0 ? 0 : c.ends[g - 1]; };
  switch (c.layout) {
    case Layout::k2d3d: {  // x (M, K), w (G, K, N), b (G, N) -> (M, N)
      const int64_t M = x.size(0), K = x.size(1), N = w.size(2);
      Tensor y = gg::zeros({M, N}, gg::kFloat64);
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t i = begin(g); i < c.ends[g]; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = b.defined() ? at(b, {g, j}) : 0;
            for (int64_t k = 0; k < K; ++k) acc += at(x, {i, k}) * at(w, {g, k, j});
            y.data_ptr<double>()[i * N + j] = acc;
          }
      return y;
    }
    case Layout::k3d2d: {  // x (G, M, K), w (K, N), b (N) -> (M, N)
      const int64_t M = x.size(1), K = x.size(2), N = w.size(1);
      Tensor y = gg::zeros({M, N}, gg::kFloat64);
      for (int64_t g = 0; g < groups; ++g)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = begin(g); j < c.ends[g]; ++j) {
            double acc = b.defined() ? at(b, {j}) : 0;
            for (int64_t k = 0; k < K; ++k) acc += at(x, {g, i, k}) * at(w, {k, j});
            y.data_ptr<double>()[i * N + j] = acc;
          }
      return y;
    }
    case Layout::k2d2d: {  // x (M, K), w (K, N), b (G, N) -> (G, M, N)
      const int64_t G = groups, M = x.size(0), N = w.size(1);
      Tensor y = gg::zeros({G, M, N}, gg::kFloat64);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = b.defined() ? at(b, {g, j}) : 0;
            for (int64_t k = begin(g); k < c.ends[g]; ++k) acc += at(x, {i, k}) * at(w, {k, j});
            y.data_ptr<double>()[(g * M + i) * N + j] = acc;
          }
      return y;
    }
    case Layout::k3d3d: {  // x (G, M, K), w (G, K, N), b (G, N) -> (G, M, N)
      const int64_t G = x.size(0), M = x.size(1), K = x.size(2), N = w.size(2);
      Tensor y = gg::zeros({G, M, N}, gg::kFloat64);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double acc = b.defined() ? at(b, {g, j}) : 0;
            for (int64_t k = 0; k < K; ++k) acc += at(x, {g, i, k}) * at(w, {g, k, j});
            y.data_ptr<double>()[(g * M + i) * N + j] = acc;
          }
      return y;
    }
  }
  return {};
}

void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.shape() == want.shape());
  const auto g = got.to(gg::kFloat64).contiguous().to_vector<double>();
  const auto w = want.to(gg::kFloat64).contiguous().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << w[i]);
    REQUIRE(std::fabs(g[i] - w[i]) <= tol * (1 + std::fabs(w[i])));
  }
}

// How many output elements add each bias element: rows of its group (2D x 3D), all M rows
// (2D x 2D, 3D x 3D, where a group with no K still outputs its bias), or M for a column inside
// offs[-1] and 0 past it (3D x 2D). d(sum of the output)/d(bias) is exactly this.
Tensor bias_counts(const Case& c) {
  auto begin = [&](int64_t g) { return g == 0 ? 0 : c.ends[g - 1]; };
  switch (c.layout) {
    case Layout::k2d3d: {
      const int64_t G = c.mat2.size(0), N = c.mat2.size(2);
      Tensor n = gg::zeros({G, N}, gg::kFloat64);
      for (int64_t g = 0; g < G; ++g)
        for (int64_t j = 0; j < N; ++j)
          n.data_ptr<double>()[g * N + j] = static_cast<double>(c.ends[g] - begin(g));
      return n;
    }
    case Layout::k3d2d: {
      const int64_t N = c.mat2.size(1);
      Tensor n = gg::zeros({N}, gg::kFloat64);
      for (int64_t j = 0; j < c.ends.back(); ++j)
        n.data_ptr<double>()[j] = static_cast<double>(c.input.size(1));
      return n;
    }
    case Layout::k2d2d:
      return gg::full({static_cast<int64_t>(c.ends.size()), c.mat2.size(1)},
                      static_cast<double>(c.input.size(0)), gg::kFloat64);
    case Layout::k3d3d:
      return gg::full({c.input.size(0), c.mat2.size(2)}, static_cast<double>(c.input.size(1)),
                      gg::kFloat64);
  }
  return {};
}

// Non-contiguous views of the bias's shape ([G, N], or [N] for 3D x 2D), each of a leaf `base`.
struct BiasView {
  std::string name;
  Shape base_shape;
  std::function<Tensor(const Tensor&)> view;
};
std::vector<BiasView> bias_views(const Shape& shape) {
  if (shape.size() == 1) {
    const int64_t N = shape[0];
    return {{"every other element", {N, 2}, [](const Tensor& t) { return t.select(1, 1); }},
            {"every third element", {N, 3}, [](const Tensor& t) { return t.select(1, 2); }}};
  }
  const int64_t G = shape[0], N = shape[1];
  return {{"narrowed rows of [G, N + 3]",
           {G, N + 3},
           [N](const Tensor& t) { return t.narrow(1, 2, N); }},
          {"[N, G] transposed", {N, G}, [](const Tensor& t) { return t.t(); }},
          {"one row expanded over the groups", {1, N}, [G, N](const Tensor& t) {
             return t.expand({G, N});
           }}};
}

}  // namespace

TEST_CASE("grouped_mm packed: a non-contiguous bias gives the naive loop's output and gradient",
          "[grouped_mm]") {
  gg::manual_seed(21);
  const int64_t G = 3, K = 5, N = 4;
  for (gg::Dtype dtype : {gg::kFloat32, gg::kFloat64}) {
    const double tol = dtype == gg::kFloat32 ? 1e-4 : 1e-10;
    std::vector<Case> cases = {
        // rows 0-1, none, 2-6, and row 7 past offs[-1] (a zero output row)
        {Layout::k2d3d, gg::randn({8, K}, dtype), gg::randn({G, K, N}, dtype), {}, {2, 2, 7}},
        {Layout::k3d2d, gg::randn({G, 2, K}, dtype), gg::randn({K, 9}, dtype), {}, {3, 3, 8}},
        {Layout::k2d2d, gg::randn({2, 9}, dtype), gg::randn({9, N}, dtype), {}, {4, 4, 9}},
        {Layout::k3d3d, gg::randn({G, 2, K}, dtype), gg::randn({G, K, N}, dtype), {}, {}},
    };
    for (Case& c : cases) {
      const Shape bias_shape = c.layout == Layout::k3d2d ? Shape{c.mat2.size(1)} : Shape{G, N};
      for (const BiasView& v : bias_views(bias_shape)) {
        INFO(gg::dtype_name(dtype)
             << " layout " << static_cast<int>(c.layout) << ", bias: " << v.name);
        Tensor base = gg::randn(v.base_shape, dtype).requires_grad_();
        c.bias = v.view(base);
        REQUIRE(c.bias.shape() == bias_shape);
        REQUIRE_FALSE(c.bias.is_contiguous());
        F::PackedGroupedMMOptions o{.bias = c.bias};
        if (!c.ends.empty()) o.offs = gg::tensor<int64_t>(c.ends);
        const Tensor y = F::grouped_mm(c.input, c.mat2, o);
        check_close(y, naive(c), tol, "output");

        // The bias gradient, through the view to its base: the same view of a float64 leaf,
        // weighted by the counts, differentiated by the (grouped_mm-free) elementwise ops.
        y.sum().backward();
        Tensor oracle_base = gg::zeros(v.base_shape, gg::kFloat64).requires_grad_();
        (v.view(oracle_base) * bias_counts(c)).sum().backward();
        REQUIRE(base.grad().defined());
        check_close(base.grad(), oracle_base.grad(), tol, "bias gradient");
      }
    }
  }
}

TEST_CASE("grouped_mm packed: a stride-0 (expanded) offs is read as G equal ends", "[grouped_mm]") {
  gg::manual_seed(22);
  // Every group ends at row 5: group 0 has rows 0-4, groups 1 and 2 are empty, rows 5-6 are past
  // offs[-1]. Same for the K split of 2D x 2D (groups 1 and 2 output just their bias).
  for (gg::Dtype offs_dtype : {gg::kInt32, gg::kInt64}) {
    INFO(gg::dtype_name(offs_dtype));
    const Tensor offs = gg::full({1}, 5, offs_dtype).expand({3});
    REQUIRE(offs.stride(0) == 0);
    Case a{Layout::k2d3d, gg::randn({7, 4}), gg::randn({3, 4, 2}), gg::randn({3, 2}), {5, 5, 5}};
    check_close(F::grouped_mm(a.input, a.mat2, {.offs = offs, .bias = a.bias}), naive(a), 1e-4,
                "2D x 3D");
    Case b{Layout::k2d2d, gg::randn({2, 6}), gg::randn({6, 3}), gg::randn({3, 3}), {5, 5, 5}};
    check_close(F::grouped_mm(b.input, b.mat2, {.offs = offs, .bias = b.bias}), naive(b), 1e-4,
                "2D x 2D");
  }
}
