#include "nn/sequential.hpp"

namespace gg::nn {

Functional::Functional(Fn fn) : fn_(std::move(fn)) {
  GG_CHECK(static_cast<bool>(fn_), "[Functional] needs a callable, got an empty function");
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& step : steps_) y = step(y);
  return y;
}

std::shared_ptr<Module> Sequential::operator[](size_t index) const {
  GG_CHECK(index < steps_.size(), "[Sequential] index {} is out of range for {} modules", index,
           steps_.size());
  return children()[index];
}

}  // namespace gg::nn
