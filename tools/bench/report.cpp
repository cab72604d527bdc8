#include "report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

namespace gg::bench {

namespace {
constexpr const char* kOurs = "groupgrad";

struct Derived {
  double gflops = 0, us_per_group = 0, ratio = 1;
};

// GFLOPS, time per group and peer time / our time (above 1: groupgrad is faster).
Derived derive(const Row& r, const std::map<std::string, double>& ours) {
  Derived d;
  const double ms = r.timing.median_ms;
  if (r.flops > 0) d.gflops = r.flops / (ms * 1e6);
  if (r.groups > 0) d.us_per_group = ms * 1000 / static_cast<double>(r.groups);
  if (auto it = ours.find(r.workload); it != ours.end() && r.variant != kOurs)
    d.ratio = ms / it->second;
  return d;
}

std::map<std::string, double> our_medians(const Report& report) {
  std::map<std::string, double> ours;
  for (const Row& r : report.rows)
    if (r.variant == kOurs) ours[r.workload] = r.timing.median_ms;
  return ours;
}

std::string mib(int64_t bytes) {
  return bytes >= 0 ? fmt::format("{:.1f}", static_cast<double>(bytes) / 1048576.0) : "-";
}

void print_rows(const Report& report) {
  const auto ours = our_medians(report);
  fmt::print("\n{:<26} {:<34} {:>10} {:>8} {:>10} {:>9} {:>9} {:>8}\n", "workload", "variant",
             "median ms", "GFLOPS", "us/group", "peer/ours", "alloc MiB", "RSS MiB");
  std::string last;
  for (const Row& r : report.rows) {
    if (!last.empty() && r.workload != last) fmt::print("\n");
    last = r.workload;
    const Derived d = derive(r, ours);
    fmt::print("{:<26} {:<34} {:>10.3f} {:>8} {:>10} {:>9} {:>9} {:>8}\n", r.workload, r.variant,
               r.timing.median_ms, r.flops > 0 ? fmt::format("{:.1f}", d.gflops) : "-",
               r.groups > 0 ? fmt::format("{:.2f}", d.us_per_group) : "-",
               r.variant == kOurs ? std::string("-") : fmt::format("{:.2f}x", d.ratio),
               mib(r.memory.alloc_peak), mib(r.memory.rss_peak));
  }
  fmt::print(
      "\npeer/ours: the peer's median time over groupgrad's (above 1: groupgrad is faster). "
      "alloc MiB: peak tensor bytes\nof one call over those live before it (groupgrad's "
      "Storage counters; libtorch's CPU allocator, counted); RSS MiB:\nthe resident-set "
      "high-water mark during one call over the resident set before it (- where unavailable).\n");
}

void print_table(const Table& t) {
  std::vector<size_t> width(t.header.size());
  for (size_t c = 0; c < t.header.size(); ++c) {
    width[c] = t.header[c].size();
    for (const auto& row : t.rows) width[c] = std::max(width[c], row.at(c).size());
  }
  auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (size_t c = 0; c < cells.size(); ++c)
      out += c < t.left_columns ? fmt::format("{}{:<{}}", c ? "  " : "", cells[c], width[c])
                                : fmt::format("  {:>{}}", cells[c], width[c]);
    fmt::print("{}\n", out);
  };
  fmt::print("\n{}\n", t.title);
  line(t.header);
  for (const auto& row : t.rows) line(row);
  for (const std::string& n : t.notes) fmt::print("note: {}\n", n);
}
}  // namespace

void print_report(const Report& report) {
  for (const auto& [key, value] : report.about) fmt::print("{:<18} {}\n", key + ":", value);
  if (!report.rows.empty()) print_rows(report);
  for (const Table& t : report.tables) print_table(t);
  if (!report.notes.empty()) fmt::print("\n");
  for (const std::string& n : report.notes) fmt::print("note: {}\n", n);
}

nlohmann::json report_json(const Report& report) {
  nlohmann::json about = nlohmann::json::object();
  for (const auto& [key, value] : report.about) about[key] = value;
  const auto ours = our_medians(report);
  nlohmann::json rows = nlohmann::json::array();
  for (const Row& r : report.rows) {
    const Derived d = derive(r, ours);
    rows.push_back({{"workload", r.workload},
                    {"variant", r.variant},
                    {"median_ms", r.timing.median_ms},
                    {"min_ms", r.timing.min_ms},
                    {"p25_ms", r.timing.p25_ms},
                    {"p75_ms", r.timing.p75_ms},
                    {"samples", r.timing.reps},
                    {"calls_per_sample", r.timing.inner},
                    {"flops", r.flops},
                    {"gflops", d.gflops},
                    {"groups", r.groups},
                    {"us_per_group", d.us_per_group},
                    {"peer_time_over_ours", d.ratio},
                    {"alloc_peak_bytes", r.memory.alloc_peak},
                    {"alloc_live_before_bytes", r.memory.alloc_live_before},
                    {"rss_peak_bytes", r.memory.rss_peak},
                    {"note", r.note}});
  }
  nlohmann::json out = {{"about", about}, {"rows", rows}, {"notes", report.notes}};
  for (const auto& [key, value] : report.extra.items()) out[key] = value;
  return out;
}

}  // namespace gg::bench
