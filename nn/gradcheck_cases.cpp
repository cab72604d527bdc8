// Each case builds the real layer (so its default initialisation is what gets checked) and hands
// the layer's parameters to the checker as inputs; forward() then runs the layer's functional form
// on whatever tensors the checker passes (it also passes Float64 copies in Float32 mode).
#include "nn/gradcheck_cases.hpp"

#include "nn/embedding.hpp"
#include "nn/functional.hpp"
#include "nn/init.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

void add(Registry& r, const char* name, const char* description, bool linear, BuildFn build,
         ForwardFn forward) {
  r.register_case({.name = name,
                   .description = description,
                   .build = std::move(build),
                   .forward = std::move(forward),
                   .linear = linear,
                   .family = "nn_module"});
}

// A parameter of a freshly built layer as a checker input: same values, no requires_grad.
Input param(const char* name, const Tensor& t) { return {name, t.detach()}; }

}  // namespace

void register_nn_module_cases(Registry& r) {
  add(
      r, "nn.Linear", "Linear(4, 3) on x [2, 5, 4] (folded to one 2-D matmul) and on x [4]", true,
      [](const CaseOptions& o) {
        nn::Linear lin(4, 3);
        lin.to(o.dtype);
        return Inputs{{"x", gen::normal({2, 5, 4}, o.dtype)},
                      {"v", gen::normal({4}, o.dtype)},
                      param("weight", lin.weight),
                      param("bias", lin.bias)};
      },
      [](const V& x, const CaseOptions&) {
        return V{nn::functional::linear(x[0], x[2], x[3]),
                 nn::functional::linear(x[1], x[2], x[3])};
      });
  add(
      r, "nn.Linear_no_bias", "Linear(5, 2, bias=false) on a non-contiguous x [3, 5]", true,
      [](const CaseOptions& o) {
        nn::Linear lin(5, 2, /*bias=*/false);
        lin.to(o.dtype);
        return Inputs{{"x", gen::noncontiguous(gen::normal({3, 5}, o.dtype))},
                      param("weight", lin.weight)};
      },
      [](const V& x, const CaseOptions&) { return V{nn::functional::linear(x[0], x[1])}; });
  add(
      r, "nn.LayerNorm", "LayerNorm(6) on x [2, 3, 6], weight and bias moved off ones/zeros", false,
      [](const CaseOptions& o) {
        nn::LayerNorm ln(6);
        ln.to(o.dtype);
        nn::init::normal_(ln.weight, 1.0, 0.5);
        nn::init::normal_(ln.bias, 0.0, 0.5);
        return Inputs{{"x", gen::normal({2, 3, 6}, o.dtype)},
                      param("weight", ln.weight),
                      param("bias", ln.bias)};
      },
      [](const V& x, const CaseOptions&) { return V{layer_norm(x[0], {6}, x[1], x[2], 1e-5)}; });
  add(
      r, "nn.Embedding", "Embedding(5, 3) looked up by [2, 4] indices with repeats (scatter-add)",
      true,
      [](const CaseOptions& o) {
        nn::Embedding emb(5, 3);
        emb.to(o.dtype);
        return Inputs{param("weight", emb.weight),
                      {"indices", tensor<int64_t>({0, 3, 3, 1, 4, 0, 3, 2}, {2, 4}), false}};
      },
      [](const V& x, const CaseOptions&) { return V{nn::functional::embedding(x[1], x[0])}; });
  add(
      r, "nn.MLP", "Linear(3, 4) -> gelu -> Linear(4, 2) on x [5, 3], every parameter", false,
      [](const CaseOptions& o) {
        nn::Linear a(3, 4), b(4, 2);
        a.to(o.dtype);
        b.to(o.dtype);
        return Inputs{{"x", gen::normal({5, 3}, o.dtype)},
                      param("w1", a.weight),
                      param("b1", a.bias),
                      param("w2", b.weight),
                      param("b2", b.bias)};
      },
      [](const V& x, const CaseOptions&) {
        namespace F = nn::functional;
        return V{F::linear(F::gelu(F::linear(x[0], x[1], x[2])), x[3], x[4])};
      });
}

}  // namespace gg::gradcheck
