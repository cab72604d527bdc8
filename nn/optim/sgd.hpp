#pragma once
#include <initializer_list>
#include <optional>

#include "optimizer.hpp"

namespace gg::optim {

// libtorch-style option builder: SGDOptions(0.1).momentum(0.9).nesterov(true).
struct SGDOptions {
  explicit SGDOptions(double lr) : lr_(lr) {}
  SGDOptions& lr(double v) {
    lr_ = v;
    return *this;
  }
  SGDOptions& momentum(double v) {
    momentum_ = v;
    return *this;
  }
  SGDOptions& dampening(double v) {
    dampening_ = v;
    return *this;
  }
  SGDOptions& weight_decay(double v) {
    weight_decay_ = v;
    return *this;
  }
  SGDOptions& nesterov(bool v) {
    nesterov_ = v;
    return *this;
  }
  double lr() const { return lr_; }
  double momentum() const { return momentum_; }
  double dampening() const { return dampening_; }
  double weight_decay() const { return weight_decay_; }
  bool nesterov() const { return nesterov_; }

 private:
  double lr_;
  double momentum_ = 0;
  double dampening_ = 0;
  double weight_decay_ = 0;
  bool nesterov_ = false;
};

// The options one parameter group overrides; unset ones take the optimizer's (SGDOptions).
struct SGDGroupOptions {
  std::optional<double> lr = std::nullopt;
  std::optional<double> momentum = std::nullopt;
  std::optional<double> dampening = std::nullopt;
  std::optional<double> weight_decay = std::nullopt;
  std::optional<bool> nesterov = std::nullopt;
};
// A parameter group for SGD: {params} or {params, {.lr = 0.01, .weight_decay = 0.0}}.
using SGDParamGroup = ParamGroupSpec<SGDGroupOptions>;

// PyTorch's SGD: g += weight_decay * p; with momentum, buf = g on the first step, then
// buf = momentum * buf + (1 - dampening) * g, and g = nesterov ? g + momentum * buf : buf;
// finally p -= lr * g. State per parameter: "momentum_buffer" (only with momentum).
// Each parameter group uses its own options (param_groups()).
class SGD : public GroupedOptimizer<SGDOptions> {
 public:
  // One group of parameters with `options`.
  SGD(std::vector<Tensor> params, const SGDOptions& options);
  // Parameter groups, each with `defaults` overridden by its own options, e.g.
  // SGD({{weights}, {biases, {.weight_decay = 0.0}}}, SGDOptions(0.1).weight_decay(1e-4)).
  // An empty list, or a parameter in two groups, throws.
  SGD(std::initializer_list<SGDParamGroup> groups, const SGDOptions& defaults);
  SGD(const std::vector<SGDParamGroup>& groups, const SGDOptions& defaults);
  // Appends a group; its unset options take the defaults given at construction.
  void add_param_group(const SGDParamGroup& group);
  void step() override;
  // The options given at construction: the defaults of every group.
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<std::string> state_keys() const override;
  std::vector<std::string> param_state_keys(size_t i) const override;

 private:
  void check_options(const SGDOptions& options, size_t group) const;
  SGDOptions options_;
};

}  // namespace gg::optim
