// DistributedDataParallel's gradient reducer: buckets, the hooks that start their all-reduces
// during backward, and the end-of-backward callback that finishes them (docs/distributed.md).
#include "distributed/data_parallel.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "autograd/node.hpp"
#include "core/copy.hpp"
#include "core/error.hpp"
#include "distributed/async_reduce.hpp"
#include "distributed/distributed.hpp"

namespace gg::nn::detail {

class GradientReducer : public std::enable_shared_from_this<GradientReducer> {
 public:
  struct Bucket {
    std::vector<size_t> params;    // indices into params_
    std::vector<int64_t> offsets;  // each one's first element in flat
    Tensor flat;                   // Float32 (for Float32 and BFloat16 grads) or Float64
    size_t pending = 0;            // parameters whose gradient has not arrived this backward
  };

  GradientReducer(std::vector<std::pair<std::string, Tensor>> params, double bucket_cap_mb)
      : params_(std::move(params)), ready_(params_.size(), 0) {
    world_ = distributed::world_size();
    const auto cap = static_cast<int64_t>(bucket_cap_mb * 1024 * 1024);
    // Reverse registration order: roughly the order backward produces the gradients in.
    int64_t bytes = 0;
    for (size_t i = params_.size(); i-- > 0;) {
      const Tensor& p = params_[i].second;
      const Dtype flat_dtype = p.dtype() == kFloat64 ? kFloat64 : kFloat32;
      const int64_t add = p.numel() * static_cast<int64_t>(element_size(flat_dtype));
      if (buckets_.empty() || buckets_.back().flat.dtype() != flat_dtype ||
          (bytes > 0 && bytes + add > cap)) {
        buckets_.emplace_back();
        buckets_.back().flat = empty({0}, flat_dtype);
        bytes = 0;
      }
      Bucket& b = buckets_.back();
      b.offsets.push_back(
          b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].second.numel());
      b.params.push_back(i);
      bytes += add;
    }
    bucket_of_.resize(params_.size());
    for (size_t k = 0; k < buckets_.size(); ++k) {
      Bucket& b = buckets_[k];
      b.flat = empty({b.offsets.back() + params_[b.params.back()].second.numel()}, b.flat.dtype());
      for (size_t j = 0; j < b.params.size(); ++j) bucket_of_[b.params[j]] = {k, j};
      every_step_.bytes_reduced +=
          b.flat.numel() * static_cast<int64_t>(element_size(b.flat.dtype()));
    }
    every_step_.buckets = static_cast<int64_t>(buckets_.size());
  }

  void attach_hooks() {
    std::weak_ptr<GradientReducer> self = weak_from_this();
    for (size_t i = 0; i < params_.size(); ++i)
      handles_.push_back(
          params_[i].second.register_post_accumulate_grad_hook([self, i](const Tensor&) {
            if (auto r = self.lock()) r->on_grad(i);
          }));
  }

  void detach_hooks() {
    for (size_t i = 0; i < handles_.size(); ++i) params_[i].second.remove_hook(handles_[i]);
    handles_.clear();
  }

  void reset() {
    in_backward_ = false;
    current_ = every_step_;
    next_launch_ = 0;
    std::fill(ready_.begin(), ready_.end(), 0);
    for (Bucket& b : buckets_) b.pending = b.params.size();
  }

  bool sync = true;
  DistributedDataParallelStats last_stats;  // of the last backward that reached finish()

  std::vector<std::vector<std::string>> names() const {
    std::vector<std::vector<std::string>> out;
    for (const Bucket& b : buckets_) {
      out.emplace_back();
      for (size_t i : b.params) out.back().push_back(params_[i].first);
    }
    return out;
  }

 private:
  // The post-accumulate-grad hook of parameter i: its gradient is final for this backward.
  void on_grad(size_t i) {
    if (!sync) return;
    if (!in_backward_) {
      reset();
      in_backward_ = true;
      std::weak_ptr<GradientReducer> self = weak_from_this();
      autograd::queue_callback([self] {
        if (auto r = self.lock()) r->finish();
      });
    }
    if (ready_[i]) return;
    ready_[i] = 1;
    const auto [k, j] = bucket_of_[i];
    Bucket& b = buckets_[k];
    fill_slot(b, j, /*arrived=*/true);
    const auto start = Clock::now();
    if (--b.pending == 0) {
      current_.buckets_in_backward += launch_ready();
    } else {
      distributed::detail::progress();
    }
    current_.call_seconds += seconds_since(start);
  }

  using Clock = std::chrono::steady_clock;
  static double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  // Copies parameter j of bucket b's gradient (or zeros, for one that got none) into the bucket.
  void fill_slot(Bucket& b, size_t j, bool arrived) {
    const Tensor& p = params_[b.params[j]].second;
    Tensor slot = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.shape());
    const Tensor g = p.grad();
    if (g.defined()) {
      copy_(slot, g);
    } else {
      GG_CHECK(!arrived, "[DistributedDataParallel] parameter {} has no grad in its hook",
               params_[b.params[j]].first);
      slot.zero_();
    }
  }

  // Starts the buckets whose gradients are all in, in bucket order (the same on every rank);
  // returns how many it started.
  int64_t launch_ready() {
    int64_t started = 0;
    for (; next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0; ++started)
      distributed::detail::start_sum(buckets_[next_launch_++].flat);
    return started;
  }

  // The end of the backward: the buckets still waiting get zeros (or the current grad) for the
  // parameters that got no gradient, every sum is waited for, and the averages become the grads.
  void finish() {
    for (size_t k = next_launch_; k < buckets_.size(); ++k) {
      Bucket& b = buckets_[k];
      for (size_t j = 0; j < b.params.size(); ++j)
        if (!ready_[b.params[j]]) fill_slot(b, j, /*arrived=*/false);
      b.pending = 0;
    }
    const auto start = Clock::now();
    launch_ready();
    distributed::detail::wait_all();
    current_.wait_seconds = seconds_since(start);
    for (Bucket& b : buckets_) {
      b.flat.div_(static_cast<double>(world_));
      for (size_t j = 0; j < b.params.size(); ++j) {
        const Tensor& p = params_[b.params[j]].second;
        const Tensor slot = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.shape());
        const Tensor g = p.grad();
        if (g.defined() && g.shape() == p.shape() && g.dtype() == p.dtype() && !g.requires_grad()) {
          copy_(g, slot);
        } else {
          Tensor fresh = empty(p.shape(), p.dtype());
          copy_(fresh, slot);
          p.set_grad(fresh);
        }
      }
    }
    in_backward_ = false;
    last_stats = current_;
  }

  std::vector<std::pair<std::string, Tensor>> params_;
  std::vector<char> ready_;
  std::vector<Bucket> buckets_;
  std::vector<std::pair<size_t, size_t>> bucket_of_;  // (bucket, position) of each parameter
  std::vector<unsigned> handles_;
  size_t next_launch_ = 0;
  bool in_backward_ = false;
  DistributedDataParallelStats every_step_;  // what every step has: buckets and their bytes
  DistributedDataParallelStats current_;     // the running backward's (from every_step_)
  int world_ = 1;
};

namespace {
// Throws on every rank unless every rank has `count` tensors of the kind `what`.
void check_same_count(const char* what, size_t count) {
  const std::vector<Tensor> all =
      distributed::all_gather(tensor(std::vector<int64_t>{static_cast<int64_t>(count)}));
  std::string s;
  bool same = true;
  for (size_t r = 0; r < all.size(); ++r) {
    const auto n = all[r].to_vector<int64_t>()[0];
    if (r < 8) s += fmt::format("{}rank {} has {}", r ? ", " : "", r, n);
  }
  // Every rank saw the same counts, so every rank decides the same way.
  for (size_t r = 1; r < all.size(); ++r)
    same = same && all[r].to_vector<int64_t>()[0] == all[0].to_vector<int64_t>()[0];
  GG_CHECK(same, "[DistributedDataParallel] every rank must wrap a module with the same {}: {}",
           what, s);
}

bool ignored(const std::string& name, const DistributedDataParallelOptions& o) {
  return std::find(o.parameters_to_ignore.begin(), o.parameters_to_ignore.end(), name) !=
         o.parameters_to_ignore.end();
}
}  // namespace

DistributedDataParallelBase::DistributedDataParallelBase(
    std::shared_ptr<Module> module, const DistributedDataParallelOptions& options) {
  GG_CHECK(module != nullptr, "[DistributedDataParallel] the module is null");
  GG_CHECK(options.bucket_cap_mb > 0,
           "[DistributedDataParallel] bucket_cap_mb must be positive, got {}",
           options.bucket_cap_mb);
  GG_CHECK(distributed::is_initialized(),
           "[DistributedDataParallel] the process group is not initialized: call "
           "gg::distributed::init() first, in every process of the MPI job{}",
           distributed::is_available() ? "" : " (this groupgrad was built without MPI)");
  std::vector<std::pair<std::string, Tensor>> synced, averaged;
  for (auto& [name, t] : module->named_parameters()) {
    if (ignored(name, options) || !distributed::is_replicated(t)) continue;
    synced.emplace_back(name, t);
    if (t.requires_grad()) averaged.emplace_back(name, t);
  }
  for (auto& [name, t] : module->named_buffers())
    if (!ignored(name, options) && distributed::is_replicated(t)) synced.emplace_back(name, t);
  check_same_count("number of replicated parameters and buffers", synced.size());
  for (auto& [name, t] : synced) {
    try {
      distributed::broadcast(t, 0);
    } catch (const Error& e) {
      fail("[DistributedDataParallel] broadcasting {} from rank 0: {}", name, e.what());
    }
  }
  register_module("module", std::move(module));
  reducer_ = std::make_shared<GradientReducer>(std::move(averaged), options.bucket_cap_mb);
  reducer_->attach_hooks();
}

DistributedDataParallelBase::~DistributedDataParallelBase() {
  if (reducer_) reducer_->detach_hooks();
}

void DistributedDataParallelBase::prepare_for_forward() { reducer_->reset(); }

std::vector<std::vector<std::string>> DistributedDataParallelBase::bucket_parameter_names() const {
  std::vector<std::vector<std::string>> names = reducer_->names();
  for (auto& bucket : names)
    for (auto& n : bucket) n = "module." + n;
  return names;
}

DistributedDataParallelStats DistributedDataParallelBase::last_step_stats() const {
  return reducer_->last_stats;
}

DistributedDataParallelBase::NoSync::NoSync(std::shared_ptr<GradientReducer> reducer)
    : reducer_(std::move(reducer)), previous_(reducer_->sync) {
  reducer_->sync = false;
}

DistributedDataParallelBase::NoSync::~NoSync() { reducer_->sync = previous_; }

DistributedDataParallelBase::NoSync DistributedDataParallelBase::no_sync() {
  return NoSync(reducer_);
}

}  // namespace gg::nn::detail
