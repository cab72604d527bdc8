// View ops: results share storage with their input (only shape, strides and offset change), and
// each records a node whose backward maps the gradient back to the input's layout. Declared on
// Tensor in core/tensor.hpp and defined here, above autograd (core only builds the views:
// as_strided_view).
#include <algorithm>
#include <numeric>
#include <optional>

#include "autograd/node.hpp"
#include "core/copy.hpp"

namespace gg {

namespace {
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// The dimension limit of new tensors holds for views too: reshape, unsqueeze and expand would
// otherwise build views that no strided loop (core/strided.hpp) can walk.
void check_view_dims(size_t dims, const Shape& input, const char* op) {
  GG_CHECK(dims <= kMaxTensorDims,
           "[{}] at most {} dimensions are supported, the view would have {} (input shape {})", op,
           kMaxTensorDims, dims, shape_str(input));
}

// Resolves one -1 and checks the element count: "[reshape] shape [2, -1] is invalid for ...".
Shape infer_shape(Shape shape, int64_t numel, const char* op, const Shape& from) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      GG_CHECK(infer < 0, "[{}] only one dimension can be -1, got {}", op, shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      GG_CHECK(shape[i] >= 0, "[{}] invalid size {} in shape {}", op, shape[i], shape_str(shape));
      GG_CHECK(!__builtin_mul_overflow(known, shape[i], &known),
               "[{}] shape {} is invalid for input of shape {} ({} elements)", op, shape_str(shape),
               shape_str(from), numel);
    }
  }
  if (infer >= 0) {
    GG_CHECK(known != 0 && numel % known == 0,
             "[{}] shape {} is invalid for input of shape {} ({} elements)", op, shape_str(shape),
             shape_str(from), numel);
    shape[infer] = numel / known;
  }
  GG_CHECK(numel_of(shape) == numel, "[{}] shape {} is invalid for input of shape {} ({} elements)",
           op, shape_str(shape), shape_str(from), numel);
  return shape;
}

// Strides for viewing (shape, strides) as new_shape without copying, if possible (PyTorch's
// computeStride): each run of merged input dims must be contiguous within itself.
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides,
                                  const Shape& new_shape) {
  Shape out(new_shape.size());
  // No elements, or a 0-d tensor (all new sizes are 1): any strides do.
  if (numel_of(shape) == 0 || shape.empty()) return contiguous_strides(new_shape);
  int64_t view_d = static_cast<int64_t>(new_shape.size()) - 1;
  int64_t chunk_base_stride = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

Tensor reshape_impl(const Tensor& self, Shape shape, bool must_view, const char* op) {
  const TensorImpl& t = self.checked(op);
  shape = infer_shape(std::move(shape), self.numel(), op, t.shape);
  auto strides = view_strides(t.shape, t.strides, shape);
  Tensor out;
  if (strides) {
    out = as_strided_view(self, shape, *strides, t.offset, op);
  } else {
    GG_CHECK(!must_view,
             "[view] a view of shape {} is not possible for a tensor of shape {} with strides {}; "
             "use reshape()",
             shape_str(shape), shape_str(t.shape), shape_str(t.strides));
    out = as_contiguous(self);  // a fresh copy: self is not viewable
    out = as_strided_view(out, shape, contiguous_strides(shape), out.storage_offset(), op);
  }
  Shape in_shape = t.shape;
  return record(must_view ? "ViewBackward" : "ReshapeBackward", {self}, out,
                [in_shape](const Grads& g, const Needs&) { return Grads{g[0].reshape(in_shape)}; });
}
}  // namespace

Tensor Tensor::reshape(Shape shape) const {
  return reshape_impl(*this, std::move(shape), false, "reshape");
}
Tensor Tensor::view(Shape shape) const {
  return reshape_impl(*this, std::move(shape), true, "view");
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  int64_t n = dim();
  if (n == 0) return reshape({1});
  start_dim = wrap_dim(start_dim, n, "flatten");
  end_dim = wrap_dim(end_dim, n, "flatten");
  GG_CHECK(start_dim <= end_dim, "[flatten] start_dim {} must not be after end_dim {}", start_dim,
           end_dim);
  Shape s(shape().begin(), shape().begin() + start_dim);
  s.push_back(
      size_product(std::span<const int64_t>(shape()).subspan(start_dim, end_dim - start_dim + 1),
                   "flatten", [&] { return "the merged size of " + shape_str(shape()); }));
  s.insert(s.end(), shape().begin() + end_dim + 1, shape().end());
  return reshape(s);
}

Tensor Tensor::permute(const Shape& dims) const {
  const TensorImpl& t = checked("permute");
  int64_t n = dim();
  GG_CHECK(static_cast<int64_t>(dims.size()) == n,
           "[permute] expected {} dimensions for a tensor of shape {}, got {}", n,
           shape_str(t.shape), shape_str(dims));
  Shape shape(n), strides(n), inverse(n);
  std::vector<bool> used(n, false);
  for (int64_t i = 0; i < n; ++i) {
    int64_t d = wrap_dim(dims[i], n, "permute");
    GG_CHECK(!used[d], "[permute] dimension {} repeats in {}", d, shape_str(dims));
    used[d] = true;
    shape[i] = t.shape[d];
    strides[i] = t.strides[d];
    inverse[d] = i;
  }
  return record("PermuteBackward", {*this},
                as_strided_view(*this, shape, strides, t.offset, "permute"),
                [inverse](const Grads& g, const Needs&) { return Grads{g[0].permute(inverse)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  int64_t n = dim();
  Shape dims(n);
  std::iota(dims.begin(), dims.end(), 0);
  if (n == 0) {
    wrap_dim(d0, n, "transpose");
    wrap_dim(d1, n, "transpose");
    return *this;
  }
  std::swap(dims[wrap_dim(d0, n, "transpose")], dims[wrap_dim(d1, n, "transpose")]);
  return permute(dims);
}

Tensor Tensor::t() const {
  GG_CHECK(dim() <= 2, "[t] expects a tensor with at most 2 dimensions, got shape {}",
           shape_str(shape()));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  const TensorImpl& t = checked("narrow");
  GG_CHECK(dim() > 0, "[narrow] cannot narrow a 0-d tensor");
  d = wrap_dim(d, dim(), "narrow");
  int64_t size = t.shape[d];
  if (start < 0 && start >= -size) start += size;
  GG_CHECK(start >= 0 && length >= 0 && start <= size && length <= size - start,
           "[narrow] start {} and length {} are out of range for dimension {} of size {} "
           "(shape {})",
           start, length, d, size, shape_str(t.shape));
  Shape shape = t.shape;
  shape[d] = length;
  Shape in_shape = t.shape;
  Tensor out = as_strided_view(*this, shape, t.strides, t.offset + start * t.strides[d], "narrow");
  // The backward copies into zeros with a kernel: once differentiable.
  return autograd::once_differentiable(
      record("NarrowBackward", {*this}, out, [=](const Grads& g, const Needs&) {
        Tensor grad = zeros(in_shape, g[0].dtype());
        gg::copy_(grad.narrow(d, start, length), g[0]);
        return Grads{grad};
      }));
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  const TensorImpl& t = checked("select");
  GG_CHECK(dim() > 0, "[select] cannot select from a 0-d tensor");
  d = wrap_dim(d, dim(), "select");
  int64_t size = t.shape[d];
  GG_CHECK(index >= -size && index < size,
           "[select] index {} is out of range for dimension {} of size {} (shape {})", index, d,
           size, shape_str(t.shape));
  if (index < 0) index += size;
  Shape shape = t.shape, strides = t.strides;
  shape.erase(shape.begin() + d);
  strides.erase(strides.begin() + d);
  Shape in_shape = t.shape;
  Tensor out = as_strided_view(*this, shape, strides, t.offset + index * t.strides[d], "select");
  // The backward copies into zeros with a kernel: once differentiable.
  return autograd::once_differentiable(
      record("SelectBackward", {*this}, out, [=](const Grads& g, const Needs&) {
        Tensor grad = zeros(in_shape, g[0].dtype());
        gg::copy_(grad.select(d, index), g[0]);
        return Grads{grad};
      }));
}

Tensor Tensor::squeeze() const {
  Shape s;
  for (int64_t v : shape())
    if (v != 1) s.push_back(v);
  return reshape(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  if (dim() == 0 || size(d) != 1) return reshape(shape());
  Shape s = shape();
  s.erase(s.begin() + d);
  return reshape(s);
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  check_view_dims(shape().size() + 1, shape(), "unsqueeze");  // before reshape names itself
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}

Tensor Tensor::expand(Shape shape) const {
  const TensorImpl& t = checked("expand");
  GG_CHECK(shape.size() >= t.shape.size(),
           "[expand] the target shape {} has fewer dimensions than the tensor's {}",
           shape_str(shape), shape_str(t.shape));
  size_t lead = shape.size() - t.shape.size();
  Shape strides(shape.size(), 0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      GG_CHECK(shape[i] >= 0, "[expand] new leading dimension {} cannot be {} (target {})", i,
               shape[i], shape_str(shape));
      continue;
    }
    int64_t have = t.shape[i - lead];
    if (shape[i] == -1) shape[i] = have;
    GG_CHECK(have == shape[i] || (have == 1 && shape[i] >= 0),
             "[expand] the size {} of dimension {} must match the target size {} or be 1 "
             "(tensor {}, target {})",
             have, i - lead, shape[i], shape_str(t.shape), shape_str(shape));
    strides[i] = have == shape[i] ? t.strides[i - lead] : 0;
  }
  numel_of(shape);  // a view whose element count overflows int64 would break every later op
  // Backward is the identity: the engine sums the gradient back to the input's shape.
  return record("ExpandBackward", {*this},
                as_strided_view(*this, shape, strides, t.offset, "expand"),
                [](const Grads& g, const Needs&) { return Grads{g[0]}; });
}

}  // namespace gg
