// groupgrad's own variant of a workload: one grouped_mm call (packed 2D x 3D with offs, or the
// list form with optional biases), and for forward + backward the backward from ones gradients
// made once outside the timed call, as the peers do.
#include "groupgrad_variant.hpp"

#include <groupgrad/groupgrad.hpp>
#include <memory>

namespace F = gg::nn::functional;

namespace gg::bench {

Variant groupgrad_variant(const Problem& p) {
  const gg::Dtype dtype = p.bf16 ? gg::kBFloat16 : gg::kFloat32;
  struct State {
    gg::Tensor x, w, offs;
    std::vector<gg::Tensor> xs, ws, bs, grads;
  };
  auto s = std::make_shared<State>();
  std::function<std::vector<gg::Tensor>()> forward;
  if (p.packed) {
    std::vector<int32_t> ends;
    int64_t total = 0;
    for (const GroupShape& g : p.groups) ends.push_back(static_cast<int32_t>(total += g.m));
    const GroupShape& g0 = p.groups.front();
    s->x = gg::randn({total, g0.k}, dtype).requires_grad_(p.backward);
    s->w = gg::randn({static_cast<int64_t>(p.groups.size()), g0.k, g0.n}, dtype)
               .requires_grad_(p.backward);
    s->offs = gg::tensor<int32_t>(ends);
    forward = [s] { return std::vector<gg::Tensor>{F::grouped_mm(s->x, s->w, {.offs = s->offs})}; };
  } else {
    for (const GroupShape& g : p.groups) {
      s->xs.push_back(gg::randn({g.m, g.k}, dtype).requires_grad_(p.backward));
      s->ws.push_back(gg::randn({g.k, g.n}, dtype).requires_grad_(p.backward));
      if (p.bias) s->bs.push_back(gg::randn({g.n}, dtype).requires_grad_(p.backward));
    }
    forward = [s] { return F::grouped_mm(s->xs, s->ws, F::GroupedMMOptions{.bias = s->bs}); };
  }
  if (p.backward) {
    gg::NoGradGuard no_grad;
    for (const gg::Tensor& y : forward()) s->grads.push_back(gg::ones(y.shape(), y.dtype()));
  }
  auto run = [s, forward, backward = p.backward] {
    if (!backward) {
      gg::NoGradGuard no_grad;
      forward();
      return;
    }
    gg::autograd::backward(forward(), s->grads, /*retain_graph=*/false);
  };
  std::string note;
  if (p.bf16)
    note = gg::backend::native_bf16()
               ? "bf16 on oneDNN's bf16 kernels"
               : "bf16 computed through f32 (oneDNN has no bf16 kernels below AVX512_CORE)";
  return {"groupgrad", run, groupgrad_memory_counter(), note};
}

Variant groupgrad_3d_variant(const Problem& p) {
  const GroupShape& g = p.groups.front();
  const auto groups = static_cast<int64_t>(p.groups.size());
  const gg::Dtype dtype = p.bf16 ? gg::kBFloat16 : gg::kFloat32;
  struct State {
    gg::Tensor x, w, grad;
  };
  auto s = std::make_shared<State>();
  s->x = gg::randn({groups, g.m, g.k}, dtype).requires_grad_(p.backward);
  s->w = gg::randn({groups, g.k, g.n}, dtype).requires_grad_(p.backward);
  s->grad = gg::ones({groups, g.m, g.n}, dtype);
  auto run = [s, backward = p.backward] {
    if (!backward) {
      gg::NoGradGuard no_grad;
      F::grouped_mm(s->x, s->w);
      return;
    }
    F::grouped_mm(s->x, s->w).backward(s->grad);
  };
  return {"groupgrad, 3D x 3D", run, groupgrad_memory_counter(),
          "the groups stacked: one [G, m, k] @ [G, k, n] call, as torch.bmm"};
}

MemoryCounter groupgrad_memory_counter() {
  return {&gg::Storage::reset_peak_bytes, &gg::Storage::peak_bytes, &gg::Storage::live_bytes};
}

}  // namespace gg::bench
