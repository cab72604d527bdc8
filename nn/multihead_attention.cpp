// Multi-head attention on grouped_mm. Layouts (B batch, L queries, S keys, E = H * D):
//
//   projections, ONE list-form grouped_mm over {q, k, v}: (B*L, E) @ W_p^T (+ b_p), W_p a row
//      block of in_proj_weight read transposed (no copy). For self-attention the three groups
//      share their input and sit at equal distances: one batched oneDNN primitive.
//   heads: each projection (B, L, H, D) is permuted to a dense (B, H, L, D) -- for q the copy is
//      the 1/sqrt(D) scaling itself, k and v are copied (B*S*E elements each) -- so that
//   scores = ONE 3D x 3D grouped_mm over B*H groups: q (BH, L, D) @ k^T (BH, D, S) [a view]
//   output = ONE 3D x 3D grouped_mm: P (BH, L, S) @ v (BH, S, D) -> (B, H, L, D), permuted to
//      (B, L, H, D) rows [a copy, as PyTorch does]
//   out projection, one list-form grouped_mm: (B*L, E) @ W_o^T + b_o -> (B, L, E).
// Why the copies of k and v: read in place, (b, h) heads are not one stride apart (batch rows
// are L*E apart, heads D apart), and the strided layouts that would avoid it -- sequence-first
// rows (L, B*H, D), which costs a transposing copy of the input instead, or B*H list-form
// groups -- run on oneDNN's gemm:jit or as B*H small primitives: measured ~3x slower per head
// product than brg:avx512_core on the dense layout (128 x 32x32x32), while the copies cost a few
// percent of the layer (see tests/test_grouped_layers.cpp "[.timing]").
#include "nn/multihead_attention.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "core/strided.hpp"
#include "nn/init.hpp"
#include "ops/elementwise.hpp"
#include "ops/grouped_mm.hpp"
#include "ops/nn_ops.hpp"
#include "ops/reduce.hpp"

namespace gg::nn {

namespace {

constexpr const char* kOp = "[MultiheadAttention]";

// A boolean (integer) mask as 0 / -inf in `dtype`; a float mask converted to `dtype`.
Tensor additive_mask(const Tensor& mask, Dtype dtype) {
  if (is_floating(mask.dtype())) return mask.dtype() == dtype ? mask : mask.to(dtype);
  const std::vector<int64_t> flags = mask.to(kInt64).to_vector<int64_t>();
  std::vector<double> values(flags.size());
  for (size_t i = 0; i < flags.size(); ++i)
    values[i] = flags[i] != 0 ? -std::numeric_limits<double>::infinity() : 0.0;
  return tensor<double>(values, mask.shape()).to(dtype);
}

Tensor add_mask(const Tensor& total, const Tensor& m) { return total.defined() ? total + m : m; }

}  // namespace

namespace functional {

std::tuple<Tensor, Tensor> multi_head_attention_forward(
    const Tensor& query, const Tensor& key, const Tensor& value, int64_t num_heads,
    const Tensor& in_proj_weight, const Tensor& in_proj_bias, const Tensor& out_proj_weight,
    const Tensor& out_proj_bias, const MultiheadAttentionForwardOptions& options, double dropout_p,
    bool training) {
  // ---- validation --------------------------------------------------------------------------
  for (auto [t, name] : {std::pair{&query, "query"}, {&key, "key"}, {&value, "value"}}) {
    GG_CHECK(t->defined(), "{} {} is an undefined tensor", kOp, name);
    GG_CHECK(t->dim() == 3,
             "{} {} must be 3-D (batch, seq, embed) (batch_first), got {} (query {}, key {}, "
             "value {})",
             kOp, name, shape_str(t->shape()), describe(query), describe(key), describe(value));
  }
  GG_CHECK(in_proj_weight.defined() && in_proj_weight.dim() == 2 &&
               in_proj_weight.size(1) <= std::numeric_limits<int64_t>::max() / 3 &&
               in_proj_weight.size(0) == 3 * in_proj_weight.size(1),
           "{} in_proj_weight must be [3 * embed_dim, embed_dim], got {}", kOp,
           describe(in_proj_weight));
  const int64_t E = in_proj_weight.size(1);
  GG_CHECK(num_heads > 0 && E % num_heads == 0, "{} embed_dim {} must be divisible by num_heads {}",
           kOp, E, num_heads);
  const int64_t B = query.size(0), L = query.size(1), S = key.size(1), H = num_heads,
                D = E / num_heads;
  GG_CHECK(query.size(2) == E && key.size(2) == E && value.size(2) == E,
           "{} query, key and value must have embed_dim={} features in their last dim (query {}, "
           "key {}, value {})",
           kOp, E, describe(query), describe(key), describe(value));
  GG_CHECK(key.size(0) == B && value.size(0) == B,
           "{} query, key and value must have the same batch size (query {}, key {}, value {})",
           kOp, describe(query), describe(key), describe(value));
  GG_CHECK(value.size(1) == S,
           "{} key and value must have the same sequence length (key {}, value {})", kOp,
           describe(key), describe(value));
  const Dtype dtype = query.dtype();
  GG_CHECK(is_floating(dtype), "{} query must be floating-point, got {}", kOp, describe(query));
  for (auto [t, name] : {std::pair{&key, "key"},
                         {&value, "value"},
                         {&in_proj_weight, "in_proj_weight"},
                         {&in_proj_bias, "in_proj_bias"},
                         {&out_proj_weight, "out_proj.weight"},
                         {&out_proj_bias, "out_proj.bias"}}) {
    GG_CHECK(!t->defined() || t->dtype() == dtype,
             "{} {} is {} but query is {}; convert the module (module.to(dtype)) or the inputs",
             kOp, name, dtype_name(t->dtype()), dtype_name(dtype));
  }
  GG_CHECK(!in_proj_bias.defined() || in_proj_bias.shape() == Shape{3 * E},
           "{} in_proj_bias must be [{}], got {}", kOp, 3 * E, describe(in_proj_bias));
  GG_CHECK(out_proj_weight.defined() && out_proj_weight.shape() == (Shape{E, E}),
           "{} out_proj.weight must be [{}, {}], got {}", kOp, E, E, describe(out_proj_weight));
  GG_CHECK(!out_proj_bias.defined() || out_proj_bias.shape() == Shape{E},
           "{} out_proj.bias must be [{}], got {}", kOp, E, describe(out_proj_bias));
  // The flattened sizes below, checked once (B * H heads, B * L and B * S rows).
  const auto sizes = [&] {
    return fmt::format("the flattened sizes of query {}, key {} with {} heads", describe(query),
                       describe(key), H);
  };
  const int64_t BH = size_mul(B, H, "MultiheadAttention", sizes);
  const int64_t BL = size_mul(B, L, "MultiheadAttention", sizes);
  const int64_t BS = size_mul(B, S, "MultiheadAttention", sizes);
  const Tensor& attn_mask = options.attn_mask;
  if (attn_mask.defined()) {
    GG_CHECK(attn_mask.shape() == (Shape{L, S}) || attn_mask.shape() == (Shape{BH, L, S}),
             "{} attn_mask must be (L, S) = [{}, {}] or (batch * num_heads, L, S) = [{}, {}, {}], "
             "got {}",
             kOp, L, S, BH, L, S, describe(attn_mask));
  }
  const Tensor& kpm = options.key_padding_mask;
  if (kpm.defined()) {
    GG_CHECK(kpm.shape() == (Shape{B, S}),
             "{} key_padding_mask must be (batch, S) = [{}, {}], got {}", kOp, B, S, describe(kpm));
  }

  // ---- q, k, v projections: one grouped_mm over the three ----------------------------------
  const Tensor xq = query.reshape({BL, E});
  const Tensor xk = key.impl() == query.impl() ? xq : key.reshape({BS, E});
  const Tensor xv = value.impl() == key.impl() ? xk : value.reshape({BS, E});
  std::vector<Tensor> mats, biases;
  for (int64_t p = 0; p < 3; ++p) {
    mats.push_back(in_proj_weight.narrow(0, p * E, E).t());  // [E_in, E_out] view
    if (in_proj_bias.defined()) biases.push_back(in_proj_bias.narrow(0, p * E, E));
  }
  const std::vector<Tensor> qkv = grouped_mm({xq, xk, xv}, mats, GroupedMMOptions{.bias = biases});

  // ---- per-head products: B*H groups in one 3D x 3D call each -------------------------------
  // Heads dense as (B, H, seq, D): q's copy is the scaling itself.
  const Tensor q = qkv[0].view({B, L, H, D}).permute({0, 2, 1, 3}) * (1.0 / std::sqrt(double(D)));
  const Tensor k = qkv[1].view({B, S, H, D}).permute({0, 2, 1, 3}).contiguous();
  const Tensor v = qkv[2].view({B, S, H, D}).permute({0, 2, 1, 3}).contiguous();
  Tensor scores = grouped_mm(q.reshape({BH, L, D}), k.view({BH, S, D}).transpose(1, 2));

  Tensor mask;
  if (attn_mask.defined()) {
    const Tensor m = additive_mask(attn_mask, dtype);
    mask = attn_mask.dim() == 2 ? m : m.view({B, H, L, S});
  }
  if (kpm.defined()) mask = add_mask(mask, additive_mask(kpm, dtype).view({B, 1, 1, S}));
  if (options.is_causal) mask = add_mask(mask, MultiheadAttention::causal_mask(L, S, dtype));
  if (mask.defined()) scores = (scores.view({B, H, L, S}) + mask).view({BH, L, S});

  Tensor attn = softmax(scores, -1);
  if (training && dropout_p > 0) attn = gg::dropout(attn, dropout_p, true);
  const Tensor heads = grouped_mm(attn, v.view({BH, S, D}));  // (BH, L, D) = (B, H, L, D)

  // ---- output projection ------------------------------------------------------------------
  const Tensor rows = heads.view({B, H, L, D}).permute({0, 2, 1, 3}).contiguous().view({BL, E});
  std::vector<Tensor> out_bias;
  if (out_proj_bias.defined()) out_bias.push_back(out_proj_bias);
  const Tensor output =
      grouped_mm({rows}, {out_proj_weight.t()}, GroupedMMOptions{.bias = out_bias})[0];

  Tensor weights;
  if (options.need_weights) {
    weights = attn.view({B, H, L, S});
    if (options.average_attn_weights) weights = weights.mean(1);
  }
  return {output.view({B, L, E}), weights};
}

}  // namespace functional

MultiheadAttention::MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout,
                                       bool bias)
    : embed_dim_(embed_dim), num_heads_(num_heads), dropout_(dropout) {
  GG_CHECK(embed_dim > 0 && num_heads > 0,
           "{} embed_dim and num_heads must be positive, got embed_dim={} and num_heads={}", kOp,
           embed_dim, num_heads);
  GG_CHECK(embed_dim % num_heads == 0, "{} embed_dim {} must be divisible by num_heads {}", kOp,
           embed_dim, num_heads);
  GG_CHECK(dropout >= 0 && dropout < 1, "{} dropout must be in [0, 1), got {}", kOp, dropout);
  in_proj_weight = register_parameter("in_proj_weight", empty({3 * embed_dim, embed_dim}));
  if (bias) in_proj_bias = register_parameter("in_proj_bias", empty({3 * embed_dim}));
  out_proj = register_module("out_proj", std::make_shared<Linear>(embed_dim, embed_dim, bias));
  reset_parameters();
}

void MultiheadAttention::reset_parameters() {
  // PyTorch's _reset_parameters: out_proj.weight keeps nn.Linear's initialisation.
  init::xavier_uniform_(in_proj_weight);
  if (in_proj_bias.defined()) init::zeros_(in_proj_bias);
  out_proj->reset_parameters();
  if (out_proj->bias.defined()) init::zeros_(out_proj->bias);
}

std::tuple<Tensor, Tensor> MultiheadAttention::forward(const Tensor& query, const Tensor& key,
                                                       const Tensor& value, const Tensor& attn_mask,
                                                       bool need_weights) {
  return forward(
      query, key, value,
      MultiheadAttentionForwardOptions{.attn_mask = attn_mask, .need_weights = need_weights});
}

std::tuple<Tensor, Tensor> MultiheadAttention::forward(
    const Tensor& query, const Tensor& key, const Tensor& value,
    const MultiheadAttentionForwardOptions& options) {
  return functional::multi_head_attention_forward(query, key, value, num_heads_, in_proj_weight,
                                                  in_proj_bias, out_proj->weight, out_proj->bias,
                                                  options, dropout_, is_training());
}

void MultiheadAttention::pretty_print(std::ostream& stream) const {
  stream << "gg::nn::MultiheadAttention(embed_dim=" << embed_dim_ << ", num_heads=" << num_heads_
         << ", dropout=" << dropout_ << ", bias=" << (in_proj_bias.defined() ? "true" : "false")
         << ")";
}

std::shared_ptr<Module> MultiheadAttention::clone() const {
  auto copy = std::make_shared<MultiheadAttention>(embed_dim_, num_heads_, dropout_,
                                                   in_proj_bias.defined());
  clone_state_into(*copy);
  return copy;
}

Tensor MultiheadAttention::causal_mask(int64_t L, int64_t S, Dtype dtype) {
  if (S < 0) S = L;
  GG_CHECK(L >= 0, "{} causal_mask needs L >= 0, got L={} S={}", kOp, L, S);
  GG_CHECK(is_floating(dtype), "{} causal_mask makes a float mask, got dtype {}", kOp,
           dtype_name(dtype));
  // Written straight into the tensor (no host vector of L * S doubles): the size checks are the
  // tensor's own, so L * S overflowing or past the allocation limit is a gg::Error.
  const int64_t n = size_mul(L, S, "MultiheadAttention",
                             [&] { return fmt::format("causal_mask L={} x S={}", L, S); });
  check_allocation(static_cast<uint64_t>(n), element_size(dtype), "MultiheadAttention",
                   fmt::format("causal_mask({}, {}) of {}", L, S, dtype_name(dtype)));
  Tensor mask = zeros({L, S}, dtype);
  if (mask.numel() == 0) return mask;
  dispatch(dtype, [&]<class T>() {
    if constexpr (!std::is_integral_v<T>) {
      T* p = mask.data_ptr<T>();
      const T minus_inf = convert<T>(-std::numeric_limits<double>::infinity());
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = i + 1; j < S; ++j) p[i * S + j] = minus_inf;
    }
  });
  return mask;
}

}  // namespace gg::nn
