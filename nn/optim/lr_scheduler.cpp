#include "nn/optim/lr_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace gg::optim {

void LRScheduler::set_last_step(int64_t step) {
  GG_CHECK(step >= 0, "[LRScheduler] step must be >= 0, got {}", step);
  last_step_ = step;
  optimizer_.set_lr(lr_at(step));
}

CosineWithWarmup::CosineWithWarmup(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                                   double min_lr)
    : LRScheduler(optimizer),
      warmup_steps_(warmup_steps),
      total_steps_(total_steps),
      min_lr_(min_lr) {
  GG_CHECK(warmup_steps >= 0 && total_steps > warmup_steps,
           "[CosineWithWarmup] needs 0 <= warmup_steps < total_steps, got warmup_steps={} "
           "total_steps={}",
           warmup_steps, total_steps);
  GG_CHECK(min_lr >= 0 && min_lr <= optimizer.initial_lr(),
           "[CosineWithWarmup] min_lr must be in [0, initial lr {}], got {}",
           optimizer.initial_lr(), min_lr);
  set_last_step(0);
}

double CosineWithWarmup::lr_at(int64_t step) const {
  const double base = optimizer_.initial_lr();
  if (step < warmup_steps_)
    return base * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
  const double t = std::min(1.0, static_cast<double>(step - warmup_steps_) /
                                     static_cast<double>(total_steps_ - warmup_steps_));
  return min_lr_ + (base - min_lr_) * 0.5 * (1 + std::cos(std::numbers::pi * t));
}

}  // namespace gg::optim
