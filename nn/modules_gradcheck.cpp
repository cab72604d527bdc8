// Each case builds the real layer (so its default initialisation is what gets checked) and hands
// the layer's parameters to the checker as inputs; forward() then runs the layer's functional form
// on whatever tensors the checker passes (it also passes Float64 copies in Float32 mode).
#include <algorithm>

#include "nn/embedding.hpp"
#include "nn/functional.hpp"
#include "nn/gradcheck_cases.hpp"
#include "nn/grouped_linear.hpp"
#include "nn/init.hpp"
#include "nn/layer_norm.hpp"
#include "nn/linear.hpp"
#include "nn/moe.hpp"
#include "nn/multihead_attention.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

// Every case here is of family "nn_module".
void add(Registry& r, const char* name, const char* description, bool linear, BuildFn build,
         ForwardFn forward) {
  add_case(r, "nn_module", name, description, linear, std::move(build), std::move(forward));
}

// A parameter of a freshly built layer as a checker input: same values, no requires_grad.
Input param(const char* name, const Tensor& t) { return {name, t.detach()}; }

// ==== grouped layers: GroupedLinear, MultiheadAttention, MoEFeedForward ==========================

// Whether every token's k-th and (k+1)-th router probabilities are at least `margin` apart, so
// that finite-difference steps never change which experts are chosen.
bool routing_is_clear(const Tensor& x, const Tensor& router_weight, int64_t top_k, double margin) {
  const int64_t NE = router_weight.size(0);
  if (top_k >= NE) return true;
  const Tensor probs = softmax(
      nn::functional::linear(x.to(kFloat64).reshape({-1, x.size(-1)}), router_weight.to(kFloat64)),
      -1);
  const std::vector<double> p = probs.to_vector<double>();
  for (size_t t = 0; t < p.size() / static_cast<size_t>(NE); ++t) {
    std::vector<double> row(p.begin() + static_cast<int64_t>(t) * NE,
                            p.begin() + static_cast<int64_t>(t + 1) * NE);
    std::sort(row.rbegin(), row.rend());
    if (row[top_k - 1] - row[top_k] < margin) return false;
  }
  return true;
}

// An MoE case: x, router weight and 3-D expert weights drawn until the routing is clear.
Inputs moe_inputs(const CaseOptions& o, Shape x_shape, int64_t hidden, int64_t experts,
                  int64_t top_k, bool bias) {
  const int64_t E = x_shape.back();
  for (int attempt = 0;; ++attempt) {
    nn::MoEFeedForward moe(E, hidden, experts, top_k, {.bias = bias});
    moe.to(o.dtype);
    Tensor x = gen::normal(x_shape, o.dtype);
    if (attempt < 100 && !routing_is_clear(x, moe.router->weight, top_k, 1e-3)) continue;
    Inputs in{{"x", x}, param("router_weight", moe.router->weight)};
    // Clones: the stacked weights are views of the module's parameters (one storage each).
    in.push_back({"up_weight", moe.up->stacked_weight().detach().clone()});
    if (bias) in.push_back({"up_bias", moe.up->stacked_bias().detach().clone()});
    in.push_back({"down_weight", moe.down->stacked_weight().detach().clone()});
    if (bias) in.push_back({"down_bias", moe.down->stacked_bias().detach().clone()});
    return in;
  }
}

// MultiheadAttention's parameters, the biases moved off their zero initialisation.
Inputs mha_params(const CaseOptions& o, int64_t E, int64_t H) {
  nn::MultiheadAttention mha(E, H);
  mha.to(o.dtype);
  nn::init::normal_(mha.in_proj_bias, 0.0, 0.5);
  nn::init::normal_(mha.out_proj->bias, 0.0, 0.5);
  return Inputs{
      param("in_proj_weight", mha.in_proj_weight), param("in_proj_bias", mha.in_proj_bias),
      param("out_proj_weight", mha.out_proj->weight), param("out_proj_bias", mha.out_proj->bias)};
}

void register_grouped_layer_cases(Registry& r) {
  namespace F = nn::functional;
  add(
      r, "nn.GroupedLinear",
      "GroupedLinear([3, 4, 2] -> [2, 3, 4]) list form on x [2, 3], non-contiguous [3, 4], [2, 2, "
      "2]",
      true,
      [](const CaseOptions& o) {
        nn::GroupedLinear gl({3, 4, 2}, {2, 3, 4});
        gl.to(o.dtype);
        Inputs in{{"x0", gen::normal({2, 3}, o.dtype)},
                  {"x1", gen::noncontiguous(gen::normal({3, 4}, o.dtype))},
                  {"x2", gen::normal({2, 2, 2}, o.dtype)}};
        for (size_t g = 0; g < 3; ++g)
          in.push_back({fmt::format("weight.{}", g), (*gl.weight)[g].detach()});
        for (size_t g = 0; g < 3; ++g)
          in.push_back({fmt::format("bias.{}", g), (*gl.bias)[g].detach()});
        return in;
      },
      [](const V& x, const CaseOptions&) {
        return F::grouped_linear({x[0], x[1], x[2]}, {x[3], x[4], x[5]}, {x[6], x[7], x[8]});
      });
  add(
      r, "nn.GroupedLinear_packed",
      "GroupedLinear packed form: G=3, 4 -> 3, offs [2, 2, 5] over 6 rows (an empty group, a row "
      "past offs[-1]), weight [3, 3, 4]",
      true,
      [](const CaseOptions& o) {
        nn::GroupedLinear gl({4, 4, 4}, {3, 3, 3});
        gl.to(o.dtype);
        return Inputs{{"x", gen::normal({6, 4}, o.dtype)},
                      {"offs", tensor<int64_t>({2, 2, 5}), false},
                      {"weight", gl.stacked_weight().detach().clone()},
                      {"bias", gl.stacked_bias().detach().clone()}};
      },
      [](const V& x, const CaseOptions&) { return V{F::grouped_linear(x[0], x[1], x[2], x[3])}; });
  add(
      r, "nn.GroupedLinear_packed_groups",
      "GroupedLinear packed form from per-group weight tensors (stack_groups), no bias, Int32 offs",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({5, 3}, o.dtype)},
                      {"offs", tensor<int32_t>({3, 5}), false},
                      {"weight.0", gen::normal({2, 3}, o.dtype)},
                      {"weight.1", gen::normal({2, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{F::grouped_linear(x[0], x[1], F::stack_groups({x[2], x[3]}))};
      });
  add(
      r, "nn.GroupedLinear_batched",
      "GroupedLinear batched form as its forward(x [G, N, in]) computes it: x [2, 3, 4] through "
      "per-group weights [3, 4] and biases [3] stacked (stack_groups), one 3D x 3D grouped_mm",
      true,
      [](const CaseOptions& o) {
        nn::GroupedLinear gl({4, 4}, {3, 3});
        gl.to(o.dtype);
        // Clones: the module's groups share one storage, the checker's inputs must not.
        Inputs in{{"x", gen::normal({2, 3, 4}, o.dtype)}};
        for (const auto& [name, p] : gl.named_parameters())
          in.push_back({name, p.detach().clone()});  // weight.0, weight.1, bias.0, bias.1
        return in;
      },
      [](const V& x, const CaseOptions&) {
        return V{grouped_mm(x[0], F::stack_groups({x[1], x[2]}).transpose(1, 2),
                            {.bias = F::stack_groups({x[3], x[4]})})};
      });
  add(
      r, "nn.MultiheadAttention",
      "MultiheadAttention(4, 2) self-attention on x [2, 3, 4]: output and head-averaged weights",
      false,
      [](const CaseOptions& o) {
        Inputs in{{"x", gen::normal({2, 3, 4}, o.dtype)}};
        for (Input& p : mha_params(o, 4, 2)) in.push_back(std::move(p));
        return in;
      },
      [](const V& x, const CaseOptions&) {
        auto [out, w] =
            F::multi_head_attention_forward(x[0], x[0], x[0], 2, x[1], x[2], x[3], x[4]);
        return V{out, w};
      });
  add(
      r, "nn.MultiheadAttention_masked",
      "MultiheadAttention(4, 2) cross-attention L=3, S=4 with is_causal, a key_padding_mask and a "
      "differentiable float attn_mask; per-head weights",
      false,
      [](const CaseOptions& o) {
        Inputs in{{"query", gen::normal({2, 3, 4}, o.dtype)},
                  {"key", gen::normal({2, 4, 4}, o.dtype)},
                  {"value", gen::normal({2, 4, 4}, o.dtype)}};
        for (Input& p : mha_params(o, 4, 2)) in.push_back(std::move(p));
        in.push_back({"attn_mask", gen::normal({3, 4}, o.dtype, 0.5)});
        in.push_back(
            {"key_padding_mask", tensor<int64_t>({0, 0, 0, 1, 0, 0, 0, 0}, {2, 4}), false});
        return in;
      },
      [](const V& x, const CaseOptions&) {
        auto [out, w] = F::multi_head_attention_forward(x[0], x[1], x[2], 2, x[3], x[4], x[5], x[6],
                                                        {.attn_mask = x[7],
                                                         .key_padding_mask = x[8],
                                                         .average_attn_weights = false,
                                                         .is_causal = true});
        return V{out, w};
      });
  add(
      r, "nn.MoEFeedForward",
      "MoEFeedForward(4, 5, 3 experts, top-2) on x [2, 3, 4]: output and aux loss (inputs kept "
      "away from routing ties)",
      false,
      [](const CaseOptions& o) {
        return moe_inputs(o, {2, 3, 4}, 5, 3, 2, true);
      },
      [](const V& x, const CaseOptions&) {
        F::MoEResult res = F::moe_feed_forward(x[0], 2, x[1], Tensor(), x[2], x[3], x[4], x[5]);
        return V{res.output, res.aux_loss};
      });
  add(
      r, "nn.MoEFeedForward_top1_raw",
      "MoEFeedForward(3, 4, 4 experts, top-1, raw gates, no expert bias) on x [5, 3]", false,
      [](const CaseOptions& o) {
        return moe_inputs(o, {5, 3}, 4, 4, 1, false);
      },
      [](const V& x, const CaseOptions&) {
        F::MoEResult res = F::moe_feed_forward(x[0], 1, x[1], Tensor(), x[2], Tensor(), x[3],
                                               Tensor(), /*normalize_top_k=*/false);
        return V{res.output, res.aux_loss};
      });
}

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
  register_grouped_layer_cases(r);
}

}  // namespace gg::gradcheck
