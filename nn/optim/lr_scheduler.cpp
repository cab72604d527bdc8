#include "nn/optim/lr_scheduler.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.hpp"

namespace gg::optim {

double LRScheduler::group_lr_at(int64_t step, size_t group) const {
  return lr_at(step, optimizer_.group_initial_lr(group));
}

std::vector<double> LRScheduler::get_last_lr() const {
  std::vector<double> lrs;
  for (size_t g = 0; g < optimizer_.num_param_groups(); ++g)
    lrs.push_back(group_lr_at(last_step_, g));
  return lrs;
}

void LRScheduler::set_last_step(int64_t step) {
  GG_CHECK(step >= 0, "[{}] step must be >= 0, got {}", name_, step);
  // Every group's lr is computed and checked before any is set.
  std::vector<double> lrs;
  for (size_t g = 0; g < optimizer_.num_param_groups(); ++g) {
    lrs.push_back(group_lr_at(step, g));
    GG_CHECK(lrs.back() >= 0,
             "[{}] the learning rate of parameter group {} at step {} is {}: it "
             "must be >= 0",
             name_, g, step, lrs.back());
  }
  last_step_ = step;
  for (size_t g = 0; g < lrs.size(); ++g) optimizer_.set_group_lr(g, lrs[g]);
}

CosineWithWarmup::CosineWithWarmup(Optimizer& optimizer, int64_t warmup_steps, int64_t total_steps,
                                   double min_lr)
    : LRScheduler(optimizer, "CosineWithWarmup"),
      warmup_steps_(warmup_steps),
      total_steps_(total_steps),
      min_lr_(min_lr) {
  GG_CHECK(warmup_steps >= 0 && total_steps > warmup_steps,
           "[CosineWithWarmup] needs 0 <= warmup_steps < total_steps, got warmup_steps={} "
           "total_steps={}",
           warmup_steps, total_steps);
  for (size_t g = 0; g < optimizer.num_param_groups(); ++g) {
    const double initial = optimizer.group_initial_lr(g);
    GG_CHECK(min_lr >= 0 && min_lr <= initial,
             "[CosineWithWarmup] min_lr must be in [0, initial lr {}{}], got {}", initial,
             g == 0 ? std::string() : fmt::format(" of parameter group {}", g), min_lr);
  }
  set_last_step(0);
}

double CosineWithWarmup::lr_at(int64_t step, double base) const {
  if (step < warmup_steps_)
    return base * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_);
  const double t = std::min(1.0, static_cast<double>(step - warmup_steps_) /
                                     static_cast<double>(total_steps_ - warmup_steps_));
  return min_lr_ + (base - min_lr_) * 0.5 * (1 + std::cos(std::numbers::pi * t));
}

namespace {
void check_gamma(const char* scheduler, double gamma) {
  GG_CHECK(gamma >= 0 && std::isfinite(gamma), "[{}] gamma must be finite and >= 0, got {}",
           scheduler, gamma);
}
}  // namespace

StepLR::StepLR(Optimizer& optimizer, int64_t step_size, double gamma)
    : LRScheduler(optimizer, "StepLR"), step_size_(step_size), gamma_(gamma) {
  GG_CHECK(step_size > 0, "[StepLR] step_size must be > 0, got {}", step_size);
  check_gamma("StepLR", gamma);
  set_last_step(0);
}

double StepLR::lr_at(int64_t step, double initial_lr) const {
  return initial_lr * std::pow(gamma_, static_cast<double>(step / step_size_));
}

MultiStepLR::MultiStepLR(Optimizer& optimizer, std::vector<int64_t> milestones, double gamma)
    : LRScheduler(optimizer, "MultiStepLR"), milestones_(std::move(milestones)), gamma_(gamma) {
  std::sort(milestones_.begin(), milestones_.end());
  GG_CHECK(milestones_.empty() || milestones_.front() >= 0,
           "[MultiStepLR] milestones must be >= 0, got [{}]", fmt::join(milestones_, ", "));
  check_gamma("MultiStepLR", gamma);
  set_last_step(0);
}

double MultiStepLR::lr_at(int64_t step, double initial_lr) const {
  const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), step);
  return initial_lr * std::pow(gamma_, static_cast<double>(passed - milestones_.begin()));
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, double gamma)
    : LRScheduler(optimizer, "ExponentialLR"), gamma_(gamma) {
  check_gamma("ExponentialLR", gamma);
  set_last_step(0);
}

double ExponentialLR::lr_at(int64_t step, double initial_lr) const {
  return initial_lr * std::pow(gamma_, static_cast<double>(step));
}

LambdaLR::LambdaLR(Optimizer& optimizer, std::function<double(int64_t)> lr_lambda)
    : LambdaLR(optimizer, std::vector<std::function<double(int64_t)>>(optimizer.num_param_groups(),
                                                                      std::move(lr_lambda))) {}

LambdaLR::LambdaLR(Optimizer& optimizer, std::vector<std::function<double(int64_t)>> lr_lambdas)
    : LRScheduler(optimizer, "LambdaLR"), lambdas_(std::move(lr_lambdas)) {
  GG_CHECK(lambdas_.size() == optimizer.num_param_groups(),
           "[LambdaLR] got {} lr_lambdas but the optimizer has {} parameter groups",
           lambdas_.size(), optimizer.num_param_groups());
  for (size_t g = 0; g < lambdas_.size(); ++g)
    GG_CHECK(static_cast<bool>(lambdas_[g]), "[LambdaLR] lr_lambda {} is an empty function", g);
  set_last_step(0);
}

double LambdaLR::lr_at(int64_t step, double initial_lr) const {
  return initial_lr * lambdas_[0](step);
}

double LambdaLR::group_lr_at(int64_t step, size_t group) const {
  return optimizer_.group_initial_lr(group) * lambdas_[group](step);
}

}  // namespace gg::optim
