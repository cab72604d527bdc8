#pragma once
// gg::nn::Module: the base of every layer, after libtorch's torch::nn::Module. Parameters, buffers
// and submodules are registered by name, in order; named_parameters() walks the tree and joins
// names with dots ("blocks.0.attn.w_q"). Modules are plain classes held by std::shared_ptr.
//
// Deep copies (libtorch's Cloneable): every built-in layer implements clone(). A user module gets
// it by deriving from gg::nn::Cloneable<Net> instead of Module and registering everything in
// reset(), as in libtorch:
//   struct Net : gg::nn::Cloneable<Net> {
//     explicit Net(int64_t hidden) : hidden(hidden) { reset(); }
//     void reset() override {
//       fc = register_module("fc", std::make_shared<gg::nn::Linear>(4, hidden));
//     }
//     int64_t hidden;
//     std::shared_ptr<gg::nn::Linear> fc;
//   };
//   auto copy = std::dynamic_pointer_cast<Net>(net->clone());
// clone() copies the Net (which must be copy-constructible), calls reset() on the copy to make new
// parameters, buffers and submodules, then gives them the original's values. Copying a Cloneable
// module directly (Net b = a) is shallow, as in libtorch: b shares a's tensors and submodules.
#include <deque>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace gg::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

namespace detail {
// The demangled name of a type ("gg::nn::Linear"), as name() and the containers' errors show it.
std::string type_name(const std::type_info& type);
}  // namespace detail

template <class Derived>
class Cloneable;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // A module owns its tensors' identities (optimizers hold the same handles): no copies, except
  // the shallow one Cloneable<Derived> makes for clone() (see above).
  Module& operator=(const Module&) = delete;

  // Parameters that are defined, in registration order, this module's before its children's.
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_parameters(bool recurse = true) const;  // "blocks.0.attn.w_q"
  std::vector<Tensor> buffers(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  // What a checkpoint holds: named_parameters() then named_buffers(), all recursive.
  NamedTensors named_tensors() const;

  std::vector<std::shared_ptr<Module>> children() const;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const;
  // Every descendant with its dotted path (this module itself is not included).
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_modules() const;

  // Training mode, recursively (dropout reads it). Modules start in training mode.
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // libtorch 1.13 semantics (Module::zero_grad(bool set_to_none = false)): gradients that exist
  // are zeroed in place, undefined ones stay undefined; set_to_none=true drops them instead
  // (PyTorch 2.x's default), which saves the memory and the zeroing.
  void zero_grad(bool set_to_none = false);

  // Converts every parameter and buffer to `dtype` in place: the handles stay the same (as
  // optimizers and submodule members hold them), their data and dtype change; grads are dropped.
  // Integer parameters and buffers are left alone. `dtype` must be floating (as in PyTorch's
  // nn.Module.to): converting trainable parameters to an integer dtype is a gg::Error.
  void to(Dtype dtype);

  // Copies of the parameter/buffer handles by name (dotted for descendants); throws if absent.
  Tensor parameter(const std::string& name) const;
  Tensor buffer(const std::string& name) const;

  // Public, as in libtorch, so that containers and code outside a class can register too.
  // The tensor becomes a leaf (detached if it came out of an op) with requires_grad set as asked.
  // An undefined tensor is allowed (e.g. bias=false) and is skipped by parameters().
  Tensor& register_parameter(std::string name, Tensor t, bool requires_grad = true);
  // State that is saved but not trained (never requires grad).
  Tensor& register_buffer(std::string name, Tensor t);
  // Adds m as the child `name` (no dots; unique among this module's parameters, buffers and
  // children) and returns it. A module cannot become its own descendant.
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    static_assert(std::is_base_of_v<Module, M>, "register_module needs a gg::nn::Module");
    add_child(std::move(name), m);
    return m;
  }

  // libtorch's Module::apply: calls fn on this module, then on every descendant in pre-order
  // (a child, then the child's own descendants, children in registration order).
  void apply(const std::function<void(Module&)>& fn);
  void apply(const std::function<void(const Module&)>& fn) const;
  // The same with each module's dotted path; this module gets name_prefix (default "").
  void apply(const std::function<void(const std::string&, Module&)>& fn,
             const std::string& name_prefix = "");
  void apply(const std::function<void(const std::string&, const Module&)>& fn,
             const std::string& name_prefix = "") const;

  // The module's class name, demangled: "gg::nn::Linear", or "Net" for a user's struct Net
  // (libtorch's Module::name()).
  std::string name() const;
  // Writes this module's own one-line description (no children): by default name(); the built-in
  // layers add their options as libtorch does, "gg::nn::Linear(in_features=4, out_features=3,
  // bias=true)". operator<< prints the whole tree.
  virtual void pretty_print(std::ostream& stream) const;

  // A deep copy: new parameters and buffers with equal values and the same requires_grad (grads
  // are not copied), the same training flags, submodules copied recursively; training the copy
  // leaves this module unchanged. Every built-in layer implements it; user modules get it from
  // Cloneable<Derived> (see the top of this file). Throws gg::Error naming the class otherwise.
  virtual std::shared_ptr<Module> clone() const;

 protected:
  // Replaces the child `name` by m in its place (libtorch's replace_module).
  void replace_module(const std::string& name, std::shared_ptr<Module> m);
  // Removes the child `name` (libtorch's unregister_module).
  void unregister_module(const std::string& name);
  // For clone(): gives `fresh` -- a module of the same structure with new tensors, e.g. made by
  // the constructor -- this module's values, requires_grad flags and training flags (of every
  // descendant too, or with recurse = false only this module's own). Throws gg::Error naming the
  // class if fresh's parameter, buffer or module names differ.
  void clone_state_into(Module& fresh, bool recurse = true) const;
  // Whether operator<< lists the children under pretty_print's line. GroupedLinear says no: its
  // line names every group, and its children are the per-group parameter lists.
  virtual bool pretty_print_children() const { return true; }

 private:
  template <class Derived>
  friend class Cloneable;
  friend std::ostream& operator<<(std::ostream& stream, const Module& module);
  // Shallow (shares tensors and children): only Cloneable<Derived>::clone uses it.
  Module(const Module&) = default;
  void clear_registrations();

  void check_new_name(const std::string& name, const char* op) const;
  void add_child(std::string name, std::shared_ptr<Module> m);
  void collect(const std::string& prefix, bool recurse, bool buffers, NamedTensors& out) const;
  void pretty_print_recursive(std::ostream& stream, const std::string& indentation) const;

  // Deques keep references returned by register_* valid as more are added.
  std::deque<std::pair<std::string, Tensor>> parameters_;
  std::deque<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Prints the module tree in libtorch's format: pretty_print's line, then, if there are children,
// "(\n" + one "  (name): <child>" line per child (indented per level) + ")".
std::ostream& operator<<(std::ostream& stream, const Module& module);

// libtorch's Cloneable<Derived>: derive from it instead of Module, register every parameter,
// buffer and submodule in reset(), call reset() from the constructor, and clone() works (see the
// top of this file).
template <class Derived>
class Cloneable : public Module {
 public:
  // Registers this module's parameters, buffers and submodules (afresh: clone() calls it on a
  // copy whose registrations were cleared).
  virtual void reset() = 0;

  std::shared_ptr<Module> clone() const override {
    static_assert(std::is_base_of_v<Cloneable<Derived>, Derived>,
                  "Cloneable<Derived> must be a base of Derived");
    static_assert(std::is_copy_constructible_v<Derived>,
                  "clone() copies the module first: Derived must be copy-constructible");
    auto copy = std::make_shared<Derived>(static_cast<const Derived&>(*this));
    copy->clear_registrations();
    copy->reset();
    clone_state_into(*copy);
    return copy;
  }
};

}  // namespace gg::nn
