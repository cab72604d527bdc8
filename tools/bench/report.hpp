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

// A table with columns of its own (the dp workload's), printed after the main table.
struct Table {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;  // as many cells as header
  std::vector<std::string> notes;              // printed under it
  size_t left_columns = 1;                     // the first ones are left-aligned, the rest right
};

struct Report {
  std::vector<std::pair<std::string, std::string>> about;  // machine, threads, load, versions
  std::vector<Row> rows;
  std::vector<std::string> notes;
  std::vector<Table> tables;
  nlohmann::json extra = nlohmann::json::object();  // merged into the JSON (e.g. "dp")
};

void print_report(const Report& report);
nlohmann::json report_json(const Report& report);

}  // namespace gg::bench
