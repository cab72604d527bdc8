// The examples of docs/training.md ("Autograd, ops and modules in short"): each is a file of
// tests/snippets/ that the page shows verbatim (ctest readme.snippets keeps them equal), compiled
// and run here and checked against independent values (hand-derived, PyTorch's, or finite
// differences).
#include <catch2/catch.hpp>
#include <cmath>
#include <string>
#include <vector>

#include "tests/snippets/gradient_penalty.hpp"
#include "tests/snippets/hooks_retain_grad.hpp"
#include "tests/snippets/inference_threads.hpp"
#include "tests/snippets/inplace_version.hpp"
#include "tests/snippets/module_clone_print.hpp"
#include "tests/snippets/ops_and_losses.hpp"
#include "tests/test_support.hpp"

using gg::test::values;

TEST_CASE("doc snippet: in-place ops and the version counter", "[doc_snippets]") {
  CHECK(update_then_forward() == 18.0);
  const std::string message = modify_saved_tensor();
  CHECK_THAT(message, Catch::Contains("[backward]") && Catch::Contains("ExpBackward") &&
                          Catch::Contains("modified by an in-place operation") &&
                          Catch::Contains("is at version 1; expected version 0"));
}

TEST_CASE("doc snippet: hooks and retain_grad", "[doc_snippets]") {
  const HookResult r = hooks_and_retain_grad();
  CHECK(r.hidden_grad == std::vector<double>{4, -8, 12});
  CHECK(r.x_grad == std::vector<double>{5, -5, 5});
  CHECK(r.seen == 8.0);
}

TEST_CASE("doc snippet: a gradient penalty through autograd::grad(create_graph)",
          "[doc_snippets]") {
  gg::manual_seed(3);
  gg::nn::Sequential critic(std::make_shared<gg::nn::Linear>(3, 5), gg::tanh,
                            std::make_shared<gg::nn::Linear>(5, 1));
  critic.to(gg::kFloat64);
  const gg::Tensor x = gg::randn({4, 3}, gg::kFloat64);
  gg::Tensor penalty = gradient_penalty(critic, x);
  penalty.backward();
  // Every parameter's gradient against central differences of the penalty itself. The last
  // bias does not reach d critic / dx: its grad stays undefined (None in PyTorch), i.e. 0.
  int undefined = 0;
  for (const gg::Tensor& p : critic.parameters()) {
    undefined += p.grad().defined() ? 0 : 1;
    const std::vector<double> analytic =
        p.grad().defined() ? values(p.grad()) : std::vector<double>(p.numel(), 0.0);
    gg::Tensor flat = p.detach().reshape({-1});
    for (int64_t i = 0; i < flat.numel(); ++i) {
      const double eps = 1e-6;
      auto at = [&](double delta) {
        {
          gg::NoGradGuard no_grad;
          flat.narrow(0, i, 1).add_(delta);
        }
        const double v = gradient_penalty(critic, x).item<double>();
        {
          gg::NoGradGuard no_grad;
          flat.narrow(0, i, 1).sub_(delta);
        }
        return v;
      };
      const double numeric = (at(eps) - at(-eps)) / (2 * eps);
      CHECK(analytic[static_cast<size_t>(i)] == Approx(numeric).margin(1e-6).epsilon(1e-5));
    }
  }
  CHECK(undefined == 1);
}

TEST_CASE("doc snippet: InferenceMode and set_num_threads", "[doc_snippets]") {
  const int before = gg::get_num_threads();
  CHECK(serve_on_two_threads());
  CHECK(gg::get_num_threads() == before);
}

TEST_CASE("doc snippet: topk, gather, where, huber_loss, binary_cross_entropy_with_logits",
          "[doc_snippets]") {
  const OpsTour r = ops_and_losses();
  // PyTorch 2.15's values for the same calls.
  CHECK(r.top2_accuracy == 0.5);
  CHECK(r.label_scores.shape() == gg::Shape{2, 1});
  CHECK(values(r.label_scores) == std::vector<double>{0.5f, 0.2f});
  CHECK(values(r.positive_part) ==
        std::vector<double>{0.1f, 2.0f, 0.0f, 0.5f, 1.5f, 0.2f, 0.3f, 0.0f});
  CHECK(r.huber == Approx(1.2083333730697632).epsilon(1e-6));
  CHECK(r.bce == Approx(33.39183807373047).epsilon(1e-6));
}

TEST_CASE("doc snippet: Module clone and printing", "[doc_snippets]") {
  const CloneResult r = clone_and_print();
  CHECK(r.equal_after_clone);
  CHECK_FALSE(r.equal_after_update);
  CHECK(r.printed ==
        "gg::nn::Sequential(\n"
        "  (0): gg::nn::Linear(in_features=4, out_features=8, bias=true)\n"
        "  (1): gg::nn::LayerNorm([8], eps=1e-05, elementwise_affine=true)\n"
        "  (2): gg::nn::Linear(in_features=8, out_features=2, bias=true)\n"
        ")");
}
