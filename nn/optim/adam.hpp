#pragma once
#include <tuple>

#include "optimizer.hpp"

namespace gg::optim {

// The options Adam and AdamW share; setters return the derived type so builders chain:
// AdamOptions(1e-3).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1).amsgrad(true).
template <class Derived>
class AdamOptionsBase {
 public:
  explicit AdamOptionsBase(double lr, double weight_decay) : lr_(lr), weight_decay_(weight_decay) {}
  Derived& lr(double v) {
    lr_ = v;
    return self();
  }
  Derived& betas(std::tuple<double, double> v) {
    betas_ = v;
    return self();
  }
  Derived& eps(double v) {
    eps_ = v;
    return self();
  }
  Derived& weight_decay(double v) {
    weight_decay_ = v;
    return self();
  }
  Derived& amsgrad(bool v) {
    amsgrad_ = v;
    return self();
  }
  double lr() const { return lr_; }
  const std::tuple<double, double>& betas() const { return betas_; }
  double eps() const { return eps_; }
  double weight_decay() const { return weight_decay_; }
  bool amsgrad() const { return amsgrad_; }

 private:
  Derived& self() { return static_cast<Derived&>(*this); }
  double lr_;
  std::tuple<double, double> betas_{0.9, 0.999};
  double eps_ = 1e-8;
  double weight_decay_;
  bool amsgrad_ = false;
};

struct AdamOptions : AdamOptionsBase<AdamOptions> {
  explicit AdamOptions(double lr = 1e-3) : AdamOptionsBase(lr, 0.0) {}
};
// AdamW's weight decay defaults to 0.01, as in PyTorch.
struct AdamWOptions : AdamOptionsBase<AdamWOptions> {
  explicit AdamWOptions(double lr = 1e-3) : AdamOptionsBase(lr, 1e-2) {}
};

// PyTorch's Adam (weight decay added to the gradient, "L2") and AdamW (decoupled: p *= 1 - lr*wd
// before the update). Per step t: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2 (amsgrad: v_max =
// max(v_max, v) is used in place of v); p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) +
// eps). State per parameter: "step" (Int64), "exp_avg", "exp_avg_sq", and with amsgrad
// "max_exp_avg_sq".
class Adam : public Optimizer {
 public:
  Adam(std::vector<Tensor> params, const AdamOptions& options = AdamOptions());
  void step() override;
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(std::vector<Tensor> params, std::string name, const AdamOptions& options, bool decoupled);
  std::vector<std::string> state_keys() const override;

 private:
  AdamOptions options_;
  bool decoupled_;  // AdamW
};

class AdamW : public Adam {
 public:
  AdamW(std::vector<Tensor> params, const AdamWOptions& options = AdamWOptions());
  const AdamWOptions& options() const { return w_options_; }

 private:
  AdamWOptions w_options_;
};

}  // namespace gg::optim
