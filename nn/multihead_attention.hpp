#pragma once
// MultiheadAttention with the semantics of PyTorch's nn.MultiheadAttention(batch_first=True):
// query (batch, L, embed), key/value (batch, S, embed) -> output (batch, L, embed) and the
// attention weights (batch, L, S) averaged over heads (or (batch, heads, L, S)).
//
// Parameters, named and initialised as PyTorch's (weights copy over one to one):
//   in_proj_weight  [3 * embed, embed]  xavier_uniform_; rows [0, E) project q, [E, 2E) k, [2E, 3E)
//   v in_proj_bias    [3 * embed]         zeros                  (absent with bias = false)
//   out_proj.weight [embed, embed]      nn.Linear's default U(-1/sqrt(E), 1/sqrt(E))
//   out_proj.bias   [embed]             zeros                  (absent with bias = false)
//
// Every matmul runs on grouped_mm, one tape node each (see multihead_attention.cpp for layouts):
//   1. the q, k and v projections: ONE list-form call over the 3 projections (one batched oneDNN
//      primitive for self-attention);
//   2. the per-head products: ONE 3D x 3D call each over batch * heads groups, on the heads laid
//      out dense (q scaled, k and v copied; k^T is a view): scores = q k^T and output = P v;
//   3. the output projection: a list-form call on the heads' outputs gathered to (batch * L, E).
//
// Masks (PyTorch's conventions). Our dtypes have no Bool: an INTEGER mask (Int8/Int32/Int64) is
// boolean, nonzero = True = masked out (the score becomes -inf); a FLOAT mask is added to the
// scores. attn_mask is (L, S) or (batch * heads, L, S); key_padding_mask is (batch, S). A query
// row whose keys are all masked out gives NaN, as in PyTorch.
#include <memory>
#include <tuple>

#include "linear.hpp"
#include "module.hpp"

namespace gg::nn {

struct MultiheadAttentionForwardOptions {
  Tensor attn_mask = {};             // (L, S) or (batch * num_heads, L, S); integer or float
  Tensor key_padding_mask = {};      // (batch, S); integer (nonzero = padding) or float (added)
  bool need_weights = true;          // false: the weights tensor returned is undefined
  bool average_attn_weights = true;  // false: weights per head, (batch, num_heads, L, S)
  // Mask out keys after each query (key j > query i), combined with attn_mask if both are given.
  bool is_causal = false;
};

class MultiheadAttention : public Module {
 public:
  // dropout: probability of zeroing attention weights, in training mode only (PyTorch's).
  MultiheadAttention(int64_t embed_dim, int64_t num_heads, double dropout = 0.0, bool bias = true);

  // query (batch, L, embed), key and value (batch, S, embed). Returns (output (batch, L, embed),
  // weights (batch, L, S) averaged over heads); need_weights = false returns undefined weights.
  std::tuple<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                     const Tensor& attn_mask = {}, bool need_weights = true);
  // Every option: key_padding_mask, is_causal, average_attn_weights. E.g.
  //   auto [y, w] = mha->forward(x, x, x, {.key_padding_mask = pad, .is_causal = true});
  std::tuple<Tensor, Tensor> forward(const Tensor& query, const Tensor& key, const Tensor& value,
                                     const MultiheadAttentionForwardOptions& options);

  // The float (L, S) mask that hides key j > query i: 0 on and below the diagonal, -inf above
  // (PyTorch's nn.Transformer.generate_square_subsequent_mask for L == S).
  static Tensor causal_mask(int64_t L, int64_t S = -1, Dtype dtype = kFloat32);

  void reset_parameters();
  // "gg::nn::MultiheadAttention(embed_dim=8, num_heads=2, dropout=0, bias=true)"; out_proj
  // follows under operator<<.
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<Module> clone() const override;

  int64_t embed_dim() const { return embed_dim_; }
  int64_t num_heads() const { return num_heads_; }
  int64_t head_dim() const { return embed_dim_ / num_heads_; }
  double dropout() const { return dropout_; }

  Tensor in_proj_weight;
  Tensor in_proj_bias;  // undefined with bias = false
  std::shared_ptr<Linear> out_proj;

 private:
  int64_t embed_dim_;
  int64_t num_heads_;
  double dropout_;
};

namespace functional {

// The functional form (PyTorch's F.multi_head_attention_forward, batch-first): the module's
// forward with explicit parameters. in_proj_bias and out_proj_bias may be undefined. Dropout
// on the attention weights applies when training and dropout_p > 0.
std::tuple<Tensor, Tensor> multi_head_attention_forward(
    const Tensor& query, const Tensor& key, const Tensor& value, int64_t num_heads,
    const Tensor& in_proj_weight, const Tensor& in_proj_bias, const Tensor& out_proj_weight,
    const Tensor& out_proj_bias, const MultiheadAttentionForwardOptions& options = {},
    double dropout_p = 0.0, bool training = false);

}  // namespace functional

}  // namespace gg::nn
