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

// The current checkpoint of `dir`; throws if there is none. The pointer must be a small regular
// file (a FIFO would block the open) naming files inside `dir`.
inline CheckpointFiles read_checkpoint_pointer(const fs::path& dir) {
  const fs::path path = pointer_path(dir);
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  GG_CHECK(fs::exists(status), "[checkpoint] no checkpoint in '{}' ({} not found)", dir.string(),
           path.string());
  GG_CHECK(fs::is_regular_file(status) && fs::file_size(path, ec) <= 4096 && !ec,
           "[checkpoint] {} is not a checkpoint pointer (not a regular file of at most 4096 bytes)",
           path.string());
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  std::string model, optimizer;
  int64_t step = 0;
  try {
    const auto j = nlohmann::json::parse(text.str());
    step = j.at("step").get<int64_t>();
    model = j.at("model").get<std::string>();
    optimizer = j.at("optimizer").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    gg::fail("[checkpoint] {} is not a valid checkpoint pointer: {}", path.string(), e.what());
  }
  for (const std::string* name : {&model, &optimizer})
    GG_CHECK(!name->empty() && !fs::path(*name).has_parent_path() && *name != "." && *name != "..",
             "[checkpoint] {} names '{}', not a file in '{}'", path.string(), *name, dir.string());
  GG_CHECK(step >= 0, "[checkpoint] {} says step {}, below 0", path.string(), step);
  return {step, dir / model, dir / optimizer};
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
