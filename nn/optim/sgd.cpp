#include "nn/optim/sgd.hpp"

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"

namespace gg::optim {

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : Optimizer(std::move(params), "SGD", options.lr()), options_(options) {
  GG_CHECK(options.momentum() >= 0, "[SGD] momentum must be >= 0, got {}", options.momentum());
  GG_CHECK(options.weight_decay() >= 0, "[SGD] weight_decay must be >= 0, got {}",
           options.weight_decay());
  GG_CHECK(!options.nesterov() || (options.momentum() > 0 && options.dampening() == 0),
           "[SGD] nesterov momentum needs momentum > 0 and dampening = 0, got momentum={} "
           "dampening={}",
           options.momentum(), options.dampening());
}

std::vector<std::string> SGD::state_keys() const {
  if (options_.momentum() == 0) return {};
  return {"momentum_buffer"};
}

void SGD::step() {
  NoGradGuard no_grad;
  const double lr = this->lr();
  const double momentum = options_.momentum();
  const double dampening = options_.dampening();
  const double weight_decay = options_.weight_decay();
  const bool nesterov = options_.nesterov();
  for (size_t i = 0; i < parameters().size(); ++i) {
    const Tensor& param = parameters()[i];
    if (!param.grad().defined()) continue;
    Tensor target = detail::update_target(param);
    Tensor grad = detail::contiguous_grad(param);
    ParamState& st = state(i);
    bool first = false;
    if (momentum != 0 && st.empty()) {
      st["momentum_buffer"] = zeros(param.shape(), param.dtype());
      first = true;
    }
    dispatch(param.dtype(), [&]<class T>() {
      if constexpr (std::is_integral_v<T>) {
        fail("[SGD] cannot update a {} parameter", dtype_name(param.dtype()));
      } else {
        T* p = target.data_ptr<T>();
        const T* g = grad.data_ptr<T>();
        T* buf = momentum != 0 ? st["momentum_buffer"].data_ptr<T>() : nullptr;
        for (int64_t j = 0, n = target.numel(); j < n; ++j) {
          double d = static_cast<double>(g[j]);
          if (weight_decay != 0) d += weight_decay * static_cast<double>(p[j]);
          if (buf != nullptr) {
            const double b =
                first ? d : momentum * static_cast<double>(buf[j]) + (1 - dampening) * d;
            buf[j] = static_cast<T>(b);
            d = nesterov ? d + momentum * b : b;
          }
          p[j] = static_cast<T>(static_cast<double>(p[j]) - lr * d);
        }
      }
    });
    detail::write_back(param, target);
  }
}

}  // namespace gg::optim
