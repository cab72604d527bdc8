#include "autograd/saved_tensor.hpp"

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "autograd/saved_tensor_check.hpp"
#include "core/error.hpp"

namespace gg::autograd {

namespace {
thread_local const std::shared_ptr<Node>* t_running = nullptr;

std::shared_ptr<TensorImpl> detached_impl(const Tensor& t) { return t.detach().impl(); }
}  // namespace

RunningNodeScope::RunningNodeScope(const std::shared_ptr<Node>& node) : previous_(t_running) {
  t_running = &node;
}
RunningNodeScope::~RunningNodeScope() { t_running = previous_; }

SavedTensor::SavedTensor(const Tensor& t) {
  if (!t.defined()) return;
  data_ = detached_impl(t);
  version_ = data_->storage->version();
  const TensorImpl& impl = *t.impl();
  if (impl.grad_fn) {
    grad_fn_ = impl.grad_fn;
    output_nr_ = impl.output_nr;
  } else if (impl.requires_grad) {
    leaf_ = t.impl();
  }
}

SavedTensor SavedTensor::output(const Tensor& t, uint32_t output_nr) {
  SavedTensor s;
  if (!t.defined()) return s;
  s.data_ = detached_impl(t);
  s.version_ = s.data_->storage->version();
  s.is_output_ = true;
  s.output_nr_ = output_nr;
  return s;
}

void check_saved_version(const Storage& storage, uint64_t version, const Shape& shape, Dtype dtype,
                         bool is_output) {
  const uint64_t now = storage.version();
  if (now == version) return;
  const std::string node = t_running && *t_running ? (*t_running)->name() : "a backward node";
  fail(
      "[backward] one of the tensors needed for gradient computation has been modified by an "
      "in-place operation: the {} {} {} of {} is at version {}; expected version {} (the version "
      "it had when {} saved it). Use an out-of-place op, or clone() the tensor before modifying it",
      is_output ? "output" : "input", dtype_name(dtype), shape_str(shape), node, now, version,
      node);
}

void SavedTensor::check() const {
  if (!data_) return;
  check_saved_version(*data_->storage, version_, data_->shape, data_->dtype, is_output_);
}

Tensor SavedTensor::unpack() const {
  if (!data_) return Tensor();
  check();
  if (!GradMode::is_enabled()) return Tensor(data_);
  // create_graph: the saved tensor with its history, so that the gradient is differentiable.
  std::shared_ptr<Node> history;
  uint32_t output_nr = output_nr_;
  if (is_output_) {
    if (t_running) history = *t_running;
  } else if (auto node = grad_fn_.lock()) {
    history = std::move(node);
  } else if (auto leaf = leaf_.lock()) {
    // The leaf itself (its gradient is accumulated through its own TensorImpl), while it still
    // shows the data that was saved.
    if (leaf->storage == data_->storage && leaf->shape == data_->shape &&
        leaf->strides == data_->strides && leaf->offset == data_->offset)
      return Tensor(std::move(leaf));
  }
  if (!history) return Tensor(data_);
  Tensor t = Tensor(data_).detach();
  t.set_gradient_edge(std::move(history), output_nr);
  return t;
}

}  // namespace gg::autograd
