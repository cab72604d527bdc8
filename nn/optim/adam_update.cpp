// Compiled with -fno-math-errno (sqrt's errno check is a branch that keeps the loop scalar; its
// argument is never negative) and -ffp-contract=off (no FMA in the AVX clones, so that every
// clone computes the bits of the baseline build): see CMakeLists.txt.
#include "nn/optim/adam_update.hpp"

// Clones for AVX-512 and AVX2: the sqrt and division of every element dominate, and the
// baseline build has 2-wide SSE2 doubles only. Picked once per process by hand rather than by
// target_clones' ifunc resolver, for two reasons: the choice follows ONEDNN_MAX_CPU_ISA too, so
// that CI's run "as an SSE4.1 CPU" tests the baseline loop (a resolver only sees the CPU), and an
// ifunc resolver runs before ThreadSanitizer's runtime is up and crashes the process.
#include "ops/onednn/context.hpp"

namespace gg::optim::detail {

namespace {

using UpdateF32 = void (*)(const AdamUpdate&, const AdamFlags&, int64_t, float*, const float*,
                           float*, float*, float*);

// The body of every clone (inlined into each, so each is vectorised for its target).
[[gnu::always_inline]] inline void update_f32_body(const AdamUpdate& u, const AdamFlags& f,
                                                   int64_t n, float* p, const float* g, float* m,
                                                   float* v, float* v_max) {
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

[[gnu::target("avx512f")]] void update_f32_avx512(const AdamUpdate& u, const AdamFlags& f,
                                                  int64_t n, float* p, const float* g, float* m,
                                                  float* v, float* v_max) {
  update_f32_body(u, f, n, p, g, m, v, v_max);
}

[[gnu::target("avx2")]] void update_f32_avx2(const AdamUpdate& u, const AdamFlags& f, int64_t n,
                                             float* p, const float* g, float* m, float* v,
                                             float* v_max) {
  update_f32_body(u, f, n, p, g, m, v, v_max);
}

void update_f32_baseline(const AdamUpdate& u, const AdamFlags& f, int64_t n, float* p,
                         const float* g, float* m, float* v, float* v_max) {
  update_f32_body(u, f, n, p, g, m, v, v_max);
}

struct Clone {
  UpdateF32 fn;
  const char* name;
};

const Clone& clone() {
  static const Clone chosen = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && onednn::isa_at_least(dnnl::cpu_isa::avx512_core))
      return Clone{&update_f32_avx512, "avx512f"};
    if (__builtin_cpu_supports("avx2") && onednn::isa_at_least(dnnl::cpu_isa::avx2))
      return Clone{&update_f32_avx2, "avx2"};
    return Clone{&update_f32_baseline, "baseline"};
  }();
  return chosen;
}

}  // namespace

void update_f32(const AdamUpdate& u, const AdamFlags& f, int64_t n, float* p, const float* g,
                float* m, float* v, float* v_max) {
  clone().fn(u, f, n, p, g, m, v, v_max);
}

const char* update_f32_clone() { return clone().name; }

}  // namespace gg::optim::detail
