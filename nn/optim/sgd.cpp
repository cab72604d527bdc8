#include "nn/optim/sgd.hpp"

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"

namespace gg::optim {

namespace {
SGDOptions resolve(SGDOptions options, const SGDGroupOptions& o) {
  if (o.lr) options.lr(*o.lr);
  if (o.momentum) options.momentum(*o.momentum);
  if (o.dampening) options.dampening(*o.dampening);
  if (o.weight_decay) options.weight_decay(*o.weight_decay);
  if (o.nesterov) options.nesterov(*o.nesterov);
  return options;
}
}  // namespace

SGD::SGD(std::vector<Tensor> params, const SGDOptions& options)
    : GroupedOptimizer("SGD"), options_(options) {
  GG_CHECK(!params.empty(), "[SGD] got an empty parameter list");
  check_options(options, 0);
  add_typed_group(std::move(params), options);
}

SGD::SGD(std::initializer_list<SGDParamGroup> groups, const SGDOptions& defaults)
    : SGD(std::vector<SGDParamGroup>(groups), defaults) {}

SGD::SGD(const std::vector<SGDParamGroup>& groups, const SGDOptions& defaults)
    : GroupedOptimizer("SGD"), options_(defaults) {
  GG_CHECK(!groups.empty(), "[SGD] got an empty parameter list (no parameter groups)");
  for (const SGDParamGroup& g : groups) add_param_group(g);
}

void SGD::add_param_group(const SGDParamGroup& group) {
  const SGDOptions options = resolve(options_, group.options);
  check_options(options, num_param_groups());
  add_typed_group(group.params, options);
}

void SGD::check_options(const SGDOptions& o, size_t group) const {
  check_nonnegative("learning rate", o.lr(), group);
  check_nonnegative("momentum", o.momentum(), group);
  check_nonnegative("weight_decay", o.weight_decay(), group);
  GG_CHECK(!o.nesterov() || (o.momentum() > 0 && o.dampening() == 0),
           "[{}] nesterov momentum needs momentum > 0 and dampening = 0, got momentum={} "
           "dampening={}{}",
           name(), o.momentum(), o.dampening(), in_group(group));
}

std::vector<std::string> SGD::state_keys() const {
  for (const auto& g : param_groups())
    if (g.options().momentum() != 0) return {"momentum_buffer"};
  return {};
}

std::vector<std::string> SGD::param_state_keys(size_t i) const {
  if (param_groups()[group_of_param(i)].options().momentum() == 0) return {};
  return {"momentum_buffer"};
}

void SGD::step() {
  NoGradGuard no_grad;
  for (size_t gi = 0; gi < num_param_groups(); ++gi) {
    const SGDOptions& o = param_groups()[gi].options();
    check_options(o, gi);  // the user may have changed them
    const double lr = o.lr(), momentum = o.momentum(), dampening = o.dampening();
    const double weight_decay = o.weight_decay();
    const bool nesterov = o.nesterov();
    const auto [begin, end] = group_range(gi);
    for (size_t i = begin; i < end; ++i) {
      const Tensor& param = parameters()[i];
      if (!param.grad().defined()) continue;
      Tensor target = detail::update_target(param);
      Tensor grad = detail::contiguous_grad(param);
      ParamState& st = state(i);
      bool first = false;
      if (momentum != 0 && st.count("momentum_buffer") == 0) {
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
}

}  // namespace gg::optim
