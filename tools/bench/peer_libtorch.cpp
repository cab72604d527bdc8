// libtorch 1.13 peers (built only with -DGG_BENCH_LIBTORCH=ON).
#include <torch/torch.h>

#include "peers.hpp"

namespace gg::bench {

bool libtorch_available() { return true; }
std::string libtorch_version() { return TORCH_VERSION; }

namespace {
struct Operands {
  std::vector<torch::Tensor> x, w, b;
  torch::Tensor packed_x, packed_w;
};

Operands make_operands(const Problem& p) {
  auto type = torch::TensorOptions().dtype(p.bf16 ? torch::kBFloat16 : torch::kFloat32);
  Operands o;
  if (p.packed) {
    int64_t total = 0;
    for (const GroupShape& g : p.groups) total += g.m;
    const GroupShape& g0 = p.groups.front();
    o.packed_x = torch::randn({total, g0.k}, type).requires_grad_(p.backward);
    o.packed_w = torch::randn({static_cast<int64_t>(p.groups.size()), g0.k, g0.n}, type)
                     .requires_grad_(p.backward);
  } else {
    for (const GroupShape& g : p.groups) {
      o.x.push_back(torch::randn({g.m, g.k}, type).requires_grad_(p.backward));
      o.w.push_back(torch::randn({g.k, g.n}, type).requires_grad_(p.backward));
      if (p.bias) o.b.push_back(torch::randn({g.n}, type).requires_grad_(p.backward));
    }
  }
  return o;
}

void finish(const Problem& p, std::vector<torch::Tensor>& outs) {
  if (!p.backward) return;
  std::vector<torch::Tensor> grads;
  for (auto& y : outs) grads.push_back(torch::ones_like(y));
  torch::autograd::backward(outs, grads);
}
}  // namespace

Timing libtorch_loop(const Problem& p, int warmup, int reps) {
  torch::set_num_threads(2);
  Operands o = make_operands(p);
  return time_it(
      [&] {
        std::vector<torch::Tensor> outs;
        if (p.packed) {
          int64_t start = 0;
          for (size_t i = 0; i < p.groups.size(); ++i) {
            outs.push_back(torch::mm(o.packed_x.narrow(0, start, p.groups[i].m), o.packed_w[i]));
            start += p.groups[i].m;
          }
        } else {
          for (size_t i = 0; i < p.groups.size(); ++i)
            outs.push_back(p.bias ? torch::addmm(o.b[i], o.x[i], o.w[i])
                                  : torch::mm(o.x[i], o.w[i]));
        }
        finish(p, outs);
      },
      warmup, reps);
}

Timing libtorch_bmm(const Problem& p, int warmup, int reps) {
  torch::set_num_threads(2);
  Operands o = make_operands(p);
  torch::Tensor x = torch::stack(o.x).detach().requires_grad_(p.backward);
  torch::Tensor w = torch::stack(o.w).detach().requires_grad_(p.backward);
  return time_it(
      [&] {
        std::vector<torch::Tensor> outs{torch::bmm(x, w)};
        finish(p, outs);
      },
      warmup, reps);
}

}  // namespace gg::bench
