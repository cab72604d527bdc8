#pragma once
// gg::SummaryWriter: TensorBoard event files from C++, as torch.utils.tensorboard.SummaryWriter
// writes them (`tensorboard --logdir DIR` shows them). Events are queued in memory and written by a
// background thread every flush_secs, when max_queue events wait, on flush() and on close().
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "../../core/tensor.hpp"

namespace gg {

// SummaryWriter's settings, PyTorch's constructor arguments of the same names, set libtorch-style:
// SummaryWriterOptions().flush_secs(10).max_queue(100).
class SummaryWriterOptions {
 public:
  // Events waiting before the writer thread writes them (>= 1; PyTorch's default 10).
  SummaryWriterOptions& max_queue(int n) {
    max_queue_ = n;
    return *this;
  }
  int max_queue() const { return max_queue_; }
  // The longest time, in seconds, an event waits before it is written (> 0; default 120).
  SummaryWriterOptions& flush_secs(double seconds) {
    flush_secs_ = seconds;
    return *this;
  }
  double flush_secs() const { return flush_secs_; }
  // Appended to every event file's name (default none).
  SummaryWriterOptions& filename_suffix(std::string suffix) {
    filename_suffix_ = std::move(suffix);
    return *this;
  }
  const std::string& filename_suffix() const { return filename_suffix_; }

 private:
  int max_queue_ = 10;
  double flush_secs_ = 120;
  std::string filename_suffix_;
};

class SummaryWriter {
 public:
  // Opens log_dir (created with its parents) and a new event file in it,
  // events.out.tfevents.<time>.<host>.<pid>.<n><suffix>, starting with its file_version record.
  // An empty log_dir is runs/<date>_<host>, as PyTorch's default. Throws gg::Error naming the path
  // and the system's reason when the directory or the file cannot be made. Later write failures
  // (a full disk) are logged once as a warning and drop the events; they never throw.
  explicit SummaryWriter(std::string log_dir = "", SummaryWriterOptions options = {});
  // Closes the writer (close()).
  ~SummaryWriter();
  SummaryWriter(const SummaryWriter&) = delete;
  SummaryWriter& operator=(const SummaryWriter&) = delete;

  // The directory this writer writes to (PyTorch's get_logdir).
  const std::string& get_logdir() const;
  // One point of the scalar curve `tag` (stored as a 32-bit float, as PyTorch stores it).
  void add_scalar(const std::string& tag, double scalar_value, int64_t global_step = 0);
  // Several curves in one chart: each entry goes to the run <log_dir>/<main_tag>_<key> (a '/' in
  // main_tag becomes '_') under the tag main_tag, as PyTorch does. A key whose run would lie
  // outside log_dir (e.g. "/../x") is a gg::Error, and nothing of the call is written.
  // Tags, keys and texts must be valid UTF-8 (protocol-buffer strings): else gg::Error.
  void add_scalars(const std::string& main_tag,
                   const std::map<std::string, double>& tag_scalar_dict, int64_t global_step = 0);
  // A histogram of the tensor's values (any dtype, any shape; PyTorch's default "tensorflow"
  // buckets: 0 and +-1e-12 * 1.1^k up to 1e20). Throws gg::Error on an empty tensor or when no
  // value is finite within the buckets.
  void add_histogram(const std::string& tag, const Tensor& values, int64_t global_step = 0);
  // Text for TensorBoard's text tab (shown under tag + "/text_summary", as PyTorch names it).
  void add_text(const std::string& tag, const std::string& text_string, int64_t global_step = 0);
  // Writes every queued event to disk now.
  void flush();
  // Flushes, stops the writer thread and closes the files. Adding after close() opens new event
  // files, as PyTorch does. Calling it twice is harmless.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gg
