#include "nn/optim/adam.hpp"

#include <algorithm>
#include <cmath>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "nn/optim/adam_update.hpp"

namespace gg::optim {

namespace {
AdamOptions as_adam_options(const AdamWOptions& w) {
  return AdamOptions(w.lr())
      .betas(w.betas())
      .eps(w.eps())
      .weight_decay(w.weight_decay())
      .amsgrad(w.amsgrad());
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam(std::move(params), "Adam", options, /*decoupled=*/false) {}

Adam::Adam(std::vector<Tensor> params, std::string name, const AdamOptions& options, bool decoupled)
    : Optimizer(std::move(params), std::move(name), options.lr()),
      options_(options),
      decoupled_(decoupled) {
  const auto [beta1, beta2] = options.betas();
  GG_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
           "[{}] betas must be in [0, 1), got ({}, {})", this->name(), beta1, beta2);
  GG_CHECK(options.eps() >= 0, "[{}] eps must be >= 0, got {}", this->name(), options.eps());
  GG_CHECK(options.weight_decay() >= 0, "[{}] weight_decay must be >= 0, got {}", this->name(),
           options.weight_decay());
}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : Adam(std::move(params), "AdamW", as_adam_options(options), /*decoupled=*/true),
      w_options_(options) {}

std::vector<std::string> Adam::state_keys() const {
  std::vector<std::string> keys{"step", "exp_avg", "exp_avg_sq"};
  if (options_.amsgrad()) keys.push_back("max_exp_avg_sq");
  return keys;
}

void Adam::step() {
  NoGradGuard no_grad;
  const double lr = this->lr();
  // Plain variables, not a structured binding: the lambda below captures them (clang < 16
  // cannot capture structured bindings).
  const double beta1 = std::get<0>(options_.betas()), beta2 = std::get<1>(options_.betas());
  const double eps = options_.eps();
  const double weight_decay = options_.weight_decay();
  const bool amsgrad = options_.amsgrad();
  for (size_t i = 0; i < parameters().size(); ++i) {
    const Tensor& param = parameters()[i];
    if (!param.grad().defined()) continue;
    Tensor target = detail::update_target(param);
    Tensor grad = detail::contiguous_grad(param);
    ParamState& st = state(i);
    if (st.empty()) {
      st["step"] = scalar_tensor(0, kInt64);
      st["exp_avg"] = zeros(param.shape(), param.dtype());
      st["exp_avg_sq"] = zeros(param.shape(), param.dtype());
      if (amsgrad) st["max_exp_avg_sq"] = zeros(param.shape(), param.dtype());
    }
    int64_t& step = *st["step"].data_ptr<int64_t>();
    ++step;
    const double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
    const double bias_correction2_sqrt = std::sqrt(1 - std::pow(beta2, static_cast<double>(step)));
    const double step_size = lr / bias_correction1;
    const double decay = decoupled_ ? 1 - lr * weight_decay : 1.0;
    using detail::update_f32, detail::update, detail::with_flags;
    const detail::AdamUpdate u{beta1, beta2, eps, weight_decay, step_size, bias_correction2_sqrt,
                               decay};
    const detail::AdamFlags f{decoupled_, weight_decay != 0, amsgrad};
    const int64_t n = target.numel();
    dispatch(param.dtype(), [&]<class T>() {
      if constexpr (std::is_integral_v<T>) {
        fail("[{}] cannot update a {} parameter", name(), dtype_name(param.dtype()));
      } else {
        T* p = target.data_ptr<T>();
        const T* g = grad.data_ptr<T>();
        T* m = st["exp_avg"].data_ptr<T>();
        T* v = st["exp_avg_sq"].data_ptr<T>();
        T* v_max = amsgrad ? st["max_exp_avg_sq"].data_ptr<T>() : nullptr;
        if constexpr (std::is_same_v<T, float>) {
          update_f32(u, f, n, p, g, m, v, v_max);
        } else {
          with_flags(
              f, [&]<bool D, bool WD, bool A>() { update<T, D, WD, A>(u, n, p, g, m, v, v_max); });
        }
      }
    });
    detail::write_back(param, target);
  }
}

}  // namespace gg::optim
