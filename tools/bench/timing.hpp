#pragma once
// Timing for tools/bench: medians of repeated runs after warm-up, and peak-memory readings.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

namespace gg::bench {

struct Timing {
  double median_ms = 0;
  double min_ms = 0;
  int reps = 0;
};

// Runs fn `warmup` times, then `reps` times, and returns the median wall time of one run.
inline Timing time_it(const std::function<void()>& fn, int warmup, int reps) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> ms;
  ms.reserve(reps);
  for (int i = 0; i < reps; ++i) {
    auto start = std::chrono::steady_clock::now();
    fn();
    auto stop = std::chrono::steady_clock::now();
    ms.push_back(std::chrono::duration<double, std::milli>(stop - start).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front(), reps};
}

}  // namespace gg::bench
