// Built against an installed copy of groupgrad: proves the package config and headers are usable,
// the public autograd API (a custom function, autograd::backward) and the C++ gradcheck API, which
// the umbrella header alone brings in.
#include <cstdio>
#include <groupgrad/groupgrad.hpp>

namespace {

struct Square : gg::autograd::Function<Square> {
  static gg::Tensor forward(gg::autograd::AutogradContext* ctx, const gg::Tensor& x) {
    ctx->save_for_backward({x});
    return x * x;
  }
  static std::vector<gg::Tensor> backward(gg::autograd::AutogradContext* ctx,
                                          const std::vector<gg::Tensor>& grads) {
    return {grads[0] * 2.0 * ctx->get_saved_variables()[0]};
  }
};

}  // namespace

int main() {
  gg::Tensor a = gg::tensor<float>({1, 2, 3, 4}, {2, 2});
  gg::Tensor b = gg::ones({2, 2});
  auto c = (a + b).to_vector<float>();
  bool ok = c == std::vector<float>{2, 3, 4, 5};

  gg::Tensor x = gg::tensor<float>({1, 2, 3}, {3}).requires_grad_();
  gg::autograd::backward({Square::apply(x).sum()});
  ok = ok && x.grad().to_vector<float>() == std::vector<float>{2, 4, 6};

  // The gradcheck registry with its built-in cases, and a check of the custom function above.
  const gg::gradcheck::CaseReport builtin =
      gg::gradcheck::run_case(gg::gradcheck::Registry::instance().get("matmul_2d"));
  gg::gradcheck::Registry mine;
  gg::gradcheck::add_case(
      mine, "custom", "square", "Square::apply(x)", false,
      [](const gg::gradcheck::CaseOptions& o) {
        return gg::gradcheck::Inputs{{"x", gg::gradcheck::gen::normal({2, 3}, o.dtype)}};
      },
      [](const std::vector<gg::Tensor>& in, const gg::gradcheck::CaseOptions&) {
        return std::vector<gg::Tensor>{Square::apply(in[0])};
      });
  const gg::gradcheck::CaseReport square = gg::gradcheck::run_case(mine.get("square"));
  ok =
      ok && builtin.passed && !builtin.inputs.empty() && square.passed && square.inputs.size() == 1;

  // gg::distributed comes with the package (its MPI transport when the package was built with it).
  ok = ok && gg::distributed::is_available() == static_cast<bool>(GG_EXPECT_MPI) &&
       !gg::distributed::is_initialized();

  std::printf("consumer: %s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
