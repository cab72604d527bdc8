#include "nn/optim/optimizer.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/error.hpp"

namespace gg::optim {

Optimizer::Optimizer(std::vector<Tensor> params, std::string name, double lr)
    : params_(std::move(params)), name_(std::move(name)), lr_(lr), initial_lr_(lr) {
  GG_CHECK(!params_.empty(), "[{}] got an empty parameter list", name_);
  GG_CHECK(lr >= 0, "[{}] learning rate must be >= 0, got {}", name_, lr);
  std::set<const TensorImpl*> seen;
  for (size_t i = 0; i < params_.size(); ++i) {
    const Tensor& p = params_[i];
    GG_CHECK(p.defined(), "[{}] parameter {} is an undefined tensor", name_, i);
    GG_CHECK(p.is_floating_point(),
             "[{}] parameter {} is {} {}: only floating-point tensors can "
             "be optimized",
             name_, i, dtype_name(p.dtype()), shape_str(p.shape()));
    GG_CHECK(p.is_leaf(),
             "[{}] parameter {} {} is not a leaf (it came out of an op); optimize "
             "the tensor it was computed from",
             name_, i, shape_str(p.shape()));
    GG_CHECK(seen.insert(p.impl().get()).second,
             "[{}] parameter {} {} appears more than once in the parameter list", name_, i,
             shape_str(p.shape()));
  }
  state_.resize(params_.size());
}

void Optimizer::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (const Tensor& p : params_) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none) {
      p.set_grad(Tensor());
    } else {
      copy_(g, scalar_tensor(0, g.dtype()));
    }
  }
}

void Optimizer::set_lr(double lr) {
  GG_CHECK(lr >= 0, "[{}] learning rate must be >= 0, got {}", name_, lr);
  lr_ = lr;
}

void Optimizer::set_initial_lr(double lr) {
  GG_CHECK(lr >= 0, "[{}] initial learning rate must be >= 0, got {}", name_, lr);
  initial_lr_ = lr;
}

nn::NamedTensors Optimizer::state_dict() const {
  nn::NamedTensors out;
  for (size_t i = 0; i < state_.size(); ++i)
    for (const auto& [key, t] : state_[i]) out.emplace_back(fmt::format("state.{}.{}", i, key), t);
  return out;
}

void Optimizer::load_state_dict(const nn::NamedTensors& state) {
  const std::vector<std::string> keys = state_keys();
  std::vector<ParamState> loaded(params_.size());
  for (const auto& [name, t] : state) {
    // "state.<index>.<key>"
    size_t index = 0;
    std::string key;
    bool parsed = false;
    if (name.rfind("state.", 0) == 0) {
      const size_t dot = name.find('.', 6);
      if (dot != std::string::npos && dot > 6) {
        const char* begin = name.data() + 6;
        const char* end = name.data() + dot;
        auto [ptr, ec] = std::from_chars(begin, end, index);
        parsed = ec == std::errc() && ptr == end;
        key = name.substr(dot + 1);
      }
    }
    GG_CHECK(parsed, "[{}] unexpected state entry '{}' (expected 'state.<index>.<key>')", name_,
             name);
    GG_CHECK(index < params_.size(),
             "[{}] state entry '{}' is for parameter {} but the optimizer has {} parameters", name_,
             name, index, params_.size());
    GG_CHECK(std::find(keys.begin(), keys.end(), key) != keys.end(),
             "[{}] state entry '{}' has key '{}', which {} does not use (it uses: {})", name_, name,
             key, name_, fmt::join(keys, ", "));
    GG_CHECK(t.defined(), "[{}] state entry '{}' is an undefined tensor", name_, name);
    const Tensor& p = params_[index];
    if (key == "step") {
      GG_CHECK(t.numel() == 1 && t.dim() == 0,
               "[{}] state entry '{}' must be a 0-d step count, got {} {}", name_, name,
               dtype_name(t.dtype()), shape_str(t.shape()));
      GG_CHECK(t.to(kFloat64).item<double>() >= 0, "[{}] state entry '{}' is a negative step",
               name_, name);
    } else {
      GG_CHECK(t.shape() == p.shape(),
               "[{}] state entry '{}' has shape {} but parameter {} has shape {}", name_, name,
               shape_str(t.shape()), index, shape_str(p.shape()));
      GG_CHECK(t.is_floating_point(), "[{}] state entry '{}' is {}, expected a floating dtype",
               name_, name, dtype_name(t.dtype()));
    }
    GG_CHECK(loaded[index].count(key) == 0, "[{}] state entry '{}' appears twice", name_, name);
    NoGradGuard no_grad;
    Tensor value = key == "step" ? t.to(kInt64).clone() : t.to(p.dtype()).contiguous().clone();
    loaded[index].emplace(key, value.detach());
  }
  for (size_t i = 0; i < loaded.size(); ++i) {
    if (loaded[i].empty()) continue;
    for (const std::string& key : keys)
      GG_CHECK(loaded[i].count(key) == 1, "[{}] state of parameter {} lacks 'state.{}.{}'", name_,
               i, i, key);
  }
  state_ = std::move(loaded);
}

namespace detail {

Tensor contiguous_grad(const Tensor& p) {
  Tensor g = p.grad();
  if (g.dtype() != p.dtype()) g = g.to(p.dtype());
  return g.contiguous();
}

Tensor update_target(const Tensor& p) {
  if (p.is_contiguous()) return p.detach();
  return p.detach().contiguous();
}

void write_back(const Tensor& p, const Tensor& target) {
  if (!p.is_contiguous()) copy_(p, target);
}

}  // namespace detail

}  // namespace gg::optim
