#pragma once
// The model of examples/train_multihead: a small character-level transformer language model.
//
//   x = tok_emb(tokens) + pos_emb(positions)
//   N blocks:  x = x + MultiheadAttention(LayerNorm(x), causal)
//              x = x + MoEFeedForward(LayerNorm(x))   (or another MoE: Block::set_moe)
//   logits = head(LayerNorm(x))
#include <groupgrad/groupgrad.hpp>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace train {

struct ModelConfig {
  int64_t vocab_size = 0;
  int64_t seq_len = 32;
  int64_t embed_dim = 64;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t experts = 4;
  int64_t top_k = 2;
  int64_t expert_hidden = 128;
};

// What the model calls of a block's mixture-of-experts feed-forward. A Block holds its MoE behind
// this interface, so that it can hold gg::nn::MoEFeedForward or any module with the same three
// calls -- an expert-parallel one, whose experts are sharded over the ranks, made from the full
// layer (the same initialisation on every rank):
//   block->set_moe(ExpertParallelMoE::from_full(*block->moe_as<gg::nn::MoEFeedForward>()));
class MoELayer {
 public:
  virtual ~MoELayer() = default;
  virtual gg::Tensor forward(const gg::Tensor& x) = 0;
  virtual gg::Tensor last_aux_loss() const = 0;                 // of the last forward
  virtual std::vector<int64_t> last_expert_counts() const = 0;  // token-slots per expert, likewise
  virtual std::shared_ptr<gg::nn::Module> module() const = 0;
};

// MoELayer over a module M that has those calls.
template <class M>
class MoELayerOf final : public MoELayer {
 public:
  explicit MoELayerOf(std::shared_ptr<M> m) : m_(std::move(m)) {}
  gg::Tensor forward(const gg::Tensor& x) override { return m_->forward(x); }
  gg::Tensor last_aux_loss() const override { return m_->last_aux_loss(); }
  std::vector<int64_t> last_expert_counts() const override { return m_->last_expert_counts(); }
  std::shared_ptr<gg::nn::Module> module() const override { return m_; }

 private:
  std::shared_ptr<M> m_;
};

class Block : public gg::nn::Module {
 public:
  explicit Block(const ModelConfig& c)
      : ln1(register_module("ln1", std::make_shared<gg::nn::LayerNorm>(c.embed_dim))),
        attn(register_module("attn",
                             std::make_shared<gg::nn::MultiheadAttention>(c.embed_dim, c.heads))),
        ln2(register_module("ln2", std::make_shared<gg::nn::LayerNorm>(c.embed_dim))) {
    set_moe(
        std::make_shared<gg::nn::MoEFeedForward>(c.embed_dim, c.expert_hidden, c.experts, c.top_k));
  }

  gg::Tensor forward(const gg::Tensor& x) {
    gg::Tensor h = ln1->forward(x);
    auto [a, unused] = attn->forward(h, h, h, {.need_weights = false, .is_causal = true});
    gg::Tensor y = x + a;
    return y + moe->forward(ln2->forward(y));
  }

  // Makes m the block's feed-forward: the child "moe", so its parameters read "blocks.0.moe....".
  template <class M>
  void set_moe(std::shared_ptr<M> m) {
    if (moe)
      replace_module("moe", m);
    else
      register_module("moe", m);
    moe = std::make_shared<MoELayerOf<M>>(std::move(m));
  }
  // The feed-forward module as an M, or nullptr when it is of another type.
  template <class M>
  std::shared_ptr<M> moe_as() const {
    return std::dynamic_pointer_cast<M>(moe->module());
  }

  std::shared_ptr<gg::nn::LayerNorm> ln1;
  std::shared_ptr<gg::nn::MultiheadAttention> attn;
  std::shared_ptr<gg::nn::LayerNorm> ln2;
  std::shared_ptr<MoELayer> moe;
};

class CharTransformer : public gg::nn::Module {
 public:
  explicit CharTransformer(const ModelConfig& c)
      : config(c),
        tok_emb(register_module("tok_emb",
                                std::make_shared<gg::nn::Embedding>(c.vocab_size, c.embed_dim))),
        pos_emb(register_module("pos_emb",
                                std::make_shared<gg::nn::Embedding>(c.seq_len, c.embed_dim))),
        ln_f(register_module("ln_f", std::make_shared<gg::nn::LayerNorm>(c.embed_dim))),
        head(register_module("head", std::make_shared<gg::nn::Linear>(c.embed_dim, c.vocab_size))) {
    // Children of a Sequential are named "0", "1", ...: parameters read "blocks.0.attn....".
    auto seq = register_module("blocks", std::make_shared<gg::nn::Sequential>());
    for (int64_t i = 0; i < c.layers; ++i) {
      blocks.push_back(std::make_shared<Block>(c));
      seq->push_back(blocks.back());
    }
    // As GPT-2: embeddings start at N(0, 0.02), not PyTorch's N(0, 1), on the scale of what the
    // blocks add to the residual stream.
    gg::nn::init::normal_(tok_emb->weight, 0.0, 0.02);
    gg::nn::init::normal_(pos_emb->weight, 0.0, 0.02);
  }

  // tokens [B, T] Int64 -> logits [B, T, vocab]. Also keeps the blocks' MoE auxiliary loss.
  gg::Tensor forward(const gg::Tensor& tokens) {
    const int64_t T = tokens.size(1);
    gg::Tensor x = tok_emb->forward(tokens) + pos_emb->forward(gg::arange(T));
    aux_loss = gg::Tensor();
    for (auto& b : blocks) {
      x = b->forward(x);
      gg::Tensor aux = b->moe->last_aux_loss();
      aux_loss = aux_loss.defined() ? aux_loss + aux : aux;
    }
    return head->forward(ln_f->forward(x));
  }

  ModelConfig config;
  std::shared_ptr<gg::nn::Embedding> tok_emb;
  std::shared_ptr<gg::nn::Embedding> pos_emb;
  std::vector<std::shared_ptr<Block>> blocks;
  std::shared_ptr<gg::nn::LayerNorm> ln_f;
  std::shared_ptr<gg::nn::Linear> head;
  gg::Tensor aux_loss;  // sum over blocks of the MoE load-balancing loss of the last forward
};

}  // namespace train
