#pragma once
// Timing for tools/bench: the variants of one workload (ours and each peer) are timed in
// alternation -- round r runs every variant once before round r + 1 starts -- so that load from
// other processes on this shared machine, which comes and goes over seconds, falls on all of them
// alike, and the ratios between their medians stay meaningful.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

namespace gg::bench {

struct Timing {
  double median_ms = 0;  // of one call
  double min_ms = 0;
  double p25_ms = 0, p75_ms = 0;
  int reps = 0;   // samples the median is over
  int inner = 1;  // calls per sample (short calls are batched so a sample is >= min_sample_ms)
};

inline double elapsed_ms(const std::function<void()>& fn, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) fn();
  const auto stop = std::chrono::steady_clock::now();
  return std::chrono::duration<double, std::milli>(stop - start).count();
}

// Runs each fn `warmup` times, then `reps` rounds of every fn in turn; a sample is the mean of
// `inner` back-to-back calls, with inner chosen from the warm-up so that a sample lasts about
// min_sample_ms (a clock read per microsecond-long call would measure the clock).
inline std::vector<Timing> time_interleaved(const std::vector<std::function<void()>>& fns,
                                            int warmup, int reps, double min_sample_ms = 2.0) {
  std::vector<int> inner(fns.size(), 1);
  for (size_t v = 0; v < fns.size(); ++v) {
    const double ms = elapsed_ms(fns[v], std::max(warmup, 1));
    const double per_call = ms / std::max(warmup, 1);
    inner[v] = static_cast<int>(
        std::clamp(std::ceil(min_sample_ms / std::max(per_call, 1e-6)), 1.0, 10000.0));
  }
  std::vector<std::vector<double>> samples(fns.size());
  for (int r = 0; r < reps; ++r)
    for (size_t v = 0; v < fns.size(); ++v)
      samples[v].push_back(elapsed_ms(fns[v], inner[v]) / inner[v]);
  std::vector<Timing> out;
  for (size_t v = 0; v < fns.size(); ++v) {
    std::vector<double>& s = samples[v];
    std::sort(s.begin(), s.end());
    auto at = [&](double q) {
      return s[static_cast<size_t>(q * static_cast<double>(s.size() - 1))];
    };
    out.push_back({at(0.5), s.front(), at(0.25), at(0.75), reps, inner[v]});
  }
  return out;
}

}  // namespace gg::bench
