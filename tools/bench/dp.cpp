// The dp workload (dp.hpp; docs/distributed.md, "Measured"): the launcher, the MPI worker, and
// the expert-parallel all-to-all volume computed from the model's routing.
#include "dp.hpp"

#include <fmt/format.h>
#include <omp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <groupgrad/groupgrad.hpp>
#include <limits>
#include <stdexcept>

#include "train_step.hpp"

extern char** environ;

namespace gg::bench {

namespace {

using DDP = gg::nn::DistributedDataParallel<train::CharTransformer>;

// The environment of tests/distributed/CMakeLists.txt: mpirun as root, one OpenMP thread per
// rank that waits passively, shared memory without the single-copy mechanism (CMA), which
// containers without ptrace rights refuse.
const std::vector<std::pair<std::string, std::string>> kMpiEnv{
    {"OMPI_ALLOW_RUN_AS_ROOT", "1"},
    {"OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1"},
    {"OMP_NUM_THREADS", "1"},
    {"OMP_WAIT_POLICY", "passive"},
    {"OMPI_MCA_btl_vader_single_copy_mechanism", "none"}};

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

// What one timed step of one variant on one rank records.
enum Field { kStep, kCall, kWait, kInBackward, kBuckets, kFields };

struct WorkerVariant {
  std::string name;
  double bucket_mb = 0;  // 0: no DDP
  std::shared_ptr<GroupgradTrainer> trainer;
};

// Runs `args` (args[0] is the program) with kMpiEnv added to this environment; throws unless it
// exits with status 0.
[[maybe_unused]] void run_child(const std::vector<std::string>& args) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    const std::string kv(*e);
    const bool replaced = std::any_of(kMpiEnv.begin(), kMpiEnv.end(), [&](const auto& p) {
      return kv.rfind(p.first + "=", 0) == 0;
    });
    if (!replaced) env.push_back(kv);
  }
  for (const auto& [k, v] : kMpiEnv) env.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  for (const std::string& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  std::string line;
  for (const std::string& a : args) line += (line.empty() ? "" : " ") + a;
  std::fflush(stdout);
  pid_t pid = 0;
  if (const int rc = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data()))
    throw std::runtime_error(fmt::format("[bench dp] cannot start {}: {}", line, strerror(rc)));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) throw std::runtime_error("[bench dp] waitpid failed for " + line);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format(
        "[bench dp] `{}` failed ({} {})", line, WIFEXITED(status) ? "exit status" : "signal",
        WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status)));
}

nlohmann::json launch(int processes, const DpOptions& o) {
#ifdef GG_BENCH_MPIEXEC
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  const std::filesystem::path out =
      std::filesystem::temp_directory_path() /
      fmt::format("gg_bench_dp_{}_np{}.json", static_cast<long>(::getpid()), processes);
  std::filesystem::remove(out);
  std::vector<std::string> args{GG_BENCH_MPIEXEC,
                                "--oversubscribe",
                                "-np",
                                std::to_string(processes),
                                self,
                                "--dp-worker",
                                "--dp-out",
                                out.string(),
                                "--data",
                                o.data,
                                "--batch-size",
                                std::to_string(o.batch_size),
                                "--reps",
                                std::to_string(o.reps),
                                "--warmup",
                                std::to_string(o.warmup)};
  for (double mb : o.bucket_mb) {
    args.emplace_back("--dp-bucket-mb");
    args.push_back(fmt::format("{}", mb));
  }
  fmt::print(stderr, "dp: {} process{} under mpirun...\n", processes, processes > 1 ? "es" : "");
  run_child(args);
  std::ifstream in(out);
  if (!in) throw std::runtime_error("[bench dp] rank 0 wrote no summary to " + out.string());
  nlohmann::json summary = nlohmann::json::parse(in);
  in.close();
  std::filesystem::remove(out);
  return summary;
#else
  (void)processes;
  (void)o;
  throw std::runtime_error("[bench dp] built without MPI");
#endif
}

std::string kib(double bytes) { return fmt::format("{:.1f}", bytes / 1024.0); }

// Ring all-reduce (reduce-scatter, then all-gather): 2 (W - 1) / W of the payload leaves each
// rank. With W = 2 recursive doubling sends the same.
double ring_bytes_sent(double payload, int world) {
  return world > 1 ? 2.0 * (world - 1) / world * payload : 0.0;
}

// The table of step times, from the summaries of the 1- and 2-process runs.
Table step_table(const std::vector<nlohmann::json>& runs) {
  Table t;
  t.left_columns = 2;
  t.title = "dp: training step of examples/train_multihead's model, 1 OpenMP thread per process";
  t.header = {"processes", "variant",       "median ms",      "p25-p75 ms",       "tokens/s",
              "vs 1 proc", "comm % (rank)", "buckets (hook)", "KiB reduced/rank", "KiB sent/rank"};
  double base_tokens_per_s = 0;
  for (const nlohmann::json& run : runs) {
    const int world = run.at("world").get<int>();
    for (const nlohmann::json& v : run.at("variants")) {
      const double median = v.at("step_ms").at("median").get<double>();
      const double tokens_per_s = v.at("tokens_per_s").get<double>();
      if (base_tokens_per_s == 0) base_tokens_per_s = tokens_per_s;
      const bool ddp = v.at("bucket_cap_mb").get<double>() > 0;
      std::string comm = "-", buckets = "-", reduced = "-", sent = "-";
      if (ddp) {
        comm.clear();
        for (double f : v.at("comm_fraction_per_rank").get<std::vector<double>>())
          comm += fmt::format("{}{:.1f}", comm.empty() ? "" : " / ", 100 * f);
        buckets = fmt::format("{} ({})", v.at("buckets").get<int64_t>(),
                              v.at("buckets_started_from_hooks_min").get<int64_t>());
        const auto payload = v.at("bytes_reduced_per_rank").get<double>();
        reduced = kib(payload);
        sent = kib(ring_bytes_sent(payload, world));
      }
      t.rows.push_back(
          {std::to_string(world), v.at("name").get<std::string>(), fmt::format("{:.2f}", median),
           fmt::format("{:.2f}-{:.2f}", v.at("step_ms").at("p25").get<double>(),
                       v.at("step_ms").at("p75").get<double>()),
           fmt::format("{:.0f}", tokens_per_s),
           fmt::format("{:.2f}x", tokens_per_s / base_tokens_per_s), comm, buckets, reduced, sent});
    }
  }
  t.notes = {
      "each process trains on its own batch of the example's order (batches of equal width, so "
      "that the ranks have equal work); "
      "a step is forward, loss, backward, clip_grad_norm_, AdamW step, zero_grad. Before every "
      "timed step the ranks meet in a barrier (not timed); a step's time is that of the slowest "
      "rank; tokens/s = tokens of all ranks' batches / median step.",
      "comm %: per rank, the median over steps of (time inside the MPI start/test calls made "
      "from DDP's gradient hooks + time blocked at the end of backward waiting for the sums) / "
      "that rank's step (DistributedDataParallel::last_step_stats()); it includes waiting for a "
      "slower rank. buckets (hook): buckets per step, and how many of them started from a "
      "gradient hook rather than at the end of backward (fewest over steps and ranks).",
      "KiB reduced/rank: the gradient bytes each rank hands to MPI_Iallreduce per step "
      "(measured by DDP, checked against the parameters' size); KiB sent/rank: what a ring "
      "all-reduce sends for it, 2(W-1)/W of that (computed). Open MPI 4.1 runs an in-place "
      "MPI_Iallreduce as a binomial reduce and broadcast, which at W = 2 sends the same "
      "(docs/distributed.md, \"Bytes per step\").",
      "local step, no DDP: the same model without the wrapper; with 2 processes each rank steps "
      "alone, which shows what sharing the machine costs apart from communication."};
  return t;
}

// The expert-parallel all-to-all volume for the example model, from the routing of the 1-process
// run's batch (computed, not measured: nothing here runs expert parallelism).
Table expert_parallel_table(const nlohmann::json& run) {
  const nlohmann::json& m = run.at("model");
  const auto experts = m.at("experts").get<int64_t>();
  const auto top_k = m.at("top_k").get<int64_t>();
  const auto embed = m.at("embed").get<int64_t>();
  const auto layers = m.at("layers").get<int64_t>();
  const auto tokens = run.at("tokens_per_rank").at(0).get<int64_t>();
  // [layer][expert] token-slots of rank 0's last forward.
  const auto slots = run.at("expert_slots").at(0).get<std::vector<std::vector<int64_t>>>();
  const double row_bytes = static_cast<double>(embed) * 4;  // Float32 activations
  const double per_a2a = static_cast<double>(tokens * top_k) * row_bytes;
  const double per_step = per_a2a * 4 * static_cast<double>(layers);
  Table t;
  t.title = fmt::format(
      "dp: expert-parallel all-to-all per step per rank for the same model, COMPUTED from the "
      "routing (T = {} tokens per rank, k = {}, embed {}, {} layers, {} experts)",
      tokens, top_k, embed, layers, experts);
  t.header = {
      "world",        "experts/rank", "rows per a2a (T*k)",    "KiB per a2a",
      "a2a per step", "KiB per step", "KiB leaving (uniform)", "KiB leaving (worst position)"};
  for (int64_t world : {2, 4, 8}) {
    if (experts % world != 0) continue;
    const int64_t own = experts / world;
    // Rows that leave rank `position` (it owns experts [position*own, (position+1)*own)), summed
    // over layers; the worst position is the one whose experts this batch chose least.
    double worst = 0;
    for (int64_t position = 0; position < world; ++position) {
      double leaving = 0;
      for (const auto& layer : slots) {
        int64_t total = 0, mine = 0;
        for (int64_t e = 0; e < static_cast<int64_t>(layer.size()); ++e) {
          total += layer[e];
          if (e / own == position) mine += layer[e];
        }
        leaving += static_cast<double>(total - mine);
      }
      worst = std::max(worst, leaving * row_bytes * 4);  // 4 all-to-alls per layer
    }
    t.rows.push_back({std::to_string(world), std::to_string(own), std::to_string(tokens * top_k),
                      kib(per_a2a), std::to_string(4 * layers), kib(per_step),
                      kib(per_step * static_cast<double>(world - 1) / static_cast<double>(world)),
                      kib(worst)});
  }
  t.notes = {
      "per MoE layer and step: dispatch and combine in forward, their reverses in backward: 4 "
      "all_to_alls of T*k rows of embed Float32 values each way; rows routed to experts of the "
      "rank itself do not leave it: (W-1)/W of them with uniform routing, and for this batch's "
      "routing at most the last column (rank position owning the least-chosen experts). Compare "
      "the DDP rows' KiB sent/rank above."};
  return t;
}

}  // namespace

bool dp_available() {
#ifdef GG_BENCH_MPIEXEC
  return gg::distributed::is_available();
#else
  return false;
#endif
}

void run_dp_workload(const DpOptions& o, Report& report) {
  if (!dp_available()) {
    report.notes.push_back(
        "dp: skipped, this bench was built without MPI (groupgrad's GG_WITH_MPI, or mpirun not "
        "found)");
    return;
  }
  std::vector<nlohmann::json> runs{launch(1, o), launch(2, o)};
  report.tables.push_back(step_table(runs));
  for (const nlohmann::json& run : runs) {
    const nlohmann::json& b = run.at("bare_all_reduce_ms");
    report.tables.front().notes.push_back(fmt::format(
        "{} process{}: a blocking all_reduce of the {:.1f} KiB gradient alone takes {:.3f} ms "
        "(median; p25-p75 {:.3f}-{:.3f}, min {:.3f}): the communication floor of a step",
        run.at("world").get<int>(), run.at("world").get<int>() > 1 ? "es" : "",
        run.at("gradient_bytes").get<double>() / 1024, b.at("median").get<double>(),
        b.at("p25").get<double>(), b.at("p75").get<double>(), b.at("min").get<double>()));
  }
  report.tables.push_back(expert_parallel_table(runs.front()));
  report.extra["dp"] = runs;
  report.about.emplace_back(
      "dp runs", fmt::format("mpirun --oversubscribe -np 1 and -np 2, each rank 1 OpenMP thread "
                             "(OMP_WAIT_POLICY=passive), shared memory without CMA, {} samples "
                             "per variant after {} warm-up steps, variants alternating",
                             o.reps, o.warmup));
}

void dp_worker(const DpOptions& o, const std::string& out_path) {
  gg::distributed::init();
  omp_set_num_threads(1);
  const int rank = gg::distributed::rank();
  const int world = gg::distributed::world_size();

  TrainSetup s;
  const train::Dataset data = train::load_dataset(o.data, 0.1);
  s.vocab = data.vocab_size();
  s.ignore_index = train::kIgnore;
  const train::ModelConfig config = model_config(s);
  train::BatchOrder order(data.train, o.batch_size, 1337);
  // Each rank takes its own batch of the example's order, as a distributed sampler would: rank r
  // the r-th batch as wide (padded to the same length) as the first, so that every rank has the
  // same work. The example batches lines of similar length, so widths vary from batch to batch,
  // and unequal work would show as waiting in the all-reduce.
  const int64_t width = train::make_batch(data.train, order.indices(0), s.seq_len).input.size(1);
  int64_t step = 0;
  for (int found = 0;; ++step) {
    if (step >= order.batches_per_epoch())
      throw std::runtime_error(
          fmt::format("[bench dp] the data has fewer than {} batches of width {}", world, width));
    const train::Batch b = train::make_batch(data.train, order.indices(step), s.seq_len);
    if (b.input.size(1) == width && found++ == rank) break;
  }
  const train::Batch batch = train::make_batch(data.train, order.indices(step), s.seq_len);
  s.batch = batch.input.size(0);
  s.width = batch.input.size(1);

  std::vector<WorkerVariant> variants;
  variants.push_back({"local step, no DDP", 0, make_trainer(config, s, batch)});
  for (double mb : o.bucket_mb) {
    auto t = make_trainer(config, s, batch);
    t->ddp = std::make_shared<DDP>(t->model, gg::nn::DistributedDataParallelOptions{
                                                 .bucket_cap_mb = mb, .parameters_to_ignore = {}});
    variants.push_back({fmt::format("DDP, buckets of {} MiB", mb), mb, t});
  }
  // The oracle for DDP's byte count: every parameter of the model is Float32 and averaged.
  int64_t gradient_bytes = 0, parameters = 0;
  for (const gg::Tensor& p : variants.front().trainer->params) {
    parameters += p.numel();
    gradient_bytes += p.numel() * 4;
  }

  auto run = [&](const WorkerVariant& v) {
    gg::distributed::barrier();
    const auto start = std::chrono::steady_clock::now();
    v.trainer->step();
    const double step =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    gg::nn::DistributedDataParallelStats st;
    if (v.trainer->ddp) {
      st = v.trainer->ddp->last_step_stats();
      if (st.bytes_reduced != gradient_bytes)
        throw std::runtime_error(fmt::format(
            "[bench dp] DDP reports {} bytes reduced in a step, the model has {} gradient bytes",
            st.bytes_reduced, gradient_bytes));
    }
    return std::array<double, kFields>{step, st.call_seconds, st.wait_seconds,
                                       static_cast<double>(st.buckets_in_backward),
                                       static_cast<double>(st.buckets)};
  };
  for (int w = 0; w < o.warmup; ++w)
    for (const WorkerVariant& v : variants) run(v);
  const size_t nv = variants.size();
  const auto reps = static_cast<size_t>(o.reps);
  std::vector<double> mine(reps * nv * kFields);
  for (size_t r = 0; r < reps; ++r)
    for (size_t v = 0; v < nv; ++v) {
      const auto f = run(variants[v]);
      std::copy(f.begin(), f.end(),
                mine.begin() + static_cast<std::ptrdiff_t>((r * nv + v) * kFields));
    }

  // Tokens and the routing of the plain model's last forward: [tokens, slots of layer 0, ...].
  std::vector<int64_t> counts{batch.input.numel()};
  for (const auto& block : variants.front().trainer->model->blocks)
    for (int64_t c : block->moe->last_expert_counts()) counts.push_back(c);
  // The communication floor: a blocking all_reduce of the whole gradient, alone (after a barrier),
  // as many times as the steps were timed; the slowest rank's time of each.
  std::vector<double> bare;
  gg::Tensor flat = gg::zeros({gradient_bytes / 4});
  for (int r = 0; r < o.warmup + o.reps; ++r) {
    gg::distributed::barrier();
    const auto start = std::chrono::steady_clock::now();
    gg::distributed::all_reduce(flat);
    if (r >= o.warmup)
      bare.push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  const std::vector<gg::Tensor> all_bare = gg::distributed::all_gather(gg::tensor(bare));
  const std::vector<gg::Tensor> all_times = gg::distributed::all_gather(gg::tensor(mine));
  const std::vector<gg::Tensor> all_counts = gg::distributed::all_gather(gg::tensor(counts));
  if (rank != 0) return;

  std::vector<std::vector<double>> times;
  for (const gg::Tensor& t : all_times) times.push_back(t.to_vector<double>());
  auto at = [&](int r, size_t rep, size_t v, Field f) {
    return times[static_cast<size_t>(r)][(rep * nv + v) * kFields + f];
  };
  int64_t tokens = 0;
  nlohmann::json tokens_per_rank = nlohmann::json::array(), slots = nlohmann::json::array();
  for (const gg::Tensor& t : all_counts) {
    const std::vector<int64_t> c = t.to_vector<int64_t>();
    tokens += c[0];
    tokens_per_rank.push_back(c[0]);
    nlohmann::json layers = nlohmann::json::array();
    for (int64_t l = 0; l < s.layers; ++l)
      layers.push_back(
          std::vector<int64_t>(c.begin() + 1 + l * s.experts, c.begin() + 1 + (l + 1) * s.experts));
    slots.push_back(layers);
  }

  std::vector<double> slowest_bare(bare.size(), 0);
  for (const gg::Tensor& t : all_bare) {
    const std::vector<double> b = t.to_vector<double>();
    for (size_t i = 0; i < b.size(); ++i) slowest_bare[i] = std::max(slowest_bare[i], 1000 * b[i]);
  }
  const nlohmann::json bare_ms = {{"median", quantile(slowest_bare, 0.5)},
                                  {"p25", quantile(slowest_bare, 0.25)},
                                  {"p75", quantile(slowest_bare, 0.75)},
                                  {"min", quantile(slowest_bare, 0)}};
  nlohmann::json out_variants = nlohmann::json::array();
  for (size_t v = 0; v < nv; ++v) {
    std::vector<double> step_ms;
    int64_t from_hooks = std::numeric_limits<int64_t>::max();
    for (size_t rep = 0; rep < reps; ++rep) {
      double slowest = 0;
      for (int r = 0; r < world; ++r) {
        slowest = std::max(slowest, at(r, rep, v, kStep));
        from_hooks = std::min(from_hooks, static_cast<int64_t>(at(r, rep, v, kInBackward)));
      }
      step_ms.push_back(1000 * slowest);
    }
    nlohmann::json fraction = nlohmann::json::array(), wait_ms = nlohmann::json::array(),
                   call_ms = nlohmann::json::array();
    for (int r = 0; r < world; ++r) {
      std::vector<double> f, w, c;
      for (size_t rep = 0; rep < reps; ++rep) {
        f.push_back((at(r, rep, v, kCall) + at(r, rep, v, kWait)) / at(r, rep, v, kStep));
        w.push_back(1000 * at(r, rep, v, kWait));
        c.push_back(1000 * at(r, rep, v, kCall));
      }
      fraction.push_back(quantile(f, 0.5));
      wait_ms.push_back(quantile(w, 0.5));
      call_ms.push_back(quantile(c, 0.5));
    }
    const double median = quantile(step_ms, 0.5);
    const bool ddp = variants[v].bucket_mb > 0;
    out_variants.push_back({{"name", variants[v].name},
                            {"bucket_cap_mb", variants[v].bucket_mb},
                            {"step_ms",
                             {{"median", median},
                              {"p25", quantile(step_ms, 0.25)},
                              {"p75", quantile(step_ms, 0.75)},
                              {"min", quantile(step_ms, 0)}}},
                            {"tokens_per_s", static_cast<double>(tokens) / (median / 1000)},
                            {"comm_fraction_per_rank", fraction},
                            {"wait_ms_per_rank", wait_ms},
                            {"hook_call_ms_per_rank", call_ms},
                            {"buckets", ddp ? static_cast<int64_t>(at(0, 0, v, kBuckets)) : 0},
                            {"buckets_started_from_hooks_min", ddp ? from_hooks : 0},
                            {"bytes_reduced_per_rank", ddp ? gradient_bytes : 0}});
  }
  const nlohmann::json summary = {{"world", world},
                                  {"threads_per_process", omp_get_max_threads()},
                                  {"batch_per_rank", o.batch_size},
                                  {"tokens_per_rank", tokens_per_rank},
                                  {"parameters", parameters},
                                  {"gradient_bytes", gradient_bytes},
                                  {"bare_all_reduce_ms", bare_ms},
                                  {"samples", o.reps},
                                  {"warmup", o.warmup},
                                  {"model", settings_json(s)},
                                  {"variants", out_variants},
                                  {"expert_slots", slots}};
  std::ofstream out(out_path);
  out << summary.dump(2) << "\n";
  if (!out.good()) throw std::runtime_error("[bench dp] cannot write " + out_path);
}

}  // namespace gg::bench
