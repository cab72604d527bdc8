#pragma once
#include <initializer_list>
#include <optional>
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

// The options one parameter group of Adam or AdamW overrides; unset ones take the optimizer's.
struct AdamGroupOptions {
  std::optional<double> lr = std::nullopt;
  std::optional<std::tuple<double, double>> betas = std::nullopt;
  std::optional<double> eps = std::nullopt;
  std::optional<double> weight_decay = std::nullopt;
  std::optional<bool> amsgrad = std::nullopt;
};
using AdamWGroupOptions = AdamGroupOptions;
// A parameter group for Adam or AdamW: {params} or {params, {.weight_decay = 0.0}}.
using AdamParamGroup = ParamGroupSpec<AdamGroupOptions>;
using AdamWParamGroup = AdamParamGroup;

// PyTorch's Adam (weight decay added to the gradient, "L2") and AdamW (decoupled: p *= 1 - lr*wd
// before the update). Per step t: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2 (amsgrad: v_max =
// max(v_max, v) is used in place of v); p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) +
// eps). State per parameter: "step" (Int64), "exp_avg", "exp_avg_sq", and with amsgrad
// "max_exp_avg_sq". Each parameter group uses its own options (param_groups(); for AdamW too
// they are AdamOptions, whose fields are the same).
class Adam : public GroupedOptimizer<AdamOptions> {
 public:
  // One group of parameters with `options`.
  Adam(std::vector<Tensor> params, const AdamOptions& options = AdamOptions());
  // Parameter groups, each with `defaults` overridden by its own options, e.g.
  // Adam({{weights}, {biases, {.weight_decay = 0.0}}}, AdamOptions(1e-3).weight_decay(0.1)).
  // An empty list, or a parameter in two groups, throws.
  Adam(std::initializer_list<AdamParamGroup> groups, const AdamOptions& defaults = AdamOptions());
  Adam(const std::vector<AdamParamGroup>& groups, const AdamOptions& defaults = AdamOptions());
  // Appends a group; its unset options take the defaults given at construction.
  void add_param_group(const AdamParamGroup& group);
  void step() override;
  // The options given at construction: the defaults of every group.
  const AdamOptions& options() const { return options_; }

 protected:
  Adam(std::string name, const AdamOptions& defaults, bool decoupled);
  std::vector<std::string> state_keys() const override;
  std::vector<std::string> param_state_keys(size_t i) const override;

 private:
  void check_options(const AdamOptions& options, size_t group) const;
  void update_param(size_t i, const AdamOptions& options);
  AdamOptions options_;
  bool decoupled_;  // AdamW
};

class AdamW : public Adam {
 public:
  // One group of parameters with `options`.
  AdamW(std::vector<Tensor> params, const AdamWOptions& options = AdamWOptions());
  // Parameter groups, each with `defaults` overridden by its own options, e.g.
  // AdamW({{weights}, {biases_and_norms, {.weight_decay = 0.0}}}, AdamWOptions(1e-3)).
  AdamW(std::initializer_list<AdamWParamGroup> groups,
        const AdamWOptions& defaults = AdamWOptions());
  AdamW(const std::vector<AdamWParamGroup>& groups, const AdamWOptions& defaults = AdamWOptions());
  // The options given at construction: the defaults of every group.
  const AdamWOptions& options() const { return w_options_; }

 private:
  AdamWOptions w_options_;
};

}  // namespace gg::optim
