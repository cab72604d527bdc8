#include "memory.hpp"

#include <malloc.h>

#include <fstream>
#include <string>

namespace gg::bench {

namespace {
// A "Name:   1234 kB" field of /proc/self/status, in bytes; -1 when absent.
int64_t status_bytes(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1)) * 1024;
  return -1;
}

bool reset_rss_high_water() {
  malloc_trim(0);
  std::ofstream out("/proc/self/clear_refs");
  out << "5";  // resets VmHWM to the current resident set (Linux 4.0+)
  out.flush();
  return out.good();
}
}  // namespace

MemoryReading measure_memory(const std::function<void()>& fn, const MemoryCounter& counter) {
  MemoryReading r;
  const bool rss = reset_rss_high_water();
  const int64_t rss_before = status_bytes("VmRSS");
  if (counter.reset_peak) {
    counter.reset_peak();
    r.alloc_live_before = counter.live_bytes();
  }
  fn();
  if (counter.reset_peak) r.alloc_peak = counter.peak_bytes() - r.alloc_live_before;
  if (rss && rss_before >= 0) r.rss_peak = status_bytes("VmHWM") - rss_before;
  return r;
}

}  // namespace gg::bench
