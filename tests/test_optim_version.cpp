// optimizer.step() writes each updated parameter in place, so it bumps the parameter's version
// counter as an in-place op does: a graph that saved the parameter before step() refuses to
// backward afterwards (PyTorch raises there too), and the usual zero_grad / forward / backward /
// step loop, which builds a new graph every step, is unaffected.
#include <catch2/catch.hpp>
#include <functional>
#include <memory>

#include "groupgrad.hpp"
#include "tests/test_support.hpp"

using namespace gg;
using gg::test::outcome;
using gg::test::values;

namespace {

using MakeOptimizer = std::function<std::unique_ptr<optim::Optimizer>(std::vector<Tensor>)>;

struct Case {
  const char* name;
  MakeOptimizer make;
};

std::vector<Case> cases() {
  return {
      {"SGD",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::SGD>(std::move(p), optim::SGDOptions(0.1));
       }},
      {"SGD with momentum",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::SGD>(std::move(p), optim::SGDOptions(0.1).momentum(0.9));
       }},
      {"Adam",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::Adam>(std::move(p), optim::AdamOptions(0.1));
       }},
      {"AdamW",
       [](std::vector<Tensor> p) {
         return std::make_unique<optim::AdamW>(std::move(p), optim::AdamWOptions(0.1));
       }},
  };
}

}  // namespace

TEST_CASE("optimizer step bumps the version of every parameter it updates",
          "[optim][optim_version]") {
  for (const Case& c : cases()) {
    for (const bool contiguous : {true, false}) {
      CAPTURE(c.name, contiguous);
      // A non-contiguous leaf takes the copy-and-write-back path of the update.
      Tensor w = contiguous ? tensor<double>({0.5, -1.0, 2.0, 3.0, -0.25, 1.5}, {2, 3})
                            : tensor<double>({0.5, -1.0, 2.0, 3.0, -0.25, 1.5}, {3, 2}).t();
      w.requires_grad_();
      REQUIRE(w.is_contiguous() == contiguous);
      Tensor untouched = tensor<double>({1.0, 2.0}).requires_grad_();  // no grad: not updated
      auto opt = c.make({w, untouched});
      Tensor x = tensor<double>({1.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3});
      Tensor loss = (w * w * x).sum();  // MulBackward saves w (twice)
      Tensor other = (untouched * untouched).sum();
      loss.backward(ones_like(loss), /*retain_graph=*/true);
      const std::vector<double> grad_before = values(w.grad());
      opt->step();
      CHECK_THAT(outcome([&] { loss.backward(); }),
                 Catch::Contains("[backward]") && Catch::Contains("MulBackward") &&
                     Catch::Contains("modified by an in-place operation") &&
                     Catch::Contains("is at version 1; expected version 0"));
      CHECK(values(w.grad()) == grad_before);  // the refused backward added nothing
      // A parameter without a grad is skipped by step(), so its saved graph stays usable.
      CHECK_NOTHROW(other.backward());
      CHECK(values(untouched.grad()) == std::vector<double>{2.0, 4.0});
    }
  }
}

TEST_CASE("the zero_grad / forward / backward / step loop is unaffected by the version bump",
          "[optim][optim_version]") {
  // loss = sum(w * w) has gradient 2w, so plain SGD with lr 0.1 scales w by 0.8 every step.
  Tensor w = tensor<double>({1.0, -2.0, 4.0}).requires_grad_();
  optim::SGD opt({w}, optim::SGDOptions(0.1));
  for (int step = 0; step < 3; ++step) {
    opt.zero_grad();
    Tensor loss = (w * w).sum();
    REQUIRE_NOTHROW(loss.backward());
    opt.step();
  }
  const std::vector<double> got = values(w);
  const std::vector<double> want{0.512, -1.024, 2.048};
  for (size_t i = 0; i < want.size(); ++i) CHECK(got[i] == Approx(want[i]).epsilon(1e-12));

  // Adam too, against PyTorch's values for the same loop (torch.optim.Adam, foreach=False).
  Tensor v = tensor<double>({1.0, -2.0, 4.0}).requires_grad_();
  optim::Adam adam({v}, optim::AdamOptions(0.1));
  for (int step = 0; step < 3; ++step) {
    adam.zero_grad(/*set_to_none=*/true);
    Tensor loss = (v * v).sum();
    REQUIRE_NOTHROW(loss.backward());
    adam.step();
  }
  const std::vector<double> torch_v{0.7015862729460302, -1.700623392046465, 3.7002738443431915};
  const std::vector<double> got_v = values(v);
  for (size_t i = 0; i < torch_v.size(); ++i) CHECK(got_v[i] == Approx(torch_v[i]).epsilon(1e-12));
}
