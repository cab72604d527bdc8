// The public autograd API (autograd/function.hpp) on the engine's nodes.
#include "function.hpp"

#include "../core/error.hpp"
#include "node.hpp"

namespace gg::autograd {

namespace {
// The roots' gradients, checked as `op` ("autograd::backward") names them.
std::vector<Tensor> root_grads(const std::vector<Tensor>& tensors,
                               const std::vector<Tensor>& grad_tensors, const char* op) {
  GG_CHECK(grad_tensors.empty() || grad_tensors.size() == tensors.size(),
           "[{}] got {} tensors but {} grad_tensors: give one gradient per tensor "
           "(or none, for one-element tensors)",
           op, tensors.size(), grad_tensors.size());
  std::vector<Tensor> grads;
  grads.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    GG_CHECK(t.defined(), "[{}] tensors[{}] is an undefined tensor", op, i);
    GG_CHECK(t.requires_grad(), "[{}] tensors[{}] ({}) does not require grad and has no grad_fn",
             op, i, describe(t));
    Tensor g = grad_tensors.empty() ? Tensor() : grad_tensors[i];
    if (!g.defined()) {
      GG_CHECK(t.numel() == 1,
               "[{}] grad can be implicitly created only for one-element tensors; "
               "tensors[{}] has shape {}: pass grad_tensors",
               op, i, shape_str(t.shape()));
      g = ones(t.shape(), t.dtype());
    }
    GG_CHECK(g.shape() == t.shape() && g.dtype() == t.dtype(),
             "[{}] grad_tensors[{}] must match tensors[{}]: expected {}, got {}", op, i, i,
             describe(t), describe(g));
    grads.push_back(std::move(g));
  }
  return grads;
}
}  // namespace

void backward(const std::vector<Tensor>& tensors, const std::vector<Tensor>& grad_tensors,
              bool retain_graph) {
  std::vector<Tensor> grads = root_grads(tensors, grad_tensors, "autograd::backward");
  if (tensors.empty()) return;
  run_backward(tensors, grads, retain_graph);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, std::optional<bool> retain_graph,
                         bool create_graph, bool allow_unused) {
  const char* op = "autograd::grad";
  GG_CHECK(!outputs.empty(), "[{}] outputs is empty: give at least one tensor", op);
  GG_CHECK(!inputs.empty(), "[{}] inputs is empty: give at least one tensor", op);
  for (size_t i = 0; i < inputs.size(); ++i) {
    GG_CHECK(inputs[i].defined(), "[{}] inputs[{}] is an undefined tensor", op, i);
    GG_CHECK(inputs[i].requires_grad(), "[{}] inputs[{}] ({}) does not require grad", op, i,
             describe(inputs[i]));
  }
  std::vector<Tensor> grads = root_grads(outputs, grad_outputs, op);
  std::vector<Tensor> result =
      run_backward(outputs, grads, retain_graph.value_or(create_graph), create_graph, &inputs);
  for (size_t i = 0; i < result.size(); ++i) {
    GG_CHECK(result[i].defined() || allow_unused,
             "[{}] inputs[{}] ({}) was not used in the graph of the outputs; pass "
             "allow_unused=true to get an undefined tensor for it",
             op, i, describe(inputs[i]));
  }
  return result;
}

void AutogradContext::save_for_backward(std::vector<Tensor> to_save) {
  saved_.clear();
  saved_.reserve(to_save.size());
  for (const Tensor& t : to_save) saved_.emplace_back(t);
}

const std::vector<Tensor>& AutogradContext::get_saved_variables() const {
  unpacked_.clear();
  unpacked_.reserve(saved_.size());
  for (const SavedTensor& s : saved_) unpacked_.push_back(s.unpack());
  return unpacked_;
}

bool AutogradContext::needs_input_grad(size_t index) const {
  return index < needs_input_grad_.size() && needs_input_grad_[index];
}

std::vector<Tensor> FunctionDetail::record(std::string name, std::shared_ptr<AutogradContext> ctx,
                                           std::vector<Tensor> inputs,
                                           std::vector<size_t> tensor_positions, size_t num_args,
                                           std::vector<Tensor> outputs, Backward backward) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    GG_CHECK(outputs[i].defined(), "[{}] forward returned an undefined tensor as output {}", name,
             i);
    // A fresh handle: recording sets the output's grad_fn, which must not land on an input (or
    // anything else the caller holds) that forward returned as it was.
    outputs[i] = outputs[i].detach();
  }
  if (!needs_grad(inputs)) return outputs;
  BackwardFn node_backward = [name, ctx = std::move(ctx), positions = std::move(tensor_positions),
                              num_args, backward = std::move(backward)](
                                 const std::vector<Tensor>& grad_outputs,
                                 const std::vector<bool>& needs_input_grad) {
    ctx->needs_input_grad_.assign(num_args, false);
    for (size_t i = 0; i < positions.size(); ++i)
      ctx->needs_input_grad_[positions[i]] = needs_input_grad[i];
    std::vector<Tensor> grads = backward(ctx.get(), grad_outputs);
    GG_CHECK(grads.size() == num_args,
             "[{}] backward returned {} gradient(s); it must return one per argument of forward "
             "({}), undefined for non-tensor arguments",
             name, grads.size(), num_args);
    std::vector<Tensor> input_grads(positions.size());
    size_t next = 0;
    for (size_t a = 0; a < num_args; ++a) {
      if (next < positions.size() && positions[next] == a) {
        // Shapes and dtypes are the engine's to check (it sums broadcast gradients back and
        // names this node when one does not fit), as for the library's own ops.
        input_grads[next++] = grads[a];
      } else {
        GG_CHECK(!grads[a].defined(),
                 "[{}] backward returned a defined gradient for argument {}, which is not a tensor",
                 name, a);
      }
    }
    return input_grads;
  };
  autograd::record(std::move(name), inputs, outputs, std::move(node_backward));
  return outputs;
}

}  // namespace gg::autograd
