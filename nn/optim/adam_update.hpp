#pragma once
// The fused per-element update of Adam and AdamW: one pass over parameter, gradient and the two
// moment buffers, in double whatever the parameter dtype (the formulas of adam.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>

namespace gg::optim::detail {

// The per-step constants of one parameter's update.
struct AdamUpdate {
  double beta1, beta2, eps, weight_decay, step_size, bias_correction2_sqrt, decay;
};
struct AdamFlags {
  bool decoupled, weight_decay, amsgrad;
};

// The flags are template arguments so that the loop has no branches and vectorises (where the
// including file is compiled without errno from sqrt, as adam_update.cpp is).
template <class T, bool kDecoupled, bool kWeightDecay, bool kAmsgrad>
[[gnu::always_inline]] inline void update(const AdamUpdate& u, int64_t n, T* __restrict p,
                                          const T* __restrict g, T* __restrict m, T* __restrict v,
                                          T* __restrict v_max) {
  for (int64_t j = 0; j < n; ++j) {
    double pj = static_cast<double>(p[j]);
    double d = static_cast<double>(g[j]);
    if constexpr (kDecoupled) {
      pj *= u.decay;
    } else if constexpr (kWeightDecay) {
      d += u.weight_decay * pj;
    }
    const double mj = u.beta1 * static_cast<double>(m[j]) + (1 - u.beta1) * d;
    double vj = u.beta2 * static_cast<double>(v[j]) + (1 - u.beta2) * d * d;
    m[j] = static_cast<T>(mj);
    v[j] = static_cast<T>(vj);
    if constexpr (kAmsgrad) {
      vj = std::max(static_cast<double>(v_max[j]), vj);
      v_max[j] = static_cast<T>(vj);
    }
    const double denom = std::sqrt(vj) / u.bias_correction2_sqrt + u.eps;
    p[j] = static_cast<T>(pj - u.step_size * mj / denom);
  }
}

// Calls fn.template operator()<decoupled, weight_decay, amsgrad>() with the flags as constants
// (with decoupled weight decay the gradient gets none).
template <class Fn>
inline void with_flags(const AdamFlags& f, Fn&& fn) {
  auto amsgrad = [&]<bool D, bool WD>() {
    if (f.amsgrad)
      fn.template operator()<D, WD, true>();
    else
      fn.template operator()<D, WD, false>();
  };
  if (f.decoupled)
    amsgrad.template operator()<true, false>();
  else if (f.weight_decay)
    amsgrad.template operator()<false, true>();
  else
    amsgrad.template operator()<false, false>();
}

// The Float32 update, vectorised (AVX-512, AVX2 or SSE2, picked once per process from the CPU,
// capped by ONEDNN_MAX_CPU_ISA like oneDNN), with the bits of the scalar loop.
void update_f32(const AdamUpdate& u, const AdamFlags& f, int64_t n, float* p, const float* g,
                float* m, float* v, float* v_max);
// Which clone update_f32 runs: "avx512f", "avx2" or "baseline".
const char* update_f32_clone();

}  // namespace gg::optim::detail
