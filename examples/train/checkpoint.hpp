#pragma once
// Checkpoints of examples/train_multihead, one directory per run:
//   checkpoint.json                  {"step": 400, "model": "...", "optimizer": "..."}
//   step-000400.model.safetensors    gg::save(model): the weights, plus the run's settings, the
//                                    step and the RNG seed in the safetensors metadata
//   step-000400.optim.safetensors    gg::save_optimizer: AdamW's moments and step counts, lr
// Each file is written atomically (temp file, fsync, rename), and checkpoint.json -- written
// the same way, last -- is what makes a checkpoint current: a crash at any moment leaves the
// previous complete checkpoint in place. The files of the previous step are removed after.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <groupgrad/groupgrad.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>

namespace train {

namespace fs = std::filesystem;

// Writes `text` to `path` atomically: a temp file beside it, fsynced, renamed over it.
inline void write_file_atomically(const fs::path& path, const std::string& text) {
  const fs::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  GG_CHECK(fd >= 0, "[checkpoint] cannot create {}: {}", tmp.string(), std::strerror(errno));
  size_t done = 0;
  bool ok = true;
  while (ok && done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    ok = w > 0 || (w < 0 && errno == EINTR);
    if (w > 0) done += static_cast<size_t>(w);
  }
  ok = ok && ::fsync(fd) == 0;
  ok = (::close(fd) == 0) && ok;
  if (!ok || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    gg::fail("[checkpoint] writing {} failed: {}", path.string(), why);
  }
}

struct CheckpointFiles {
  int64_t step = 0;
  fs::path model, optimizer;
};

inline fs::path pointer_path(const fs::path& dir) { return dir / "checkpoint.json"; }

// The current checkpoint of `dir`; throws if there is none.
inline CheckpointFiles read_checkpoint_pointer(const fs::path& dir) {
  std::ifstream in(pointer_path(dir));
  GG_CHECK(in.good(), "[checkpoint] no checkpoint in '{}' ({} not found)", dir.string(),
           pointer_path(dir).string());
  std::stringstream text;
  text << in.rdbuf();
  try {
    const auto j = nlohmann::json::parse(text.str());
    return {j.at("step").get<int64_t>(), dir / j.at("model").get<std::string>(),
            dir / j.at("optimizer").get<std::string>()};
  } catch (const nlohmann::json::exception& e) {
    gg::fail("[checkpoint] {} is not a valid checkpoint pointer: {}", pointer_path(dir).string(),
             e.what());
  }
}

// Saves model and optimizer state for `step` and makes it the current checkpoint of `dir`.
inline CheckpointFiles save_checkpoint(const fs::path& dir, int64_t step,
                                       const gg::nn::Module& model,
                                       const gg::optim::Optimizer& optimizer,
                                       const gg::Metadata& metadata) {
  fs::create_directories(dir);
  std::optional<CheckpointFiles> previous;
  if (fs::exists(pointer_path(dir))) previous = read_checkpoint_pointer(dir);
  const std::string stem = fmt::format("step-{:06}", step);
  CheckpointFiles now{step, dir / (stem + ".model.safetensors"),
                      dir / (stem + ".optim.safetensors")};
  gg::save(model, now.model.string(), metadata);
  gg::save_optimizer(optimizer, now.optimizer.string());
  const nlohmann::json pointer = {{"step", step},
                                  {"model", now.model.filename().string()},
                                  {"optimizer", now.optimizer.filename().string()}};
  write_file_atomically(pointer_path(dir), pointer.dump(2) + "\n");
  if (previous && previous->model != now.model) {
    std::error_code ignored;
    fs::remove(previous->model, ignored);
    fs::remove(previous->optimizer, ignored);
  }
  return now;
}

}  // namespace train
