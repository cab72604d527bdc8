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
  // "gg::nn::Functional()", as libtorch prints its Functional.
  void pretty_print(std::ostream& stream) const override;
  // A Functional holding a copy of the function.
  std::shared_ptr<Module> clone() const override;

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
// A gg::Error thrown by module i is rethrown with "[Sequential] module i (<its class>): " in
// front of its message, so a failure deep in a stack says where it happened.
class Sequential : public Module {
 public:
  Sequential() = default;
  template <class... Items>
  requires(sizeof...(Items) > 0) explicit Sequential(Items&&... items) {
    (push_back(std::forward<Items>(items)), ...);
  }

  template <TensorModule M>
  void push_back(std::shared_ptr<M> module) {
    GG_CHECK(module != nullptr, "[Sequential] cannot add a null module");
    add(std::move(module), [](Module& m, const Tensor& x) -> Tensor {
      return static_cast<M&>(m).forward(x);  // add() keeps m next to this step: it is an M
    });
  }
  void push_back(Functional::Fn fn) { push_back(std::make_shared<Functional>(std::move(fn))); }

  // Applies every module in order.
  Tensor forward(const Tensor& x);

  size_t size() const { return steps_.size(); }
  bool empty() const { return steps_.empty(); }
  std::shared_ptr<Module> operator[](size_t index) const;
  // "gg::nn::Sequential"; the children follow under operator<<.
  void pretty_print(std::ostream& stream) const override;
  // A Sequential of clones of every module.
  std::shared_ptr<Module> clone() const override;
  template <class M>
  std::shared_ptr<M> at(size_t index) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[index]);
    GG_CHECK(m != nullptr, "[Sequential] module {} is not of the requested type", index);
    return m;
  }

 private:
  // Calls the forward of a module known to be of the type the step was made for.
  using Step = Tensor (*)(Module&, const Tensor&);
  void add(std::shared_ptr<Module> module, Step step);

  std::vector<std::shared_ptr<Module>> modules_;  // the children, in order
  std::vector<Step> steps_;                       // steps_[i] runs modules_[i]
};

}  // namespace gg::nn
