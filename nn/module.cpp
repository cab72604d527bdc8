#include "nn/module.hpp"

#include <algorithm>
#include <cstring>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/error.hpp"

namespace gg::nn {

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

template <class Items>
auto find_named(Items& items, const std::string& name) {
  return std::find_if(items.begin(), items.end(), [&](const auto& kv) { return kv.first == name; });
}
}  // namespace

void Module::check_new_name(const std::string& name, const char* op) const {
  GG_CHECK(!name.empty(), "[{}] the name must not be empty", op);
  GG_CHECK(name.find('.') == std::string::npos,
           "[{}] name '{}' must not contain a dot (dots separate submodule names)", op, name);
  GG_CHECK(find_named(parameters_, name) == parameters_.end(),
           "[{}] '{}' is already registered as a parameter", op, name);
  GG_CHECK(find_named(buffers_, name) == buffers_.end(),
           "[{}] '{}' is already registered as a buffer", op, name);
  GG_CHECK(find_named(children_, name) == children_.end(),
           "[{}] '{}' is already registered as a submodule", op, name);
}

Tensor& Module::register_parameter(std::string name, Tensor t, bool requires_grad) {
  check_new_name(name, "register_parameter");
  if (t.defined()) {
    GG_CHECK(!requires_grad || t.is_floating_point(),
             "[register_parameter] '{}' is {} {}: only floating-point parameters can require "
             "grad",
             name, dtype_name(t.dtype()), shape_str(t.shape()));
    if (!t.is_leaf()) t = t.detach();
    t.requires_grad_(requires_grad);
  }
  parameters_.emplace_back(std::move(name), std::move(t));
  return parameters_.back().second;
}

Tensor& Module::register_buffer(std::string name, Tensor t) {
  check_new_name(name, "register_buffer");
  if (t.defined()) {
    if (!t.is_leaf()) t = t.detach();
    if (t.requires_grad()) t.requires_grad_(false);
  }
  buffers_.emplace_back(std::move(name), std::move(t));
  return buffers_.back().second;
}

void Module::add_child(std::string name, std::shared_ptr<Module> m) {
  check_new_name(name, "register_module");
  GG_CHECK(m != nullptr, "[register_module] '{}' is a null module", name);
  GG_CHECK(m.get() != this, "[register_module] '{}': a module cannot be its own child", name);
  children_.emplace_back(std::move(name), std::move(m));
}

void Module::collect(const std::string& prefix, bool recurse, bool buffers,
                     NamedTensors& out) const {
  for (const auto& [name, t] : buffers ? buffers_ : parameters_)
    if (t.defined()) out.emplace_back(join(prefix, name), t);
  if (!recurse) return;
  for (const auto& [name, child] : children_)
    child->collect(join(prefix, name), true, buffers, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", recurse, /*buffers=*/false, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters(recurse)) out.push_back(std::move(t));
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", recurse, /*buffers=*/true, out);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_buffers(recurse)) out.push_back(std::move(t));
  return out;
}

NamedTensors Module::named_tensors() const {
  NamedTensors out = named_parameters(true);
  NamedTensors b = named_buffers(true);
  out.insert(out.end(), std::make_move_iterator(b.begin()), std::make_move_iterator(b.end()));
  return out;
}

std::vector<std::shared_ptr<Module>> Module::children() const {
  std::vector<std::shared_ptr<Module>> out;
  for (const auto& [name, child] : children_) out.push_back(child);
  return out;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_children() const {
  return children_;
}

std::vector<std::pair<std::string, std::shared_ptr<Module>>> Module::named_modules() const {
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> out;
  for (const auto& [name, child] : children_) {
    out.emplace_back(name, child);
    for (auto& [sub, m] : child->named_modules()) out.emplace_back(join(name, sub), std::move(m));
  }
  return out;
}

void Module::train(bool on) {
  training_ = on;
  for (const auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad(bool set_to_none) {
  for (const Tensor& p : parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none) {
      p.set_grad(Tensor());
    } else {
      NoGradGuard no_grad;
      copy_(g, scalar_tensor(0, g.dtype()));
    }
  }
}

void Module::to(Dtype dtype) {
  // As PyTorch's nn.Module.to: parameters are trainable, and only floating tensors can require
  // grad, so an integer dtype is refused before anything changes.
  GG_CHECK(is_floating(dtype),
           "[Module::to] only floating dtypes are accepted (parameters must stay trainable), got "
           "{}",
           dtype_name(dtype));
  NoGradGuard no_grad;
  auto convert = [dtype](const Tensor& t) {
    if (!t.defined() || t.dtype() == dtype || !t.is_floating_point()) return;
    Tensor converted = t.to(dtype).contiguous();  // a new storage: the dtype differs
    // Swap the data under the existing handle: every copy of it sees the new dtype. The old
    // grad has the old dtype, so it goes.
    t.set_grad(Tensor());
    t.set_data(converted);
  };
  for (const Tensor& p : parameters()) convert(p);
  for (const Tensor& b : buffers()) convert(b);
}

Tensor Module::parameter(const std::string& name) const {
  for (auto& [n, t] : named_parameters()) {
    if (n == name) return t;
  }
  fail("[parameter] no parameter named '{}'", name);
}

Tensor Module::buffer(const std::string& name) const {
  for (auto& [n, t] : named_buffers()) {
    if (n == name) return t;
  }
  fail("[buffer] no buffer named '{}'", name);
}

}  // namespace gg::nn
