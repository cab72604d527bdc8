#include <memory>
#include <oneapi/dnnl/dnnl.hpp>

#include "peers.hpp"

namespace gg::bench {

Timing onednn_naive_loop(const Problem& p, int warmup, int reps) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const dt type = p.bf16 ? dt::bf16 : dt::f32;
  const size_t elem = p.bf16 ? 2 : 4;
  struct Buffers {
    std::unique_ptr<char[]> x, w, y;
  };
  std::vector<Buffers> buffers;
  for (const GroupShape& g : p.groups) {
    buffers.push_back({std::make_unique<char[]>(g.m * g.k * elem + 1),
                       std::make_unique<char[]>(g.k * g.n * elem + 1),
                       std::make_unique<char[]>(g.m * g.n * elem + 1)});
  }
  return time_it(
      [&] {
        for (size_t i = 0; i < p.groups.size(); ++i) {
          const GroupShape& g = p.groups[i];
          if (g.m == 0) continue;
          dnnl::memory::desc x({g.m, g.k}, type, tag::ab), w({g.k, g.n}, type, tag::ab),
              y({g.m, g.n}, type, tag::ab);
          dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(x, w, y), engine);
          dnnl::matmul prim(pd);
          dnnl::memory xm(x, engine, buffers[i].x.get()), wm(w, engine, buffers[i].w.get()),
              ym(y, engine, buffers[i].y.get());
          prim.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ym}});
        }
        stream.wait();
      },
      warmup, reps);
}

}  // namespace gg::bench
