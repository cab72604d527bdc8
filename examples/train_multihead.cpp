// examples/train_multihead: trains a small character-level transformer language model (causal
// MultiheadAttention + mixture-of-experts feed-forward blocks) on one-sequence-per-line text --
// by default the word list /usr/share/dict/words -- with AdamW, a cosine learning-rate schedule
// with warmup, and gradient clipping. It reports train and validation loss beside the exact
// bigram baseline, writes a metrics CSV and atomic checkpoints that --resume continues from
// bit-exactly, and prints words sampled from the model at the end. See docs/training.md.
//
//   ./build/examples/train_multihead                    # the default run, a few minutes
//   ./build/examples/train_multihead --help             # every option
//   ./build/examples/train_multihead --steps 40 --check-resume   # resume == uninterrupted?
//   mpirun -np 2 ./build/examples/train_multihead --distributed   # on 2 processes (MPI)
//   mpirun -np 2 ./build/examples/train_multihead --distributed --expert-parallel  # sharded MoE
//
// Exit status: 0 done (the model beat the bigram baseline), 1 an error or a model that did not,
// 2 bad usage: an unknown option, or a setting out of range on the command line or in the
// checkpoint --resume continues from.
#include <omp.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <groupgrad/groupgrad.hpp>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tools/common/cli_parse.hpp"
#include "train/checkpoint.hpp"
#include "train/data.hpp"
#include "train/expert_parallel.hpp"
#include "train/model.hpp"
#include "train/progress.hpp"

namespace F = gg::nn::functional;
namespace fs = std::filesystem;
using train::ProgressBar;

namespace {

struct Options {
  std::string data = "/usr/share/dict/words";
  double val_fraction = 0.1;
  int64_t steps = 3000;
  int64_t batch_size = 64;
  int64_t seq_len = 32;
  int64_t embed_dim = 64;
  int64_t heads = 4;
  int64_t layers = 2;
  int64_t experts = 4;
  int64_t top_k = 2;
  int64_t expert_hidden = 128;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int64_t warmup = 100;
  double weight_decay = 0.01;
  double clip = 1.0;
  double aux_coef = 0.01;
  uint64_t seed = 1337;
  int64_t eval_every = 250;
  int64_t checkpoint_every = 0;  // 0: at every evaluation
  std::string out_dir = "train_multihead_out";
  bool resume = false;
  int64_t stop_after = 0;  // 0: run to --steps
  bool check_resume = false;
  int threads = 1;  // see --threads
  int64_t samples = 20;
  double temperature = 0.8;
  bool quiet = false;       // no bar, fewer log lines (the inner runs of --check-resume)
  std::string tensorboard;  // TensorBoard event files; empty: <out_dir>/tensorboard
  bool no_tensorboard = false;
  int64_t histogram_every = 500;  // weight and gradient histograms every this many steps (0: none)
  std::string dtype = "f32";      // parameters and activations: f32 or bf16
  bool distributed = false;       // data-parallel over the ranks of an mpirun job
  bool expert_parallel = false;   // with --distributed: each block's experts sharded over them
  std::string init_from;          // a model file to start a new run from
};

// The settings a checkpoint pins: resuming with any other value would not reproduce the run.
// Keyed by flag name, they go into the model file's metadata and come back on --resume.
struct Setting {
  std::string flag;
  std::function<std::string()> get;
  std::function<void(const std::string&)> set;
};

constexpr int kExitFailed = 1;  // an error, or a model that does not beat the bigram baseline
constexpr int kExitUsage = 2;

// Bad usage: a setting out of range, from the command line or a checkpoint. Exit status 2.
struct UsageError : gg::Error {
  using gg::Error::Error;
};

// Where this process stands: rank 0 of 1 unless --distributed. Data-parallel ranks train the same
// model on their shares of each global batch (train::rank_share); rank 0 alone logs and writes.
struct Job {
  bool distributed = false;
  bool expert_parallel = false;  // the experts sharded over the ranks (--expert-parallel)
  int rank = 0;
  int world = 1;
  bool lead() const { return rank == 0; }
  // "one process" or "2 processes (--distributed)": what a checkpoint was written by.
  std::string describe() const {
    return distributed
               ? fmt::format("{} process{} (--distributed{})", world, world == 1 ? "" : "es",
                             expert_parallel ? " --expert-parallel" : "")
               : "one process (without --distributed)";
  }
};

// The ranks' sums of `values` (one all_reduce in Float64; exact for counts below 2^53), or the
// values themselves on one process.
std::vector<double> sum_over_ranks(const Job& job, std::vector<double> values) {
  if (!job.distributed || values.empty()) return values;
  gg::Tensor t = gg::tensor<double>(values, {static_cast<int64_t>(values.size())});
  gg::distributed::all_reduce(t, gg::distributed::ReduceOp::Sum);
  return t.to_vector<double>();
}

// Joins the mpirun job with --distributed. Started by mpirun with more than one process but
// without --distributed, every process would train alone and write the same files: refused.
Job start_job(bool distributed) {
  Job job;
  if (!distributed) {
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
      if (const char* n = std::getenv(var); n && std::atoi(n) > 1)
        throw UsageError(fmt::format(
            "[train_multihead] started as one of {} processes ({}={}) but without "
            "--distributed: each would train alone and write the same files; add --distributed",
            n, var, n));
    return job;
  }
  if (!gg::distributed::is_available())
    throw UsageError(
        "[train_multihead] --distributed needs gg::distributed, and this groupgrad was built "
        "without MPI (GG_WITH_MPI=OFF or MPI not found when it was configured): install Open MPI "
        "(tools/install-deps.sh), configure again and rebuild");
  gg::distributed::init();
  job.distributed = true;
  job.rank = gg::distributed::rank();
  job.world = gg::distributed::world_size();
  if (!job.lead()) {  // rank 0 speaks for the job; the others only report their errors
    spdlog::set_pattern(fmt::format("[%H:%M:%S] rank {}: %v", job.rank));
    spdlog::set_level(spdlog::level::err);
  }
  return job;
}

template <class T>
Setting pin(std::string flag, T& value) {
  return {flag, [&value] { return fmt::format("{}", value); },
          [&value, flag](const std::string& s) {
            if constexpr (std::is_same_v<T, std::string>) {
              value = s;
            } else {
              std::istringstream in(s);
              T parsed{};
              in >> parsed;
              if (in.fail() || !(in >> std::ws).eof())  // the whole text, nothing after it
                throw UsageError(fmt::format(
                    "[train_multihead] {} in the checkpoint is '{}', not a number", flag, s));
              value = parsed;
            }
          }};
}

template <class T>
void check_range(const char* flag, T value, T lo, T hi, const std::string& source) {
  if (!(value >= lo && value <= hi))  // NaN fails too
    throw UsageError(fmt::format("[train_multihead] {} must be between {} and {}, got {} (from {})",
                                 flag, lo, hi, value, source));
}

// Every numeric setting's range, one rule for both sources of values: the command line, and the
// checkpoint whose settings --resume puts in their place. The limits keep every size computed
// from them far from int64 overflow and the model and a step's activations within memory.
void validate(const Options& o, const std::string& source) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr double kHuge = std::numeric_limits<double>::max();  // finite
  check_range("--val-fraction", o.val_fraction, 0.0, 1.0, source);
  check_range("--steps", o.steps, int64_t{1}, int64_t{1} << 40, source);
  check_range("--batch-size", o.batch_size, int64_t{1}, train::kMaxBatchSize, source);
  check_range("--seq-len", o.seq_len, int64_t{2}, int64_t{4096}, source);
  check_range("--embed-dim", o.embed_dim, int64_t{1}, int64_t{1} << 16, source);
  check_range("--heads", o.heads, int64_t{1}, o.embed_dim, source);
  check_range("--layers", o.layers, int64_t{1}, int64_t{1024}, source);
  check_range("--experts", o.experts, int64_t{1}, int64_t{1024}, source);
  check_range("--top-k", o.top_k, int64_t{1}, o.experts, source);
  check_range("--expert-hidden", o.expert_hidden, int64_t{1}, int64_t{1} << 16, source);
  check_range("--lr", o.lr, std::numeric_limits<double>::min(), kHuge, source);
  check_range("--min-lr", o.min_lr, 0.0, kHuge, source);
  check_range("--warmup", o.warmup, int64_t{0}, kMax, source);
  check_range("--weight-decay", o.weight_decay, 0.0, kHuge, source);
  check_range("--clip", o.clip, std::numeric_limits<double>::min(), kInf, source);
  check_range("--aux-coef", o.aux_coef, 0.0, kHuge, source);
  check_range("--eval-every", o.eval_every, int64_t{1}, kMax, source);
  check_range("--checkpoint-every", o.checkpoint_every, int64_t{0}, kMax, source);
  check_range("--histogram-every", o.histogram_every, int64_t{0}, kMax, source);
  check_range("--stop-after", o.stop_after, int64_t{0}, kMax, source);
  check_range("--threads", o.threads, 0, 1024, source);
  check_range("--samples", o.samples, int64_t{0}, int64_t{1} << 16, source);
  check_range("--temperature", o.temperature, std::numeric_limits<double>::min(), kHuge, source);
  if (o.dtype != "f32" && o.dtype != "bf16")
    throw UsageError(fmt::format(
        "[train_multihead] --dtype must be f32 or bf16, got '{}' (from {})", o.dtype, source));
  if (o.embed_dim % o.heads != 0)
    throw UsageError(
        fmt::format("[train_multihead] --heads {} must divide --embed-dim {} (from {})", o.heads,
                    o.embed_dim, source));
  if (o.expert_parallel && !o.distributed)
    throw UsageError(fmt::format(
        "[train_multihead] --expert-parallel shards the experts over the processes of an MPI "
        "job: it needs --distributed (mpirun -np N ... --distributed --expert-parallel)"));
  if (o.resume && !o.init_from.empty())
    throw UsageError(fmt::format(
        "[train_multihead] --init-from starts a new run and --resume continues one: give one "
        "(from {})",
        source));
  if (o.check_resume && o.steps < 2)
    throw UsageError(fmt::format(
        "[train_multihead] --check-resume needs --steps >= 2, got {} (from {})", o.steps, source));
  // The biggest tensors: expert weights (all layers), and a step's activations: tokens x width,
  // and the attention weights, batch x heads x seq_len^2. Each factor is at most 2^16 here.
  constexpr int64_t kMaxElements = int64_t{1} << 31;
  const int64_t weights = o.layers * o.experts * 2 * o.embed_dim * o.expert_hidden;
  const int64_t tokens = o.batch_size * o.seq_len;
  const int64_t activations = std::max({tokens * o.embed_dim, tokens * o.top_k * o.expert_hidden,
                                        o.batch_size * o.heads * o.seq_len * o.seq_len});
  if (weights > kMaxElements || activations > kMaxElements)
    throw UsageError(fmt::format(
        "[train_multihead] the model would have {} expert weights and a step {} activations in "
        "its largest tensor, over the limit of {} (--layers {}, --experts {}, --embed-dim {}, "
        "--expert-hidden {}, --batch-size {}, --seq-len {}, --heads {}, --top-k {}; from {})",
        weights, activations, kMaxElements, o.layers, o.experts, o.embed_dim, o.expert_hidden,
        o.batch_size, o.seq_len, o.heads, o.top_k, source));
}

std::vector<Setting> pinned_settings(Options& o) {
  return {pin("--data", o.data),
          pin("--val-fraction", o.val_fraction),
          pin("--steps", o.steps),
          pin("--batch-size", o.batch_size),
          pin("--seq-len", o.seq_len),
          pin("--embed-dim", o.embed_dim),
          pin("--heads", o.heads),
          pin("--layers", o.layers),
          pin("--experts", o.experts),
          pin("--top-k", o.top_k),
          pin("--expert-hidden", o.expert_hidden),
          pin("--lr", o.lr),
          pin("--min-lr", o.min_lr),
          pin("--warmup", o.warmup),
          pin("--weight-decay", o.weight_decay),
          pin("--clip", o.clip),
          pin("--aux-coef", o.aux_coef),
          pin("--seed", o.seed),
          pin("--eval-every", o.eval_every),  // the reported train loss averages between evals
          pin("--threads", o.threads),        // kernels' sums split by thread: bits differ
          pin("--dtype", o.dtype)};
}

// The global generator (dropout, any op that draws) is reseeded from (seed, step) before every
// step, so its state at a step is a function of the two: with the data order (also a function
// of them), the checkpoint's seed and step are the run's whole RNG state.
void seed_step(uint64_t seed, int64_t step) {
  gg::manual_seed(train::mix64(seed ^ train::mix64(static_cast<uint64_t>(step) + 0x5151)));
}

uint64_t parameter_hash(const gg::nn::Module& model) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const auto& [name, p] : model.named_parameters())
    for (float v : p.to(gg::kFloat32).contiguous().to_vector<float>()) {
      uint32_t bits;
      std::memcpy(&bits, &v, sizeof bits);
      h = (h ^ bits) * 0x100000001b3ull;
    }
  return h;
}

// Mean cross-entropy per predicted token over `lines` (model in eval mode, no graph). With
// --distributed each rank scores every world-th line of the length order, and the ranks' sums of
// loss and tokens are added: the same mean as one process's, up to the order of float sums.
double evaluate(train::CharTransformer& model, const std::vector<std::vector<int64_t>>& lines,
                int64_t seq_len, const Job& job) {
  gg::NoGradGuard no_grad;
  model.eval();
  // Lines sorted by length batch with little padding; the sum does not care about the order.
  std::vector<int64_t> order(lines.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return lines[a].size() < lines[b].size(); });
  double nll = 0;
  int64_t tokens = 0;
  // Chunks of kEvalBatch lines per rank, each rank taking every world-th line of a chunk (the
  // same batches as dealing out the whole order first). With --expert-parallel the forward is
  // collective: a rank whose share of the last chunk is empty runs one line it does not count.
  constexpr size_t kEvalBatch = 256;
  const size_t chunk = kEvalBatch * static_cast<size_t>(job.world);
  for (size_t begin = 0; begin < order.size(); begin += chunk) {
    const std::vector<int64_t> global(order.begin() + begin,
                                      order.begin() + std::min(order.size(), begin + chunk));
    std::vector<int64_t> idx =
        job.distributed ? train::rank_share(global, job.rank, job.world) : global;
    if (idx.empty() && !job.expert_parallel) continue;
    const bool idle = idx.empty();
    if (idle) idx.push_back(global.front());
    train::Batch b = train::make_batch(lines, idx, seq_len);
    gg::Tensor logits = model.forward(b.input);
    if (idle) continue;
    gg::Tensor loss = F::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                       b.target.reshape({-1}), gg::Reduction::Sum, train::kIgnore);
    nll += loss.to(gg::kFloat32).item<float>();
    tokens += b.tokens;
  }
  model.train();
  const std::vector<double> sums = sum_over_ranks(job, {nll, static_cast<double>(tokens)});
  return sums[0] / sums[1];
}

// `count` lines sampled from the model at `temperature`, all at once (one batch row each).
// With --expert-parallel every rank calls this (the forward is collective) and runs all seq_len
// steps, whatever its lines.
std::vector<std::string> sample(train::CharTransformer& model, const train::Dataset& data,
                                int64_t count, double temperature, uint64_t seed, bool collective) {
  gg::NoGradGuard no_grad;
  model.eval();
  std::mt19937_64 rng(train::mix64(seed ^ 0x5a3b1e));
  const int64_t V = data.vocab_size(), T = model.config.seq_len;
  std::vector<std::vector<int64_t>> out(count);
  std::vector<bool> done(count, false);
  std::vector<int64_t> tokens(count, train::kBos);  // [count, t] row-major, grown per step
  for (int64_t t = 1; t <= T; ++t) {
    gg::Tensor logits = model.forward(gg::tensor<int64_t>(tokens, {count, t})).select(1, t - 1);
    const std::vector<float> l = logits.to(gg::kFloat32).contiguous().to_vector<float>();
    std::vector<int64_t> next(count, train::kEos);
    for (int64_t r = 0; r < count; ++r) {
      if (done[r]) continue;
      // Softmax over the tokens a line can continue with: characters and EOS.
      const float* row = l.data() + r * V;
      double top = -std::numeric_limits<double>::infinity();
      for (int64_t v = train::kEos; v < V; ++v) top = std::max(top, double(row[v]));
      std::vector<double> p(V, 0.0);
      double total = 0;
      for (int64_t v = train::kEos; v < V; ++v)
        total += p[v] = std::exp((row[v] - top) / temperature);
      double u = static_cast<double>(rng() >> 11) * 0x1.0p-53 * total;
      int64_t pick = V - 1;
      for (int64_t v = train::kEos; v < V; ++v)
        if ((u -= p[v]) < 0) {
          pick = v;
          break;
        }
      next[r] = pick;
      if (pick == train::kEos)
        done[r] = true;
      else
        out[r].push_back(pick);
    }
    if (t == T || (!collective && std::all_of(done.begin(), done.end(), [](bool d) { return d; })))
      break;
    std::vector<int64_t> grown;
    for (int64_t r = 0; r < count; ++r) {
      grown.insert(grown.end(), tokens.begin() + r * t, tokens.begin() + (r + 1) * t);
      grown.push_back(next[r]);
    }
    tokens = std::move(grown);
  }
  model.train();
  std::vector<std::string> words;
  for (const auto& ids : out) words.push_back(data.decode(ids));
  return words;
}

// Token-slots routed to each expert by the last forward: [layer][expert].
std::vector<std::vector<double>> expert_counts(const train::CharTransformer& model) {
  std::vector<std::vector<double>> counts;
  for (const auto& block : model.blocks) {
    auto& layer = counts.emplace_back();
    for (int64_t c : block->moe->last_expert_counts()) layer.push_back(static_cast<double>(c));
  }
  return counts;
}

// Each block's share (0 to 1) of the token-slots per expert: [layer][expert].
std::vector<std::vector<double>> expert_loads(std::vector<std::vector<double>> counts) {
  for (auto& layer : counts) {
    double total = 0;
    for (double c : layer) total += c;
    for (double& c : layer) c /= std::max(total, 1.0);
  }
  return counts;
}

// The same in percent, e.g. "25/24/26/25 31/19/27/23 %".
std::string expert_shares(const std::vector<std::vector<double>>& loads) {
  std::string out;
  for (const auto& shares : loads) {
    if (!out.empty()) out += ' ';
    for (size_t e = 0; e < shares.size(); ++e)
      out += fmt::format("{}{:.0f}", e ? "/" : "", 100.0 * shares[e]);
  }
  return out + " %";
}

// One step's scalars for TensorBoard: losses, learning rate, throughput, and each layer's share
// of token-slots per expert (one chart per layer, one curve per expert, as add_scalars draws them).
void log_step(gg::SummaryWriter& board, const std::vector<std::vector<double>>& loads, int64_t step,
              double train_loss, double lr, double tokens_per_s) {
  board.add_scalar("loss/train", train_loss, step);
  board.add_scalar("lr", lr, step);
  if (tokens_per_s > 0) board.add_scalar("tokens_per_s", tokens_per_s, step);
  for (size_t layer = 0; layer < loads.size(); ++layer) {
    std::map<std::string, double> shares;
    for (size_t e = 0; e < loads[layer].size(); ++e)
      shares[fmt::format("expert{}", e)] = loads[layer][e];
    board.add_scalars(fmt::format("expert_load/layer{}", layer), shares, step);
  }
}

struct RunResult {
  std::shared_ptr<train::CharTransformer> model;
  std::vector<float> step_losses;  // train loss of each step run here
  double final_train_loss = NAN;   // mean over the last evaluation interval
  double final_val_loss = NAN;
  int64_t last_step = 0;
  uint64_t param_hash = 0;
  double tokens_per_s = 0;
  double seconds = 0;
};

// Keeps metrics.csv rows of steps <= keep_through (a resumed run rewrites what it redoes).
// Columns: step, lr, train_loss, val_loss, tokens_per_s, bigram_val_loss, then each layer's share
// of token-slots per expert, load_l<layer>_e<expert> (tools/plot_metrics.py draws them).
std::ofstream open_metrics(const fs::path& path, int64_t keep_through, int64_t layers,
                           int64_t experts) {
  std::vector<std::string> keep;
  if (keep_through > 0) {
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0])) &&
          std::stoll(line) <= keep_through)
        keep.push_back(line);
  }
  std::ofstream out(path, std::ios::trunc);
  GG_CHECK(out.good(), "[train_multihead] cannot write {}", path.string());
  out << "step,lr,train_loss,val_loss,tokens_per_s,bigram_val_loss";
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t e = 0; e < experts; ++e) out << fmt::format(",load_l{}_e{}", l, e);
  out << "\n";
  for (const auto& l : keep) out << l << "\n";
  return out;
}

// Trains from scratch, or from the checkpoint in o.out_dir when o.resume. With --distributed every
// rank runs this together: each reads the checkpoint (the out-dir must be on a file system they
// share), trains on its share of every global batch, and only rank 0 logs and writes files.
RunResult run(Options o, const train::Dataset& data, double baseline, const Job& job) {
  const fs::path dir = o.out_dir;
  const bool speak = !o.quiet && job.lead();
  if (job.lead()) fs::create_directories(dir);
  train::ModelConfig config{.vocab_size = data.vocab_size(),
                            .seq_len = o.seq_len,
                            .embed_dim = o.embed_dim,
                            .heads = o.heads,
                            .layers = o.layers,
                            .experts = o.experts,
                            .top_k = o.top_k,
                            .expert_hidden = o.expert_hidden};
  gg::manual_seed(o.seed);
  auto model = std::make_shared<train::CharTransformer>(config);
  // bf16: parameters, activations and AdamW's state in bf16 (initialised in f32, then rounded).
  // On CPUs without oneDNN's bf16 kernels (below AVX512_CORE) every op computes through f32.
  if (o.dtype == "bf16") model->to(gg::kBFloat16);
  const auto adamw_options =
      gg::optim::AdamWOptions(o.lr).betas({0.9, 0.95}).weight_decay(o.weight_decay);
  // A checkpoint is always the full model (one process's layout, --expert-parallel's too): it is
  // loaded before the experts are sharded. With --expert-parallel the optimizer state, also in the
  // full layout, is read into an optimizer over the full model, and this rank's share goes to the
  // sharded model's optimizer below.
  std::optional<train::CheckpointFiles> ckpt;
  gg::nn::NamedTensors full_state, full_names;
  if (!o.init_from.empty() && !o.resume) {
    gg::load(*model, o.init_from);
    const double val = evaluate(*model, data.val, o.seq_len, job);
    if (speak) spdlog::info("initialised from {}: validation loss {:.6f}", o.init_from, val);
  }
  if (o.resume) {
    ckpt = train::read_checkpoint_pointer(dir);
    gg::load(*model, ckpt->model.string());
    if (job.expert_parallel) {
      gg::optim::AdamW full(model->parameters(), adamw_options);
      gg::load_optimizer(full, ckpt->optimizer.string());
      full_state = full.state_dict();
      full_names = model->named_parameters();
    }
  }
  // --expert-parallel: each block's experts sharded over the ranks, before DDP sees them (it
  // leaves the experts alone: ExpertParallelMoE marks them not replicated).
  std::unique_ptr<train::ExpertSharding> sharding;
  if (job.expert_parallel) sharding = std::make_unique<train::ExpertSharding>(*model);
  // DDP: rank 0's weights on every rank (the same seed made them equal anyway), and every
  // backward averages the gradients over the ranks.
  std::unique_ptr<gg::nn::DistributedDataParallel<train::CharTransformer>> ddp;
  if (job.distributed)
    ddp = std::make_unique<gg::nn::DistributedDataParallel<train::CharTransformer>>(model);
  gg::optim::AdamW optimizer(model->parameters(), adamw_options);
  gg::optim::CosineWithWarmup schedule(optimizer, o.warmup, o.steps, o.min_lr);

  int64_t step = 0;
  if (o.resume) {
    if (sharding)
      optimizer.load_state_dict(sharding->shard_state(full_state, full_names));
    else
      gg::load_optimizer(optimizer, ckpt->optimizer.string());
    step = ckpt->step;
    GG_CHECK(step >= 0 && step <= o.steps,
             "[train_multihead] {} says step {}, outside the run's 0 to {} steps",
             train::pointer_path(dir).string(), step, o.steps);
    if (job.distributed) {  // the ranks must continue from the same checkpoint
      gg::Tensor range = gg::tensor<int64_t>({step, -step});
      gg::distributed::all_reduce(range, gg::distributed::ReduceOp::Max);
      const std::vector<int64_t> r = range.to_vector<int64_t>();
      GG_CHECK(r[0] == -r[1],
               "[train_multihead] the ranks read checkpoints of different steps (from {} to {}) "
               "in {}: every rank must read the same --out-dir (a file system they share)",
               -r[1], r[0], dir.string());
    }
    schedule.set_last_step(step);
    if (speak) spdlog::info("resumed from {} at step {}", ckpt->model.string(), step);
  }
  int64_t params = 0;
  for (const auto& p : model->parameters()) params += p.numel();
  if (speak)
    spdlog::info(
        "model: {} layers, embed {}, {} heads, {} experts (top-{}, hidden {}), "
        "{} parameters{}",
        o.layers, o.embed_dim, o.heads, o.experts, o.top_k, o.expert_hidden, params,
        job.distributed
            ? fmt::format("; data-parallel on {} ranks, {} lines per global batch{}", job.world,
                          o.batch_size,
                          job.expert_parallel
                              ? fmt::format(", expert-parallel: {} of the {} experts on each rank "
                                            "(parameters counted: this rank's)",
                                            o.experts / job.world, o.experts)
                              : "")
            : "");

  Options pinned_copy = o;
  gg::Metadata metadata;
  for (const auto& s : pinned_settings(pinned_copy))
    metadata["train." + s.flag.substr(2)] = s.get();
  // Not settings but the job: a resume must run on as many processes (see --resume in main).
  metadata["train.distributed"] = job.distributed ? "true" : "false";
  metadata["train.world_size"] = std::to_string(job.world);
  metadata["train.expert_parallel"] = job.expert_parallel ? "true" : "false";
  std::ofstream metrics;
  std::unique_ptr<gg::SummaryWriter> board;
  if (job.lead()) {
    metrics = open_metrics(dir / "metrics.csv", step, o.layers, o.experts);
    // TensorBoard's view of the same numbers; a resumed run adds a new event file beside the old.
    if (!o.no_tensorboard) {
      board = std::make_unique<gg::SummaryWriter>(
          o.tensorboard.empty() ? (dir / "tensorboard").string() : o.tensorboard,
          gg::SummaryWriterOptions().flush_secs(10).max_queue(1000));
      std::string settings;
      for (const auto& [key, value] : metadata)
        settings += fmt::format("    {} = {}\n", key, value);
      board->add_text("settings", settings, step);
    }
  }

  const int64_t end = o.stop_after > 0 ? std::min(o.stop_after, o.steps) : o.steps;
  const int64_t checkpoint_every = o.checkpoint_every > 0 ? o.checkpoint_every : o.eval_every;
  train::BatchOrder order(data.train, o.batch_size, o.seed);
  const std::vector<gg::Tensor> params_list = model->parameters();
  ProgressBar bar(step, o.steps);
  RunResult result;
  double interval_nll = 0;
  int64_t interval_tokens = 0;
  auto log = [&](const std::string& line) {
    if (speak) bar.log(line);
  };

  while (step < end) {
    seed_step(o.seed, step);
    const double lr = optimizer.lr();
    // The step's global batch, the same on every rank, and this rank's share of it.
    const std::vector<int64_t> global = order.indices(step);
    std::vector<int64_t> mine =
        job.distributed ? train::rank_share(global, job.rank, job.world) : global;
    // A rank whose share is empty (a batch smaller than the world) still runs a step, so that
    // it joins the gradient all-reduce, on one line that counts for nothing (weight 0).
    const bool idle = mine.empty();
    if (idle) mine.push_back(global.front());
    train::Batch batch = train::make_batch(data.train, mine, o.seq_len);
    gg::Tensor logits = ddp ? ddp->forward(batch.input) : model->forward(batch.input);
    gg::Tensor ce, loss;
    int64_t tokens = batch.tokens;  // the step's predicted tokens, over every rank
    if (!job.distributed) {
      ce = F::cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.target.reshape({-1}),
                            gg::Reduction::Mean, train::kIgnore);
      loss = o.aux_coef > 0 ? ce + model->aux_loss * (o.aux_coef / o.layers) : ce;
    } else {
      // DDP averages the ranks' gradients, so each rank's loss is its sum over its tokens times
      // world / (the global batch's tokens): the average is then the gradient of the global
      // batch's mean, as one process computes it, whatever each share's token count. The
      // load-balancing term is each rank's own (it is not a sum over tokens), weighted by the
      // rank's share of the lines.
      tokens = train::predicted_tokens(data.train, global, o.seq_len);
      ce = F::cross_entropy(logits.reshape({-1, logits.size(-1)}), batch.target.reshape({-1}),
                            gg::Reduction::Sum, train::kIgnore);
      const double w = idle ? 0.0 : job.world / static_cast<double>(tokens);
      const double aux_w = idle ? 0.0 : double(job.world) * double(mine.size()) / global.size();
      loss = ce * w;
      if (o.aux_coef > 0) loss = loss + model->aux_loss * (aux_w * o.aux_coef / o.layers);
    }
    optimizer.zero_grad(/*set_to_none=*/true);
    loss.backward();
    if (sharding) {  // the experts' gradients sum over the ranks: make them the mean's too
      sharding->average_expert_grads();
      sharding->clip_grad_norm(o.clip);  // by the norm over every rank's experts
    } else {
      gg::nn::utils::clip_grad_norm_(params_list, o.clip);
    }
    optimizer.step();
    schedule.step();
    ++step;

    float train_loss = 0;
    std::vector<std::vector<double>> counts = expert_counts(*model);  // of this step's batch
    if (!job.distributed) {
      train_loss = ce.to(gg::kFloat32).item<float>();
    } else {
      // The global batch's mean loss and expert counts: one all-reduce of the local sums.
      std::vector<double> sums{idle ? 0.0 : double(ce.to(gg::kFloat32).item<float>())};
      for (const auto& layer : counts)
        for (double c : layer) sums.push_back(idle ? 0.0 : c);
      sums = sum_over_ranks(job, std::move(sums));
      train_loss = static_cast<float>(sums[0] / static_cast<double>(tokens));
      size_t i = 1;
      for (auto& layer : counts)
        for (double& c : layer) c = sums[i++];
    }
    result.step_losses.push_back(train_loss);
    interval_nll += double(train_loss) * tokens;
    interval_tokens += tokens;
    if (speak) bar.update(step, train_loss, lr, tokens);
    const auto loads = expert_loads(counts);
    if (board) log_step(*board, loads, step, train_loss, lr, o.quiet ? 0.0 : bar.tokens_per_s());
    if (board && o.histogram_every > 0 && step % o.histogram_every == 0) {
      for (const auto& [name, p] : model->named_parameters()) {
        board->add_histogram("weights/" + name, p, step);
        if (p.grad().defined()) board->add_histogram("gradients/" + name, p.grad(), step);
      }
    }

    double val_loss = NAN;
    if (step % o.eval_every == 0 || step == end) {
      val_loss = evaluate(*model, data.val, o.seq_len, job);
      result.final_train_loss = interval_nll / static_cast<double>(interval_tokens);
      result.final_val_loss = val_loss;
      if (board) {
        board->add_scalar("loss/val", val_loss, step);
        board->add_scalar("loss/bigram_baseline", baseline, step);
      }
      log(fmt::format("step {:>5}  train {:.4f}  val {:.4f}  bigram {:.4f}  ({:+.4f})  experts {}",
                      step, result.final_train_loss, val_loss, baseline, val_loss - baseline,
                      expert_shares(loads)));
      interval_nll = 0;
      interval_tokens = 0;
    }
    if (job.lead()) {
      metrics << fmt::format("{},{:.6g},{:.6f},{},{:.1f},{:.6f}", step, lr, train_loss,
                             std::isnan(val_loss) ? "" : fmt::format("{:.6f}", val_loss),
                             o.quiet ? 0.0 : bar.tokens_per_s(), baseline);
      for (const auto& shares : loads)
        for (double share : shares) metrics << fmt::format(",{:.4f}", share);
      metrics << "\n";
    }
    const bool checkpoint = step % checkpoint_every == 0 || step == end;
    // --expert-parallel: every rank's experts and their optimizer state, gathered into the full
    // layout (collective); rank 0 writes them as one process would.
    gg::nn::NamedTensors gathered_state;
    if (sharding && checkpoint) gathered_state = sharding->gather(optimizer);
    if (job.lead() && checkpoint) {
      metrics.flush();
      metadata["train.step"] = std::to_string(step);
      metadata["train.rng"] = "the generator is reseeded from (seed, step) before each step";
      // The sampler's position is the step: the batch order is a function of (seed, step).
      metadata["train.sampler"] = fmt::format(
          "global batch {} of {} in epoch {} comes next, {} lines dealt over {} rank(s)",
          step % order.batches_per_epoch(), order.batches_per_epoch(),
          step / order.batches_per_epoch(), o.batch_size, job.world);
      train::CheckpointFiles files;
      if (sharding) {
        sharding->with_full([&] {
          gg::optim::AdamW full(model->parameters(), adamw_options);
          full.load_state_dict(gathered_state);
          full.set_initial_lr(optimizer.initial_lr());
          full.set_lr(optimizer.lr());
          files = train::save_checkpoint(dir, step, *model, full, metadata);
        });
      } else {
        files = train::save_checkpoint(dir, step, *model, optimizer, metadata);
      }
      if (step == end) log(fmt::format("checkpoint: {}", files.model.string()));
    }
  }
  if (speak) bar.finish();
  if (std::isnan(result.final_val_loss)) {  // resumed a finished run: nothing was trained
    log(fmt::format("the checkpoint is at step {} of {}: nothing to train", step, o.steps));
    result.final_val_loss = evaluate(*model, data.val, o.seq_len, job);
  }
  // The other ranks may read the checkpoint next (--check-resume): wait until it is written.
  if (job.distributed) gg::distributed::barrier();
  result.model = model;
  result.last_step = step;
  result.param_hash = parameter_hash(*model);
  result.tokens_per_s = bar.mean_tokens_per_s();
  result.seconds = bar.elapsed_s();
  return result;
}

// Runs o.steps uninterrupted, then half of them, stops, and resumes for the rest; the two must
// agree bit for bit (every step's loss, the final validation loss and every parameter). With
// --distributed every rank runs it (the losses and parameters are the same on every rank).
int check_resume(Options o, const train::Dataset& data, double baseline, const Job& job) {
  o.quiet = true;
  o.resume = false;
  o.stop_after = 0;
  const fs::path root = o.out_dir;
  Options full = o, first = o, second = o;
  full.out_dir = (root / "uninterrupted").string();
  first.out_dir = second.out_dir = (root / "interrupted").string();
  first.stop_after = o.steps / 2;
  full.tensorboard = first.tensorboard = second.tensorboard = "";  // each in its own out-dir
  second.resume = true;
  if (job.lead()) {
    std::error_code ignored;
    fs::remove_all(full.out_dir, ignored);
    fs::remove_all(first.out_dir, ignored);
  }
  if (job.distributed) gg::distributed::barrier();  // before any rank looks in them

  spdlog::info("check-resume: {} steps uninterrupted", o.steps);
  const RunResult a = run(full, data, baseline, job);
  spdlog::info("check-resume: {} steps, stop, then resume to {}", first.stop_after, o.steps);
  const RunResult b1 = run(first, data, baseline, job);
  const RunResult b2 = run(second, data, baseline, job);

  std::vector<float> b_losses = b1.step_losses;
  b_losses.insert(b_losses.end(), b2.step_losses.begin(), b2.step_losses.end());
  int64_t first_diff = -1;
  for (size_t i = 0; i < std::min(a.step_losses.size(), b_losses.size()) && first_diff < 0; ++i)
    if (std::memcmp(&a.step_losses[i], &b_losses[i], sizeof(float)) != 0) first_diff = int64_t(i);
  const bool same = a.step_losses.size() == b_losses.size() && first_diff < 0 &&
                    a.final_val_loss == b2.final_val_loss && a.param_hash == b2.param_hash;
  spdlog::info("uninterrupted: final train loss {:.9g}, val loss {:.9g}, parameters {:016x}",
               a.step_losses.back(), a.final_val_loss, a.param_hash);
  spdlog::info("resumed:       final train loss {:.9g}, val loss {:.9g}, parameters {:016x}",
               b_losses.back(), b2.final_val_loss, b2.param_hash);
  if (!same) {
    if (job.lead())
      spdlog::error("error: check-resume FAILED: the resumed run differs{}",
                    first_diff >= 0 ? fmt::format(" from step {} on", first_diff + 1) : "");
    return kExitFailed;
  }
  spdlog::info("check-resume passed: identical bit for bit");
  return 0;
}

// What every run needs before training: the data and the bigram baseline.
struct Prepared {
  train::Dataset data;
  double baseline = 0;
};

// With --resume, puts the checkpoint's settings in o (checking that it was written by a job of
// this one's shape); then loads the data and fits the baseline.
Prepared prepare(Options& o, const CLI::App& app, const Job& job) {
  if (o.resume) {
    // The checkpoint's settings win; say so where the command line disagrees.
    const auto ckpt = train::read_checkpoint_pointer(o.out_dir);
    const gg::Metadata meta = gg::safetensors::read_metadata(ckpt.model.string());
    for (auto& s : pinned_settings(o)) {
      const auto it = meta.find("train." + s.flag.substr(2));
      if (it == meta.end() && s.flag == "--dtype") {  // written before --dtype existed: f32
        s.set("f32");
        continue;
      }
      GG_CHECK(it != meta.end(), "[train_multihead] {} lacks the setting {}", ckpt.model.string(),
               s.flag);
      if (app.count(s.flag) > 0 && s.get() != it->second)
        spdlog::warn("warning: {} {} ignored: resuming with the checkpoint's {}", s.flag, s.get(),
                     it->second);
      s.set(it->second);
    }
    validate(o, "the checkpoint " + ckpt.model.string());
    // The ranks' gradient sums, and the evaluation's, round differently on another number of
    // processes: only the same job shape resumes exactly. (Checkpoints from before --distributed
    // are from one process.)
    Job written;
    const auto distributed = meta.find("train.distributed");
    const auto world = meta.find("train.world_size");
    const auto expert_parallel = meta.find("train.expert_parallel");
    written.distributed = distributed != meta.end() && distributed->second == "true";
    written.expert_parallel = expert_parallel != meta.end() && expert_parallel->second == "true";
    if (world != meta.end()) pin("train.world_size", written.world).set(world->second);
    if (written.distributed != job.distributed || written.world != job.world ||
        written.expert_parallel != job.expert_parallel)
      throw UsageError(fmt::format(
          "[train_multihead] {} was written by {}, and this run is {}: resume it as it ran{} "
          "(another number of processes would not continue the run exactly)",
          ckpt.model.string(), written.describe(), job.describe(),
          written.distributed
              ? fmt::format(", with mpirun -np {} ... --distributed{}", written.world,
                            written.expert_parallel ? " --expert-parallel" : "")
              : ", without mpirun and --distributed"));
  }
  if (job.expert_parallel && o.experts % job.world != 0)
    throw UsageError(fmt::format(
        "[train_multihead] --expert-parallel shards the experts evenly over the processes: "
        "--experts {} must divide by the {} processes (from {})",
        o.experts, job.world, o.resume ? "the checkpoint" : "the command line"));
  if (o.threads > 0) omp_set_num_threads(o.threads);
  if (o.warmup >= o.steps) {
    const int64_t warmup = o.steps / 10;
    spdlog::warn("warning: --warmup {} leaves no steps of a {}-step run for the decay; using {}",
                 o.warmup, o.steps, warmup);
    o.warmup = warmup;
  }

  Prepared p{train::load_dataset(o.data, o.val_fraction), 0};
  const train::Bigram bigram(p.data, o.seq_len);
  const double alpha = bigram.best_alpha(p.data.val, o.seq_len);
  p.baseline = bigram.loss(p.data.val, o.seq_len, alpha);
  spdlog::info(
      "data: {}: {} train / {} validation lines, {} characters + PAD/BOS/EOS, {} / {} "
      "predicted tokens",
      o.data, p.data.train.size(), p.data.val.size(), p.data.chars.size(),
      train::Dataset::target_count(p.data.train, o.seq_len),
      train::Dataset::target_count(p.data.val, o.seq_len));
  spdlog::info(
      "bigram baseline (validation, nats/token): {:.4f} with add-{:.3g} smoothing "
      "(the best alpha), {:.4f} with add-one",
      p.baseline, alpha, bigram.loss(p.data.val, o.seq_len, 1.0));
  return p;
}

// Runs `setup`, which may throw, and returns the exit status to stop with (its error printed),
// or nothing to go on. In a distributed job the ranks first agree (one all_reduce) on whether it
// failed on any of them -- a data file missing on one machine -- so that all stop together rather
// than some waiting in a collective the others never reach; the lowest failing rank reports.
std::optional<int> collectively(const Job& job, const std::function<void()>& setup) {
  int64_t status = 0;
  std::string message;
  try {
    setup();
  } catch (const UsageError& e) {
    status = kExitUsage;
    message = e.what();
  } catch (const std::exception& e) {
    status = kExitFailed;
    message = e.what();
  }
  int64_t reporter = job.rank;
  if (job.distributed) {
    gg::Tensor t = gg::tensor<int64_t>({status, -int64_t{status != 0 ? job.rank : job.world}});
    gg::distributed::all_reduce(t, gg::distributed::ReduceOp::Max);
    const std::vector<int64_t> worst = t.to_vector<int64_t>();
    status = worst[0];
    reporter = -worst[1];
  }
  if (status == 0) return std::nullopt;
  if (job.rank == reporter) spdlog::error("error: {}", message);
  return static_cast<int>(status);
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{
      "Trains a character-level transformer language model (causal multi-head attention and "
      "mixture-of-experts blocks) on a text file, one sequence per line, and samples from it."};
  app.add_option("--data", o.data, "Text file, one training sequence per line")
      ->capture_default_str();
  app.add_option("--val-fraction", o.val_fraction,
                 "Share of lines held out for validation (chosen by a hash of the line)")
      ->capture_default_str();
  app.add_option("--steps", o.steps, "Optimizer steps in the run (the LR schedule spans them)")
      ->capture_default_str();
  app.add_option("--batch-size", o.batch_size,
                 "Sequences per step (with --distributed: over all processes together)")
      ->capture_default_str();
  app.add_option("--seq-len", o.seq_len,
                 "Longest sequence in tokens (BOS + characters); longer lines are cut")
      ->capture_default_str();
  app.add_option("--embed-dim", o.embed_dim, "Model width")->capture_default_str();
  app.add_option("--heads", o.heads, "Attention heads (must divide --embed-dim)")
      ->capture_default_str();
  app.add_option("--layers", o.layers, "Transformer blocks")->capture_default_str();
  app.add_option("--experts", o.experts, "Experts in each mixture-of-experts feed-forward")
      ->capture_default_str();
  app.add_option("--top-k", o.top_k, "Experts each token is routed to")->capture_default_str();
  app.add_option("--expert-hidden", o.expert_hidden, "Hidden width of each expert")
      ->capture_default_str();
  app.add_option("--lr", o.lr, "Peak learning rate (AdamW)")->capture_default_str();
  app.add_option("--min-lr", o.min_lr, "Learning rate at the end of the cosine decay")
      ->capture_default_str();
  app.add_option("--warmup", o.warmup, "Linear warmup steps before the cosine decay")
      ->capture_default_str();
  app.add_option("--weight-decay", o.weight_decay, "AdamW's decoupled weight decay")
      ->capture_default_str();
  app.add_option("--clip", o.clip, "Clip the gradients' total norm to this")->capture_default_str();
  app.add_option("--aux-coef", o.aux_coef,
                 "Weight of the MoE load-balancing loss (averaged over blocks)")
      ->capture_default_str();
  app.add_option("--seed", o.seed, "Seed of the initialisation, data order and sampling")
      ->capture_default_str();
  app.add_option("--eval-every", o.eval_every,
                 "Evaluate on the validation split every this many steps")
      ->capture_default_str();
  app.add_option("--checkpoint-every", o.checkpoint_every,
                 "Write a checkpoint every this many steps (0: at every evaluation); always at "
                 "the end")
      ->capture_default_str();
  app.add_option("--out-dir", o.out_dir, "Where metrics.csv and the checkpoints go")
      ->capture_default_str();
  app.add_option("--tensorboard", o.tensorboard,
                 "Where the TensorBoard event files go (default: <out-dir>/tensorboard); watch "
                 "with: tensorboard --logdir DIR");
  app.add_flag("--no-tensorboard", o.no_tensorboard, "Write no TensorBoard event files");
  app.add_option("--histogram-every", o.histogram_every,
                 "Write histograms of the weights and gradients to TensorBoard every this many "
                 "steps (0: never)")
      ->capture_default_str();
  app.add_flag("--resume", o.resume,
               "Continue from the checkpoint in --out-dir, with its settings, exactly as if the "
               "run had not stopped");
  app.add_flag("--distributed", o.distributed,
               "Train data-parallel on the processes of an MPI job: mpirun -np N ... "
               "--distributed. --batch-size is the global batch, dealt out over the N processes; "
               "rank 0 logs and writes the files, every rank reads --out-dir on --resume");
  app.add_flag("--expert-parallel", o.expert_parallel,
               "With --distributed: shard each block's experts over the N processes (--experts "
               "must divide by N), the rest data-parallel. Checkpoints hold the full model and "
               "optimizer state, as one process writes them");
  app.add_option("--init-from", o.init_from,
                 "Start a new run (step 0, a fresh optimizer) from the weights of this model "
                 "file, e.g. a checkpoint's step-*.model.safetensors (from one process or "
                 "several); prints its validation loss first")
      ->check(CLI::ExistingFile);
  app.add_option("--stop-after", o.stop_after,
                 "Stop (with a checkpoint) after this step, as if interrupted; 0: run all steps")
      ->capture_default_str();
  app.add_flag("--check-resume", o.check_resume,
               "Test mode: train --steps steps, then --steps/2 + resume, and exit 1 unless the "
               "two agree bit for bit (uses --out-dir/uninterrupted and --out-dir/interrupted)");
  app.add_option("--threads", o.threads,
                 "OpenMP threads for the kernels (0: OpenMP's default, all cores). The model is "
                 "small: on a busy machine, threads spin-waiting for each other cost more than "
                 "they gain (with 2+, set OMP_WAIT_POLICY=passive)")
      ->capture_default_str();
  app.add_option("--dtype", o.dtype,
                 "Parameter and activation dtype: f32, or bf16 (computed through f32 on CPUs "
                 "without bf16 kernels, below AVX512_CORE)")
      ->capture_default_str();
  app.add_option("--samples", o.samples, "Words to sample from the model at the end")
      ->capture_default_str();
  app.add_option("--temperature", o.temperature, "Sampling temperature (1: the model's own)")
      ->capture_default_str();
  app.footer(
      "Settings out of range (on the command line or in a checkpoint) exit with status 2. "
      "With GG_EXAMPLE_SMOKE=1 in the environment (the ctest run), the defaults shrink to a "
      "--check-resume run of a tiny model.");
  if (const char* smoke = std::getenv("GG_EXAMPLE_SMOKE"); smoke && std::string(smoke) == "1") {
    o.steps = 20;
    o.eval_every = 10;
    o.embed_dim = 32;
    o.expert_hidden = 64;
    o.batch_size = 32;
    o.warmup = 5;
    o.val_fraction = 0.02;
    o.check_resume = true;
  }
  if (const std::optional<int> status = gg::cli::parse(app, argc, argv)) return *status;

  spdlog::set_pattern("[%H:%M:%S] %v");
  Job job;
  try {
    validate(o, "the command line");
    job = start_job(o.distributed);
    job.expert_parallel = o.expert_parallel;
  } catch (const UsageError& e) {
    spdlog::error("error: {}", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    spdlog::error("error: {}", e.what());
    return kExitFailed;
  }

  std::optional<Prepared> prepared;
  if (const std::optional<int> status =
          collectively(job, [&] { prepared.emplace(prepare(o, app, job)); }))
    return *status;
  const train::Dataset& data = prepared->data;
  const double baseline = prepared->baseline;
  try {
    if (o.check_resume) return check_resume(o, data, baseline, job);

    const RunResult r = run(o, data, baseline, job);
    if (r.last_step < o.steps) {
      spdlog::info("stopped after step {} of {}; continue with --resume{}", r.last_step, o.steps,
                   job.distributed ? fmt::format(" (on {} processes again)", job.world) : "");
      return 0;
    }
    spdlog::info("done: step {} reached in {:.1f} s, {} tokens/s on average", r.last_step,
                 r.seconds, train::format_rate(r.tokens_per_s));
    const double gap = baseline - r.final_val_loss;
    spdlog::info(
        "final: train loss {:.4f}, validation loss {:.4f}, bigram baseline {:.4f} -> "
        "{:.4f} nats/token ({:.1f}%) {} the bigram",
        r.final_train_loss, r.final_val_loss, baseline, std::abs(gap),
        100 * std::abs(gap) / baseline, gap > 0 ? "below" : "ABOVE");
    spdlog::info("metrics: {}", (fs::path(o.out_dir) / "metrics.csv").string());
    if (o.samples > 0 && (job.lead() || job.expert_parallel)) {
      const auto words =
          sample(*r.model, data, o.samples, o.temperature, o.seed, job.expert_parallel);
      if (!job.lead()) return gap > 0 ? 0 : kExitFailed;
      int64_t novel = 0;
      std::string listing;
      for (const auto& w : words) {
        const bool known = data.in_train(w);
        novel += known ? 0 : 1;
        listing += fmt::format("  {}{}\n", w, known ? "" : "  (new)");
      }
      spdlog::info("{} samples at temperature {} ({} not in the training split):", words.size(),
                   o.temperature, novel);
      std::fputs(listing.c_str(), stdout);
    }
    return gap > 0 ? 0 : kExitFailed;  // the same on every rank: their val losses are equal
  } catch (const std::exception& e) {
    // One rank's error must not leave the others waiting in a collective: std::terminate, in a
    // catch block, has gg::distributed print this rank's message and abort the whole job.
    if (job.distributed) std::terminate();
    spdlog::error("error: {}", e.what());
    return dynamic_cast<const UsageError*>(&e) ? kExitUsage : kExitFailed;
  }
}
