// Compiled with -fno-math-errno (sqrt's errno check is a branch that keeps the loop scalar; its
// argument is never negative) and -ffp-contract=off (no FMA in the AVX clones, so that every
// clone computes the bits of the baseline build): see CMakeLists.txt.
#include "nn/optim/adam_update.hpp"

namespace gg::optim::detail {

// Clones for AVX-512 and AVX2: the sqrt and division of every element dominate, and the
// baseline build has 2-wide SSE2 doubles only.
[[gnu::target_clones("avx512f", "avx2", "default")]] void update_f32(const AdamUpdate& u,
                                                                     const AdamFlags& f, int64_t n,
                                                                     float* p, const float* g,
                                                                     float* m, float* v,
                                                                     float* v_max) {
  // Spelled out rather than through with_flags: the loop must be inlined into each clone.
  if (f.decoupled) {
    if (f.amsgrad)
      update<float, true, false, true>(u, n, p, g, m, v, v_max);
    else
      update<float, true, false, false>(u, n, p, g, m, v, v_max);
  } else if (f.weight_decay) {
    if (f.amsgrad)
      update<float, false, true, true>(u, n, p, g, m, v, v_max);
    else
      update<float, false, true, false>(u, n, p, g, m, v, v_max);
  } else {
    if (f.amsgrad)
      update<float, false, false, true>(u, n, p, g, m, v, v_max);
    else
      update<float, false, false, false>(u, n, p, g, m, v, v_max);
  }
}

}  // namespace gg::optim::detail
