#pragma once
// The variants tools/bench times side by side: groupgrad itself and its peers -- one dense oneDNN
// GEMM with the same FLOPs (the machine's limit), a naive loop that builds a oneDNN primitive per
// group per call, and libtorch (when built with -DGG_BENCH_LIBTORCH=ON). Each is prepared once
// (operands, primitives) and handed back as a callable that does one call's work.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "memory.hpp"

namespace gg::bench {

struct GroupShape {
  int64_t m = 0, k = 0, n = 0;
};

// A grouped product: out_g = x_g @ w_g (+ b_g). `packed` means the x_g are row ranges of one
// [sum m, k] tensor and the w_g slices of one [G, k, n] tensor (the MoE layout).
struct Problem {
  std::vector<GroupShape> groups;
  bool bf16 = false;
  bool bias = false;
  bool backward = false;  // time forward + backward (gradients for x, w and b)
  bool packed = false;
};

struct Variant {
  std::string name;
  std::function<void()> run;  // one call: forward, or forward + backward
  MemoryCounter memory;       // the allocator that run() allocates tensors from, if any
  std::string note;           // e.g. the oneDNN implementations a peer runs on
};

inline int64_t total_rows(const Problem& p) {
  int64_t rows = 0;
  for (const GroupShape& g : p.groups) rows += g.m;
  return rows;
}

// Every group has the same k and n (a dense GEMM over the stacked rows has the same FLOPs).
inline bool uniform_kn(const Problem& p) {
  for (const GroupShape& g : p.groups)
    if (g.k != p.groups[0].k || g.n != p.groups[0].n) return false;
  return true;
}

// oneDNN peers (peer_onednn_*.cpp). The dense GEMM needs uniform k and n. oneDNN 2.6 has no
// bf16 matmul below AVX512_CORE: there a bf16 workload's oneDNN peers run f32 (the fastest
// oneDNN product of those FLOPs on this CPU) and say so in their note.
Variant onednn_dense(const Problem& p);
Variant onednn_naive_loop(const Problem& p);  // forward only

// libtorch peers (peer_libtorch.cpp, or the stand-ins of peer_libtorch_none.cpp).
bool libtorch_available();
std::string libtorch_version();
// The BLAS that libtorch's matmul calls, as loaded in this process (library path and config).
std::string libtorch_blas();
// The counters of libtorch's CPU allocator (a counting allocator the peers install).
MemoryCounter libtorch_memory_counter();
// The same thread count for libtorch's intra-op pool and its BLAS.
void libtorch_set_threads(int threads);
// Loops of torch::mm (addmm and linear with bias; autograd when backward), and torch::bmm for
// uniform list-form groups.
std::vector<Variant> libtorch_variants(const Problem& p);

}  // namespace gg::bench
