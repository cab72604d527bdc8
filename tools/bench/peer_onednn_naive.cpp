// A loop over groups that builds the oneDNN matmul primitive for each group on every call: what
// a first attempt without a primitive cache does (oneDNN's own primitive cache still helps it).
#include <groupgrad/ops/backend_info.hpp>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <vector>

#include "peers.hpp"

namespace gg::bench {

Variant onednn_naive_loop(const Problem& p) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  struct State {
    dnnl::engine engine{dnnl::engine::kind::cpu, 0};
    dnnl::stream stream{engine};
    std::vector<std::vector<char>> x, w, y;
  };
  auto s = std::make_shared<State>();
  const bool bf16 = p.bf16 && gg::backend::native_bf16();
  const size_t elem = bf16 ? 2 : 4;
  for (const GroupShape& g : p.groups) {
    // Zero-filled operands: a matmul's time does not depend on the values.
    s->x.emplace_back(static_cast<size_t>(g.m * g.k) * elem);
    s->w.emplace_back(static_cast<size_t>(g.k * g.n) * elem);
    s->y.emplace_back(static_cast<size_t>(g.m * g.n) * elem);
  }
  const dt type = bf16 ? dt::bf16 : dt::f32;
  auto run = [s, groups = p.groups, type] {
    for (size_t i = 0; i < groups.size(); ++i) {
      const GroupShape& g = groups[i];
      if (g.m == 0) continue;
      dnnl::memory::desc x({g.m, g.k}, type, tag::ab), w({g.k, g.n}, type, tag::ab),
          y({g.m, g.n}, type, tag::ab);
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(x, w, y), s->engine);
      dnnl::matmul prim(pd);
      dnnl::memory xm(x, s->engine, s->x[i].data()), wm(w, s->engine, s->w[i].data()),
          ym(y, s->engine, s->y[i].data());
      prim.execute(s->stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
    }
    s->stream.wait();
  };
  return {"oneDNN loop, primitive per call",
          run,
          {},
          p.bf16 && !bf16 ? "f32 (no bf16 matmul on this ISA)" : ""};
}

}  // namespace gg::bench
