#pragma once
// gg::nn::DistributedDataParallel: data-parallel training over gg::distributed's ranks, after
// torch.nn.parallel.DistributedDataParallel (docs/distributed.md). Every rank wraps the same model;
// the wrapper broadcasts rank 0's parameters and buffers at construction, and every backward
// averages the gradients over the ranks, so that after backward each rank holds the gradient of
// the whole (concatenated) batch.
//
//   gg::distributed::init();
//   auto net = std::make_shared<Net>();
//   gg::nn::DistributedDataParallel ddp(net);       // forward passes through to net->forward
//   gg::optim::Adam opt(ddp.parameters(), gg::optim::AdamOptions(1e-3));
//   auto loss = F::cross_entropy(ddp.forward(x_local), y_local);
//   loss.backward();                                 // gradients are averaged over the ranks
//   opt.step();
//
// The gradients travel in buckets of about bucket_cap_mb MiB: a bucket's non-blocking all-reduce
// starts from the post-accumulate-grad hook of its last parameter while the backward is still
// running, and the end of the backward waits for them all. Buckets start in the same order on
// every rank (reverse parameter order); a parameter that got no gradient in this backward (an
// expert no token chose) takes part with its current grad, or zeros, so no rank waits forever.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../nn/module.hpp"
#include "distributed.hpp"

namespace gg::nn {

struct DistributedDataParallelOptions {
  double bucket_cap_mb = 25;  // gradient bucket size in MiB (PyTorch's default)
  // Dotted names (as the wrapped module's named_parameters/named_buffers give them) that are
  // neither broadcast nor averaged. Parameters marked with gg::distributed::mark_not_replicated
  // are left out as well.
  std::vector<std::string> parameters_to_ignore;
};

// What the last synchronised backward of a DistributedDataParallel did (last_step_stats()), for
// measuring (tools/bench -w dp). Times are this rank's, from std::chrono::steady_clock.
struct DistributedDataParallelStats {
  int64_t buckets = 0;              // buckets all-reduced
  int64_t buckets_in_backward = 0;  // of those, started from a hook before the backward ended
  int64_t bytes_reduced = 0;  // their payload: bytes this rank handed to MPI_Iallreduce (the wire
                              // bytes depend on MPI's algorithm; docs/distributed.md)
  double call_seconds = 0;    // inside the non-blocking start and test calls made from the hooks
  double wait_seconds = 0;    // blocked at the end of the backward until every sum was done
};

namespace detail {
class GradientReducer;

// The type-independent part of DistributedDataParallel<M> (compiled in the library).
class DistributedDataParallelBase : public Module {
 public:
  ~DistributedDataParallelBase() override;

  // While the returned guard lives, backward accumulates gradients locally without averaging them
  // (PyTorch's no_sync()); the first backward after it averages the accumulated gradients.
  class [[nodiscard]] NoSync {
   public:
    explicit NoSync(std::shared_ptr<GradientReducer> reducer);
    ~NoSync();
    NoSync(const NoSync&) = delete;
    NoSync& operator=(const NoSync&) = delete;

   private:
    std::shared_ptr<GradientReducer> reducer_;
    bool previous_;
  };
  NoSync no_sync();

  // The names of the averaged parameters in each bucket, in the order the buckets are reduced.
  std::vector<std::vector<std::string>> bucket_parameter_names() const;
  // What the last backward that averaged gradients did (all zero before the first; a backward
  // under no_sync() leaves it unchanged). The communication time on this rank's critical path is
  // call_seconds + wait_seconds.
  DistributedDataParallelStats last_step_stats() const;

 protected:
  DistributedDataParallelBase(std::shared_ptr<Module> module,
                              const DistributedDataParallelOptions& options);
  // Called by forward: a new step begins (state left by a backward that threw is dropped).
  void prepare_for_forward();

 private:
  std::shared_ptr<GradientReducer> reducer_;
};
}  // namespace detail

// Wraps `module` (registered as the child "module", so parameters() are the module's and names
// read "module.fc.weight" as in PyTorch). Collective: every rank constructs it at the same point,
// with the same number of replicated parameters and buffers, in the same order, of the same shapes
// and dtypes (checked), or every rank throws gg::Error.
template <class M = Module>
class DistributedDataParallel : public detail::DistributedDataParallelBase {
 public:
  explicit DistributedDataParallel(std::shared_ptr<M> module,
                                   const DistributedDataParallelOptions& options = {})
      : DistributedDataParallelBase(module, options), module_(std::move(module)) {}

  // Calls the wrapped module's forward with the same arguments.
  template <class... Args>
  decltype(auto) forward(Args&&... args) {
    prepare_for_forward();
    return module_->forward(std::forward<Args>(args)...);
  }
  // The wrapped module.
  const std::shared_ptr<M>& module() const { return module_; }

 private:
  std::shared_ptr<M> module_;
};

}  // namespace gg::nn
