#pragma once
// Peak-memory readings for tools/bench. Two measures, because neither alone is fair to everyone:
//  - the allocator's peak: bytes of tensor storage live at once during a call, over those live
//    before it (groupgrad's Storage counters; for libtorch a counting CPU allocator); it misses
//    what kernels allocate on their own (oneDNN scratchpads, BLAS buffers);
//  - the resident-set high-water mark during a call over the resident set before it (Linux
//    VmHWM, reset through /proc/self/clear_refs, after malloc_trim so that memory freed earlier is
//    not silently reused); it sees everything, including first touches of memory.
#include <cstdint>
#include <functional>

namespace gg::bench {

struct MemoryCounter {  // an allocator's counters; empty when the variant has none
  std::function<void()> reset_peak;
  std::function<int64_t()> peak_bytes;
  std::function<int64_t()> live_bytes;
};

struct MemoryReading {
  int64_t alloc_peak = -1;  // -1: no allocator counter
  int64_t alloc_live_before = -1;
  int64_t rss_peak = -1;  // -1: the resident-set peak cannot be reset here
};

// Runs fn once and reads both measures around it.
MemoryReading measure_memory(const std::function<void()>& fn, const MemoryCounter& counter);

}  // namespace gg::bench
