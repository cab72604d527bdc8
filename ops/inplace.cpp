// The in-place methods of Tensor (core/tensor.hpp, "In-place") on apply_inplace, which applies
// PyTorch's autograd rules for in-place ops once for all of them.
#include "ops/inplace.hpp"

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/copy.hpp"
#include "core/strided.hpp"
#include "ops/elementwise.hpp"

namespace gg {

namespace {
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// A node for an in-place result that does not depend on the old values (fill_, copy_): the old
// history gets no gradient, `sources` get the result's.
Tensor record_overwrite(const char* name, const Tensor& old, const Tensor& source, Tensor out) {
  return autograd::record(name, {old, source}, std::move(out), [](const Grads& g, const Needs&) {
    return Grads{Tensor(), g[0]};
  });
}
}  // namespace

Tensor& apply_inplace(Tensor& self, const char* op, std::initializer_list<Tensor> operands,
                      const std::function<Tensor(const Tensor&)>& out_of_place) {
  const TensorImpl& t = self.checked(op);
  for (const Tensor& o : operands) o.checked(op);
  GG_CHECK(!(GradMode::is_enabled() && t.requires_grad && !t.grad_fn),
           "[{}] a leaf tensor that requires grad ({}) is being used in an in-place operation; "
           "do it under gg::NoGradGuard (as optimizers and initializers do), or use the "
           "out-of-place op",
           op, describe(self));
  const bool records = autograd::needs_grad({self}) || autograd::needs_grad(operands);
  // A view whose storage another tensor shares (its base, another view, a tensor saved for
  // backward): that tensor's history would not see this op. PyTorch rebases the base with
  // CopySlices; gg refuses.
  GG_CHECK(!(records && t.is_view && t.storage.use_count() > 1),
           "[{}] in-place operation on a view ({}) whose storage another tensor shares, with a "
           "result that requires grad: gg cannot keep that tensor's gradient correct (PyTorch's "
           "CopySlices is not implemented); clone() the view first, or use the out-of-place op",
           op, describe(self));
  Tensor result;
  if (records) {
    // The op reads self's history from a copy of its values: its node may save them, and the
    // write below must not change what it saved.
    Tensor old = self.detach().clone();
    if (t.grad_fn) old.set_gradient_edge(t.grad_fn, t.output_nr);
    result = out_of_place(old);
  } else {
    result = out_of_place(self);
  }
  GG_CHECK(result.shape() == t.shape,
           "[{}] the result has shape {} but the tensor written in place has shape {} (an "
           "in-place op cannot broadcast that tensor to a bigger shape)",
           op, shape_str(result.shape()), shape_str(t.shape));
  GG_CHECK(is_floating(t.dtype) || !is_floating(result.dtype()),
           "[{}] the result type {} cannot be written into the {} tensor {} in place", op,
           dtype_name(result.dtype()), dtype_name(t.dtype), shape_str(t.shape));
  if (result.dtype() != t.dtype) result = result.to(t.dtype);
  copy_(self, result);  // bumps the version
  if (records && result.grad_fn()) {
    const std::shared_ptr<autograd::Node> node = result.grad_fn();
    const uint32_t output_nr = result.impl()->output_nr;
    if (t.retains_grad && t.grad_fn) {  // the retained grad follows the tensor to its new node
      auto& retained = t.grad_fn->retained();
      std::erase_if(retained, [&](const auto& r) { return r.second.lock() == self.impl(); });
      node->retained().emplace_back(output_nr, self.impl());
    }
    self.set_gradient_edge(node, output_nr);
  }
  if (t.is_view) self.impl()->view_version = t.storage->version();  // its own history is current
  return self;
}

Tensor& Tensor::zero_() { return fill_(0.0); }

Tensor& Tensor::fill_(double value) {
  return apply_inplace(*this, "fill_", {}, [&](const Tensor& s) {
    return record_overwrite("FillBackward", s, Tensor(), full(s.shape(), value, s.dtype()));
  });
}

Tensor& Tensor::add_(const Tensor& other, double alpha) {
  return apply_inplace(*this, "add_", {other}, [&](const Tensor& s) {
    return alpha == 1 ? add(s, other) : add(s, other * alpha);
  });
}
Tensor& Tensor::add_(double other) {
  return apply_inplace(*this, "add_", {}, [&](const Tensor& s) { return s + other; });
}
Tensor& Tensor::sub_(const Tensor& other, double alpha) {
  return apply_inplace(*this, "sub_", {other}, [&](const Tensor& s) {
    return alpha == 1 ? sub(s, other) : sub(s, other * alpha);
  });
}
Tensor& Tensor::sub_(double other) {
  return apply_inplace(*this, "sub_", {}, [&](const Tensor& s) { return s - other; });
}
Tensor& Tensor::mul_(const Tensor& other) {
  return apply_inplace(*this, "mul_", {other}, [&](const Tensor& s) { return mul(s, other); });
}
Tensor& Tensor::mul_(double other) {
  return apply_inplace(*this, "mul_", {}, [&](const Tensor& s) { return s * other; });
}
Tensor& Tensor::div_(const Tensor& other) {
  return apply_inplace(*this, "div_", {other}, [&](const Tensor& s) { return div(s, other); });
}
Tensor& Tensor::div_(double other) {
  return apply_inplace(*this, "div_", {}, [&](const Tensor& s) { return s / other; });
}
Tensor& Tensor::clamp_(std::optional<double> min, std::optional<double> max) {
  GG_CHECK(min || max, "[clamp_] at least one of min and max must be given (input {})",
           describe(*this));
  return apply_inplace(*this, "clamp_", {},
                       [&](const Tensor& s) { return gg::clamp(s, min, max); });
}
Tensor& Tensor::clamp_min_(double min) { return clamp_(min, std::nullopt); }
Tensor& Tensor::clamp_max_(double max) { return clamp_(std::nullopt, max); }

Tensor& Tensor::copy_(const Tensor& src) {
  const TensorImpl& t = checked("copy_");
  src.checked("copy_");
  GG_CHECK(broadcast_shapes(src.shape(), t.shape, "copy_") == t.shape,
           "[copy_] the source {} cannot be broadcast to the destination's shape {}", describe(src),
           shape_str(t.shape));
  return apply_inplace(*this, "copy_", {src}, [&](const Tensor& s) {
    Tensor out = empty(s.shape(), s.dtype());
    gg::copy_(out, src);
    return record_overwrite("CopyBackwards", s, src, std::move(out));
  });
}

}  // namespace gg
