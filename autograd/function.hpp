#pragma once
// The public autograd API beyond Tensor::backward (issue #14): backward from several roots at once,
// and user-defined differentiable functions, with libtorch's names and meanings so that code moves
// between the two:
//
//   struct Cube : gg::autograd::Function<Cube> {
//     static gg::Tensor forward(gg::autograd::AutogradContext* ctx, const gg::Tensor& x) {
//       ctx->save_for_backward({x});
//       return x * x * x;
//     }
//     static std::vector<gg::Tensor> backward(gg::autograd::AutogradContext* ctx,
//                                             const std::vector<gg::Tensor>& grad_outputs) {
//       gg::Tensor x = ctx->get_saved_variables()[0];
//       return {grad_outputs[0] * 3.0 * x * x};
//     }
//   };
//   gg::Tensor y = Cube::apply(x);
//
// Built on the engine's nodes (autograd/node.hpp stays internal): apply records one node, exactly
// as the library's own ops do.
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../core/tensor.hpp"
#include "grad_mode.hpp"
#include "saved_tensor.hpp"

namespace gg::autograd {

// Runs backward from every tensor of `tensors` at once, as torch::autograd::backward does: the
// gradients of all of them flow through the graph together (a node shared by two roots runs once).
// grad_tensors gives one gradient per root, each of the root's shape and dtype; empty (or an
// undefined entry) means ones, allowed only for one-element roots. Without retain_graph the graph's
// saved tensors are freed, and a second backward through it throws gg::Error.
void backward(const std::vector<Tensor>& tensors, const std::vector<Tensor>& grad_tensors = {},
              bool retain_graph = false);

// The gradients of `outputs` with respect to each of `inputs` (torch::autograd::grad), returned
// rather than accumulated: no leaf's grad() changes. grad_outputs as for backward's grad_tensors.
// retain_graph defaults to create_graph; create_graph records the backward's own ops, so that the
// results can be differentiated again (double backward, e.g. a gradient penalty). An input the
// outputs do not depend on throws gg::Error unless allow_unused, which gives an undefined tensor
// for it. Every input must require grad. Backwards computed by a dedicated kernel are
// differentiable only once (layer_norm, unweighted cross_entropy, gelu, max/min over a dim,
// index_select, narrow, select, grouped_mm, MoE combine, the pointwise losses but l1_loss): with
// create_graph, reaching one throws gg::Error naming its node (as PyTorch's @once_differentiable),
// never a gradient that silently lacks the second derivative's terms.
std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs = {},
                         std::optional<bool> retain_graph = std::nullopt, bool create_graph = false,
                         bool allow_unused = false);

// What a custom Function's forward leaves for its backward.
class AutogradContext {
 public:
  // Tensors backward needs (inputs or outputs of forward), each with the version of its storage:
  // get_saved_variables() throws gg::Error naming the function when one was modified in place
  // since it was saved, as PyTorch does. An input is given back with its history while backward
  // runs with create_graph (double backward); an output of forward without it.
  void save_for_backward(std::vector<Tensor> to_save);
  const std::vector<Tensor>& get_saved_variables() const;
  // During backward: whether the gradient of forward's i-th argument is needed at all (false for
  // non-tensor arguments and for inputs that do not require grad); backward may skip those.
  bool needs_input_grad(size_t index) const;

 private:
  friend struct FunctionDetail;
  std::vector<SavedTensor> saved_;
  mutable std::vector<Tensor> unpacked_;  // what get_saved_variables() returned last
  std::vector<bool> needs_input_grad_;
};

// The machinery behind Function<T>::apply, out of line (it is the engine's, not the user's).
struct FunctionDetail {
  using Backward = std::function<std::vector<Tensor>(AutogradContext*, const std::vector<Tensor>&)>;
  // Records one node named `name` for outputs of a forward called with `num_args` arguments, of
  // which those at `tensor_positions` are the tensors `inputs`. Returns the outputs, each a fresh
  // handle on forward's result (so an input returned unchanged never has its history replaced).
  static std::vector<Tensor> record(std::string name, std::shared_ptr<AutogradContext> ctx,
                                    std::vector<Tensor> inputs,
                                    std::vector<size_t> tensor_positions, size_t num_args,
                                    std::vector<Tensor> outputs, Backward backward);
};

// Derive a struct T from Function<T> and give it
//   static R forward(AutogradContext* ctx, Args... args);   R: Tensor or std::vector<Tensor>
//   static std::vector<Tensor> backward(AutogradContext* ctx, const std::vector<Tensor>& grads);
// then call T::apply(args...). forward runs without recording. backward receives one gradient per
// output of forward (zeros where no gradient flowed) and returns one per argument of forward, in
// order: undefined for non-tensor arguments and where needs_input_grad is false, else of the
// argument's shape (a broadcastable shape is summed back, as for the library's ops). Anything else
// throws gg::Error naming the function. Set `static constexpr const char* name = "..."` in T to
// name its node (grad_fn), else it is "CustomFunctionBackward".
template <class T>
struct Function {
  template <class... Args>
  static auto apply(Args&&... args) {
    std::vector<Tensor> inputs;
    std::vector<size_t> positions;
    size_t position = 0;
    (
        [&](const auto& arg) {
          if constexpr (std::is_same_v<std::decay_t<decltype(arg)>, Tensor>) {
            inputs.push_back(arg);
            positions.push_back(position);
          }
          ++position;
        }(args),
        ...);
    auto ctx = std::make_shared<AutogradContext>();
    using Result = decltype(T::forward(ctx.get(), std::forward<Args>(args)...));
    static_assert(std::is_same_v<Result, Tensor> || std::is_same_v<Result, std::vector<Tensor>>,
                  "Function<T>: T::forward must return a Tensor or a std::vector<Tensor>");
    std::vector<Tensor> outputs;
    {
      NoGradGuard no_grad;
      if constexpr (std::is_same_v<Result, Tensor>) {
        outputs.push_back(T::forward(ctx.get(), std::forward<Args>(args)...));
      } else {
        outputs = T::forward(ctx.get(), std::forward<Args>(args)...);
      }
    }
    outputs = FunctionDetail::record(
        node_name(), std::move(ctx), std::move(inputs), std::move(positions), sizeof...(Args),
        std::move(outputs),
        [](AutogradContext* c, const std::vector<Tensor>& grads) { return T::backward(c, grads); });
    if constexpr (std::is_same_v<Result, Tensor>) {
      return outputs[0];
    } else {
      return outputs;
    }
  }

 private:
  static std::string node_name() {
    if constexpr (requires { T::name; }) {
      return T::name;
    } else {
      return "CustomFunctionBackward";
    }
  }
};

}  // namespace gg::autograd
