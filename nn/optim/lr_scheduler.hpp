#pragma once
// Learning-rate schedules that set an optimizer's lr from a step count, like PyTorch's LambdaLR:
// construction sets the lr for step 0, each step() (called after optimizer.step()) advances one.
#include <cstdint>

#include "optimizer.hpp"

namespace gg::optim {

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer) : optimizer_(optimizer) {}
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  void step() { set_last_step(last_step_ + 1); }
  // The lr the optimizer's next step uses.
  double get_lr() const { return lr_at(last_step_); }
  int64_t last_step() const { return last_step_; }
  // Jumps to a step (resuming from a checkpoint) and sets the optimizer's lr for it.
  void set_last_step(int64_t step);
  // The schedule itself: the lr at `step`, from the optimizer's initial_lr().
  virtual double lr_at(int64_t step) const = 0;

 protected:
  Optimizer& optimizer_;

 private:
  int64_t last_step_ = 0;
};

// Linear warmup then cosine decay:
//   step < warmup_steps:  lr = base * (step + 1) / warmup_steps
//   otherwise:            lr = min_lr + (base - min_lr) * (1 + cos(pi * t)) / 2,
//                         t = min(1, (step - warmup_steps) / (total_steps - warmup_steps))
// where base is the optimizer's initial_lr(). It equals PyTorch's
// SequentialLR([LinearLR(start_factor=1/warmup, total_iters=warmup-1),
//               CosineAnnealingLR(T_max=total-warmup, eta_min=min_lr)], milestones=[warmup])
// up to total_steps, and stays at min_lr after it.
class CosineWithWarmup : public LRScheduler {
 public:
  CosineWithWarmup(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                   double min_lr = 0.0);
  double lr_at(int64_t step) const override;

 private:
  int64_t warmup_steps_;
  int64_t total_steps_;
  double min_lr_;
};

}  // namespace gg::optim
