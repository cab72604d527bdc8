#pragma once
// gg::nn::Module: the base of every layer, after libtorch's torch::nn::Module. Parameters, buffers
// and submodules are registered by name, in order; named_parameters() walks the tree and joins
// names with dots ("blocks.0.attn.w_q"). Modules are plain classes held by std::shared_ptr.
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"

namespace gg::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  // A module owns its tensors' identities (optimizers hold the same handles): no copies.
  Module(const Module&) = delete;
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

 protected:
  // The tensor becomes a leaf (detached if it came out of an op) with requires_grad set as asked.
  // An undefined tensor is allowed (e.g. bias=false) and is skipped by parameters().
  Tensor& register_parameter(std::string name, Tensor t, bool requires_grad = true);
  // State that is saved but not trained (never requires grad).
  Tensor& register_buffer(std::string name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    static_assert(std::is_base_of_v<Module, M>, "register_module needs a gg::nn::Module");
    add_child(std::move(name), m);
    return m;
  }

 private:
  void check_new_name(const std::string& name, const char* op) const;
  void add_child(std::string name, std::shared_ptr<Module> m);
  void collect(const std::string& prefix, bool recurse, bool buffers, NamedTensors& out) const;

  // Deques keep references returned by register_* valid as more are added.
  std::deque<std::pair<std::string, Tensor>> parameters_;
  std::deque<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace gg::nn
