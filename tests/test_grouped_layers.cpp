// The grouped layers: GroupedLinear, MultiheadAttention and MoEFeedForward, against naive loops in
// double, PyTorch fixtures (tests/fixtures/layers_*.json from make_layer_fixtures.py), their
// gradcheck cases, and their error messages. "[.timing]" prints quick timings (not run by default).
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <groupgrad/groupgrad.hpp>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "autograd/gradcheck.hpp"
#include "core/copy.hpp"
#include "tests/fixture_support.hpp"

namespace {

namespace F = gg::nn::functional;
using gg::Tensor;
using nlohmann::json;
using Vec = std::vector<double>;

// ==== helpers ====================================================================================

Tensor tensor_of(const json& j) {
  if (j.is_null()) return Tensor();
  const gg::Shape shape = j.at("shape").get<gg::Shape>();
  const std::string dtype = j.at("dtype");
  if (dtype == "float64") return gg::tensor<double>(j.at("data").get<Vec>(), shape);
  if (dtype == "int64") return gg::tensor<int64_t>(j.at("data").get<std::vector<int64_t>>(), shape);
  FAIL("unknown fixture dtype " << dtype);
  return Tensor();
}

Vec values(const Tensor& t) { return t.detach().to(gg::kFloat64).to_vector<double>(); }

// |got - want| <= tol * max(1, |want|) everywhere (NaN only where want is NaN).
void check_close(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(want.defined());
  REQUIRE(got.shape() == want.shape());
  const Vec g = values(got), w = values(want);
  double worst = 0;
  size_t worst_at = 0;
  for (size_t i = 0; i < g.size(); ++i) {
    if (std::isnan(w[i])) {
      CHECK(std::isnan(g[i]));
      continue;
    }
    const double err = std::abs(g[i] - w[i]) / std::max(1.0, std::abs(w[i]));
    if (!(err <= worst)) {
      worst = std::isnan(err) ? std::numeric_limits<double>::infinity() : err;
      worst_at = i;
    }
  }
  INFO("worst relative error " << worst << " at flat index " << worst_at << " (got "
                               << (g.empty() ? 0 : g[worst_at]) << ", want "
                               << (w.empty() ? 0 : w[worst_at]) << ")");
  CHECK(worst <= tol);
}

Tensor leaf(const Tensor& t, gg::Dtype dtype) { return t.to(dtype).detach().requires_grad_(); }

// Sets a module's parameters from a fixture's {name: T}; the names must be exactly the module's.
void set_parameters(gg::nn::Module& m, const json& params, gg::Dtype dtype) {
  m.to(dtype);
  std::set<std::string> ours, theirs;
  for (const auto& [name, t] : m.named_parameters()) ours.insert(name);
  for (const auto& [name, t] : params.items()) theirs.insert(name);
  REQUIRE(ours == theirs);
  gg::NoGradGuard no_grad;
  for (const auto& [name, t] : params.items()) gg::copy_(m.parameter(name), tensor_of(t));
}

// The fixture's float inputs as leaves requiring grad (masks and offs stay as they are).
std::map<std::string, Tensor> inputs_of(const json& c, gg::Dtype dtype) {
  std::map<std::string, Tensor> in;
  for (const auto& [name, t] : c.at("inputs").items()) {
    Tensor x = tensor_of(t);
    const bool is_data = name != "offs" && name != "attn_mask" && name != "key_padding_mask";
    in[name] = x.defined() && is_data ? leaf(x, dtype) : x;
  }
  return in;
}

// Compares the gradients a fixture expects with those of the inputs and the module's parameters.
void check_grads(const json& c, const std::map<std::string, Tensor>& inputs,
                 const gg::nn::Module& m, double tol) {
  for (const auto& [name, t] : c.at("expected").at("grads").items()) {
    const Tensor want = tensor_of(t);
    const auto it = inputs.find(name);
    const Tensor got = it != inputs.end() ? it->second.grad() : m.parameter(name).grad();
    check_close(got, want, tol, "gradient of " + name);
  }
}

// Process CPU time in ms (all threads): unlike wall time it does not count the time other
// processes take on a shared machine. Run the timings with OMP_NUM_THREADS=1 to compare designs.
double cpu_ms() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

// Median CPU milliseconds of `reps` calls of f.
template <class Fn>
double time_ms(int reps, Fn f) {
  f();  // warm-up (primitive cache)
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const double t0 = cpu_ms();
    f();
    t.push_back(cpu_ms() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// ==== naive references (double loops) ============================================================

// y [rows, out] = x [rows, in] @ w^T [out, in] + b.
Vec naive_linear(const Vec& x, const Vec& w, const Vec& b, int64_t rows, int64_t in, int64_t out) {
  Vec y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = b.empty() ? 0.0 : b[o];
      for (int64_t i = 0; i < in; ++i) acc += x[r * in + i] * w[o * in + i];
      y[r * out + o] = acc;
    }
  return y;
}

struct NaiveAttention {
  Vec output, weights;  // (B, L, E), (B, L, S) averaged over heads
};

// mask: additive, (B, H, L, S) flat (empty = none).
NaiveAttention naive_attention(const Vec& q, const Vec& k, const Vec& v, const Vec& w_in,
                               const Vec& b_in, const Vec& w_out, const Vec& b_out, const Vec& mask,
                               int64_t B, int64_t L, int64_t S, int64_t E, int64_t H) {
  const int64_t D = E / H;
  auto proj = [&](const Vec& x, int64_t rows, int64_t p) {
    Vec w(w_in.begin() + p * E * E, w_in.begin() + (p + 1) * E * E);
    Vec b = b_in.empty() ? Vec{} : Vec(b_in.begin() + p * E, b_in.begin() + (p + 1) * E);
    return naive_linear(x, w, b, rows, E, E);
  };
  const Vec Q = proj(q, B * L, 0), K = proj(k, B * S, 1), V = proj(v, B * S, 2);
  Vec O(static_cast<size_t>(B * L * E), 0.0);
  NaiveAttention r;
  r.weights.assign(static_cast<size_t>(B * L * S), 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l) {
        Vec s(static_cast<size_t>(S));
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < S; ++j) {
          double acc = 0;
          for (int64_t d = 0; d < D; ++d)
            acc += Q[(b * L + l) * E + h * D + d] * K[(b * S + j) * E + h * D + d];
          s[j] = acc / std::sqrt(static_cast<double>(D)) +
                 (mask.empty() ? 0.0 : mask[((b * H + h) * L + l) * S + j]);
          mx = std::max(mx, s[j]);
        }
        double z = 0;
        for (double& x : s) z += (x = std::exp(x - mx));
        for (int64_t j = 0; j < S; ++j) {
          const double p = s[j] / z;
          r.weights[(b * L + l) * S + j] += p / static_cast<double>(H);
          for (int64_t d = 0; d < D; ++d)
            O[(b * L + l) * E + h * D + d] += p * V[(b * S + j) * E + h * D + d];
        }
      }
  r.output = naive_linear(O, w_out, b_out, B * L, E, E);
  return r;
}

double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

struct NaiveMoE {
  Vec output;
  double aux = 0;
  std::vector<int64_t> counts;
};

// x (T, E); router (NE, E); up [NE][hidden * E], down [NE][E * hidden].
NaiveMoE naive_moe(const Vec& x, const Vec& router, const std::vector<Vec>& up_w,
                   const std::vector<Vec>& up_b, const std::vector<Vec>& down_w,
                   const std::vector<Vec>& down_b, int64_t T, int64_t E, int64_t hidden, int64_t NE,
                   int64_t k, bool normalize) {
  NaiveMoE r;
  r.output.assign(static_cast<size_t>(T * E), 0.0);
  r.counts.assign(static_cast<size_t>(NE), 0);
  Vec mean_probs(static_cast<size_t>(NE), 0.0);
  for (int64_t t = 0; t < T; ++t) {
    const Vec xt(x.begin() + t * E, x.begin() + (t + 1) * E);
    Vec p = naive_linear(xt, router, {}, 1, E, NE);
    const double mx = *std::max_element(p.begin(), p.end());
    double z = 0;
    for (double& v : p) z += (v = std::exp(v - mx));
    for (double& v : p) v /= z;
    for (int64_t e = 0; e < NE; ++e) mean_probs[e] += p[e] / static_cast<double>(T);
    std::vector<int64_t> order(static_cast<size_t>(NE));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] > p[b]; });
    double norm = 0;
    for (int64_t j = 0; j < k; ++j) norm += p[order[j]];
    for (int64_t j = 0; j < k; ++j) {
      const int64_t e = order[j];
      ++r.counts[e];
      const double gate = normalize ? p[e] / norm : p[e];
      Vec h = naive_linear(xt, up_w[e], up_b.empty() ? Vec{} : up_b[e], 1, E, hidden);
      for (double& v : h) v = gelu(v);
      const Vec y = naive_linear(h, down_w[e], down_b.empty() ? Vec{} : down_b[e], 1, hidden, E);
      for (int64_t i = 0; i < E; ++i) r.output[t * E + i] += gate * y[i];
    }
  }
  for (int64_t e = 0; e < NE; ++e)
    r.aux += static_cast<double>(NE) * static_cast<double>(r.counts[e]) /
             static_cast<double>(T * k) * mean_probs[e];
  return r;
}

}  // namespace

// ==== GroupedLinear ==============================================================================

TEST_CASE("GroupedLinear: parameters weight.<i> / bias.<i>, nn.Linear layout and init",
          "[grouped_layers][grouped_linear]") {
  gg::manual_seed(3);
  gg::nn::GroupedLinear gl({50, 75, 30}, {64, 128, 32});
  const auto named = gl.named_parameters();
  std::vector<std::string> names;
  for (const auto& [n, t] : named) names.push_back(n);
  CHECK(names ==
        std::vector<std::string>{"weight.0", "weight.1", "weight.2", "bias.0", "bias.1", "bias.2"});
  CHECK(gl.parameter("weight.1").shape() == gg::Shape{128, 75});
  CHECK(gl.parameter("bias.2").shape() == gg::Shape{32});
  CHECK(!gl.uniform());
  for (int g = 0; g < 3; ++g) {
    const double bound = 1.0 / std::sqrt(double(gl.in_features()[g]));
    for (const Tensor& t : {(*gl.weight)[g], (*gl.bias)[g]}) {
      const Vec v = values(t);
      const double mx = std::abs(*std::max_element(
          v.begin(), v.end(), [](double a, double b) { return std::abs(a) < std::abs(b); }));
      CHECK(mx <= bound);
      CHECK(mx > 0.9 * bound);  // uniform over the whole range
      CHECK(t.requires_grad());
    }
  }
  gg::nn::GroupedLinear nb({3, 3}, {2, 2}, /*bias=*/false);
  CHECK(nb.named_parameters().size() == 2);
  CHECK(nb.uniform());
  CHECK(nb.bias == nullptr);
  CHECK(!nb.stacked_bias().defined());
}

TEST_CASE("GroupedLinear: list form matches a naive loop (Float32 and Float64)",
          "[grouped_layers][grouped_linear]") {
  const gg::Dtype dtype = GENERATE(gg::kFloat32, gg::kFloat64);
  const double tol = dtype == gg::kFloat32 ? 1e-5 : 1e-12;
  gg::manual_seed(5);
  gg::nn::GroupedLinear gl({50, 75, 30}, {64, 128, 32});
  gl.to(dtype);
  const std::vector<Tensor> xs{gg::randn({100, 50}, dtype), gg::randn({2, 3, 75}, dtype),
                               gg::randn({0, 30}, dtype)};
  const std::vector<Tensor> ys = gl.forward(xs);
  REQUIRE(ys.size() == 3);
  CHECK(ys[1].shape() == gg::Shape{2, 3, 128});
  CHECK(ys[2].shape() == gg::Shape{0, 32});
  for (size_t g = 0; g < 3; ++g) {
    const int64_t in = gl.in_features()[g], out = gl.out_features()[g];
    const Vec want = naive_linear(values(xs[g]), values((*gl.weight)[g]), values((*gl.bias)[g]),
                                  xs[g].numel() / in, in, out);
    check_close(ys[g], gg::tensor<double>(want, ys[g].shape()), tol, "group " + std::to_string(g));
  }
  // Gradients reach every group's weight and bias (one grouped_mm node).
  gg::sum(ys[0]).backward();
  CHECK((*gl.weight)[0].grad().defined());
  CHECK((*gl.bias)[0].grad().defined());
  CHECK(values((*gl.bias)[0].grad()) == Vec(64, 100.0));
}

TEST_CASE("GroupedLinear: packed form matches a naive loop; the stacked weight is a view",
          "[grouped_layers][grouped_linear]") {
  const gg::Dtype dtype = GENERATE(gg::kFloat32, gg::kFloat64);
  const double tol = dtype == gg::kFloat32 ? 1e-5 : 1e-12;
  gg::manual_seed(7);
  gg::nn::GroupedLinear gl({16, 16, 16, 16}, {24, 24, 24, 24});
  gl.to(dtype);  // gives every parameter its own storage; the packed forward packs them again
  const Tensor x = gg::randn({40, 16}, dtype).requires_grad_();
  const Tensor offs = gg::tensor<int64_t>({10, 10, 25, 37});  // group 1 empty, 3 rows past the end
  const Tensor y = gl.forward(x, offs);
  REQUIRE(y.shape() == gg::Shape{40, 24});

  // The [G, out, in] stack is a view over the parameters' (now shared) storage.
  const Tensor w3 = gl.stacked_weight();
  CHECK(w3.shape() == gg::Shape{4, 24, 16});
  for (size_t g = 0; g < 4; ++g) CHECK((*gl.weight)[g].impl()->storage == w3.impl()->storage);
  CHECK((*gl.bias)[3].impl()->storage == gl.stacked_bias().impl()->storage);

  const Vec xv = values(x);
  std::vector<int64_t> ends{10, 10, 25, 37};
  Vec want(40 * 24, 0.0);
  int64_t start = 0;
  for (size_t g = 0; g < 4; ++g) {
    const Vec rows(xv.begin() + start * 16, xv.begin() + ends[g] * 16);
    const Vec part =
        naive_linear(rows, values((*gl.weight)[g]), values((*gl.bias)[g]), ends[g] - start, 16, 24);
    std::copy(part.begin(), part.end(), want.begin() + start * 24);
    start = ends[g];
  }
  check_close(y, gg::tensor<double>(want, {40, 24}), tol, "packed output");

  // Gradients flow through the view to the per-group parameters and match the list form's.
  const Tensor go = gg::randn({40, 24}, dtype);
  y.backward(go);
  std::vector<Tensor> packed_grads;
  for (const auto& [n, p] : gl.named_parameters()) packed_grads.push_back(p.grad());
  const Tensor x_grad = x.grad();
  gl.zero_grad(/*set_to_none=*/true);
  const Tensor x2 = x.detach().requires_grad_();
  std::vector<Tensor> pieces;
  start = 0;
  for (size_t g = 0; g < 4; ++g) {
    pieces.push_back(x2.narrow(0, start, ends[g] - start));
    start = ends[g];
  }
  const std::vector<Tensor> ys = gl.forward(pieces);
  Tensor loss;
  start = 0;
  for (size_t g = 0; g < 4; ++g) {
    const Tensor l = gg::sum(ys[g] * go.narrow(0, start, ends[g] - start));
    loss = loss.defined() ? loss + l : l;
    start = ends[g];
  }
  loss.backward();
  size_t i = 0;
  for (const auto& [n, p] : gl.named_parameters()) {
    check_close(packed_grads[i++], p.grad(), tol, "gradient of " + n);
  }
  check_close(x_grad, x2.grad(), tol, "input gradient");
  CHECK(values(x_grad.narrow(0, 37, 3)) == Vec(3 * 16, 0.0));  // rows past offs[-1]
}

TEST_CASE("GroupedLinear: errors name GroupedLinear", "[grouped_layers][grouped_linear][errors]") {
  using Catch::Contains;
  REQUIRE_THROWS_WITH(gg::nn::GroupedLinear({3, 4}, {5}),
                      Contains("[GroupedLinear] in_features has 2 entries but out_features has 1"));
  REQUIRE_THROWS_WITH(gg::nn::GroupedLinear({}, {}), Contains("needs at least one group"));
  REQUIRE_THROWS_WITH(
      gg::nn::GroupedLinear({3, -1}, {2, 2}),
      Contains("[GroupedLinear] group 1: in_features and out_features must be >= 0"));
  gg::nn::GroupedLinear gl({3, 4}, {5, 6});
  REQUIRE_THROWS_WITH(gl.forward({gg::randn({2, 3})}),
                      Contains("[GroupedLinear] got 1 inputs for 2 groups"));
  REQUIRE_THROWS_WITH(
      gl.forward({gg::randn({2, 3}), gg::randn({2, 5})}),
      Contains("[GroupedLinear] group 1: input must be [*, 4] (in_features[1]), got [2, 5]"));
  REQUIRE_THROWS_WITH(
      gl.forward({gg::randn({2, 3}), gg::randn({2, 4}, gg::kFloat64)}),
      Contains("[GroupedLinear] group 1: input is float64 but weight.1 is float32"));
  REQUIRE_THROWS_WITH(gl.forward({gg::randn({2, 3}), Tensor()}),
                      Contains("group 1: input is an undefined tensor"));
  REQUIRE_THROWS_WITH(gl.forward(gg::randn({4, 3}), gg::tensor<int64_t>({2, 4})),
                      Contains("[GroupedLinear] the packed form forward(packed_input, offs) needs "
                               "equal in_features and equal out_features across groups, got "
                               "in_features [3, 4] and out_features [5, 6]"));
  gg::nn::GroupedLinear u({3, 3}, {5, 5});
  REQUIRE_THROWS_WITH(u.forward(gg::randn({4, 4}), gg::tensor<int64_t>({2, 4})),
                      Contains("[GroupedLinear] packed input must be 2-D [M_total, 3]"));
  REQUIRE_THROWS_WITH(u.forward(gg::randn({4, 3}), gg::tensor<int64_t>({4})),
                      Contains("[GroupedLinear] offs must be a 1-D Int32 or Int64 tensor with one "
                               "cumulative end offset per group (2), got int64 [1]"));
  REQUIRE_THROWS_WITH(u.forward(gg::randn({4, 3}), gg::tensor<int64_t>({3, 2})),
                      Contains("[grouped_mm] group 1: offs must be non-decreasing"));
}

TEST_CASE("GroupedLinear: PyTorch parity (a loop of nn.Linear)",
          "[grouped_layers][grouped_linear][fixtures]") {
  const json& doc = gg::test::fixture("layers_grouped_linear.json");
  REQUIRE(doc.at("cases").size() == 4);
  for (const json& c : doc.at("cases")) {
    for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32}) {
      const double tol = dtype == gg::kFloat64 ? 1e-12 : 2e-5;
      INFO(c.at("name").get<std::string>() << (dtype == gg::kFloat64 ? " Float64" : " Float32"));
      const json& cfg = c.at("config");
      gg::nn::GroupedLinear gl(cfg.at("in_features").get<std::vector<int64_t>>(),
                               cfg.at("out_features").get<std::vector<int64_t>>(),
                               cfg.at("bias").get<bool>());
      set_parameters(gl, c.at("params"), dtype);
      auto in = inputs_of(c, dtype);
      const json& want = c.at("expected").at("outputs");
      Tensor loss;
      if (cfg.at("form") == "list") {
        std::vector<Tensor> xs;
        for (size_t g = 0; g < gl.in_features().size(); ++g)
          xs.push_back(in.at(fmt::format("input.{}", g)));
        const std::vector<Tensor> ys = gl.forward(xs);
        for (size_t g = 0; g < ys.size(); ++g) {
          const std::string name = fmt::format("output.{}", g);
          check_close(ys[g], tensor_of(want.at(name)), tol, name);
          const Tensor l = gg::sum(ys[g] * tensor_of(c.at("grad_outputs").at(name)).to(dtype));
          loss = loss.defined() ? loss + l : l;
        }
      } else {
        const Tensor y = gl.forward(in.at("input"), in.at("offs"));
        check_close(y, tensor_of(want.at("output")), tol, "output");
        loss = gg::sum(y * tensor_of(c.at("grad_outputs").at("output")).to(dtype));
      }
      loss.backward();
      check_grads(c, in, gl, tol);
    }
  }
}

// ==== MultiheadAttention =========================================================================

TEST_CASE("MultiheadAttention: parameters named and initialised like PyTorch",
          "[grouped_layers][mha]") {
  gg::manual_seed(11);
  gg::nn::MultiheadAttention mha(64, 8);
  std::vector<std::string> names;
  for (const auto& [n, t] : mha.named_parameters()) names.push_back(n);
  CHECK(names == std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight",
                                          "out_proj.bias"});
  CHECK(mha.in_proj_weight.shape() == gg::Shape{192, 64});
  CHECK(mha.head_dim() == 8);
  CHECK(values(mha.in_proj_bias) == Vec(192, 0.0));
  CHECK(values(mha.out_proj->bias) == Vec(64, 0.0));
  // xavier_uniform_ over [3E, E]: bound sqrt(6 / (E + 3E)); out_proj.weight nn.Linear's 1/sqrt(E).
  auto max_abs = [](const Tensor& t) {
    double m = 0;
    for (double v : values(t)) m = std::max(m, std::abs(v));
    return m;
  };
  const double xavier = std::sqrt(6.0 / (64 + 192));
  CHECK(max_abs(mha.in_proj_weight) <= xavier);
  CHECK(max_abs(mha.in_proj_weight) > 0.95 * xavier);
  CHECK(max_abs(mha.out_proj->weight) <= 1.0 / 8);
  CHECK(max_abs(mha.out_proj->weight) > 0.95 / 8);
  gg::nn::MultiheadAttention nb(8, 2, 0.0, /*bias=*/false);
  CHECK(nb.named_parameters().size() == 2);
}

TEST_CASE("MultiheadAttention: forward matches a naive loop, with masks", "[grouped_layers][mha]") {
  const gg::Dtype dtype = GENERATE(gg::kFloat32, gg::kFloat64);
  const double tol = dtype == gg::kFloat32 ? 2e-5 : 1e-12;
  const int64_t B = 3, L = 5, S = 7, E = 12, H = 3;
  gg::manual_seed(13);
  gg::nn::MultiheadAttention mha(E, H);
  mha.to(dtype);
  gg::nn::init::normal_(mha.in_proj_bias, 0, 0.3);
  gg::nn::init::normal_(mha.out_proj->bias, 0, 0.3);
  const Tensor q = gg::randn({B, L, E}, dtype), k = gg::randn({B, S, E}, dtype),
               v = gg::randn({B, S, E}, dtype);
  const Vec w_in = values(mha.in_proj_weight), b_in = values(mha.in_proj_bias),
            w_out = values(mha.out_proj->weight), b_out = values(mha.out_proj->bias);

  SECTION("cross-attention, no mask") {
    auto [out, w] = mha.forward(q, k, v);
    const NaiveAttention want = naive_attention(values(q), values(k), values(v), w_in, b_in, w_out,
                                                b_out, {}, B, L, S, E, H);
    check_close(out, gg::tensor<double>(want.output, {B, L, E}), tol, "output");
    check_close(w, gg::tensor<double>(want.weights, {B, L, S}), tol, "weights");
  }
  SECTION(
      "self-attention (one input) with is_causal, an Int8 key_padding_mask and a float 3-D mask") {
    const Tensor x = gg::randn({B, S, E}, dtype);
    std::vector<int8_t> pad(B * S, 0);
    pad[0 * S + 6] = pad[0 * S + 5] = pad[2 * S + 3] = 1;
    const Tensor kpm = gg::tensor<int8_t>(pad, {B, S});
    const Tensor m3 = gg::randn({B * H, S, S}, dtype);
    auto [out, w] =
        mha.forward(x, x, x, {.attn_mask = m3, .key_padding_mask = kpm, .is_causal = true});
    Vec mask = values(m3);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t l = 0; l < S; ++l)
          for (int64_t j = 0; j < S; ++j)
            if (j > l || pad[b * S + j]) mask[((b * H + h) * S + l) * S + j] = -INFINITY;
    const Vec xv = values(x);
    const NaiveAttention want =
        naive_attention(xv, xv, xv, w_in, b_in, w_out, b_out, mask, B, S, S, E, H);
    check_close(out, gg::tensor<double>(want.output, {B, S, E}), tol, "output");
    check_close(w, gg::tensor<double>(want.weights, {B, S, S}), tol, "weights");
    // Masked keys get exactly zero weight.
    CHECK(values(w)[0 * S * S + 6 * S + 6] == 0.0);
  }
}

TEST_CASE("MultiheadAttention: PyTorch parity (torch.nn.MultiheadAttention, batch_first)",
          "[grouped_layers][mha][fixtures]") {
  const json& doc = gg::test::fixture("layers_multihead_attention.json");
  REQUIRE(doc.at("cases").size() == 7);
  for (const json& c : doc.at("cases")) {
    for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32}) {
      const double tol = dtype == gg::kFloat64 ? 1e-11 : 1e-4;
      INFO(c.at("name").get<std::string>() << (dtype == gg::kFloat64 ? " Float64" : " Float32"));
      const json& cfg = c.at("config");
      gg::nn::MultiheadAttention mha(cfg.at("embed_dim").get<int64_t>(),
                                     cfg.at("num_heads").get<int64_t>(), 0.0,
                                     cfg.at("bias").get<bool>());
      set_parameters(mha, c.at("params"), dtype);
      auto in = inputs_of(c, dtype);
      const Tensor q = in.at("query");
      const bool self_attention = cfg.at("self_attention").get<bool>();
      const Tensor k = self_attention ? q : in.at("key");
      const Tensor v = self_attention ? q : in.at("value");
      const bool need_weights = cfg.at("need_weights").get<bool>();
      auto [out, w] =
          mha.forward(q, k, v,
                      {.attn_mask = in.at("attn_mask"),
                       .key_padding_mask = in.at("key_padding_mask"),
                       .need_weights = need_weights,
                       .average_attn_weights = cfg.at("average_attn_weights").get<bool>(),
                       .is_causal = cfg.at("is_causal").get<bool>()});
      const json& want = c.at("expected").at("outputs");
      check_close(out, tensor_of(want.at("output")), tol, "output");
      Tensor loss = gg::sum(out * tensor_of(c.at("grad_outputs").at("output")).to(dtype));
      if (need_weights) {
        check_close(w, tensor_of(want.at("weights")), tol, "weights");
        loss = loss + gg::sum(w * tensor_of(c.at("grad_outputs").at("weights")).to(dtype));
      } else {
        CHECK(!w.defined());
      }
      loss.backward();
      check_grads(c, in, mha, tol);
    }
  }
}

TEST_CASE("MultiheadAttention: causal_mask, is_causal, need_weights, dropout",
          "[grouped_layers][mha]") {
  const Tensor m = gg::nn::MultiheadAttention::causal_mask(3);
  const double inf = std::numeric_limits<double>::infinity();
  CHECK(values(m) == Vec{0, -inf, -inf, 0, 0, -inf, 0, 0, 0});
  CHECK(values(gg::nn::MultiheadAttention::causal_mask(2, 3, gg::kFloat64)) ==
        Vec{0, -inf, -inf, 0, 0, -inf});

  gg::manual_seed(17);
  gg::nn::MultiheadAttention mha(8, 2, /*dropout=*/0.5);
  const Tensor x = gg::randn({2, 6, 8});
  mha.eval();
  auto [a, wa] = mha.forward(x, x, x, gg::nn::MultiheadAttention::causal_mask(6));
  auto [b, wb] = mha.forward(x, x, x, {.is_causal = true});
  CHECK(values(a) == values(b));
  CHECK(values(wa) == values(wb));
  // An Int64 boolean mask gives the same as the float one.
  std::vector<int64_t> flags(36, 0);
  for (int i = 0; i < 6; ++i)
    for (int j = i + 1; j < 6; ++j) flags[i * 6 + j] = 1;
  auto [c, wc] = mha.forward(x, x, x, gg::tensor<int64_t>(flags, {6, 6}));
  CHECK(values(c) == values(a));
  auto [d, wd] = mha.forward(x, x, x, {}, /*need_weights=*/false);
  CHECK(!wd.defined());
  CHECK(d.shape() == gg::Shape{2, 6, 8});

  // Dropout: only in training; then each weight is 0 or kept and scaled by 1 / (1 - p).
  auto [e, we] = mha.forward(x, x, x, {.average_attn_weights = false});
  mha.train();
  auto [f, wf] = mha.forward(x, x, x, {.average_attn_weights = false});
  const Vec ve = values(we), vf = values(wf);
  int zeros = 0;
  for (size_t i = 0; i < ve.size(); ++i) {
    if (vf[i] == 0) {
      ++zeros;
    } else {
      CHECK(vf[i] == Approx(2 * ve[i]).epsilon(1e-5));
    }
  }
  CHECK(zeros > 0.3 * static_cast<double>(ve.size()));
  CHECK(zeros < 0.7 * static_cast<double>(ve.size()));
  CHECK(values(f) != values(e));
}

TEST_CASE("MultiheadAttention: errors name MultiheadAttention", "[grouped_layers][mha][errors]") {
  using Catch::Contains;
  REQUIRE_THROWS_WITH(
      gg::nn::MultiheadAttention(10, 3),
      Contains("[MultiheadAttention] embed_dim 10 must be divisible by num_heads 3"));
  REQUIRE_THROWS_WITH(gg::nn::MultiheadAttention(8, 2, 1.0),
                      Contains("[MultiheadAttention] dropout must be in [0, 1), got 1"));
  gg::nn::MultiheadAttention mha(8, 2);
  const Tensor x = gg::randn({2, 3, 8});
  REQUIRE_THROWS_WITH(mha.forward(gg::randn({3, 8}), x, x),
                      Contains("[MultiheadAttention] query must be 3-D (batch, seq, embed) "
                               "(batch_first), got [3, 8]"));
  REQUIRE_THROWS_WITH(mha.forward(gg::randn({2, 3, 6}), x, x),
                      Contains("[MultiheadAttention] query, key and value must have embed_dim=8"));
  REQUIRE_THROWS_WITH(mha.forward(x, gg::randn({1, 3, 8}), gg::randn({1, 3, 8})),
                      Contains("must have the same batch size"));
  REQUIRE_THROWS_WITH(mha.forward(x, x, gg::randn({2, 4, 8})),
                      Contains("[MultiheadAttention] key and value must have the same sequence "
                               "length (key float32 [2, 3, 8], value float32 [2, 4, 8])"));
  REQUIRE_THROWS_WITH(mha.forward(x, x, x, gg::zeros({3, 4})),
                      Contains("[MultiheadAttention] attn_mask must be (L, S) = [3, 3] or (batch * "
                               "num_heads, L, S) = [4, 3, 3], got float32 [3, 4]"));
  REQUIRE_THROWS_WITH(mha.forward(x, x, x, {.key_padding_mask = gg::zeros({3, 2}, gg::kInt64)}),
                      Contains("[MultiheadAttention] key_padding_mask must be (batch, S) = [2, 3], "
                               "got int64 [3, 2]"));
  REQUIRE_THROWS_WITH(
      mha.forward(x.to(gg::kFloat64), x.to(gg::kFloat64), x.to(gg::kFloat64)),
      Contains("[MultiheadAttention] in_proj_weight is float32 but query is float64"));
}

// ==== MoEFeedForward =============================================================================

TEST_CASE("MoEFeedForward: parameter names; forward matches a naive per-token loop",
          "[grouped_layers][moe]") {
  const gg::Dtype dtype = GENERATE(gg::kFloat32, gg::kFloat64);
  const double tol = dtype == gg::kFloat32 ? 2e-5 : 1e-12;
  const int64_t E = 16, hidden = 32, NE = 4, k = 2;
  gg::manual_seed(19);
  gg::nn::MoEFeedForward moe(E, hidden, NE, k);
  moe.to(dtype);
  std::vector<std::string> names;
  for (const auto& [n, t] : moe.named_parameters()) names.push_back(n);
  REQUIRE(names.size() == 1 + 4 * NE);
  CHECK(names[0] == "router.weight");
  CHECK(names[1] == "up.weight.0");
  CHECK(names[1 + NE] == "up.bias.0");
  CHECK(names[1 + 2 * NE] == "down.weight.0");
  CHECK(moe.parameter("down.weight.3").shape() == gg::Shape{E, hidden});

  const Tensor x = gg::randn({3, 10, E}, dtype).requires_grad_();
  const Tensor y = moe.forward(x);
  CHECK(y.shape() == x.shape());
  std::vector<Vec> uw, ub, dw, db;
  for (int64_t e = 0; e < NE; ++e) {
    uw.push_back(values((*moe.up->weight)[e]));
    ub.push_back(values((*moe.up->bias)[e]));
    dw.push_back(values((*moe.down->weight)[e]));
    db.push_back(values((*moe.down->bias)[e]));
  }
  const NaiveMoE want =
      naive_moe(values(x), values(moe.router->weight), uw, ub, dw, db, 30, E, hidden, NE, k, true);
  check_close(y, gg::tensor<double>(want.output, x.shape()), tol, "output");
  CHECK(moe.last_expert_counts() == want.counts);
  CHECK(std::accumulate(want.counts.begin(), want.counts.end(), int64_t{0}) == 30 * k);
  CHECK(moe.last_aux_loss().to(gg::kFloat64).item<double>() ==
        Approx(want.aux).epsilon(dtype == gg::kFloat32 ? 1e-5 : 1e-12));

  // Gradients reach the router (through the gates and the aux loss), every expert that got
  // tokens, and the input.
  (gg::sum(y * y) + moe.last_aux_loss()).backward();
  CHECK(x.grad().defined());
  CHECK(moe.router->weight.grad().defined());
  for (int64_t e = 0; e < NE; ++e) {
    if (want.counts[e] == 0) continue;
    CHECK((*moe.up->weight)[e].grad().defined());
    CHECK((*moe.down->bias)[e].grad().defined());
  }
}

TEST_CASE("MoEFeedForward: the aux loss is 1 for a balanced router and gets gradient",
          "[grouped_layers][moe]") {
  gg::manual_seed(23);
  gg::nn::MoEFeedForward moe(4, 8, 4, 2);
  {
    gg::NoGradGuard no_grad;
    gg::copy_(moe.router->weight, gg::zeros({4, 4}));  // uniform probabilities
  }
  const Tensor x = gg::randn({8, 4});
  moe.forward(x);
  // Ties go to the lower expert index: every token picks experts 0 and 1.
  CHECK(moe.last_expert_counts() == std::vector<int64_t>{8, 8, 0, 0});
  CHECK(moe.last_aux_loss().item<float>() == Approx(4 * (0.5 * 0.25 + 0.5 * 0.25)));
  moe.last_aux_loss().backward();
  CHECK(moe.router->weight.grad().defined());
}

TEST_CASE("MoEFeedForward: PyTorch parity (explicit reference with the same routing)",
          "[grouped_layers][moe][fixtures]") {
  const json& doc = gg::test::fixture("layers_moe.json");
  REQUIRE(doc.at("cases").size() == 3);
  for (const json& c : doc.at("cases")) {
    for (gg::Dtype dtype : {gg::kFloat64, gg::kFloat32}) {
      const double tol = dtype == gg::kFloat64 ? 1e-12 : 1e-4;
      INFO(c.at("name").get<std::string>() << (dtype == gg::kFloat64 ? " Float64" : " Float32"));
      const json& cfg = c.at("config");
      gg::nn::MoEFeedForward moe(
          cfg.at("embed_dim").get<int64_t>(), cfg.at("hidden_dim").get<int64_t>(),
          cfg.at("num_experts").get<int64_t>(), cfg.at("top_k").get<int64_t>(),
          {.normalize_top_k = cfg.at("normalize_top_k").get<bool>(),
           .bias = cfg.at("bias").get<bool>()});
      set_parameters(moe, c.at("params"), dtype);
      auto in = inputs_of(c, dtype);
      const Tensor y = moe.forward(in.at("input"));
      const json& want = c.at("expected").at("outputs");
      check_close(y, tensor_of(want.at("output")), tol, "output");
      check_close(moe.last_aux_loss(), tensor_of(want.at("aux_loss")), tol, "aux_loss");
      CHECK(moe.last_expert_counts() == tensor_of(want.at("expert_counts")).to_vector<int64_t>());
      const Tensor loss = gg::sum(y * tensor_of(c.at("grad_outputs").at("output")).to(dtype)) +
                          moe.last_aux_loss() * cfg.at("aux_coef").get<double>();
      loss.backward();
      check_grads(c, in, moe, tol);
    }
  }
}

TEST_CASE("MoEFeedForward: errors name MoEFeedForward", "[grouped_layers][moe][errors]") {
  using Catch::Contains;
  REQUIRE_THROWS_WITH(gg::nn::MoEFeedForward(8, 16, 4, 5),
                      Contains("[MoEFeedForward] top_k must be in [1, num_experts=4], got 5"));
  REQUIRE_THROWS_WITH(gg::nn::MoEFeedForward(8, 0, 4, 1),
                      Contains("[MoEFeedForward] embed_dim, hidden_dim and num_experts must be "
                               "positive, got 8, 0 and 4"));
  gg::nn::MoEFeedForward moe(8, 16, 4, 2);
  REQUIRE_THROWS_WITH(
      moe.forward(gg::randn({3, 7})),
      Contains("[MoEFeedForward] input must be [*, 8] (embed_dim), got float32 [3, 7]"));
  REQUIRE_THROWS_WITH(moe.forward(gg::randn({3, 8}, gg::kFloat64)),
                      Contains("[MoEFeedForward] input is float64 but a parameter is float32"));
  // No tokens: an empty output and a zero aux loss.
  const Tensor y = moe.forward(gg::randn({0, 8}));
  CHECK(y.shape() == gg::Shape{0, 8});
  CHECK(moe.last_aux_loss().item<float>() == 0.0f);
}

// ==== with optimizers and checkpoints ============================================================

TEST_CASE("grouped layers: an SGD loop trains through the packed views; checkpoints round-trip",
          "[grouped_layers][moe]") {
  gg::manual_seed(29);
  auto moe = std::make_shared<gg::nn::MoEFeedForward>(8, 16, 4, 2);
  auto mha = std::make_shared<gg::nn::MultiheadAttention>(8, 2);
  const Tensor x = gg::randn({4, 6, 8});
  const Tensor target = gg::randn({4, 6, 8});
  std::vector<Tensor> params = moe->parameters();
  for (const Tensor& p : mha->parameters()) params.push_back(p);
  gg::optim::SGD sgd(params, gg::optim::SGDOptions(0.05).momentum(0.9));
  auto loss_fn = [&] {
    auto [a, w] = mha->forward(x, x, x, {.need_weights = false, .is_causal = true});
    const Tensor y = moe->forward(a + x);  // sets last_aux_loss()
    return gg::mse_loss(y, target) + 0.01 * moe->last_aux_loss();
  };
  const double first = loss_fn().item<float>();
  for (int step = 0; step < 30; ++step) {
    sgd.zero_grad();
    loss_fn().backward();
    sgd.step();
  }
  const double last = loss_fn().item<float>();
  CHECK(last < 0.8 * first);
  // The experts' parameters are still views of one block (the packed forward needs no copy).
  const Tensor w3 = moe->up->stacked_weight();
  CHECK(w3.grad_fn() != nullptr);
  CHECK((*moe->up->weight)[3].impl()->storage == w3.impl()->storage);

  // Checkpoints use the parameter names (weight.<i>, in_proj_weight, ...) and restore exactly.
  const std::string path = "/tmp/gg_test_grouped_layers_moe.safetensors";
  gg::save(*moe, path);
  gg::manual_seed(30);
  gg::nn::MoEFeedForward fresh(8, 16, 4, 2);
  gg::load(fresh, path);
  std::remove(path.c_str());
  gg::NoGradGuard no_grad;
  CHECK(values(fresh.forward(x)) == values(moe->forward(x)));
  CHECK(fresh.parameter("down.bias.2").to_vector<float>() ==
        moe->parameter("down.bias.2").to_vector<float>());
}

// ==== gradcheck and timings ======================================================================

TEST_CASE("grouped layers: gradcheck cases pass", "[grouped_layers][gradcheck]") {
  namespace gc = gg::gradcheck;
  const std::vector<std::string> names{
      "nn.GroupedLinear",          "nn.GroupedLinear_packed",      "nn.GroupedLinear_packed_groups",
      "nn.MultiheadAttention",     "nn.MultiheadAttention_masked", "nn.MoEFeedForward",
      "nn.MoEFeedForward_top1_raw"};
  for (const std::string& name : names) {
    const gc::CheckCase& c = gc::Registry::instance().get(name);
    for (uint64_t seed : {0u, 1u, 2u}) {
      gc::CaseReport r = gc::run_case(c, {.dtype = gg::kFloat64, .seed = seed});
      INFO(gc::format_report(r, true));
      CHECK(r.passed);
      if (!c.linear) continue;
      gc::CaseReport f32 = gc::run_case(c, {.dtype = gg::kFloat32, .seed = seed});
      INFO(gc::format_report(f32, true));
      CHECK(f32.passed);
    }
  }
}

TEST_CASE("grouped layers: quick timings", "[.timing]") {
  gg::manual_seed(1);
  {  // GroupedLinear weight layout: [out, in] read transposed vs a contiguous [in, out] copy.
    const int64_t G = 8, M = 512, K = 512, N = 1024;
    std::vector<Tensor> xs, wt, wc;
    for (int64_t g = 0; g < G; ++g) {
      xs.push_back(gg::randn({M, K}));
      const Tensor w = gg::randn({N, K});
      wt.push_back(w.t());
      wc.push_back(w.t().contiguous());
    }
    const double t_view = time_ms(10, [&] { F::grouped_mm(xs, wt); });
    const double t_copy = time_ms(10, [&] { F::grouped_mm(xs, wc); });
    WARN("GroupedLinear 8 x [512,512]@[512,1024] f32 fwd: transposed [out,in] view "
         << t_view << " ms, contiguous [in,out] " << t_copy << " ms");
  }
  for (auto [B, L, E, H] : {std::array<int64_t, 4>{32, 32, 128, 4}, {8, 128, 256, 8}}) {
    gg::nn::MultiheadAttention mha(E, H);
    const Tensor x = gg::randn({B, L, E}).requires_grad_();
    const double fwd = time_ms(10, [&] { mha.forward(x, x, x, {.is_causal = true}); });
    const double fwd_bwd = time_ms(10, [&] {
      auto [y, w] = mha.forward(x, x, x, {.need_weights = false, .is_causal = true});
      gg::sum(y).backward();
    });
    // The per-head scores q k^T in three layouts: the dense (B*H, L, D) heads the layer uses,
    // B*H list-form groups read in place from the batch-first projection (no copies, but B*H
    // primitives), and one 3D x 3D call on sequence-first strided heads (L, B*H, D) (no copies
    // of k, but a transposing copy of the input, and oneDNN's gemm:jit).
    const int64_t D = E / H;
    const Tensor qd = gg::randn({B * H, L, D}), kd = gg::randn({B * H, L, D});
    const double dense = time_ms(20, [&] { F::grouped_mm(qd, kd.transpose(1, 2)); });
    const Tensor qkv = gg::randn({B, L, 3 * E});
    std::vector<Tensor> qs, ks;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h) {
        qs.push_back(qkv.select(0, b).narrow(1, h * D, D));
        ks.push_back(qkv.select(0, b).narrow(1, E + h * D, D).t());
      }
    const double list = time_ms(20, [&] { F::grouped_mm(qs, ks); });
    const Tensor q3 = gg::randn({L, B * H, D}).transpose(0, 1);
    const Tensor k3 = gg::randn({L, B * H, D}).permute({1, 2, 0});
    const double strided = time_ms(20, [&] { F::grouped_mm(q3, k3); });
    const Tensor kb = gg::randn({B, L, H, D});
    const double copy = time_ms(20, [&] { kb.permute({0, 2, 1, 3}).contiguous(); });
    WARN("MHA B=" << B << " L=" << L << " E=" << E << " H=" << H << ": fwd " << fwd
                  << " ms, fwd+bwd " << fwd_bwd << " ms; scores q k^T: dense 3D x 3D " << dense
                  << " ms (+ " << copy << " ms to copy k dense), " << B * H << " list groups "
                  << list << " ms, strided sequence-first 3D x 3D " << strided << " ms");
  }
  {
    const int64_t E = 128, hidden = 512, NE = 8, k = 2, T = 1024;
    gg::nn::MoEFeedForward moe(E, hidden, NE, k);
    const Tensor x = gg::randn({T, E}).requires_grad_();
    const double fwd = time_ms(10, [&] { moe.forward(x); });
    const double fwd_bwd = time_ms(10, [&] {
      const Tensor y = moe.forward(x);
      (gg::sum(y) + moe.last_aux_loss()).backward();
    });
    // The same expert FLOPs as one dense GEMM pair (the machine's limit).
    const Tensor xs = gg::randn({T * k, E}), w1 = gg::randn({E, hidden}),
                 w2 = gg::randn({hidden, E});
    const double dense = time_ms(10, [&] { gg::matmul(gg::gelu(gg::matmul(xs, w1)), w2); });
    WARN("MoE T=1024 E=128 hidden=512 8 experts top-2: fwd "
         << fwd << " ms, fwd+bwd " << fwd_bwd << " ms; dense expert GEMMs alone " << dense
         << " ms");
  }
}
