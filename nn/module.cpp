#include "nn/module.hpp"

#include <cxxabi.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <typeinfo>

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

namespace {
// Whether `target` is `root` or one of its descendants.
bool in_tree(const Module& root, const Module* target) {
  bool found = false;
  root.apply([&](const Module& m) { found = found || &m == target; });
  return found;
}
}  // namespace

void Module::add_child(std::string name, std::shared_ptr<Module> m) {
  check_new_name(name, "register_module");
  GG_CHECK(m != nullptr, "[register_module] '{}' is a null module", name);
  GG_CHECK(m.get() != this, "[register_module] '{}': a module cannot be its own child", name);
  // register_module is public: a cycle would make every walk of the tree recurse forever.
  GG_CHECK(!in_tree(*m, this),
           "[register_module] '{}': {} contains this module ({}), so registering it would make a "
           "cycle",
           name, m->name(), this->name());
  children_.emplace_back(std::move(name), std::move(m));
}

void Module::replace_module(const std::string& name, std::shared_ptr<Module> m) {
  auto it = find_named(children_, name);
  GG_CHECK(it != children_.end(), "[replace_module] no submodule named '{}'", name);
  GG_CHECK(m != nullptr, "[replace_module] '{}': the new module is null", name);
  GG_CHECK(m.get() != this && !in_tree(*m, this),
           "[replace_module] '{}': {} contains this module ({}), so it would make a cycle", name,
           m->name(), this->name());
  it->second = std::move(m);
}

void Module::unregister_module(const std::string& name) {
  auto it = find_named(children_, name);
  GG_CHECK(it != children_.end(), "[unregister_module] no submodule named '{}'", name);
  children_.erase(it);
}

void Module::clear_registrations() {
  parameters_.clear();
  buffers_.clear();
  children_.clear();
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

void Module::apply(const std::function<void(Module&)>& fn) {
  fn(*this);
  for (const auto& [name, child] : children_) child->apply(fn);
}

void Module::apply(const std::function<void(const Module&)>& fn) const {
  fn(*this);
  for (const auto& [name, child] : children_) std::as_const(*child).apply(fn);
}

void Module::apply(const std::function<void(const std::string&, Module&)>& fn,
                   const std::string& name_prefix) {
  fn(name_prefix, *this);
  for (const auto& [name, child] : children_) child->apply(fn, join(name_prefix, name));
}

void Module::apply(const std::function<void(const std::string&, const Module&)>& fn,
                   const std::string& name_prefix) const {
  fn(name_prefix, *this);
  for (const auto& [name, child] : children_)
    std::as_const(*child).apply(fn, join(name_prefix, name));
}

namespace detail {

std::string type_name(const std::type_info& type) {
  int status = 0;
  char* demangled = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
  std::string out = status == 0 && demangled != nullptr ? demangled : type.name();
  std::free(demangled);  // allocated by the demangler with malloc
  return out;
}

}  // namespace detail

std::string Module::name() const { return detail::type_name(typeid(*this)); }

void Module::pretty_print(std::ostream& stream) const { stream << name(); }

void Module::pretty_print_recursive(std::ostream& stream, const std::string& indentation) const {
  pretty_print(stream);
  if (children_.empty() || !pretty_print_children()) return;
  stream << "(\n";
  const std::string inner = indentation + "  ";
  for (const auto& [name, child] : children_) {
    stream << inner << "(" << name << "): ";
    child->pretty_print_recursive(stream, inner);
    stream << "\n";
  }
  stream << indentation << ")";
}

std::ostream& operator<<(std::ostream& stream, const Module& module) {
  module.pretty_print_recursive(stream, "");
  return stream;
}

std::shared_ptr<Module> Module::clone() const {
  fail(
      "[clone] {0} cannot be cloned: derive it from gg::nn::Cloneable<{0}> instead of "
      "gg::nn::Module and register its parameters, buffers and submodules in reset() (or override "
      "clone())",
      name());
}

namespace {
std::string names_of(const NamedTensors& tensors) {
  std::string out;
  for (const auto& [n, t] : tensors) out += (out.empty() ? "" : ", ") + n;
  return "[" + out + "]";
}

template <class M>  // Module or const Module
std::vector<M*> modules_of(M& root) {
  std::vector<M*> out;
  root.apply([&](M& m) { out.push_back(&m); });
  return out;
}
}  // namespace

void Module::clone_state_into(Module& fresh, bool recurse) const {
  NoGradGuard no_grad;
  const NamedTensors mine_p = named_parameters(recurse), fresh_p = fresh.named_parameters(recurse);
  const NamedTensors mine_b = named_buffers(recurse), fresh_b = fresh.named_buffers(recurse);
  auto same_names = [](const NamedTensors& a, const NamedTensors& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const auto& x, const auto& y) { return x.first == y.first; });
  };
  GG_CHECK(same_names(mine_p, fresh_p) && same_names(mine_b, fresh_b),
           "[clone] {}: the copy has parameters {} and buffers {} but the original has "
           "parameters {} and buffers {}; register every parameter, buffer and submodule in "
           "reset()",
           name(), names_of(fresh_p), names_of(fresh_b), names_of(mine_p), names_of(mine_b));
  auto copy_values = [](const NamedTensors& from, const NamedTensors& to) {
    for (size_t i = 0; i < from.size(); ++i) {
      const Tensor& src = from[i].second;
      const Tensor& dst = to[i].second;
      GG_CHECK(src.impl() != dst.impl(),
               "[clone] '{}' is the same tensor in the copy and the original; reset() must make "
               "new tensors",
               from[i].first);
      // Into the fresh storage when it fits (it keeps the layout the constructor chose, e.g.
      // GroupedLinear's back-to-back groups); otherwise a new storage of the original's kind.
      if (src.shape() == dst.shape() && src.dtype() == dst.dtype()) {
        copy_(dst, src);
      } else {
        dst.set_data(src.detach().clone());
      }
      dst.set_grad(Tensor());
      Tensor handle = dst;  // the same tensor: requires_grad_ is not const
      if (handle.requires_grad() != src.requires_grad()) handle.requires_grad_(src.requires_grad());
    }
  };
  copy_values(mine_p, fresh_p);
  copy_values(mine_b, fresh_b);
  if (!recurse) {
    fresh.training_ = training_;
    return;
  }
  const std::vector<const Module*> mine = modules_of(*this);
  const std::vector<Module*> theirs = modules_of(fresh);
  GG_CHECK(mine.size() == theirs.size(),
           "[clone] {}: the copy has {} modules but the original has {}; register every "
           "submodule in reset()",
           name(), theirs.size(), mine.size());
  for (size_t i = 0; i < mine.size(); ++i) theirs[i]->training_ = mine[i]->training_;
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
