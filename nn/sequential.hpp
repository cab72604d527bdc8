#pragma once
// Sequential chains modules that map one Tensor to one Tensor; Functional wraps a plain function
// (gg::relu, a lambda) as such a module, like torch::nn::Functional.
#include <concepts>
#include <functional>
#include <string>
#include <utility>

#include "module.hpp"

namespace gg::nn {

class Functional : public Module {
 public:
  using Fn = std::function<Tensor(const Tensor&)>;
  explicit Functional(Fn fn);
  Tensor forward(const Tensor& x) { return fn_(x); }

 private:
  Fn fn_;
};

// Any module with `Tensor forward(const Tensor&)`.
template <class M>
concept TensorModule = std::derived_from<M, Module> && requires(M& m, const Tensor& x) {
  { m.forward(x) } -> std::convertible_to<Tensor>;
};

// Children are named "0", "1", ... in the order they were added.
//   auto net = std::make_shared<Sequential>(std::make_shared<Linear>(4, 8), gg::relu,
//                                           std::make_shared<Linear>(8, 1));
class Sequential : public Module {
 public:
  Sequential() = default;
  template <class... Items>
  requires(sizeof...(Items) > 0) explicit Sequential(Items&&... items) {
    (push_back(std::forward<Items>(items)), ...);
  }

  template <TensorModule M>
  void push_back(std::shared_ptr<M> module) {
    M* raw = module.get();  // owned by children_ through register_module
    GG_CHECK(raw != nullptr, "[Sequential] cannot add a null module");
    register_module(std::to_string(steps_.size()), std::move(module));
    steps_.push_back([raw](const Tensor& x) { return raw->forward(x); });
  }
  void push_back(Functional::Fn fn) { push_back(std::make_shared<Functional>(std::move(fn))); }

  // Applies every module in order.
  Tensor forward(const Tensor& x);

  size_t size() const { return steps_.size(); }
  bool empty() const { return steps_.empty(); }
  std::shared_ptr<Module> operator[](size_t index) const;
  template <class M>
  std::shared_ptr<M> at(size_t index) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[index]);
    GG_CHECK(m != nullptr, "[Sequential] module {} is not of the requested type", index);
    return m;
  }

 private:
  std::vector<std::function<Tensor(const Tensor&)>> steps_;
};

}  // namespace gg::nn
