// The libtorch side of the `train` workload: examples/train_multihead's model written with
// torch::nn (libtorch 1.13 has no grouped matmul, so the experts are a loop of linear):
//
//   x = tok_emb(tokens) + pos_emb(positions)
//   N blocks:  x = x + MultiheadAttention(LayerNorm(x), causal)      torch::nn::MultiheadAttention
//              x = x + MoE(LayerNorm(x))    softmax router, top-k, gates renormalised, tokens
//                                           sorted by expert, per expert linear -> gelu -> linear
//   logits = head(LayerNorm(x)); loss = cross_entropy + aux_coef / layers * sum of the blocks'
//   Switch load-balancing losses
//
// Same layers, sizes and batch as the groupgrad model; the parameters are copied from it, so the
// two start at the same point (the bench prints both initial losses).
#include <torch/torch.h>

#include <limits>
#include <map>
#include <stdexcept>

#include "train.hpp"

namespace gg::bench {

namespace {

// The experts' weights stacked: weight [experts, out, in] (nn.Linear's layout per expert),
// bias [experts, out].
struct StackedLinearImpl : torch::nn::Module {
  StackedLinearImpl(int64_t experts, int64_t in, int64_t out)
      : weight(register_parameter("weight", torch::empty({experts, out, in}))),
        bias(register_parameter("bias", torch::empty({experts, out}))) {}
  torch::Tensor weight, bias;
};
TORCH_MODULE(StackedLinear);

struct MoEImpl : torch::nn::Module {
  MoEImpl(int64_t embed, int64_t hidden, int64_t experts, int64_t top_k)
      : top_k(top_k),
        router(register_module(
            "router", torch::nn::Linear(torch::nn::LinearOptions(embed, experts).bias(false)))),
        up(register_module("up", StackedLinear(experts, embed, hidden))),
        down(register_module("down", StackedLinear(experts, hidden, embed))) {}

  // x [*, embed] -> (output [*, embed], load-balancing loss).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x) {
    const int64_t E = x.size(-1), NE = up->weight.size(0);
    const torch::Tensor x2 = x.reshape({-1, E});
    const int64_t T = x2.size(0);
    const torch::Tensor probs = torch::softmax(router->forward(x2), -1);
    auto [top_p, top_e] = probs.topk(top_k, -1);
    const torch::Tensor gates = top_p / top_p.sum(-1, true);
    // Slots (token, j) sorted by expert, stably (token order within an expert).
    const torch::Tensor expert = top_e.reshape({-1});
    const torch::Tensor order = std::get<1>(expert.sort(/*stable=*/true, 0, false));
    const torch::Tensor counts = torch::bincount(expert, {}, NE);
    const torch::Tensor dispatched = x2.index_select(0, order.div(top_k, "floor"));
    std::vector<torch::Tensor> ys;
    int64_t start = 0;
    const auto count = counts.accessor<int64_t, 1>();
    for (int64_t e = 0; e < NE; ++e) {
      if (count[e] == 0) continue;
      const torch::Tensor h = torch::gelu(torch::nn::functional::linear(
          dispatched.narrow(0, start, count[e]), up->weight[e], up->bias[e]));
      ys.push_back(torch::nn::functional::linear(h, down->weight[e], down->bias[e]));
      start += count[e];
    }
    const torch::Tensor y = torch::cat(ys);  // sorted slots
    const torch::Tensor per_slot = y.index_select(0, order.argsort()).view({T, top_k, E});
    const torch::Tensor out = (per_slot * gates.unsqueeze(-1)).sum(1).view(x.sizes());
    const torch::Tensor fraction = counts.to(x.scalar_type()) / static_cast<double>(T * top_k);
    return {out, (fraction * probs.mean(0)).sum() * static_cast<double>(NE)};
  }

  int64_t top_k;
  torch::nn::Linear router;
  StackedLinear up, down;
};
TORCH_MODULE(MoE);

struct BlockImpl : torch::nn::Module {
  explicit BlockImpl(const TrainSetup& s)
      : ln1(register_module("ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.embed})))),
        attn(register_module("attn", torch::nn::MultiheadAttention(
                                         torch::nn::MultiheadAttentionOptions(s.embed, s.heads)))),
        ln2(register_module("ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.embed})))),
        moe(register_module("moe", MoE(s.embed, s.hidden, s.experts, s.top_k))) {}

  // x [B, T, E] (batch first); torch::nn::MultiheadAttention takes [T, B, E].
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x,
                                                  const torch::Tensor& causal) {
    const torch::Tensor h = ln1->forward(x).transpose(0, 1);
    const torch::Tensor a =
        std::get<0>(attn->forward(h, h, h, {}, /*need_weights=*/false, causal)).transpose(0, 1);
    const torch::Tensor y = x + a;
    auto [m, aux] = moe->forward(ln2->forward(y));
    return {y + m, aux};
  }

  torch::nn::LayerNorm ln1;
  torch::nn::MultiheadAttention attn;
  torch::nn::LayerNorm ln2;
  MoE moe;
};
TORCH_MODULE(Block);

struct CharTransformerImpl : torch::nn::Module {
  explicit CharTransformerImpl(const TrainSetup& s)
      : tok_emb(register_module("tok_emb", torch::nn::Embedding(s.vocab, s.embed))),
        pos_emb(register_module("pos_emb", torch::nn::Embedding(s.seq_len, s.embed))),
        blocks(register_module("blocks", torch::nn::ModuleList())),
        ln_f(register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({s.embed})))),
        head(register_module("head", torch::nn::Linear(s.embed, s.vocab))) {
    for (int64_t i = 0; i < s.layers; ++i) blocks->push_back(Block(s));
  }

  // tokens [B, T] -> (logits [B, T, vocab], the blocks' summed load-balancing loss).
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& tokens) {
    const int64_t T = tokens.size(1);
    torch::Tensor x = tok_emb->forward(tokens) + pos_emb->forward(torch::arange(T));
    const torch::Tensor causal =
        torch::full({T, T}, -std::numeric_limits<float>::infinity()).triu(1);
    torch::Tensor aux;
    for (const auto& module : *blocks) {
      auto [y, a] = module->as<Block>()->forward(x, causal);
      x = y;
      aux = aux.defined() ? aux + a : a;
    }
    return {head->forward(ln_f->forward(x)), aux};
  }

  torch::nn::Embedding tok_emb, pos_emb;
  torch::nn::ModuleList blocks;
  torch::nn::LayerNorm ln_f;
  torch::nn::Linear head;
};
TORCH_MODULE(CharTransformer);

// Copies groupgrad's parameters in: same names, except that a torch parameter "p" of the stacked
// experts gathers groupgrad's per-expert "p.0", "p.1", ... Every parameter on both sides is used
// exactly once, with its shape checked.
void copy_parameters(torch::nn::Module& model, const std::vector<NamedArray>& params) {
  std::map<std::string, const NamedArray*> by_name;
  for (const NamedArray& a : params) by_name[a.name] = &a;
  auto as_tensor = [](const NamedArray& a) {
    return torch::from_blob(const_cast<float*>(a.data.data()), a.shape, torch::kFloat32);
  };
  torch::NoGradGuard no_grad;
  size_t used = 0;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& p = item.value();
    torch::Tensor source;
    if (auto it = by_name.find(name); it != by_name.end()) {
      source = as_tensor(*it->second);
      ++used;
    } else {
      std::vector<torch::Tensor> parts;
      for (int64_t e = 0; by_name.count(name + "." + std::to_string(e)); ++e, ++used)
        parts.push_back(as_tensor(*by_name[name + "." + std::to_string(e)]));
      if (parts.empty())
        throw std::runtime_error("[bench] train: groupgrad has no parameter for libtorch's " +
                                 name);
      source = torch::stack(parts);
    }
    if (source.sizes() != p.sizes())
      throw std::runtime_error("[bench] train: parameter " + name + " has shape " +
                               c10::str(p.sizes()) + " in libtorch, " + c10::str(source.sizes()) +
                               " in groupgrad");
    p.copy_(source);
  }
  if (used != params.size())
    throw std::runtime_error("[bench] train: " + std::to_string(params.size() - used) +
                             " groupgrad parameters have no libtorch counterpart");
}

struct LibtorchTrainer {
  CharTransformer model;
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::vector<torch::Tensor> params;
  torch::Tensor input, target;
  double aux_coef, clip;
  int64_t layers, ignore_index;

  explicit LibtorchTrainer(const TrainSetup& s)
      : model(s),
        aux_coef(s.aux_coef),
        clip(s.clip),
        layers(s.layers),
        ignore_index(s.ignore_index) {
    copy_parameters(*model, s.params);
    params = model->parameters();
    optimizer =
        std::make_unique<torch::optim::AdamW>(params, torch::optim::AdamWOptions(s.lr)
                                                          .betas(std::make_tuple(s.beta1, s.beta2))
                                                          .weight_decay(s.weight_decay));
    input = torch::tensor(s.input, torch::kInt64).view({s.batch, s.width});
    target = torch::tensor(s.target, torch::kInt64).view({s.batch, s.width});
  }

  torch::Tensor loss() {
    auto [logits, aux] = model->forward(input);
    const torch::Tensor ce = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), target.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().ignore_index(ignore_index));
    return ce + aux * (aux_coef / static_cast<double>(layers));
  }

  void step() {
    loss().backward();
    torch::nn::utils::clip_grad_norm_(params, clip);
    optimizer->step();
    // zero_grad with set_to_none, as groupgrad's side (libtorch 1.13's zero_grad() zeroes).
    for (torch::Tensor& p : params) p.mutable_grad().reset();
  }
};

}  // namespace

TrainSide libtorch_train(const TrainSetup& setup) {
  auto t = std::make_shared<LibtorchTrainer>(setup);
  return {{"libtorch, same model", [t] { t->step(); }, libtorch_memory_counter(), ""}, [t] {
            torch::NoGradGuard no_grad;
            return t->loss().item<double>();
          }};
}

}  // namespace gg::bench
