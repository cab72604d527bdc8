// gg::nn::Module and the basic layers: registration and dotted names, train/eval, zero_grad,
// Module::to; each layer's forward against a naive double loop, its default initialisation, and
// its gradients against central differences in Float64 (plus the shared gradcheck registry).
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>

#include "autograd/grad_mode.hpp"
#include "autograd/gradcheck.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "groupgrad.hpp"
#include "nn/gradcheck_cases.hpp"

using namespace gg;

namespace {

std::vector<double> values(const Tensor& t) { return t.to(kFloat64).to_vector<double>(); }

void require_close(const std::vector<double>& got, const std::vector<double>& want, double atol,
                   double rtol = 0) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]));
  }
}

std::vector<std::string> names_of(const nn::NamedTensors& named) {
  std::vector<std::string> out;
  for (const auto& [name, t] : named) out.push_back(name);
  return out;
}

// Central differences of L = sum(f() * r) with respect to every element of each input (contiguous
// Float64 leaves that require grad), against the gradients one backward gives.
void check_gradients(const std::function<Tensor()>& f, const std::vector<Tensor>& inputs,
                     double eps = 1e-6, double atol = 1e-7, double rtol = 1e-5) {
  Tensor r = randn(f().shape(), kFloat64);
  for (const Tensor& x : inputs) x.set_grad(Tensor());
  (f() * r).sum().backward();
  auto loss = [&] {
    NoGradGuard no_grad;
    return (f() * r).sum().item<double>();
  };
  for (size_t k = 0; k < inputs.size(); ++k) {
    const Tensor& x = inputs[k];
    REQUIRE(x.grad().defined());
    std::vector<double> analytic = values(x.grad());
    double* p = x.data_ptr<double>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double saved = p[i];
      p[i] = saved + eps;
      const double plus = loss();
      p[i] = saved - eps;
      const double minus = loss();
      p[i] = saved;
      const double numeric = (plus - minus) / (2 * eps);
      INFO("input " << k << " element " << i << ": analytic " << analytic[i] << ", numeric "
                    << numeric);
      REQUIRE(std::abs(analytic[i] - numeric) <= atol + rtol * std::abs(numeric));
    }
  }
}

// A small tree: Net { embed, blocks: Sequential[Block{attn{w_q, w_k, buffer mask}, ln}, ...], head
// }.
struct Attn : nn::Module {
  Attn() {
    w_q = register_parameter("w_q", randn({4, 4}));
    w_k = register_parameter("w_k", randn({4, 4}));
    mask = register_buffer("mask", ones({4}));
  }
  Tensor forward(const Tensor& x) { return x.matmul(w_q).matmul(w_k) * mask; }
  Tensor w_q, w_k, mask;
};

struct Block : nn::Module {
  Block() {
    attn = register_module("attn", std::make_shared<Attn>());
    ln = register_module("ln", std::make_shared<nn::LayerNorm>(4));
  }
  Tensor forward(const Tensor& x) { return ln->forward(x + attn->forward(x)); }
  std::shared_ptr<Attn> attn;
  std::shared_ptr<nn::LayerNorm> ln;
};

struct Net : nn::Module {
  explicit Net(int blocks_count = 2) {
    embed = register_module("embed", std::make_shared<nn::Embedding>(10, 4));
    blocks = register_module("blocks", std::make_shared<nn::Sequential>());
    for (int i = 0; i < blocks_count; ++i) blocks->push_back(std::make_shared<Block>());
    head = register_module("head", std::make_shared<nn::Linear>(4, 3, /*bias=*/false));
    scale = register_parameter("scale", ones({1}));
  }
  Tensor forward(const Tensor& idx) {
    return head->forward(blocks->forward(embed->forward(idx))) * scale;
  }
  std::shared_ptr<nn::Embedding> embed;
  std::shared_ptr<nn::Sequential> blocks;
  std::shared_ptr<nn::Linear> head;
  Tensor scale;
};

// Exposes the protected registration calls to test their errors.
struct Open : nn::Module {
  using nn::Module::register_buffer;
  using nn::Module::register_module;
  using nn::Module::register_parameter;
};

}  // namespace

TEST_CASE("nn: Module names parameters, buffers and submodules with dots, in order", "[nn]") {
  manual_seed(1);
  auto net = std::make_shared<Net>();
  const std::vector<std::string> want = {"scale",
                                         "embed.weight",
                                         "blocks.0.attn.w_q",
                                         "blocks.0.attn.w_k",
                                         "blocks.0.ln.weight",
                                         "blocks.0.ln.bias",
                                         "blocks.1.attn.w_q",
                                         "blocks.1.attn.w_k",
                                         "blocks.1.ln.weight",
                                         "blocks.1.ln.bias",
                                         "head.weight"};
  CHECK(names_of(net->named_parameters()) == want);
  CHECK(names_of(net->named_parameters(/*recurse=*/false)) == std::vector<std::string>{"scale"});
  CHECK(net->parameters().size() == want.size());
  CHECK(net->parameters(false).size() == 1);
  CHECK(names_of(net->named_buffers()) ==
        std::vector<std::string>{"blocks.0.attn.mask", "blocks.1.attn.mask"});
  CHECK(net->buffers().size() == 2);
  CHECK(net->named_buffers(false).empty());
  // A checkpoint holds parameters then buffers.
  auto all = names_of(net->named_tensors());
  CHECK(all.size() == want.size() + 2);
  CHECK(all.back() == "blocks.1.attn.mask");

  auto children = net->named_children();
  REQUIRE(children.size() == 3);
  CHECK(children[0].first == "embed");
  CHECK(children[1].first == "blocks");
  CHECK(children[2].second == net->head);
  CHECK(net->children().size() == 3);
  std::vector<std::string> modules;
  for (auto& [name, m] : net->named_modules()) modules.push_back(name);
  CHECK(modules == std::vector<std::string>{"embed", "blocks", "blocks.0", "blocks.0.attn",
                                            "blocks.0.ln", "blocks.1", "blocks.1.attn",
                                            "blocks.1.ln", "head"});

  // The handles are the layers' own: same TensorImpl, leaves that require grad.
  CHECK(net->parameter("blocks.1.attn.w_k").impl() == net->blocks->at<Block>(1)->attn->w_k.impl());
  CHECK(net->parameter("head.weight").impl() == net->head->weight.impl());
  CHECK(net->buffer("blocks.0.attn.mask").impl() == net->blocks->at<Block>(0)->attn->mask.impl());
  for (const Tensor& p : net->parameters()) {
    CHECK(p.requires_grad());
    CHECK(p.is_leaf());
  }
  for (const Tensor& b : net->buffers()) CHECK_FALSE(b.requires_grad());
  REQUIRE_THROWS_WITH(net->parameter("blocks.7.ln.weight"),
                      Catch::Contains("no parameter named 'blocks.7.ln.weight'"));
  REQUIRE_THROWS_WITH(net->buffer("scale"), Catch::Contains("no buffer named 'scale'"));

  // An undefined parameter (bias=false) is registered but not listed.
  nn::Linear no_bias(3, 2, false);
  CHECK(names_of(no_bias.named_parameters()) == std::vector<std::string>{"weight"});
  CHECK_FALSE(no_bias.bias.defined());
}

TEST_CASE("nn: Module registration errors", "[nn][errors]") {
  Open m;
  m.register_parameter("w", zeros({2}));
  REQUIRE_THROWS_WITH(
      m.register_parameter("w", zeros({2})),
      Catch::Contains("[register_parameter] 'w' is already registered as a parameter"));
  REQUIRE_THROWS_WITH(
      m.register_buffer("w", zeros({2})),
      Catch::Contains("[register_buffer] 'w' is already registered as a parameter"));
  REQUIRE_THROWS_WITH(
      m.register_module("w", std::make_shared<nn::Linear>(1, 1)),
      Catch::Contains("[register_module] 'w' is already registered as a parameter"));
  REQUIRE_THROWS_WITH(m.register_parameter("a.b", zeros({2})),
                      Catch::Contains("name 'a.b' must not contain a dot"));
  REQUIRE_THROWS_WITH(m.register_parameter("", zeros({2})),
                      Catch::Contains("[register_parameter] the name must not be empty"));
  REQUIRE_THROWS_WITH(m.register_parameter("idx", zeros({2}, kInt64)),
                      Catch::Contains("'idx' is int64 [2]: only floating-point parameters"));
  REQUIRE_THROWS_WITH(m.register_module("null", std::shared_ptr<nn::Linear>()),
                      Catch::Contains("[register_module] 'null' is a null module"));
  // Integer parameters are fine without grad; a tensor that came out of an op becomes a leaf.
  m.register_parameter("steps", zeros({2}, kInt64), /*requires_grad=*/false);
  Tensor src = ones({3}).requires_grad_();
  Tensor& p = m.register_parameter("derived", src * 2.0);
  CHECK(p.is_leaf());
  CHECK(p.requires_grad());
  CHECK(values(p) == std::vector<double>{2, 2, 2});
  Tensor& b = m.register_buffer("buf", src * 3.0);
  CHECK(b.is_leaf());
  CHECK_FALSE(b.requires_grad());
}

TEST_CASE("nn: train() and eval() recurse; Dropout follows them", "[nn]") {
  manual_seed(2);
  auto net = std::make_shared<nn::Sequential>(std::make_shared<nn::Linear>(8, 8),
                                              std::make_shared<nn::Dropout>(0.5));
  CHECK(net->is_training());
  net->eval();
  CHECK_FALSE(net->is_training());
  for (auto& [name, m] : net->named_modules()) CHECK_FALSE(m->is_training());
  Tensor x = randn({4, 8});
  Tensor y1 = net->forward(x), y2 = net->forward(x);
  CHECK(values(y1) == values(y2));  // eval: dropout is the identity
  net->train();
  for (auto& [name, m] : net->named_modules()) CHECK(m->is_training());

  // Training-mode dropout zeroes about p of the elements and scales the rest by 1 / (1 - p).
  nn::Dropout drop(0.25);
  Tensor big = ones({100000});
  std::vector<double> out = values(drop.forward(big));
  int64_t zeros_count = 0;
  for (double v : out) {
    if (v == 0) {
      ++zeros_count;
    } else {
      REQUIRE(v == Approx(1 / 0.75));
    }
  }
  CHECK(static_cast<double>(zeros_count) / out.size() == Approx(0.25).margin(0.01));
  drop.eval();
  CHECK(drop.forward(big).impl() == big.impl());
  REQUIRE_THROWS_WITH(nn::Dropout(1.5),
                      Catch::Contains("[Dropout] probability p must be in [0, 1]"));
}

TEST_CASE("nn: zero_grad zeroes existing grads in place (libtorch 1.13), or drops them", "[nn]") {
  manual_seed(3);
  auto net = std::make_shared<Net>(1);
  Tensor idx = tensor<int64_t>({1, 2, 3}, {3});
  net->forward(idx).sum().backward();
  Tensor g = net->head->weight.grad();
  REQUIRE(g.defined());
  CHECK(values(g) != std::vector<double>(g.numel(), 0.0));
  net->zero_grad();
  // Same gradient tensor, now all zeros.
  CHECK(net->head->weight.grad().impl() == g.impl());
  CHECK(values(g) == std::vector<double>(g.numel(), 0.0));
  for (const Tensor& p : net->parameters()) CHECK(p.grad().defined());
  net->zero_grad(/*set_to_none=*/true);
  for (const Tensor& p : net->parameters()) CHECK_FALSE(p.grad().defined());
  // zero_grad() leaves undefined gradients undefined.
  net->zero_grad();
  CHECK_FALSE(net->scale.grad().defined());
}

TEST_CASE("nn: Module::to converts parameters and buffers in place, keeping the handles", "[nn]") {
  manual_seed(4);
  auto net = std::make_shared<Net>(1);
  Tensor w = net->head->weight;
  std::vector<double> before = values(w);
  std::vector<Tensor> params = net->parameters();
  net->to(kFloat64);
  CHECK(w.dtype() == kFloat64);
  CHECK(values(w) == before);  // Float32 -> Float64 is exact
  for (size_t i = 0; i < params.size(); ++i) {
    CHECK(params[i].dtype() == kFloat64);
    CHECK(params[i].impl() == net->parameters()[i].impl());
    CHECK(params[i].requires_grad());
  }
  for (const Tensor& b : net->buffers()) CHECK(b.dtype() == kFloat64);
  Tensor y = net->forward(tensor<int64_t>({0, 9}, {2}));
  CHECK(y.dtype() == kFloat64);
  y.sum().backward();
  CHECK(net->head->weight.grad().dtype() == kFloat64);
}

TEST_CASE("nn: Linear forward matches a naive loop, with and without bias", "[nn][linear]") {
  manual_seed(5);
  for (Dtype dtype : {kFloat64, kFloat32}) {
    for (bool with_bias : {true, false}) {
      nn::Linear lin(5, 3, with_bias);
      lin.to(dtype);
      Tensor x = randn({2, 4, 5}, dtype);
      Tensor y = lin.forward(x);
      REQUIRE(y.shape() == Shape{2, 4, 3});
      std::vector<double> xv = values(x), w = values(lin.weight);
      std::vector<double> b = with_bias ? values(lin.bias) : std::vector<double>(3, 0.0);
      std::vector<double> want;
      for (int64_t r = 0; r < 8; ++r)
        for (int64_t o = 0; o < 3; ++o) {
          double acc = b[o];
          for (int64_t i = 0; i < 5; ++i) acc += xv[r * 5 + i] * w[o * 5 + i];
          want.push_back(acc);
        }
      require_close(values(y), want, dtype == kFloat64 ? 1e-12 : 1e-5);
      // 1-D input: one row.
      Tensor v = x.select(0, 1).select(0, 2);
      require_close(values(lin.forward(v)),
                    std::vector<double>(want.begin() + 6 * 3, want.begin() + 7 * 3),
                    dtype == kFloat64 ? 1e-12 : 1e-5);
    }
  }
  nn::Linear lin(5, 3);
  REQUIRE_THROWS_WITH(
      lin.forward(zeros({2, 4})),
      Catch::Contains("[Linear] input must be [*, in_features=5], got 4 features "
                      "in its last dim (input float32 [2, 4], weight float32 [3, 5])"));
  REQUIRE_THROWS_WITH(nn::Linear(-1, 3), Catch::Contains("[Linear] in_features and out_features"));
}

TEST_CASE("nn: default initialisations follow PyTorch", "[nn][init]") {
  manual_seed(6);
  // Linear: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  nn::Linear lin(64, 512);
  const double bound = 1.0 / 8.0;
  for (const Tensor& t : {lin.weight, lin.bias}) {
    std::vector<double> v = values(t);
    double lo = 1, hi = -1, sum = 0, sq = 0;
    for (double x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      sum += x;
      sq += x * x;
    }
    CHECK(lo >= -bound);
    CHECK(hi <= bound);
    if (v.size() > 1000) {
      CHECK(lo < -0.99 * bound);
      CHECK(hi > 0.99 * bound);
      CHECK(sum / v.size() == Approx(0).margin(0.003));
      CHECK(std::sqrt(sq / v.size()) == Approx(bound / std::sqrt(3.0)).epsilon(0.02));
    }
  }
  // Embedding: N(0, 1). LayerNorm: ones and zeros.
  nn::Embedding emb(1000, 32);
  std::vector<double> e = values(emb.weight);
  double mean = 0, var = 0;
  for (double x : e) mean += x;
  mean /= e.size();
  for (double x : e) var += (x - mean) * (x - mean);
  CHECK(mean == Approx(0).margin(0.02));
  CHECK(std::sqrt(var / e.size()) == Approx(1.0).epsilon(0.02));
  nn::LayerNorm ln(Shape{3, 4});
  CHECK(values(ln.weight) == std::vector<double>(12, 1.0));
  CHECK(values(ln.bias) == std::vector<double>(12, 0.0));
  nn::LayerNorm plain(4, 1e-5, /*elementwise_affine=*/false);
  CHECK(plain.parameters().empty());

  // The same seed gives the same initialisation.
  manual_seed(42);
  nn::Linear a(7, 3);
  manual_seed(42);
  nn::Linear b(7, 3);
  CHECK(values(a.weight) == values(b.weight));
  CHECK(values(a.bias) == values(b.bias));
}

TEST_CASE("nn: init functions fill in place without recording", "[nn][init]") {
  manual_seed(7);
  Tensor w = zeros({200, 300}).requires_grad_();
  Tensor same = nn::init::xavier_uniform_(w);
  CHECK(same.impl() == w.impl());
  CHECK(w.is_leaf());
  const double xb = std::sqrt(6.0 / 500.0);
  std::vector<double> v = values(w);
  CHECK(*std::min_element(v.begin(), v.end()) >= -xb);
  CHECK(*std::max_element(v.begin(), v.end()) <= xb);
  CHECK(*std::max_element(v.begin(), v.end()) > 0.99 * xb);

  nn::init::kaiming_uniform_(w, 0.0, nn::init::FanMode::FanIn, nn::init::Nonlinearity::ReLU);
  v = values(w);
  const double kb = std::sqrt(2.0) * std::sqrt(3.0 / 300.0);
  CHECK(*std::max_element(v.begin(), v.end()) <= kb);
  CHECK(*std::max_element(v.begin(), v.end()) > 0.99 * kb);

  nn::init::normal_(w, 2.0, 0.5);
  v = values(w);
  double mean = 0;
  for (double x : v) mean += x;
  CHECK(mean / v.size() == Approx(2.0).epsilon(0.01));

  nn::init::ones_(w);
  CHECK(values(w) == std::vector<double>(v.size(), 1.0));
  nn::init::zeros_(w);
  CHECK(values(w) == std::vector<double>(v.size(), 0.0));
  // Non-contiguous targets are filled through their strides.
  Tensor m = zeros({3, 4});
  nn::init::constant_(m.t(), 5.0);
  CHECK(values(m) == std::vector<double>(12, 5.0));

  CHECK(nn::init::calculate_gain(nn::init::Nonlinearity::LeakyReLU, std::sqrt(5.0)) ==
        Approx(std::sqrt(2.0 / 6.0)));
  CHECK(nn::init::calculate_fan_in_and_fan_out(zeros({4, 3, 5})) ==
        std::pair<int64_t, int64_t>{15, 20});
  REQUIRE_THROWS_WITH(nn::init::xavier_uniform_(zeros({5})),
                      Catch::Contains("[xavier_uniform_] fan in and fan out need at least 2 "
                                      "dimensions, got shape [5]"));
  REQUIRE_THROWS_WITH(nn::init::normal_(zeros({2}, kInt32)),
                      Catch::Contains("[normal_] needs a floating-point tensor, got int32 [2]"));
}

TEST_CASE("nn: LayerNorm forward matches a naive loop", "[nn][layer_norm]") {
  manual_seed(8);
  nn::LayerNorm ln(6);
  ln.to(kFloat64);
  nn::init::normal_(ln.weight);
  nn::init::normal_(ln.bias);
  Tensor x = randn({2, 3, 6}, kFloat64) * 3.0 + 1.0;
  std::vector<double> xv = values(x), w = values(ln.weight), b = values(ln.bias), want;
  for (int64_t r = 0; r < 6; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < 6; ++i) mean += xv[r * 6 + i] / 6;
    for (int64_t i = 0; i < 6; ++i) var += (xv[r * 6 + i] - mean) * (xv[r * 6 + i] - mean) / 6;
    for (int64_t i = 0; i < 6; ++i)
      want.push_back((xv[r * 6 + i] - mean) / std::sqrt(var + 1e-5) * w[i] + b[i]);
  }
  require_close(values(ln.forward(x)), want, 1e-12);
}

TEST_CASE("nn: Embedding picks rows; Sequential chains modules and functions", "[nn]") {
  manual_seed(9);
  nn::Embedding emb(6, 3);
  Tensor idx = tensor<int64_t>({5, 0, 2, 2, 1, 5}, {2, 3});
  Tensor y = emb.forward(idx);
  REQUIRE(y.shape() == Shape{2, 3, 3});
  std::vector<double> w = values(emb.weight), got = values(y);
  const std::vector<int64_t> rows = {5, 0, 2, 2, 1, 5};
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t c = 0; c < 3; ++c) REQUIRE(got[r * 3 + c] == w[rows[r] * 3 + c]);
  CHECK(emb.forward(tensor<int32_t>({4}, {1})).shape() == Shape{1, 3});
  REQUIRE_THROWS_WITH(emb.forward(tensor<int64_t>({6}, {1})),
                      Catch::Contains("[Embedding] index 6 is out of range for num_embeddings=6"));
  REQUIRE_THROWS_WITH(
      emb.forward(zeros({2})),
      Catch::Contains("[Embedding] indices must be Int64 or Int32, got float32 [2]"));

  auto l1 = std::make_shared<nn::Linear>(3, 5);
  auto l2 = std::make_shared<nn::Linear>(5, 2);
  nn::Sequential seq(l1, gg::relu, l2, [](const Tensor& t) { return t * 2.0; });
  CHECK(seq.size() == 4);
  CHECK(names_of(seq.named_parameters()) ==
        std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"});
  Tensor x = randn({4, 3});
  CHECK(values(seq.forward(x)) == values(l2->forward(gg::relu(l1->forward(x))) * 2.0));
  CHECK(seq.at<nn::Linear>(2) == l2);
  REQUIRE_THROWS_WITH(seq.at<nn::Linear>(1),
                      Catch::Contains("module 1 is not of the requested type"));
  REQUIRE_THROWS_WITH(seq[4],
                      Catch::Contains("[Sequential] index 4 is out of range for 4 modules"));
}

TEST_CASE("nn: layer gradients match central differences in Float64", "[nn][gradcheck]") {
  manual_seed(10);
  SECTION("Linear") {
    nn::Linear lin(4, 3);
    lin.to(kFloat64);
    Tensor x = randn({2, 5, 4}, kFloat64).requires_grad_();
    check_gradients([&] { return lin.forward(x); }, {x, lin.weight, lin.bias});
  }
  SECTION("LayerNorm") {
    nn::LayerNorm ln(Shape{2, 3});
    ln.to(kFloat64);
    nn::init::normal_(ln.weight, 1.0, 0.5);
    nn::init::normal_(ln.bias);
    Tensor x = randn({4, 2, 3}, kFloat64).requires_grad_();
    check_gradients([&] { return ln.forward(x); }, {x, ln.weight, ln.bias});
  }
  SECTION("Embedding, with repeated indices") {
    nn::Embedding emb(5, 3);
    emb.to(kFloat64);
    Tensor idx = tensor<int64_t>({0, 3, 3, 1, 3, 0}, {3, 2});
    check_gradients([&] { return emb.forward(idx); }, {emb.weight});
    // Rows that were never picked get a zero gradient; row 3 gets three contributions.
    emb.weight.set_grad(Tensor());
    emb.forward(idx).sum().backward();
    std::vector<double> g = values(emb.weight.grad());
    CHECK(std::vector<double>(g.begin() + 6, g.begin() + 9) == std::vector<double>(3, 0.0));
    CHECK(std::vector<double>(g.begin() + 9, g.begin() + 12) == std::vector<double>(3, 3.0));
  }
  SECTION("a whole Net: embedding, blocks, head") {
    auto net = std::make_shared<Net>(2);
    net->to(kFloat64);
    Tensor idx = tensor<int64_t>({1, 4, 9}, {3});
    check_gradients([&] { return net->forward(idx); }, net->parameters(), 1e-6, 1e-6, 1e-4);
  }
}

TEST_CASE("nn: layer cases pass the shared gradcheck registry", "[nn][gradcheck]") {
  gradcheck::Registry registry;
  gradcheck::register_nn_module_cases(registry);
  auto cases = registry.list();
  REQUIRE(cases.size() >= 5);  // the grouped layers add theirs
  for (const gradcheck::CheckCase* c : cases) {
    for (Dtype dtype : {kFloat64, kFloat32}) {
      if (dtype == kFloat32 && !c->linear) continue;
      gradcheck::CheckOptions options;
      options.dtype = dtype;
      gradcheck::CaseReport report = gradcheck::run_case(*c, options);
      INFO(gradcheck::format_report(report, true));
      CHECK(report.passed);
    }
  }
}
