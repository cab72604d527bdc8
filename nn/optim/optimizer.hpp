#pragma once
// The optimizer base, after libtorch's torch::optim::Optimizer, with PyTorch's parameter groups:
// each group has its own parameters and its own options (learning rate, weight decay, ...).
// Updates are written in place into each parameter's storage with grad mode off, so parameter
// handles (held by modules) never change. Parameters whose grad is undefined are skipped, as in
// PyTorch.
#include <map>
#include <span>
#include <string>
#include <vector>

#include "../../core/tensor.hpp"
#include "../module.hpp"

namespace gg::optim {

class Optimizer {
 public:
  // One parameter group with learning rate `lr`. `name` ("SGD", "Adam", ...) prefixes error
  // messages and tags saved state.
  Optimizer(std::vector<Tensor> params, std::string name, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  // libtorch 1.13 semantics (Optimizer::zero_grad()): existing grads are zeroed in place; with
  // set_to_none = true they are dropped instead (PyTorch 2.x's default).
  void zero_grad(bool set_to_none = false);

  // Every parameter of every group, in group order (the order state_dict() numbers them in).
  const std::vector<Tensor>& parameters() const { return params_; }
  const std::string& name() const { return name_; }

  // The number of parameter groups (1 unless the optimizer was built from groups).
  size_t num_param_groups() const { return groups_.size(); }
  // The learning rate group `group` uses on the next step(); schedulers set it per group.
  double group_lr(size_t group) const;
  void set_group_lr(size_t group, double lr);
  // The learning rate group `group` was created with: schedulers scale from it.
  double group_initial_lr(size_t group) const;
  void set_group_initial_lr(size_t group, double lr);

  // Group 0's learning rate (PyTorch's param_groups[0]["lr"]): with one group, the learning rate
  // the next step() uses. set_lr sets EVERY group's learning rate to `lr` (use set_group_lr, or
  // a scheduler, to keep groups apart).
  double lr() const { return group_lr(0); }
  void set_lr(double lr);
  // Group 0's initial learning rate; set_initial_lr sets every group's.
  double initial_lr() const { return group_initial_lr(0); }
  void set_initial_lr(double lr);

  // Per-parameter state for resuming, named "state.<param index>.<key>" (e.g. "state.3.exp_avg",
  // "state.3.step" as an Int64 0-d tensor), the index counting through the groups in order as
  // PyTorch numbers them. Parameters that have not been stepped have no entries. Learning rates
  // are not part of it (save_optimizer stores them in the file's metadata).
  nn::NamedTensors state_dict() const;
  // Replaces all state. Validates everything before changing anything: every name must parse,
  // the index must be in range, the key must be one this optimizer uses and each parameter's set
  // of keys complete; shapes must match the parameter's. Float state is converted to the
  // parameter's dtype.
  void load_state_dict(const nn::NamedTensors& state);

 protected:
  // No groups yet: the derived optimizer adds them with add_group().
  explicit Optimizer(std::string name);
  // Validates `params` (defined, floating, leaves, in no group yet) and appends them as a new
  // group with learning rate `lr`; returns the group's index.
  size_t add_group(std::vector<Tensor> params, double lr);
  // Throws gg::Error "[<name>] <what> must be >= 0, got <value>" (plus in_group(group)) unless
  // value >= 0: the option checks the optimizers share (learning rate, weight_decay, eps, ...).
  void check_nonnegative(const char* what, double value, size_t group) const;
  // " (parameter group g)", the tail of messages about group g's options; empty for group 0, so
  // that a single-group optimizer's messages read without it.
  static std::string in_group(size_t group);
  // Parameter indices [begin, end) of group `group` in parameters().
  std::pair<size_t, size_t> group_range(size_t group) const;
  // Where the learning rate of a group lives: derived optimizers with typed group options
  // override both (the base keeps it itself otherwise).
  virtual double stored_lr(size_t group) const { return groups_[group].lr; }
  virtual void store_lr(size_t group, double lr) { groups_[group].lr = lr; }

  using ParamState = std::map<std::string, Tensor>;
  // The keys a parameter's state holds once it has been stepped (e.g. {"step", "exp_avg", ...}).
  virtual std::vector<std::string> state_keys() const = 0;
  // The keys parameter i's state holds (its group's options may differ from other groups');
  // by default state_keys().
  virtual std::vector<std::string> param_state_keys(size_t /*i*/) const { return state_keys(); }
  // The group that holds parameter i.
  size_t group_of_param(size_t i) const;
  // State of parameter i, empty until first set.
  ParamState& state(size_t i) { return state_[i]; }

 private:
  struct Group {
    size_t begin, end;
    double lr;  // unused when the derived optimizer stores it
    double initial_lr;
  };
  void check_group(size_t group) const;
  std::vector<Tensor> params_;
  std::map<const TensorImpl*, size_t> group_of_;  // which group holds each parameter
  std::vector<ParamState> state_;
  std::vector<Group> groups_;
  std::string name_;
};

// A parameter group as the optimizer holds it: its parameters (fixed) and its complete options
// (mutable, as in PyTorch: opt.param_groups()[1].options().lr(1e-4) changes that group's lr).
template <class Options>
class ParamGroup {
 public:
  ParamGroup(std::vector<Tensor> params, Options options)
      : params_(std::move(params)), options_(std::move(options)) {}
  const std::vector<Tensor>& params() const { return params_; }
  Options& options() { return options_; }
  const Options& options() const { return options_; }

 private:
  std::vector<Tensor> params_;
  Options options_;
};

// A parameter group as a user passes it: its parameters and the options it overrides (an
// aggregate of std::optionals; the unset ones take the optimizer's defaults, as in PyTorch):
//   {bias_params, {.weight_decay = 0.0}}
template <class Overrides>
struct ParamGroupSpec {
  std::vector<Tensor> params;
  Overrides options = {};
};

// The base of optimizers with typed per-group options: holds the groups and keeps each group's
// learning rate in its Options (Options has lr() and lr(double)).
template <class Options>
class GroupedOptimizer : public Optimizer {
 public:
  // The groups, in order; their options may be changed (not their parameters).
  std::span<ParamGroup<Options>> param_groups() { return groups_; }
  std::span<const ParamGroup<Options>> param_groups() const { return groups_; }

 protected:
  using Optimizer::Optimizer;
  // Appends a group whose options are complete; the caller validates them.
  void add_typed_group(std::vector<Tensor> params, const Options& options) {
    add_group(params, options.lr());
    groups_.emplace_back(std::move(params), options);
  }
  double stored_lr(size_t group) const override { return groups_[group].options().lr(); }
  void store_lr(size_t group, double lr) override { groups_[group].options().lr(lr); }

 private:
  std::vector<ParamGroup<Options>> groups_;
};

namespace detail {
// Helpers for the update kernels of the optimizers.
// The gradient of p as a contiguous tensor of p's dtype.
Tensor contiguous_grad(const Tensor& p);
// The tensor an update writes: p itself when contiguous, else a contiguous copy that
// write_back() copies into p afterwards.
Tensor update_target(const Tensor& p);
// Ends every parameter's update: copies target into p when it is a copy, and bumps p's version
// counter either way (a backward through a graph that saved p then throws, as in PyTorch).
void write_back(const Tensor& p, const Tensor& target);
}  // namespace detail

}  // namespace gg::optim
