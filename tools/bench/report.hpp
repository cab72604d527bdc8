#pragma once
// The bench's output: a table (one groupgrad row per workload, followed by its peers with
// peer time / our time) and the same as JSON.
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "memory.hpp"
#include "timing.hpp"

namespace gg::bench {

struct Row {
  std::string workload;  // e.g. "moe f32 fwd"
  std::string variant;   // "groupgrad", "dense oneDNN GEMM, same FLOPs", ...
  Timing timing;
  double flops = 0;    // of one call; 0 when not counted (train)
  int64_t groups = 0;  // 0 when not meaningful (train)
  MemoryReading memory;
  std::string note;
};

struct Report {
  std::vector<std::pair<std::string, std::string>> about;  // machine, threads, load, versions
  std::vector<Row> rows;
  std::vector<std::string> notes;
};

void print_report(const Report& report);
nlohmann::json report_json(const Report& report);

}  // namespace gg::bench
