// tools/bench: times grouped_mm on the workloads below and the peers in the same run, and prints
// medians, GFLOPS, time per group, the ratio to each peer (peer time / our time, so above 1 means
// we are faster) and peak memory. --json writes the same as JSON.
//
//   moe    packed 2D x 3D, G=8, M_total=4096 split 1024,768,640,512,448,320,256,128; K=512,
//          N=1024; f32 and bf16, fwd and fwd+bwd. Peers: one dense oneDNN GEMM of the same FLOPs
//          (the machine limit), a oneDNN primitive per call, libtorch's loop of mm.
//   heads  list form, 8 x ([320, 64] @ [64, 64]) (the seed's multi-head example). Peers: the same
//          groups stacked as one 3D x 3D grouped_mm call, libtorch bmm and loop of mm.
//   tiny   list form, 64 x ([16, 32] @ [32, 32]). Peers: groupgrad's 3D x 3D call, libtorch loop
//          of mm (with autograd), bmm.
//   mixed  the seed's grouped-linear example (50/75/30 -> 64/128/32, with bias). Peers: libtorch
//          addmm and linear loops.
//   train  one training step of examples/train_multihead's model; peer: the same model in libtorch.
//   autograd  the engine's overhead per op (64 chained adds on 16 floats).
//   dp     train's step on 1 and 2 processes under mpirun, plain and in DistributedDataParallel:
//          step time, tokens/s, communication share, bytes per step; expert-parallel all-to-all
//          volume computed from the routing (dp.hpp). Only when asked for (-w dp).
//
//   ./build/tools/bench                      # every workload
//   ./build/tools/bench -w moe -w train      # some of them
//   ./build/tools/bench --threads 1 --json bench.json
//   ./build/tools/bench -w train --train-dump dump --json gg.json   # then tools/train_pytorch.py
//   ./build/tools/bench -w dp --json dp.json  # launches mpirun -np 1 and -np 2 of itself
#include <omp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <groupgrad/groupgrad.hpp>
#include <oneapi/dnnl/dnnl.hpp>
#include <thread>

#include "autograd_overhead.hpp"
#include "dp.hpp"
#include "groupgrad_variant.hpp"
#include "peers.hpp"
#include "report.hpp"
#include "tools/common/cli_parse.hpp"
#include "train.hpp"

using gg::bench::GroupShape;
using gg::bench::Problem;
using gg::bench::Row;
using gg::bench::Variant;

namespace {

struct Workload {
  std::string id;    // what --workload selects
  std::string name;  // the row label
  Problem problem;
};

std::vector<Workload> kernel_workloads() {
  std::vector<Workload> out;
  std::vector<GroupShape> moe;
  for (int64_t m : {1024, 768, 640, 512, 448, 320, 256, 128}) moe.push_back({m, 512, 1024});
  for (bool bf16 : {false, true})
    for (bool backward : {false, true})
      out.push_back({"moe",
                     fmt::format("moe {} {}", bf16 ? "bf16" : "f32", backward ? "fwd+bwd" : "fwd"),
                     {moe, bf16, false, backward, true}});
  const std::vector<GroupShape> heads(8, {320, 64, 64});
  const std::vector<GroupShape> tiny(64, {16, 32, 32});
  const std::vector<GroupShape> mixed{{100, 50, 64}, {100, 75, 128}, {100, 30, 32}};
  for (bool backward : {false, true}) {
    const char* pass = backward ? "fwd+bwd" : "fwd";
    out.push_back({"heads", fmt::format("heads f32 {}", pass), {heads, false, false, backward}});
    out.push_back({"tiny", fmt::format("tiny f32 {}", pass), {tiny, false, false, backward}});
    out.push_back(
        {"mixed", fmt::format("mixed f32 {} (bias)", pass), {mixed, false, true, backward}});
  }
  std::stable_sort(out.begin(), out.end(), [](const Workload& a, const Workload& b) {
    auto rank = [](const std::string& id) {
      return id == "moe" ? 0 : id == "heads" ? 1 : id == "tiny" ? 2 : 3;
    };
    return rank(a.id) < rank(b.id);
  });
  return out;
}

double flops_of(const Problem& p) {
  double f = 0;
  for (const GroupShape& g : p.groups) f += 2.0 * g.m * g.k * g.n;
  return p.backward ? 3 * f : f;  // backward: dX and dW, each as many FLOPs as the forward
}

// Times the variants side by side, then reads each one's peak memory over one more call.
void measure(const std::string& workload, const std::vector<Variant>& variants, double flops,
             int64_t groups, int warmup, int reps, gg::bench::Report& report) {
  std::vector<std::function<void()>> fns;
  for (const Variant& v : variants) fns.push_back(v.run);
  const std::vector<gg::bench::Timing> t = gg::bench::time_interleaved(fns, warmup, reps);
  for (size_t i = 0; i < variants.size(); ++i) {
    const Variant& v = variants[i];
    report.rows.push_back({workload, v.name, t[i], flops, groups,
                           gg::bench::measure_memory(v.run, v.memory), v.note});
    if (!v.note.empty())
      report.notes.push_back(fmt::format("{}, {}: {}", workload, v.name, v.note));
  }
  fmt::print(stderr, "done: {}\n", workload);
}

void run_kernel_workload(const Workload& w, int warmup, int reps, gg::bench::Report& report) {
  const Problem& p = w.problem;
  std::vector<Variant> variants{gg::bench::groupgrad_variant(p)};
  if (w.id == "tiny" || w.id == "heads") variants.push_back(gg::bench::groupgrad_3d_variant(p));
  if (w.id == "moe" || w.id == "heads") variants.push_back(gg::bench::onednn_dense(p));
  if (!p.backward) variants.push_back(gg::bench::onednn_naive_loop(p));
  if (gg::bench::libtorch_available())
    for (Variant& v : gg::bench::libtorch_variants(p)) variants.push_back(std::move(v));
  measure(w.name, variants, flops_of(p), static_cast<int64_t>(p.groups.size()), warmup, reps,
          report);
}

void run_train_workload(const std::string& data, int64_t batch_size, const std::string& dump_dir,
                        int warmup, int reps, gg::bench::Report& report) {
  gg::bench::TrainSetup setup;
  gg::bench::TrainSide ours = gg::bench::groupgrad_train(data, batch_size, &setup);
  std::vector<Variant> variants{ours.step};
  if (ours.logged_step) variants.push_back(*ours.logged_step);
  const double initial_loss = ours.loss();
  std::string losses = fmt::format("groupgrad {:.6f}", initial_loss);
  if (!dump_dir.empty()) {
    gg::bench::write_train_dump(setup, initial_loss, dump_dir);
    report.notes.push_back(fmt::format(
        "train: initial parameters, batch and settings written to {} (tools/train_pytorch.py "
        "--dump {} times the same step in PyTorch)",
        dump_dir, dump_dir));
  }
  if (gg::bench::libtorch_available()) {
    gg::bench::TrainSide peer = gg::bench::libtorch_train(setup);
    losses += fmt::format(", libtorch {:.6f}", peer.loss());
    variants.push_back(peer.step);
  }
  const std::string name = fmt::format("train step (batch {}x{})", setup.batch, setup.width);
  report.notes.push_back(fmt::format(
      "train: the model of examples/train_multihead (embed {}, {} heads, {} layers, {} experts "
      "top-{} hidden {}, vocab {}), one step = forward, loss, backward, clip_grad_norm_, AdamW "
      "step, zero_grad(set_to_none); both sides start from the same parameters on the same batch: "
      "initial loss {}",
      setup.embed, setup.heads, setup.layers, setup.experts, setup.top_k, setup.hidden, setup.vocab,
      losses));
  measure(name, variants, 0, 0, warmup, reps, report);
  // The optimiser state is allocated by the first step, before timing: it is in alloc_live_before.
  for (size_t i = report.rows.size() - variants.size(); i < report.rows.size(); ++i)
    report.notes.push_back(
        fmt::format("train, {}: {:.1f} MiB of tensors live between steps (parameters, AdamW state)",
                    report.rows[i].variant,
                    static_cast<double>(report.rows[i].memory.alloc_live_before) / 1048576.0));
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

// The ISA oneDNN dispatches to, how it was capped, and what that means for bf16.
std::string oneDNN_isa(const std::string& max_isa) {
  const char* env = std::getenv("ONEDNN_MAX_CPU_ISA");
  std::string cap = !max_isa.empty() ? fmt::format(" (--max-isa {})", max_isa)
                    : env            ? fmt::format(" (ONEDNN_MAX_CPU_ISA={})", env)
                                     : std::string(" (the CPU's own)");
  return fmt::format("{}{}; bf16 {}", gg::backend::isa_name(), cap,
                     gg::backend::native_bf16() ? "native" : "computed through f32");
}

std::string load_average() {
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) != 3) return "unknown";
  return fmt::format("{:.2f} {:.2f} {:.2f} (1, 5, 15 min)", load[0], load[1], load[2]);
}

}  // namespace

// libtorch's OpenBLAS threads keep spinning for ~2^28 cycles (~0.1 s) after every call, on the
// cores the variant timed next needs: on 2 cores (AVX2 EPYC) groupgrad's moe forward measured
// 42.7 ms right after the libtorch loop and 27.6 ms with OPENBLAS_THREAD_TIMEOUT=4 (its threads
// sleep at once; the libtorch loop itself went from 45.1 to 35.7 ms). OpenBLAS reads the variable
// when it loads, before main, so the bench runs itself again with it set (unless it is set).
void quiet_openblas_threads(char** argv) {
  if (!gg::bench::libtorch_available() || std::getenv("OPENBLAS_THREAD_TIMEOUT")) return;
  if (setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1) != 0) return;
  execv("/proc/self/exe", argv);
  unsetenv("OPENBLAS_THREAD_TIMEOUT");  // exec failed: run as we are (the header says so)
}

int main(int argc, char** argv) {
  quiet_openblas_threads(argv);
  CLI::App app{
      "groupgrad benchmarks: grouped_mm and a training step against peers measured "
      "side by side in the same run"};
  std::vector<std::string> only;
  int reps = 30, warmup = 5;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string json_path, data = "/usr/share/dict/words";
  int64_t batch_size = 64;
  app.add_option("--workload,-w", only,
                 "Workloads to run: moe, heads, tiny, mixed, train, autograd, dp (default: all but "
                 "dp, which launches mpirun)")
      ->check(CLI::IsMember({"moe", "heads", "tiny", "mixed", "train", "autograd", "dp"}));
  app.add_option("--reps", reps, "Timed samples per variant (the median is reported)")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "Untimed calls per variant before timing")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--threads", threads,
                 "Threads for every side: groupgrad's and oneDNN's OpenMP, libtorch's intra-op "
                 "pool and its OpenBLAS (default: all cores)")
      ->capture_default_str()
      ->check(CLI::Range(1, 1024));
  std::string max_isa;
  app.add_option("--max-isa", max_isa,
                 "Run as a CPU with at most this instruction set: sets ONEDNN_MAX_CPU_ISA before "
                 "oneDNN starts (groupgrad's own choices follow it), so one machine can measure "
                 "several kinds")
      ->check(CLI::IsMember({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI",
                             "AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"},
                            CLI::ignore_case));
  app.add_option("--json", json_path, "Also write the results as JSON to this file");
  app.add_option("--data", data, "train: the word list the example trains on (one word a line)")
      ->capture_default_str();
  std::string train_dump;
  app.add_option("--train-dump", train_dump,
                 "train: also write the initial parameters, the batch and the settings to this "
                 "directory, for tools/train_pytorch.py (created if needed)");
  app.add_option("--batch-size", batch_size,
                 "train, dp: sequences per step (per process for dp; the example's default)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  gg::bench::DpOptions dp;
  app.add_option("--dp-bucket-mb", dp.bucket_mb,
                 "dp: a DistributedDataParallel variant per bucket cap in MiB (25 is PyTorch's "
                 "default; the small one splits this model's gradients into several buckets)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  bool dp_worker = false;
  std::string dp_out;
  // Internal: how bench -w dp runs itself under mpirun (dp.hpp).
  app.add_flag("--dp-worker", dp_worker)->group("");
  app.add_option("--dp-out", dp_out)->group("");
  app.footer(
      "Variants of a workload are timed in alternating rounds, so that load from other processes "
      "falls on all of them alike; quote the ratios of one run. Peers: one dense oneDNN GEMM with "
      "the same FLOPs (forward, and the two backward GEMMs), a oneDNN loop that builds a primitive "
      "per group per call, groupgrad's own 3D x 3D call for the list workloads of equal groups "
      "(tiny, heads), and libtorch 1.13 when built with -DGG_BENCH_LIBTORCH=ON. "
      "tools/bench_pytorch.py times PyTorch 2.x on the same workloads, and tools/bench_rounds.py "
      "runs both for several rounds.");
  if (const std::optional<int> status = gg::cli::parse(app, argc, argv)) return *status;
  auto asked = [&](const std::string& id) {
    return std::find(only.begin(), only.end(), id) != only.end();
  };
  auto selected = [&](const std::string& id) { return only.empty() || asked(id); };
  dp.data = data;
  dp.batch_size = batch_size;
  dp.reps = reps;
  dp.warmup = warmup;
  if (dp_worker) {
    // One rank of bench -w dp's mpirun job; an exception ends the whole job (gg::distributed's
    // terminate handler), so it is not caught here.
    gg::bench::dp_worker(dp, dp_out);
    return 0;
  }

  try {
    // Before anything asks oneDNN for its ISA (it reads the variable once).
    if (!max_isa.empty() && setenv("ONEDNN_MAX_CPU_ISA", max_isa.c_str(), 1) != 0)
      throw std::runtime_error("[bench] cannot set ONEDNN_MAX_CPU_ISA");
    omp_set_num_threads(threads);
    if (gg::bench::libtorch_available()) gg::bench::libtorch_set_threads(threads);
    gg::manual_seed(0);
    gg::bench::Report report;
    const dnnl_version_t* dnnl = dnnl_version();
    const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
    report.about = {
        {"machine",
         fmt::format("{}, {} hardware threads", cpu_model(), std::thread::hardware_concurrency())},
        {"threads",
         fmt::format("{} (OMP_WAIT_POLICY={})", threads, wait_policy ? wait_policy : "unset")},
        {"load before", load_average()},
        {"timing", fmt::format("median of {} samples per variant after {} warm-up calls, "
                               "variants alternating",
                               reps, warmup)},
        {"oneDNN", fmt::format("{}.{}.{}", dnnl->major, dnnl->minor, dnnl->patch)},
        {"oneDNN ISA", oneDNN_isa(max_isa)},
        {"libtorch", gg::bench::libtorch_version()},
    };
    if (!train_dump.empty() && selected("train"))
      report.about.emplace_back("train dump",
                                std::filesystem::absolute(train_dump).lexically_normal().string());
    if (gg::bench::libtorch_available())
      report.about.emplace_back(
          "libtorch BLAS", fmt::format("{}; OPENBLAS_THREAD_TIMEOUT={}", gg::bench::libtorch_blas(),
                                       std::getenv("OPENBLAS_THREAD_TIMEOUT")
                                           ? std::getenv("OPENBLAS_THREAD_TIMEOUT")
                                           : "unset (its threads spin after calls)"));
    fmt::print("running (threads {}, {} samples per variant)...\n", threads, reps);
    std::fflush(stdout);

    for (const auto& w : kernel_workloads())
      if (selected(w.id)) run_kernel_workload(w, warmup, reps, report);
    if (selected("train")) run_train_workload(data, batch_size, train_dump, warmup, reps, report);
    if (asked("dp")) gg::bench::run_dp_workload(dp, report);
    // The autograd overhead per op: "us/group" is microseconds per op of the chain.
    if (selected("autograd")) {
      for (const gg::bench::OverheadRow& r : gg::bench::autograd_overhead(warmup, reps))
        report.rows.push_back({.workload = r.name,
                               .variant = "groupgrad",
                               .timing = r.timing,
                               .groups = r.ops,
                               .memory = {},
                               .note = "us/group column = microseconds per op"});
    }
    report.about.emplace_back("load after", load_average());
    double load = 0;
    // (The dp workload's processes run 1 thread each: the note is about the other workloads.)
    if (threads > 1 && !report.rows.empty() && getloadavg(&load, 1) == 1 &&
        load >= static_cast<double>(std::thread::hardware_concurrency()))
      report.notes.push_back(fmt::format(
          "the machine was loaded (load {:.1f} on {} hardware threads): a parallel region waits "
          "for its slowest thread, and a descheduled OpenMP thread stalls it for a time slice, so "
          "multi-threaded timings of small problems swing by orders of magnitude; compare with "
          "--threads 1, or OMP_WAIT_POLICY=passive",
          load, std::thread::hardware_concurrency()));

    gg::bench::print_report(report);
    if (!json_path.empty()) {
      std::ofstream out(json_path);
      out << gg::bench::report_json(report).dump(2) << "\n";
      if (!out.good()) throw std::runtime_error("[bench] cannot write " + json_path);
      fmt::print("wrote {}\n", json_path);
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
