// The tape and the backward engine: accumulation, retain_graph, grad mode, detach, graph shapes
// (diamonds, multi-output nodes), the errors, tape order and memory (no growth, nodes freed).
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <thread>

#include "autograd/node.hpp"
#include "core/copy.hpp"
#include "core/random.hpp"
#include "core/storage.hpp"
#include "groupgrad.hpp"

using namespace gg;

namespace {
std::vector<double> vec(const Tensor& t) { return t.to(kFloat64).to_vector<double>(); }

Tensor leaf(std::vector<double> v, Shape shape) {
  Tensor t = tensor<double>(v, shape);
  t.requires_grad_();
  return t;
}

void require_close(const std::vector<double>& got, const std::vector<double>& want,
                   double tol = 1e-12) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    CHECK(std::abs(got[i] - want[i]) <= tol * (1 + std::abs(want[i])));
  }
}
}  // namespace

TEST_CASE("engine: gradients accumulate across backward calls until cleared", "[autograd]") {
  Tensor x = leaf({1, -2, 3}, {3});
  CHECK_FALSE(x.grad().defined());
  (x * x).sum().backward();
  require_close(vec(x.grad()), {2, -4, 6});
  (x * x).sum().backward();
  require_close(vec(x.grad()), {4, -8, 12});
  (x * 3.0).sum().backward();
  require_close(vec(x.grad()), {7, -5, 15});
  x.set_grad({});
  CHECK_FALSE(x.grad().defined());
  (x * x).sum().backward();
  require_close(vec(x.grad()), {2, -4, 6});
  // set_grad checks what it is given.
  CHECK_THROWS_WITH(x.set_grad(zeros({2}, kFloat64)), Catch::Contains("does not match"));
  x.set_grad(zeros({3}, kFloat64));
  (x * x).sum().backward();
  require_close(vec(x.grad()), {2, -4, 6});
}

TEST_CASE("engine: retain_graph allows a second backward; without it a clear error", "[autograd]") {
  Tensor x = leaf({0.5, -1}, {2});
  Tensor y = (x.exp() * x).sum();  // d/dx = e^x (1 + x)
  y.backward(ones({}, kFloat64), /*retain_graph=*/true);
  std::vector<double> once = {std::exp(0.5) * 1.5, 0.0};
  require_close(vec(x.grad()), once);
  y.backward();  // the graph is still there; this one frees it
  require_close(vec(x.grad()), {2 * once[0], 0.0});
  CHECK_THROWS_WITH(y.backward(),
                    Catch::Contains("a second time") && Catch::Contains("retain_graph"));

  // The same through a graph built without retain_graph.
  Tensor z = (x * x).sum();
  z.backward();
  CHECK_THROWS_WITH(z.backward(), Catch::Contains("a second time"));
}

TEST_CASE("engine: NoGradGuard nests and is thread-local", "[autograd]") {
  Tensor x = leaf({1, 2}, {2});
  CHECK(GradMode::is_enabled());
  {
    NoGradGuard outer;
    CHECK_FALSE(GradMode::is_enabled());
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.grad_fn() == nullptr);
    {
      NoGradGuard inner;
      CHECK_FALSE(GradMode::is_enabled());
    }
    CHECK_FALSE(GradMode::is_enabled());  // the inner guard restored "off", not "on"

    // Another thread has its own grad mode, on by default, and records.
    bool other_enabled = false, other_recorded = false;
    std::thread t([&] {
      other_enabled = GradMode::is_enabled();
      Tensor z = x * 2.0;
      other_recorded = z.requires_grad() && z.grad_fn() != nullptr;
    });
    t.join();
    CHECK(other_enabled);
    CHECK(other_recorded);
  }
  CHECK(GradMode::is_enabled());
  Tensor y = x * 2.0;
  CHECK(y.grad_fn() != nullptr);

  // A guard in another thread does not switch recording off here.
  std::thread t([] {
    NoGradGuard g;
    CHECK_FALSE(GradMode::is_enabled());
  });
  t.join();
  CHECK(GradMode::is_enabled());
}

TEST_CASE("engine: detach cuts the graph and shares storage", "[autograd]") {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.grad_fn() == nullptr);
  CHECK(d.raw_data() == x.raw_data());
  Tensor y = ((x * 2.0).detach() * x + x).sum();  // d/dx = 2x (held constant) + 1
  y.backward();
  require_close(vec(x.grad()), {3, 5, 7});
  // Detaching a non-leaf stops the gradient there.
  Tensor w = leaf({4}, {1});
  Tensor h = w * w;
  (h.detach() * w).sum().backward();
  require_close(vec(w.grad()), {16});
}

TEST_CASE("engine: a diamond graph sums the gradients of both paths", "[autograd]") {
  Tensor x = leaf({0.3, -0.7}, {2});
  Tensor a = x * 2.0;  // feeds two ops
  Tensor b = a.exp();
  Tensor c = a * 3.0;
  (b + c).sum().backward();
  // d/dx = 2 (e^{2x} + 3)
  require_close(vec(x.grad()), {2 * (std::exp(0.6) + 3), 2 * (std::exp(-1.4) + 3)});

  // A leaf feeding the same op twice, and two ops.
  Tensor y = leaf({1.5}, {1});
  ((y * y) + y.tanh() + y).sum().backward();
  double t = std::tanh(1.5);
  require_close(vec(y.grad()), {2 * 1.5 + (1 - t * t) + 1});
}

TEST_CASE("engine: multi-output nodes and unused outputs", "[autograd]") {
  Tensor x = leaf({1, 2, 3}, {3});
  for (bool accepts_undefined : {true, false}) {
    int calls = 0;
    bool second_defined = true;
    std::vector<Tensor> outs;
    {
      NoGradGuard no_grad;
      outs = {x * 2.0, x * 3.0};
    }
    autograd::record(
        "TwinBackward", {x}, outs,
        [&](const std::vector<Tensor>& g, const std::vector<bool>& needs) {
          ++calls;
          REQUIRE(g.size() == 2);
          REQUIRE(needs == std::vector<bool>{true});
          second_defined = g[1].defined();
          Tensor grad = g[0] * 2.0;
          if (g[1].defined()) grad = grad + g[1] * 3.0;
          return std::vector<Tensor>{grad};
        },
        accepts_undefined);
    REQUIRE(outs[0].grad_fn() == outs[1].grad_fn());
    CHECK(outs[1].impl()->output_nr == 1);
    x.set_grad({});
    outs[0].sum().backward();  // output 1 is unused
    CHECK(calls == 1);
    // Nodes that accept undefined gradients get them; others get zeros.
    CHECK(second_defined == !accepts_undefined);
    require_close(vec(x.grad()), {2, 2, 2});
  }

  // Both outputs used: the node runs once with both gradients.
  int calls = 0;
  std::vector<Tensor> outs;
  {
    NoGradGuard no_grad;
    outs = {x * 2.0, x * 3.0};
  }
  autograd::record("TwinBackward", {x}, outs,
                   [&](const std::vector<Tensor>& g, const std::vector<bool>&) {
                     ++calls;
                     return std::vector<Tensor>{g[0] * 2.0 + g[1] * 3.0};
                   });
  x.set_grad({});
  (outs[0].sum() + outs[1].sum() * 10.0).backward();
  CHECK(calls == 1);
  require_close(vec(x.grad()), {32, 32, 32});

  // Pieces of one input (narrow views): an unused piece contributes nothing.
  std::vector<Tensor> pieces{x.narrow(0, 0, 1), x.narrow(0, 1, 2)};
  x.set_grad({});
  (pieces[1] * pieces[1]).sum().backward();
  require_close(vec(x.grad()), {0, 4, 6});
}

TEST_CASE("engine: backward errors", "[autograd]") {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor c = tensor<double>({1, 2}, {2});
  CHECK_THROWS_WITH(c.sum().backward(), Catch::Contains("does not require grad"));
  CHECK_THROWS_WITH((x * 2.0).backward(), Catch::Contains("one-element") && Catch::Contains("[3]"));
  Tensor y = x * 2.0;
  CHECK_THROWS_WITH(y.backward(ones({2}, kFloat64)), Catch::Contains("must match") &&
                                                         Catch::Contains("[2]") &&
                                                         Catch::Contains("[3]"));
  CHECK_THROWS_WITH(y.backward(ones({3}, kFloat32)),
                    Catch::Contains("must match") && Catch::Contains("float32"));
  CHECK_THROWS_WITH(y.backward(Tensor()), Catch::Contains("undefined"));
  y.backward(tensor<double>({1, 1, 2}, {3}));
  require_close(vec(x.grad()), {2, 2, 4});

  Tensor i = tensor<int64_t>({1, 2}, {2});
  CHECK_THROWS_WITH(i.requires_grad_(),
                    Catch::Contains("only floating-point") && Catch::Contains("int64"));
  CHECK_FALSE(i.requires_grad());
  CHECK_THROWS_WITH(y.requires_grad_(false), Catch::Contains("leaf"));

  // A backward returning a gradient of the wrong shape is named.
  Tensor out;
  {
    NoGradGuard no_grad;
    out = x * 1.0;
  }
  out = autograd::record("BadShapeBackward", {x}, out,
                         [](const std::vector<Tensor>&, const std::vector<bool>&) {
                           return std::vector<Tensor>{ones({2}, kFloat64)};
                         });
  CHECK_THROWS_WITH(out.sum().backward(),
                    Catch::Contains("BadShapeBackward") && Catch::Contains("[2]"));
  CHECK(GradMode::is_enabled());  // restored although backward threw
}

TEST_CASE("engine: leaf gradients never alias user tensors", "[autograd]") {
  Tensor a = leaf({1, 2}, {2});
  Tensor b = leaf({3, 4}, {2});
  (a + b).sum().backward();  // AddBackward hands the same tensor to both inputs
  REQUIRE(a.grad().defined());
  CHECK(a.grad().raw_data() != b.grad().raw_data());

  // The grad_output of a backward on a leaf or through a view is copied, not kept.
  Tensor g = tensor<double>({5, 6}, {2});
  Tensor x = leaf({0, 0}, {2});
  x.backward(g);
  CHECK(x.grad().raw_data() != g.raw_data());
  Tensor v = leaf({0, 0}, {2});
  v.reshape({1, 2}).backward(g.reshape({1, 2}));
  CHECK(v.grad().raw_data() != g.raw_data());
  std::vector<double> before = vec(v.grad());
  {
    NoGradGuard no_grad;
    copy_(g, tensor<double>({-1, -1}, {2}));
  }
  CHECK(vec(v.grad()) == before);
  CHECK(vec(x.grad()) == std::vector<double>{5, 6});

  // A user's handle on grad() keeps its values when a later backward accumulates.
  Tensor held = a.grad();
  (a * 10.0).sum().backward();
  CHECK(vec(held) == std::vector<double>{1, 1});
  CHECK(vec(a.grad()) == std::vector<double>{11, 11});
}

TEST_CASE("engine: a grad that only its leaf holds is accumulated in place", "[autograd]") {
  Tensor x = leaf({1, -2, 3}, {3});
  (x * x).sum().backward();
  const void* first = x.grad().raw_data();
  (x * 3.0).sum().backward();
  CHECK(x.grad().raw_data() == first);  // no new gradient tensor per backward
  require_close(vec(x.grad()), {5, -1, 9});
  // A gradient with stride 0 (the sum's, broadcast back) is added in place too.
  x.sum().backward();
  CHECK(x.grad().raw_data() == first);
  require_close(vec(x.grad()), {6, 0, 10});
  // A view of the grad keeps it from being written.
  Tensor view = x.grad().reshape({1, 3});
  x.sum().backward();
  CHECK(x.grad().raw_data() != first);
  require_close(vec(view), {6, 0, 10});
  require_close(vec(x.grad()), {7, 1, 11});

  // In place or not, the sum is the one the add op computes, rounding included: small grads by
  // the loop, big ones by oneDNN's add, strided ones (a transposed gradient) by either.
  manual_seed(3);
  for (Dtype dtype : {kBFloat16, kFloat32, kFloat16, kFloat64}) {
    for (int64_t n : {10, 3000}) {
      INFO(dtype_name(dtype) << " [" << n << ", 2]");
      Tensor b = randn({n, 2}, dtype).requires_grad_();
      Tensor g1 = randn({n, 2}, dtype), g2 = randn({n, 2}, dtype), g3 = randn({2, n}, dtype).t();
      b.backward(g1);
      const void* b_first = b.grad().raw_data();
      b.backward(g2);
      b.backward(g3);
      CHECK(b.grad().raw_data() == b_first);
      CHECK(vec(b.grad()) == vec(g1 + g2 + g3));
    }
  }
}

TEST_CASE("engine: nodes are numbered in tape order and run in reverse", "[autograd]") {
  Tensor x = leaf({1, 2}, {2});
  Tensor y1 = x * 2.0;
  Tensor y2 = y1 + 1.0;
  Tensor y3 = y2.exp();
  REQUIRE(y1.grad_fn());
  CHECK(y2.grad_fn()->sequence_nr() > y1.grad_fn()->sequence_nr());
  CHECK(y3.grad_fn()->sequence_nr() > y2.grad_fn()->sequence_nr());
  CHECK(y1.grad_fn()->name() == "MulBackward");
  CHECK(y3.grad_fn()->name() == "ExpBackward");

  // Record a diamond of logging nodes: a -> (b, c) -> d. a must run after both b and c.
  std::vector<std::string> log;
  auto logged = [&](const char* name, const std::vector<Tensor>& inputs) {
    Tensor out;
    {
      NoGradGuard no_grad;
      out = inputs[0] * 1.0;
      for (size_t i = 1; i < inputs.size(); ++i) out = out + inputs[i];
    }
    size_t n = inputs.size();
    return autograd::record(
        name, inputs, out, [&log, name, n](const std::vector<Tensor>& g, const std::vector<bool>&) {
          log.push_back(name);
          return std::vector<Tensor>(n, g[0]);
        });
  };
  Tensor a = logged("a", {x});
  Tensor c = logged("c", {a});  // made before b: reverse order must still respect dependencies
  Tensor b = logged("b", {a});
  Tensor d = logged("d", {b, c});
  x.set_grad({});
  d.sum().backward();
  CHECK(log == std::vector<std::string>{"d", "b", "c", "a"});
  require_close(vec(x.grad()), {2, 2});
}

TEST_CASE("engine: saved tensors and nodes are freed; 1000 steps do not grow memory",
          "[autograd][memory]") {
  // A node lives as long as some output refers to it.
  std::weak_ptr<autograd::Node> weak;
  Tensor x = leaf({1, 2, 3}, {3});
  {
    Tensor y = x.exp();
    weak = y.grad_fn();
    CHECK_FALSE(weak.expired());
  }
  CHECK(weak.expired());

  // backward frees what the graph saved, even while the output handle lives on.
  std::weak_ptr<autograd::Node> exp_node;
  int64_t before = Storage::live_count();
  Tensor loss;
  {
    Tensor e = (x * 2.0).exp();  // ExpBackward saves its output
    exp_node = e.grad_fn();
    loss = e.sum();
  }
  int64_t with_graph = Storage::live_count();
  CHECK(with_graph > before + 1);
  loss.backward();
  CHECK(Storage::live_count() < with_graph);
  CHECK(exp_node.lock()->released());
  loss = Tensor();
  CHECK(exp_node.expired());
  x.set_grad({});
  CHECK(Storage::live_count() == before);

  // A leaf is not kept alive by the graph built from it.
  std::weak_ptr<TensorImpl> weak_leaf;
  Tensor out;
  {
    Tensor w = leaf({1, 2}, {2});
    weak_leaf = w.impl();
    out = (w * w).sum();
  }
  CHECK(weak_leaf.expired());
  CHECK_NOTHROW(out.backward());  // the gradient simply has nowhere to go
  out = Tensor();

  // 1,000 training steps of a small MLP: live storages and bytes stay flat after warm-up.
  manual_seed(7);
  Tensor in = randn({16, 4}, kFloat32);
  Tensor target = randn({16, 1}, kFloat32);
  Tensor w1 = (randn({4, 8}, kFloat32) * 0.5).detach().requires_grad_();
  Tensor b1 = zeros({8}, kFloat32).requires_grad_();
  Tensor w2 = (randn({8, 1}, kFloat32) * 0.5).detach().requires_grad_();
  std::vector<Tensor*> params{&w1, &b1, &w2};
  auto step = [&] {
    Tensor h = tanh(matmul(in, w1) + b1);
    Tensor diff = matmul(h, w2) - target;
    Tensor l = (diff * diff).sum() / 16.0;
    l.backward();
    NoGradGuard no_grad;
    for (Tensor* p : params) {
      Tensor updated = (*p - p->grad() * 0.05).detach();
      *p = updated.requires_grad_();
    }
    return l.item<float>();
  };
  float first = step();
  for (int i = 0; i < 9; ++i) step();
  const int64_t count = Storage::live_count(), bytes = Storage::live_bytes();
  float last = first;
  for (int i = 0; i < 990; ++i) {
    last = step();
    if (i % 100 == 0) {
      INFO("step " << i + 10);
      REQUIRE(Storage::live_count() == count);
      REQUIRE(Storage::live_bytes() == bytes);
    }
  }
  CHECK(Storage::live_count() == count);
  CHECK(Storage::live_bytes() == bytes);
  CHECK(last < first);  // and it trains

  // The same with gradients accumulated and zeroed in place of re-made leaves.
  auto step_keep = [&] {
    for (Tensor* p : params) p->set_grad({});
    Tensor l = tanh(matmul(in, w1) + b1).matmul(w2).sum();
    l.backward();
  };
  step_keep();
  const int64_t count2 = Storage::live_count(), bytes2 = Storage::live_bytes();
  for (int i = 0; i < 1000; ++i) step_keep();
  CHECK(Storage::live_count() == count2);
  CHECK(Storage::live_bytes() == bytes2);
}

// Issue 13 item 5: a chain of 300,000 `y = y + 1.0` overflowed the stack when its graph was freed
// (each Node's destructor destroyed the next through next_edges_). Freed iteratively now (PyTorch's
// deleteNode), with and without a backward first; the ASan build runs this too.
TEST_CASE("engine: a chain of 1,000,000 ops is freed without deep recursion", "[autograd]") {
  constexpr int kOps = 1'000'000;
  const int64_t live_before = Storage::live_count();
  for (const bool run_backward : {false, true}) {
    INFO("backward first: " << run_backward);
    Tensor x = scalar_tensor(0.0).requires_grad_();
    Tensor y = x;
    for (int i = 0; i < kOps; ++i) y = y + 1.0;
    CHECK(y.item<float>() == static_cast<float>(kOps));
    if (run_backward) {
      y.backward();
      CHECK(x.grad().item<float>() == 1.0f);
    }
    y = Tensor();  // the last handle on the chain: frees all of it here
    x = Tensor();
  }
  CHECK(Storage::live_count() == live_before);
}
