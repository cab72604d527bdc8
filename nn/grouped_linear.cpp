#include "nn/grouped_linear.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/copy.hpp"
#include "nn/init.hpp"
#include "ops/grouped_mm.hpp"
#include "ops/shape_ops.hpp"

namespace gg::nn {

// ==== ParameterList ==============================================================================

Tensor& ParameterList::append(Tensor t) {
  Tensor& registered = register_parameter(std::to_string(tensors_.size()), std::move(t));
  tensors_.push_back(registered);
  return registered;
}

void ParameterList::pretty_print(std::ostream& stream) const {
  std::string runs;
  for (size_t i = 0; i < tensors_.size();) {
    const std::string kind = describe(tensors_[i]);
    size_t j = i + 1;
    while (j < tensors_.size() && describe(tensors_[j]) == kind) ++j;
    runs += fmt::format("{}{}{}", runs.empty() ? "" : ", ",
                        j - i > 1 ? fmt::format("{} x ", j - i) : std::string(), kind);
    i = j;
  }
  stream << "gg::nn::ParameterList(" << runs << ")";
}

std::shared_ptr<Module> ParameterList::clone() const {
  auto copy = std::make_shared<ParameterList>();
  for (const Tensor& t : tensors_) copy->append(empty(t.shape(), t.dtype()));
  clone_state_into(*copy);
  return copy;
}

// ==== stack_groups ===============================================================================

namespace {

// Whether ts are non-empty, contiguous, of one shape and dtype, and back to back in one storage in
// order: then [G, *shape] is a view of them.
bool back_to_back(const std::vector<Tensor>& ts) {
  const Tensor& first = ts[0];
  const int64_t n = first.numel();
  if (n == 0) return false;
  for (size_t i = 0; i < ts.size(); ++i) {
    const Tensor& t = ts[i];
    if (!t.defined() || t.impl()->storage != first.impl()->storage || t.dtype() != first.dtype() ||
        t.shape() != first.shape() || !t.is_contiguous() ||
        t.storage_offset() != first.storage_offset() + static_cast<int64_t>(i) * n)
      return false;
  }
  return true;
}

}  // namespace

namespace functional {

Tensor stack_groups(const std::vector<Tensor>& tensors) {
  GG_CHECK(!tensors.empty(), "[stack_groups] needs at least one tensor");
  for (size_t i = 0; i < tensors.size(); ++i) {
    GG_CHECK(tensors[i].defined(), "[stack_groups] tensor {} is undefined", i);
  }
  if (!back_to_back(tensors)) return stack(tensors, 0);

  const Tensor& first = tensors[0];
  Shape shape = first.shape();
  shape.insert(shape.begin(), static_cast<int64_t>(tensors.size()));
  Shape strides = contiguous_strides(shape);
  Tensor out = as_strided_view(first, std::move(shape), std::move(strides), first.storage_offset(),
                               "stack_groups");
  if (!autograd::needs_grad(tensors)) return out;
  std::vector<Tensor> outputs{out};
  autograd::record("StackGroupsBackward", tensors, outputs,
                   [](const std::vector<Tensor>& g, const std::vector<bool>& needs) {
                     std::vector<Tensor> grads(needs.size());
                     for (size_t i = 0; i < needs.size(); ++i) {
                       if (needs[i]) grads[i] = g[0].select(0, static_cast<int64_t>(i));
                     }
                     return grads;
                   });
  return outputs[0];
}

std::vector<Tensor> grouped_linear(const std::vector<Tensor>& inputs,
                                   const std::vector<Tensor>& weights,
                                   const std::vector<Tensor>& biases) {
  std::vector<Tensor> mats;
  mats.reserve(weights.size());
  for (size_t i = 0; i < weights.size(); ++i) {
    GG_CHECK(weights[i].defined() && weights[i].dim() == 2,
             "[grouped_linear] group {}: weight must be 2-D [out, in], got {}", i,
             describe(weights[i], false));
    mats.push_back(weights[i].t());  // [in, out] view: grouped_mm reads it transposed, no copy
  }
  return grouped_mm(inputs, mats, GroupedMMOptions{.bias = biases});
}

Tensor grouped_linear(const Tensor& packed_input, const Tensor& offs, const Tensor& weight,
                      const Tensor& bias) {
  GG_CHECK(weight.defined() && weight.dim() == 3,
           "[grouped_linear] packed form: weight must be 3-D [G, out, in], got {}",
           describe(weight, false));
  // [G, out, in] -> [G, in, out]: the transposed view grouped_mm's 2D x 3D layout reads.
  return grouped_mm(packed_input, weight.transpose(1, 2), {.offs = offs, .bias = bias});
}

}  // namespace functional

// ==== GroupedLinear ==============================================================================

namespace {

// Fresh tensors of the given shapes, back to back in one allocation (contiguous views of it).
std::vector<Tensor> allocate_back_to_back(const std::vector<Shape>& shapes) {
  int64_t total = 0;
  for (const Shape& s : shapes) total += numel_of(s);
  const Tensor block = empty({total});
  std::vector<Tensor> out;
  int64_t offset = 0;
  for (const Shape& s : shapes) {
    const int64_t n = numel_of(s);
    out.push_back(block.narrow(0, offset, n).view(s));
    offset += n;
  }
  return out;
}

std::string features_str(const std::vector<int64_t>& f) {
  return fmt::format("[{}]", fmt::join(f, ", "));
}

}  // namespace

GroupedLinear::GroupedLinear(std::vector<int64_t> in_features, std::vector<int64_t> out_features,
                             bool bias)
    : in_features_(std::move(in_features)), out_features_(std::move(out_features)) {
  GG_CHECK(in_features_.size() == out_features_.size(),
           "[GroupedLinear] in_features has {} entries but out_features has {}: give one of each "
           "per group (in_features {}, out_features {})",
           in_features_.size(), out_features_.size(), features_str(in_features_),
           features_str(out_features_));
  GG_CHECK(!in_features_.empty(),
           "[GroupedLinear] needs at least one group (in_features and out_features are empty)");
  std::vector<Shape> weight_shapes, bias_shapes;
  for (size_t i = 0; i < in_features_.size(); ++i) {
    GG_CHECK(in_features_[i] >= 0 && out_features_[i] >= 0,
             "[GroupedLinear] group {}: in_features and out_features must be >= 0, got {} and {}",
             i, in_features_[i], out_features_[i]);
    weight_shapes.push_back({out_features_[i], in_features_[i]});
    bias_shapes.push_back({out_features_[i]});
  }
  uniform_ = std::all_of(in_features_.begin(), in_features_.end(),
                         [&](int64_t f) { return f == in_features_[0]; }) &&
             std::all_of(out_features_.begin(), out_features_.end(),
                         [&](int64_t f) { return f == out_features_[0]; });

  weight = register_module("weight", std::make_shared<ParameterList>());
  for (Tensor& w : allocate_back_to_back(weight_shapes)) weight->append(std::move(w));
  if (bias) {
    this->bias = register_module("bias", std::make_shared<ParameterList>());
    for (Tensor& b : allocate_back_to_back(bias_shapes)) this->bias->append(std::move(b));
  }
  reset_parameters();
}

void GroupedLinear::reset_parameters() {
  for (size_t i = 0; i < in_features_.size(); ++i) {
    const double in = static_cast<double>(in_features_[i]);
    const double bound = in > 0 ? 1.0 / std::sqrt(in) : 0.0;
    // kaiming_uniform_(a = sqrt(5)) as nn.Linear, which is U(-bound, bound); it needs fan_in > 0.
    init::uniform_((*weight)[i], -bound, bound);
    if (bias) init::uniform_((*bias)[i], -bound, bound);
  }
}

std::vector<Tensor> GroupedLinear::forward(const std::vector<Tensor>& inputs) {
  const size_t G = in_features_.size();
  GG_CHECK(inputs.size() == G, "[GroupedLinear] got {} inputs for {} groups (in_features {})",
           inputs.size(), G, features_str(in_features_));
  for (size_t i = 0; i < G; ++i) {
    const Tensor& x = inputs[i];
    const Tensor& w = (*weight)[i];
    GG_CHECK(x.defined(), "[GroupedLinear] group {}: input is an undefined tensor", i);
    GG_CHECK(x.dim() >= 1 && x.size(-1) == in_features_[i],
             "[GroupedLinear] group {}: input must be [*, {}] (in_features[{}]), got {} (weight.{} "
             "{})",
             i, in_features_[i], i, shape_str(x.shape()), i, shape_str(w.shape()));
    GG_CHECK(x.dtype() == w.dtype(),
             "[GroupedLinear] group {}: input is {} but weight.{} is {}; convert one of them "
             "(module.to(dtype) or input.to(dtype)) (input {})",
             i, dtype_name(x.dtype()), i, dtype_name(w.dtype()), shape_str(x.shape()));
  }
  if (uniform_) pack_parameters();  // (a concurrent packed forward may be packing them)
  return functional::grouped_linear(inputs, weight->tensors(),
                                    bias ? bias->tensors() : std::vector<Tensor>{});
}

Tensor GroupedLinear::forward_batched(const Tensor& x) {
  check_uniform("the batched form forward(x [G, N, in])");
  const int64_t G = num_groups(), in = in_features_[0];
  const Tensor& w = (*weight)[0];
  GG_CHECK(x.defined(), "[GroupedLinear] input is an undefined tensor");
  GG_CHECK(x.dim() == 3 && x.size(0) == G && x.size(2) == in,
           "[GroupedLinear] the batched input must be 3-D [G={}, N, in_features={}], got {} ({} "
           "groups of weight {})",
           G, in, describe(x), G, shape_str(w.shape()));
  GG_CHECK(x.dtype() == w.dtype(),
           "[GroupedLinear] input is {} but the weights are {}; convert one of them "
           "(module.to(dtype) or input.to(dtype)) (input {})",
           dtype_name(x.dtype()), dtype_name(w.dtype()), describe(x));
  // [G, out, in] -> [G, in, out]: the transposed view the 3D x 3D layout reads.
  return grouped_mm(x, stacked_weight().transpose(1, 2), {.bias = stacked_bias()});
}

void GroupedLinear::pretty_print(std::ostream& stream) const {
  stream << fmt::format("gg::nn::GroupedLinear(in_features={}, out_features={}, bias={})",
                        features_str(in_features_), features_str(out_features_), has_bias());
}

std::shared_ptr<Module> GroupedLinear::clone() const {
  auto copy = std::make_shared<GroupedLinear>(in_features_, out_features_, has_bias());
  clone_state_into(*copy);
  return copy;
}

void GroupedLinear::check_uniform(const char* what) const {
  GG_CHECK(uniform_,
           "[GroupedLinear] {} needs equal in_features and equal out_features across groups, got "
           "in_features {} and out_features {}; use the list form forward(std::vector<Tensor>)",
           what, features_str(in_features_), features_str(out_features_));
}

void GroupedLinear::pack_parameters() {
  const std::lock_guard<std::mutex> lock(pack_mutex_);
  auto pack = [](const ParameterList& list) {
    if (list[0].numel() == 0 || back_to_back(list.tensors())) return;
    NoGradGuard no_grad;
    const Tensor block = stack(list.tensors(), 0);  // contiguous [G, ...]
    for (size_t i = 0; i < list.size(); ++i) {
      // Swap the data under the existing handle (as Module::to does): optimizers and other
      // holders of the parameter see the packed storage.
      list[i].set_data(block.select(0, static_cast<int64_t>(i)));
    }
  };
  pack(*weight);
  if (bias) pack(*bias);
}

Tensor GroupedLinear::stacked_weight() {
  check_uniform("stacked_weight()");
  pack_parameters();
  return functional::stack_groups(weight->tensors());
}

Tensor GroupedLinear::stacked_bias() {
  check_uniform("stacked_bias()");
  pack_parameters();
  return bias ? functional::stack_groups(bias->tensors()) : Tensor();
}

Tensor GroupedLinear::forward(const Tensor& packed_input, const Tensor& offs) {
  check_uniform("the packed form forward(packed_input, offs)");
  const int64_t G = num_groups(), in = in_features_[0];
  GG_CHECK(packed_input.defined(), "[GroupedLinear] packed input is an undefined tensor");
  GG_CHECK(packed_input.dim() == 2 && packed_input.size(1) == in,
           "[GroupedLinear] packed input must be 2-D [M_total, {}] (in_features), got {}", in,
           shape_str(packed_input.shape()));
  GG_CHECK(offs.defined() && offs.dim() == 1 && offs.size(0) == G &&
               (offs.dtype() == kInt32 || offs.dtype() == kInt64),
           "[GroupedLinear] offs must be a 1-D Int32 or Int64 tensor with one cumulative end "
           "offset per group ({}), got {}",
           G,
           offs.defined() ? fmt::format("{} {}", dtype_name(offs.dtype()), shape_str(offs.shape()))
                          : std::string("an undefined tensor"));
  GG_CHECK(packed_input.dtype() == (*weight)[0].dtype(),
           "[GroupedLinear] packed input is {} but the weights are {}; convert one of them "
           "(module.to(dtype) or input.to(dtype)) (input {})",
           dtype_name(packed_input.dtype()), dtype_name((*weight)[0].dtype()),
           shape_str(packed_input.shape()));
  return functional::grouped_linear(packed_input, offs, stacked_weight(), stacked_bias());
}

}  // namespace gg::nn
