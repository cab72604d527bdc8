#pragma once
// The autograd overhead per op, for tools/bench: a chain of cheap ops whose arithmetic costs next
// to nothing, so that what is timed is the ops' fixed costs, their recording on the tape and the
// engine's backward walk.
#include <string>
#include <vector>

#include "timing.hpp"

namespace gg::bench {

struct OverheadRow {
  std::string name;  // e.g. "autograd 64 adds, fwd+bwd"
  Timing timing;
  int ops = 0;  // ops in the chain: time per op = median / ops
};

// The chain y = y + b, 64 times on [16] Float32 tensors (b a leaf that requires grad): without
// grad mode (the ops alone), and forward + backward (recording, the walk, the backward ops and
// 64 accumulations into b's grad).
std::vector<OverheadRow> autograd_overhead(int warmup, int reps);

}  // namespace gg::bench
