#pragma once
// Learning-rate schedules that set an optimizer's lr from a step count, like PyTorch's
// schedulers: construction sets the lr for step 0, each step() (called after optimizer.step())
// advances one. Every parameter group is scheduled from its own initial lr (PyTorch's
// behaviour with several groups). Each schedule is computed in closed form from the step and the
// group's initial lr, so a learning rate set by hand between steps is overwritten at the next
// step() rather than scaled (PyTorch's chainable forms would scale it).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "optimizer.hpp"

namespace gg::optim {

class LRScheduler {
 public:
  explicit LRScheduler(Optimizer& optimizer) : LRScheduler(optimizer, "LRScheduler") {}
  // `name` ("StepLR", ...) prefixes error messages.
  LRScheduler(Optimizer& optimizer, std::string name)
      : optimizer_(optimizer), name_(std::move(name)) {}
  virtual ~LRScheduler() = default;
  LRScheduler(const LRScheduler&) = delete;
  LRScheduler& operator=(const LRScheduler&) = delete;

  void step() { set_last_step(last_step_ + 1); }
  // The lr the optimizer's next step uses (group 0's with several groups).
  double get_lr() const { return lr_at(last_step_); }
  // The lr of every group for the next step, as PyTorch's get_last_lr().
  std::vector<double> get_last_lr() const;
  int64_t last_step() const { return last_step_; }
  // Jumps to a step (resuming from a checkpoint) and sets every group's lr for it.
  void set_last_step(int64_t step);
  // The lr at `step` of a group whose initial lr is group 0's (the optimizer's initial_lr()).
  double lr_at(int64_t step) const { return lr_at(step, optimizer_.initial_lr()); }
  // The schedule itself: the lr at `step` of a group created with `initial_lr`.
  virtual double lr_at(int64_t step, double initial_lr) const = 0;
  const std::string& name() const { return name_; }

 protected:
  // The lr of parameter group `group` at `step`: lr_at(step, the group's initial lr).
  virtual double group_lr_at(int64_t step, size_t group) const;
  Optimizer& optimizer_;

 private:
  std::string name_;
  int64_t last_step_ = 0;
};

// Linear warmup then cosine decay, for each group with base = its initial lr:
//   step < warmup_steps:  lr = base * (step + 1) / warmup_steps
//   otherwise:            lr = min_lr + (base - min_lr) * (1 + cos(pi * t)) / 2,
//                         t = min(1, (step - warmup_steps) / (total_steps - warmup_steps))
// It equals PyTorch's
// SequentialLR([LinearLR(start_factor=1/warmup, total_iters=warmup-1),
//               CosineAnnealingLR(T_max=total-warmup, eta_min=min_lr)], milestones=[warmup])
// up to total_steps, and stays at min_lr after it. min_lr must not exceed any group's initial lr.
class CosineWithWarmup : public LRScheduler {
 public:
  CosineWithWarmup(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                   double min_lr = 0.0);
  using LRScheduler::lr_at;
  double lr_at(int64_t step, double initial_lr) const override;

 private:
  int64_t warmup_steps_;
  int64_t total_steps_;
  double min_lr_;
};

// PyTorch's StepLR: lr = initial_lr * gamma^(step / step_size) (integer division): the lr is
// multiplied by gamma every step_size steps. Needs step_size > 0 and gamma >= 0.
class StepLR : public LRScheduler {
 public:
  StepLR(Optimizer& optimizer, int64_t step_size, double gamma = 0.1);
  using LRScheduler::lr_at;
  double lr_at(int64_t step, double initial_lr) const override;

 private:
  int64_t step_size_;
  double gamma_;
};

// PyTorch's MultiStepLR: lr = initial_lr * gamma^(number of milestones <= step). Milestones are
// taken in any order (sorted here; a repeated one counts twice, as in PyTorch) and must be >= 0;
// gamma >= 0.
class MultiStepLR : public LRScheduler {
 public:
  MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma = 0.1);
  using LRScheduler::lr_at;
  double lr_at(int64_t step, double initial_lr) const override;

 private:
  std::vector<int64_t> milestones_;
  double gamma_;
};

// PyTorch's ExponentialLR: lr = initial_lr * gamma^step. Needs gamma >= 0.
class ExponentialLR : public LRScheduler {
 public:
  ExponentialLR(Optimizer& optimizer, double gamma);
  using LRScheduler::lr_at;
  double lr_at(int64_t step, double initial_lr) const override;

 private:
  double gamma_;
};

// PyTorch's LambdaLR: lr = initial_lr * lr_lambda(step) for every group, or with one function
// per group, group g uses lr_lambdas[g]. A negative factor throws (a learning rate must be
// >= 0); the functions must be callable (not empty).
class LambdaLR : public LRScheduler {
 public:
  LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> lr_lambda);
  LambdaLR(Optimizer& optimizer, std::vector<std::function<double(int64_t)>> lr_lambdas);
  using LRScheduler::lr_at;
  // With one function per group, this uses group 0's: set_last_step() uses each group's own.
  double lr_at(int64_t step, double initial_lr) const override;

 protected:
  double group_lr_at(int64_t step, size_t group) const override;

 private:
  std::vector<std::function<double(int64_t)>> lambdas_;
};

}  // namespace gg::optim
