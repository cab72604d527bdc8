#pragma once
// Peers that tools/bench measures in the same run as groupgrad: libtorch (when built with
// -DGG_BENCH_LIBTORCH=ON) and a naive loop that builds a oneDNN primitive per group per call.
#include <cstdint>
#include <string>
#include <vector>

#include "timing.hpp"

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

bool libtorch_available();
std::string libtorch_version();
// A loop of torch::mm / addmm (with autograd when backward), and torch::bmm for uniform groups.
Timing libtorch_loop(const Problem& p, int warmup, int reps);
Timing libtorch_bmm(const Problem& p, int warmup, int reps);

// A loop over groups that builds the oneDNN matmul primitive for each group on every call (what
// a first attempt without a primitive cache does). Forward only, f32 or bf16.
Timing onednn_naive_loop(const Problem& p, int warmup, int reps);

}  // namespace gg::bench
