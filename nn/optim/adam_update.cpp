// Compiled with -fno-math-errno (sqrt's errno check is a branch that keeps the loop scalar; its
// argument is never negative) and -ffp-contract=off (no FMA in the AVX clones, so that every
// clone computes the bits of the baseline build): see CMakeLists.txt.
#include "nn/optim/adam_update.hpp"

// Clones for AVX-512 and AVX2: the sqrt and division of every element dominate, and the
// baseline build has 2-wide SSE2 doubles only. Not under ThreadSanitizer: the clones are picked
// by an ifunc resolver, which runs before TSan's runtime is up and crashes the process (GCC 12
// and clang 14 alike).
#if defined(__SANITIZE_THREAD__)
#define GG_ADAM_CLONES
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GG_ADAM_CLONES
#endif
#endif
#ifndef GG_ADAM_CLONES
#define GG_ADAM_CLONES [[gnu::target_clones("avx512f", "avx2", "default")]]
#endif

namespace gg::optim::detail {

GG_ADAM_CLONES void update_f32(const AdamUpdate& u, const AdamFlags& f, int64_t n, float* p,
                               const float* g, float* m, float* v, float* v_max) {
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
