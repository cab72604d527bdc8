#include "nn/sequential.hpp"

#include <typeinfo>

namespace gg::nn {

Functional::Functional(Fn fn) : fn_(std::move(fn)) {
  GG_CHECK(static_cast<bool>(fn_), "[Functional] needs a callable, got an empty function");
}

void Functional::pretty_print(std::ostream& stream) const { stream << "gg::nn::Functional()"; }

std::shared_ptr<Module> Functional::clone() const {
  auto copy = std::make_shared<Functional>(fn_);
  clone_state_into(*copy);
  return copy;
}

void Sequential::add(std::shared_ptr<Module> module, Step step) {
  register_module(std::to_string(steps_.size()), module);
  modules_.push_back(std::move(module));
  steps_.push_back(step);
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (size_t i = 0; i < steps_.size(); ++i) {
    try {
      y = steps_[i](*modules_[i], y);
    } catch (const Error& e) {
      throw Error(fmt::format("[Sequential] module {} ({}): {}", i, modules_[i]->name(), e.what()));
    }
  }
  return y;
}

std::shared_ptr<Module> Sequential::operator[](size_t index) const {
  GG_CHECK(index < steps_.size(), "[Sequential] index {} is out of range for {} modules", index,
           steps_.size());
  return modules_[index];
}

void Sequential::pretty_print(std::ostream& stream) const { stream << "gg::nn::Sequential"; }

std::shared_ptr<Module> Sequential::clone() const {
  auto copy = std::make_shared<Sequential>();
  for (size_t i = 0; i < steps_.size(); ++i) {
    std::shared_ptr<Module> c = modules_[i]->clone();
    // The step casts to the original's class: a clone() of another class would break it.
    const Module* original = modules_[i].get();
    const Module* cloned = c.get();
    GG_CHECK(cloned != nullptr && typeid(*cloned) == typeid(*original),
             "[Sequential] clone: module {} ({}) returned a clone of another class ({})", i,
             modules_[i]->name(), c ? c->name() : std::string("null"));
    copy->add(std::move(c), steps_[i]);
  }
  clone_state_into(*copy, /*recurse=*/false);
  return copy;
}

}  // namespace gg::nn
