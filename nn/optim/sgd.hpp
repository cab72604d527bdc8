#pragma once
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

// PyTorch's SGD: g += weight_decay * p; with momentum, buf = g on the first step, then
// buf = momentum * buf + (1 - dampening) * g, and g = nesterov ? g + momentum * buf : buf;
// finally p -= lr * g. State per parameter: "momentum_buffer" (only with momentum).
class SGD : public Optimizer {
 public:
  SGD(std::vector<Tensor> params, const SGDOptions& options);
  void step() override;
  const SGDOptions& options() const { return options_; }

 protected:
  std::vector<std::string> state_keys() const override;

 private:
  SGDOptions options_;
};

}  // namespace gg::optim
