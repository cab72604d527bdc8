// The groupgrad side of the `train` workload: the model of examples/train_multihead (its own
// train/model.hpp and train/data.hpp), one step as that example takes it, minus the learning-rate
// schedule and the logging.
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <groupgrad/groupgrad.hpp>
#include <map>
#include <memory>

#include "groupgrad_variant.hpp"
#include "train.hpp"
#include "train_step.hpp"

namespace gg::bench {

namespace {
// The step of GroupgradTrainer, then what examples/train_multihead logs to TensorBoard after
// every step (its log_step): train loss, learning rate, tokens/s and each layer's expert load
// (add_scalars, one event file per expert), into a SummaryWriter with its default buffering.
// The directory is made fresh and removed with the variant.
struct LoggedTrainer {
  std::shared_ptr<GroupgradTrainer> trainer;
  std::filesystem::path dir;
  std::unique_ptr<gg::SummaryWriter> board;
  int64_t step = 0;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();

  ~LoggedTrainer() {
    board.reset();  // closes the files before they are removed
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }

  void run() {
    const double loss = trainer->step().item<double>();
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last).count();
    last = now;
    board->add_scalar("loss/train", loss, step);
    board->add_scalar("lr", trainer->optimizer->options().lr(), step);
    board->add_scalar("tokens_per_s",
                      static_cast<double>(trainer->input.numel()) / std::max(seconds, 1e-9), step);
    for (size_t layer = 0; layer < trainer->model->blocks.size(); ++layer) {
      const std::vector<int64_t> counts = trainer->model->blocks[layer]->moe->last_expert_counts();
      int64_t total = 0;
      for (int64_t c : counts) total += c;
      std::map<std::string, double> shares;
      for (size_t e = 0; e < counts.size(); ++e)
        shares[fmt::format("expert{}", e)] =
            static_cast<double>(counts[e]) / static_cast<double>(std::max<int64_t>(total, 1));
      board->add_scalars(fmt::format("expert_load/layer{}", layer), shares, step);
    }
    ++step;
  }
};

}  // namespace

TrainSide groupgrad_train(const std::string& data_path, int64_t batch_size, TrainSetup* setup) {
  TrainSetup& s = *setup;
  const train::Dataset data = train::load_dataset(data_path, 0.1);
  s.vocab = data.vocab_size();
  s.ignore_index = train::kIgnore;
  const train::ModelConfig config = model_config(s);
  train::BatchOrder order(data.train, batch_size, 1337);
  train::Batch batch = train::make_batch(data.train, order.indices(0), s.seq_len);
  auto t = make_trainer(config, s, batch);

  s.batch = batch.input.size(0);
  s.width = batch.input.size(1);
  s.input = batch.input.to_vector<int64_t>();
  s.target = batch.target.to_vector<int64_t>();
  s.params.clear();
  for (const auto& [name, p] : t->model->named_parameters())
    s.params.push_back({name, p.shape(), p.contiguous().to_vector<float>()});

  // The same step with TensorBoard logging, on its own copy of the model (same seed, same batch).
  auto logged = std::make_shared<LoggedTrainer>();
  logged->trainer = make_trainer(config, s, batch);
  logged->dir = std::filesystem::temp_directory_path() /
                fmt::format("gg_bench_tensorboard_{}", static_cast<long>(::getpid()));
  std::filesystem::remove_all(logged->dir);
  logged->board = std::make_unique<gg::SummaryWriter>(logged->dir.string());

  return {
      {"groupgrad", [t] { t->step(); }, groupgrad_memory_counter(), ""},
      [t] {
        gg::NoGradGuard no_grad;
        return static_cast<double>(t->loss().item<float>());
      },
      Variant{"groupgrad + SummaryWriter", [logged] { logged->run(); }, groupgrad_memory_counter(),
              "each step also logs what train_multihead logs to TensorBoard"}};
}

}  // namespace gg::bench
