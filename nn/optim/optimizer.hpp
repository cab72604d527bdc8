#pragma once
// The optimizer base, after libtorch's torch::optim::Optimizer (one parameter group). Updates are
// written in place into each parameter's storage with grad mode off, so parameter handles (held by
// modules) never change. Parameters whose grad is undefined are skipped, as in PyTorch.
#include <map>
#include <string>
#include <vector>

#include "../../core/tensor.hpp"
#include "../module.hpp"

namespace gg::optim {

class Optimizer {
 public:
  // `name` ("SGD", "Adam", ...) prefixes error messages and tags saved state.
  Optimizer(std::vector<Tensor> params, std::string name, double lr);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  virtual void step() = 0;
  // libtorch 1.13 semantics (Optimizer::zero_grad()): existing grads are zeroed in place; with
  // set_to_none = true they are dropped instead (PyTorch 2.x's default).
  void zero_grad(bool set_to_none = false);

  const std::vector<Tensor>& parameters() const { return params_; }
  const std::string& name() const { return name_; }

  // The learning rate the next step() uses; schedulers change it through set_lr.
  double lr() const { return lr_; }
  void set_lr(double lr);
  // The learning rate given at construction: schedulers scale from it.
  double initial_lr() const { return initial_lr_; }
  void set_initial_lr(double lr);

  // Per-parameter state for resuming, named "state.<param index>.<key>" (e.g. "state.3.exp_avg",
  // "state.3.step" as an Int64 0-d tensor). Parameters that have not been stepped have no entries.
  nn::NamedTensors state_dict() const;
  // Replaces all state. Validates everything before changing anything: every name must parse,
  // the index must be in range, the key must be one this optimizer uses and each parameter's set
  // of keys complete; shapes must match the parameter's. Float state is converted to the
  // parameter's dtype.
  void load_state_dict(const nn::NamedTensors& state);

 protected:
  using ParamState = std::map<std::string, Tensor>;
  // The keys a parameter's state holds once it has been stepped (e.g. {"step", "exp_avg", ...}).
  virtual std::vector<std::string> state_keys() const = 0;
  // State of parameter i, empty until first set.
  ParamState& state(size_t i) { return state_[i]; }

 private:
  std::vector<Tensor> params_;
  std::vector<ParamState> state_;
  std::string name_;
  double lr_;
  double initial_lr_;
};

namespace detail {
// Helpers for the update kernels of the optimizers.
// The gradient of p as a contiguous tensor of p's dtype.
Tensor contiguous_grad(const Tensor& p);
// The tensor an update writes: p itself when contiguous, else a contiguous copy that
// write_back() copies into p afterwards.
Tensor update_target(const Tensor& p);
void write_back(const Tensor& p, const Tensor& target);
}  // namespace detail

}  // namespace gg::optim
