// tools/bench: times grouped_mm on the workloads of DESIGN.md and the peers in the same run, and
// prints medians, GFLOPS, time per group and the ratio to each peer (peer time / our time, so
// above 1 means we are faster). --json writes the same rows as JSON.
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <groupgrad/autograd/node.hpp>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "autograd_overhead.hpp"
#include "peers.hpp"

namespace F = gg::nn::functional;
using gg::bench::GroupShape;
using gg::bench::Problem;
using gg::bench::Timing;

namespace {

struct Row {
  std::string workload;  // e.g. "moe f32 fwd"
  std::string variant;   // "groupgrad", "dense oneDNN GEMM", "libtorch loop of mm", ...
  Timing timing;
  double flops = 0;
  int64_t groups = 0;
  int64_t peak_bytes = -1;  // groupgrad tensors only
};

double flops_of(const Problem& p) {
  double f = 0;
  for (const GroupShape& g : p.groups) f += 2.0 * g.m * g.k * g.n;
  return p.backward ? 3 * f : f;
}

gg::Dtype dtype_of(const Problem& p) { return p.bf16 ? gg::kBFloat16 : gg::kFloat32; }

// Our grouped_mm on the problem: packed 2D x 3D with offs, or the list form.
Timing time_groupgrad(const Problem& p, int warmup, int reps, int64_t* peak) {
  const gg::Dtype dtype = dtype_of(p);
  std::function<std::vector<gg::Tensor>()> forward;
  std::vector<gg::Tensor> leaves;
  gg::Tensor x, w, offs;
  std::vector<gg::Tensor> xs, ws, bs;
  if (p.packed) {
    int64_t total = 0;
    std::vector<int32_t> ends;
    for (const GroupShape& g : p.groups) ends.push_back(static_cast<int32_t>(total += g.m));
    const GroupShape& g0 = p.groups.front();
    x = gg::randn({total, g0.k}, dtype).requires_grad_(p.backward);
    w = gg::randn({static_cast<int64_t>(p.groups.size()), g0.k, g0.n}, dtype)
            .requires_grad_(p.backward);
    offs = gg::tensor<int32_t>(ends);
    forward = [&] { return std::vector<gg::Tensor>{F::grouped_mm(x, w, {.offs = offs})}; };
  } else {
    for (const GroupShape& g : p.groups) {
      xs.push_back(gg::randn({g.m, g.k}, dtype).requires_grad_(p.backward));
      ws.push_back(gg::randn({g.k, g.n}, dtype).requires_grad_(p.backward));
      if (p.bias) bs.push_back(gg::randn({g.n}, dtype).requires_grad_(p.backward));
    }
    forward = [&] { return F::grouped_mm(xs, ws, F::GroupedMMOptions{.bias = bs}); };
  }
  // Backward from every output at once with a ones gradient, as the libtorch peer does.
  std::vector<gg::Tensor> grads;
  for (const gg::Tensor& y : forward()) grads.push_back(gg::ones(y.shape(), y.dtype()));
  auto step = [&] {
    if (!p.backward) {
      gg::NoGradGuard no_grad;
      forward();
      return;
    }
    gg::autograd::run_backward(forward(), grads, /*retain_graph=*/false);
  };
  step();
  gg::Storage::reset_peak_bytes();
  int64_t before = gg::Storage::live_bytes();
  Timing t = gg::bench::time_it(step, warmup, reps);
  *peak = gg::Storage::peak_bytes() - before;
  return t;
}

// One dense GEMM with the same FLOPs (the machine's limit): [sum m, k] @ [k, n].
Timing time_dense(const Problem& p, int warmup, int reps) {
  int64_t total = 0;
  for (const GroupShape& g : p.groups) total += g.m;
  const GroupShape& g0 = p.groups.front();
  gg::Tensor a = gg::randn({total, g0.k}, dtype_of(p)).requires_grad_(p.backward);
  gg::Tensor b = gg::randn({g0.k, g0.n}, dtype_of(p)).requires_grad_(p.backward);
  return gg::bench::time_it(
      [&] {
        if (!p.backward) {
          gg::NoGradGuard no_grad;
          a.matmul(b);
          return;
        }
        a.matmul(b).sum().backward();
      },
      warmup, reps);
}

bool uniform(const Problem& p) {
  for (const GroupShape& g : p.groups)
    if (g.k != p.groups[0].k || g.n != p.groups[0].n) return false;
  return true;
}

struct Workload {
  std::string id;
  std::string name;
  Problem problem;
  bool dense_peer = false, naive_peer = false, bmm_peer = false;
};

std::vector<Workload> workloads() {
  std::vector<Workload> out;
  std::vector<GroupShape> moe;
  for (int64_t m : {1024, 768, 640, 512, 448, 320, 256, 128}) moe.push_back({m, 512, 1024});
  for (bool bf16 : {false, true})
    for (bool backward : {false, true}) {
      Problem p{moe, bf16, false, backward, true};
      out.push_back({"moe",
                     fmt::format("moe {} {}", bf16 ? "bf16" : "f32", backward ? "fwd+bwd" : "fwd"),
                     p, true, !backward, false});
    }
  std::vector<GroupShape> heads(8, {320, 64, 64});
  out.push_back({"heads", "heads f32 fwd", {heads, false, false, false, false}, true, true, true});
  out.push_back(
      {"heads", "heads f32 fwd+bwd", {heads, false, false, true, false}, true, false, true});
  std::vector<GroupShape> tiny(64, {16, 32, 32});
  out.push_back({"tiny", "tiny f32 fwd", {tiny, false, false, false, false}, false, true, true});
  out.push_back(
      {"tiny", "tiny f32 fwd+bwd", {tiny, false, false, true, false}, false, false, true});
  std::vector<GroupShape> mixed{{100, 50, 64}, {100, 75, 128}, {100, 30, 32}};
  out.push_back(
      {"mixed", "mixed f32 fwd (bias)", {mixed, false, true, false, false}, false, true, false});
  out.push_back({"mixed",
                 "mixed f32 fwd+bwd (bias)",
                 {mixed, false, true, true, false},
                 false,
                 false,
                 false});
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"groupgrad benchmarks: grouped_mm against peers measured in the same run"};
  std::vector<std::string> only;
  int reps = 30, warmup = 5;
  std::string json_path;
  app.add_option("--workload,-w", only,
                 "Workloads to run: moe, heads, tiny, mixed, autograd (default: all)")
      ->check(CLI::IsMember({"moe", "heads", "tiny", "mixed", "autograd"}));
  app.add_option("--reps", reps, "Timed repetitions per variant (the median is reported)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "Untimed runs before timing")->check(CLI::Range(0, 100000));
  app.add_option("--json", json_path, "Also write the rows as JSON to this file");
  CLI11_PARSE(app, argc, argv);

  gg::manual_seed(0);
  std::vector<Row> rows;
  for (const Workload& w : workloads()) {
    if (!only.empty() && std::find(only.begin(), only.end(), w.id) == only.end()) continue;
    const Problem& p = w.problem;
    const double flops = flops_of(p);
    const int64_t g = static_cast<int64_t>(p.groups.size());
    int64_t peak = 0;
    rows.push_back({w.name, "groupgrad", time_groupgrad(p, warmup, reps, &peak), flops, g, peak});
    if (w.dense_peer && uniform(p))
      rows.push_back(
          {w.name, "dense oneDNN GEMM, same FLOPs", time_dense(p, warmup, reps), flops, g});
    if (w.naive_peer)
      rows.push_back({w.name, "oneDNN loop, primitive per call",
                      gg::bench::onednn_naive_loop(p, warmup, reps), flops, g});
    if (gg::bench::libtorch_available()) {
      rows.push_back({w.name, p.backward ? "libtorch loop of mm + autograd" : "libtorch loop of mm",
                      gg::bench::libtorch_loop(p, warmup, reps), flops, g});
      if (w.bmm_peer && uniform(p))
        rows.push_back(
            {w.name, "libtorch bmm", gg::bench::libtorch_bmm(p, warmup, reps), flops, g});
    }
    std::fflush(stdout);
  }
  // The autograd overhead per op: "us/group" is microseconds per op of the chain.
  if (only.empty() || std::find(only.begin(), only.end(), "autograd") != only.end()) {
    for (const gg::bench::OverheadRow& r : gg::bench::autograd_overhead(warmup, reps))
      rows.push_back({r.name, "groupgrad", r.timing, 0, r.ops});
  }

  // The table: each groupgrad row is followed by its peers, with peer time / our time.
  std::map<std::string, double> ours;
  for (const Row& r : rows)
    if (r.variant == "groupgrad") ours[r.workload] = r.timing.median_ms;
  fmt::print("groupgrad bench: {} reps after {} warm-up, medians; libtorch {}\n", reps, warmup,
             gg::bench::libtorch_version());
  fmt::print("{:<26} {:<34} {:>10} {:>9} {:>10} {:>12} {:>10}\n", "workload", "variant",
             "median ms", "GFLOPS", "us/group", "peer/ours", "peak MiB");
  nlohmann::json json = nlohmann::json::array();
  for (const Row& r : rows) {
    double gflops = r.flops / (r.timing.median_ms * 1e6);
    double us_per_group = r.timing.median_ms * 1000 / static_cast<double>(r.groups);
    double ratio = r.variant == "groupgrad" ? 1.0 : r.timing.median_ms / ours[r.workload];
    std::string peak = r.peak_bytes >= 0 ? fmt::format("{:.1f}", r.peak_bytes / 1048576.0) : "";
    fmt::print("{:<26} {:<34} {:>10.3f} {:>9.1f} {:>10.2f} {:>12} {:>10}\n", r.workload, r.variant,
               r.timing.median_ms, gflops, us_per_group,
               r.variant == "groupgrad" ? std::string("-") : fmt::format("{:.2f}x", ratio), peak);
    json.push_back({{"workload", r.workload},
                    {"variant", r.variant},
                    {"median_ms", r.timing.median_ms},
                    {"min_ms", r.timing.min_ms},
                    {"reps", r.timing.reps},
                    {"gflops", gflops},
                    {"us_per_group", us_per_group},
                    {"peer_time_over_ours", ratio},
                    {"peak_bytes", r.peak_bytes}});
  }
  struct rusage usage {};
  getrusage(RUSAGE_SELF, &usage);
  fmt::print("max resident set size of the whole run: {:.1f} MiB\n", usage.ru_maxrss / 1024.0);
  if (!json_path.empty()) {
    std::ofstream(json_path) << json.dump(2) << "\n";
    fmt::print("wrote {}\n", json_path);
  }
  return 0;
}
