#include "nn/optim/optimizer.hpp"

#include <algorithm>
#include <charconv>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"

namespace gg::optim {

Optimizer::Optimizer(std::vector<Tensor> params, std::string name, double lr)
    : name_(std::move(name)) {
  GG_CHECK(!params.empty(), "[{}] got an empty parameter list", name_);
  add_group(std::move(params), lr);
}

Optimizer::Optimizer(std::string name) : name_(std::move(name)) {}

size_t Optimizer::add_group(std::vector<Tensor> params, double lr) {
  const size_t group = groups_.size();
  check_nonnegative("learning rate", lr, group);
  std::map<const TensorImpl*, size_t> added;
  for (size_t i = 0; i < params.size(); ++i) {
    const Tensor& p = params[i];
    const std::string where = group == 0 ? "" : fmt::format(" of group {}", group);
    GG_CHECK(p.defined(), "[{}] parameter {}{} is an undefined tensor", name_, i, where);
    GG_CHECK(p.is_floating_point(),
             "[{}] parameter {}{} is {} {}: only floating-point tensors can be optimized", name_, i,
             where, dtype_name(p.dtype()), shape_str(p.shape()));
    GG_CHECK(p.is_leaf(),
             "[{}] parameter {}{} {} is not a leaf (it came out of an op); optimize the tensor it "
             "was computed from",
             name_, i, where, shape_str(p.shape()));
    GG_CHECK(added.emplace(p.impl().get(), i).second,
             "[{}] parameter {}{} {} appears more than once in the parameter list", name_, i, where,
             shape_str(p.shape()));
    auto other = group_of_.find(p.impl().get());
    GG_CHECK(other == group_of_.end(),
             "[{}] parameter {} {} of parameter group {} is already in parameter group {}: a "
             "parameter may belong to one group only",
             name_, i, shape_str(p.shape()), group, other == group_of_.end() ? 0 : other->second);
  }
  for (const Tensor& p : params) group_of_.emplace(p.impl().get(), group);
  const size_t begin = params_.size();
  params_.insert(params_.end(), params.begin(), params.end());
  state_.resize(params_.size());
  groups_.push_back(Group{begin, params_.size(), lr, lr});
  return group;
}

std::string Optimizer::in_group(size_t group) {
  return group == 0 ? std::string() : fmt::format(" (parameter group {})", group);
}

void Optimizer::check_nonnegative(const char* what, double value, size_t group) const {
  GG_CHECK(value >= 0, "[{}] {} must be >= 0, got {}{}", name_, what, value, in_group(group));
}

void Optimizer::check_group(size_t group) const {
  GG_CHECK(group < groups_.size(), "[{}] parameter group {} is out of range (the optimizer has {})",
           name_, group, groups_.size());
}

std::pair<size_t, size_t> Optimizer::group_range(size_t group) const {
  check_group(group);
  return {groups_[group].begin, groups_[group].end};
}

size_t Optimizer::group_of_param(size_t i) const {
  GG_CHECK(i < params_.size(), "[{}] parameter {} is out of range (the optimizer has {})", name_, i,
           params_.size());
  for (size_t g = 0; g < groups_.size(); ++g)
    if (i < groups_[g].end) return g;
  return groups_.size() - 1;  // unreachable: the groups cover every index
}

double Optimizer::group_lr(size_t group) const {
  check_group(group);
  return stored_lr(group);
}

void Optimizer::set_group_lr(size_t group, double lr) {
  check_group(group);
  check_nonnegative("learning rate", lr, group);
  store_lr(group, lr);
}

double Optimizer::group_initial_lr(size_t group) const {
  check_group(group);
  return groups_[group].initial_lr;
}

void Optimizer::set_group_initial_lr(size_t group, double lr) {
  check_group(group);
  check_nonnegative("initial learning rate", lr, group);
  groups_[group].initial_lr = lr;
}

void Optimizer::set_lr(double lr) {
  check_nonnegative("learning rate", lr, 0);
  for (size_t g = 0; g < groups_.size(); ++g) store_lr(g, lr);
}

void Optimizer::set_initial_lr(double lr) {
  check_nonnegative("initial learning rate", lr, 0);
  for (Group& g : groups_) g.initial_lr = lr;
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

nn::NamedTensors Optimizer::state_dict() const {
  nn::NamedTensors out;
  for (size_t i = 0; i < state_.size(); ++i)
    for (const auto& [key, t] : state_[i]) out.emplace_back(fmt::format("state.{}.{}", i, key), t);
  return out;
}

void Optimizer::load_state_dict(const nn::NamedTensors& state) {
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
    const std::vector<std::string> keys = param_state_keys(index);
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
    for (const std::string& key : param_state_keys(i))
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
  if (!p.is_contiguous()) {
    copy_(p, target);  // bumps p's version
    return;
  }
  // The update wrote p's own storage through raw pointers: bump its version as an in-place op
  // does, so that a graph which saved p refuses to backward after step(), as in PyTorch.
  p.impl()->storage->bump_version();
}

}  // namespace detail

}  // namespace gg::optim
