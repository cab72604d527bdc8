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

AdamOptions resolve(AdamOptions options, const AdamGroupOptions& o) {
  if (o.lr) options.lr(*o.lr);
  if (o.betas) options.betas(*o.betas);
  if (o.eps) options.eps(*o.eps);
  if (o.weight_decay) options.weight_decay(*o.weight_decay);
  if (o.amsgrad) options.amsgrad(*o.amsgrad);
  return options;
}
}  // namespace

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options)
    : Adam("Adam", options, /*decoupled=*/false) {
  GG_CHECK(!params.empty(), "[Adam] got an empty parameter list");
  add_param_group({std::move(params)});
}

Adam::Adam(std::initializer_list<AdamParamGroup> groups, const AdamOptions& defaults)
    : Adam(std::vector<AdamParamGroup>(groups), defaults) {}

Adam::Adam(const std::vector<AdamParamGroup>& groups, const AdamOptions& defaults)
    : Adam("Adam", defaults, /*decoupled=*/false) {
  GG_CHECK(!groups.empty(), "[Adam] got an empty parameter list (no parameter groups)");
  for (const AdamParamGroup& g : groups) add_param_group(g);
}

Adam::Adam(std::string name, const AdamOptions& defaults, bool decoupled)
    : GroupedOptimizer(std::move(name)), options_(defaults), decoupled_(decoupled) {}

AdamW::AdamW(std::vector<Tensor> params, const AdamWOptions& options)
    : Adam("AdamW", as_adam_options(options), /*decoupled=*/true), w_options_(options) {
  GG_CHECK(!params.empty(), "[AdamW] got an empty parameter list");
  add_param_group({std::move(params)});
}

AdamW::AdamW(std::initializer_list<AdamWParamGroup> groups, const AdamWOptions& defaults)
    : AdamW(std::vector<AdamWParamGroup>(groups), defaults) {}

AdamW::AdamW(const std::vector<AdamWParamGroup>& groups, const AdamWOptions& defaults)
    : Adam("AdamW", as_adam_options(defaults), /*decoupled=*/true), w_options_(defaults) {
  GG_CHECK(!groups.empty(), "[AdamW] got an empty parameter list (no parameter groups)");
  for (const AdamWParamGroup& g : groups) add_param_group(g);
}

void Adam::add_param_group(const AdamParamGroup& group) {
  const AdamOptions options = resolve(options_, group.options);
  check_options(options, num_param_groups());
  add_typed_group(group.params, options);
}

void Adam::check_options(const AdamOptions& o, size_t group) const {
  check_nonnegative("learning rate", o.lr(), group);
  const auto [beta1, beta2] = o.betas();
  GG_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1,
           "[{}] betas must be in [0, 1), got ({}, {}){}", name(), beta1, beta2, in_group(group));
  check_nonnegative("eps", o.eps(), group);
  check_nonnegative("weight_decay", o.weight_decay(), group);
}

std::vector<std::string> Adam::state_keys() const {
  std::vector<std::string> keys{"step", "exp_avg", "exp_avg_sq"};
  for (const auto& g : param_groups())
    if (g.options().amsgrad()) {
      keys.push_back("max_exp_avg_sq");
      break;
    }
  return keys;
}

std::vector<std::string> Adam::param_state_keys(size_t i) const {
  std::vector<std::string> keys{"step", "exp_avg", "exp_avg_sq"};
  if (param_groups()[group_of_param(i)].options().amsgrad()) keys.push_back("max_exp_avg_sq");
  return keys;
}

void Adam::step() {
  NoGradGuard no_grad;
  for (size_t gi = 0; gi < num_param_groups(); ++gi) {
    const AdamOptions& o = param_groups()[gi].options();
    check_options(o, gi);  // the user may have changed them
    const auto [begin, end] = group_range(gi);
    for (size_t i = begin; i < end; ++i) update_param(i, o);
  }
}

void Adam::update_param(size_t i, const AdamOptions& o) {
  const Tensor& param = parameters()[i];
  if (!param.grad().defined()) return;
  const double lr = o.lr();
  // Plain variables, not a structured binding: the lambda below captures them (clang < 16
  // cannot capture structured bindings).
  const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
  const double eps = o.eps();
  const double weight_decay = o.weight_decay();
  const bool amsgrad = o.amsgrad();
  Tensor target = detail::update_target(param);
  Tensor grad = detail::contiguous_grad(param);
  ParamState& st = state(i);
  if (st.empty()) {
    st["step"] = scalar_tensor(0, kInt64);
    st["exp_avg"] = zeros(param.shape(), param.dtype());
    st["exp_avg_sq"] = zeros(param.shape(), param.dtype());
  }
  // Also when amsgrad was switched on in a group after its first steps.
  if (amsgrad && st.count("max_exp_avg_sq") == 0)
    st["max_exp_avg_sq"] = zeros(param.shape(), param.dtype());
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

}  // namespace gg::optim
