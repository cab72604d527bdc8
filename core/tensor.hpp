#pragma once
// gg::Tensor: a handle (shared_ptr) to a strided view of reference-counted Storage, plus the
// autograd metadata of that view. Copying a Tensor copies the handle, like torch::Tensor.
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "checked.hpp"
#include "dtype.hpp"
#include "error.hpp"
#include "storage.hpp"

namespace gg {

namespace autograd {
class Node;
struct TensorHooks;  // a leaf's hooks (autograd/node.hpp)
// The node's name, e.g. "MulBackward", which printing shows as grad_fn=<MulBackward>. Declared
// here so that core needs no autograd header; defined in autograd/engine.cpp, as Node::name().
const std::string& node_name(const Node& node);
}  // namespace autograd

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;       // in elements
  int64_t offset = 0;  // in elements
  Dtype dtype = kFloat32;

  // Autograd: a leaf has requires_grad set and no grad_fn; an op's result has grad_fn (the node
  // that made it) and output_nr (which of that node's outputs it is).
  bool requires_grad = false;
  std::shared_ptr<autograd::Node> grad_fn;
  uint32_t output_nr = 0;
  std::shared_ptr<TensorImpl> grad;
  // Hooks on a leaf (tensor hooks and post-accumulate-grad hooks); a non-leaf's live on its
  // grad_fn.
  std::shared_ptr<autograd::TensorHooks> hooks;
  bool retains_grad = false;  // a non-leaf whose grad backward keeps (retain_grad())
  // Made by as_strided_view (a view of a storage other tensors may share), and the storage's
  // version when it was made or got its grad_fn: autograd refuses to use a view that requires
  // grad once that storage was modified in place through another tensor, as its history would
  // give a wrong gradient (PyTorch regenerates the view's grad_fn instead).
  bool is_view = false;
  uint64_t view_version = 0;
};

class Tensor {
 public:
  Tensor() = default;  // undefined ("null") tensor
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // The accessors are inline (below): per-group code of grouped_mm calls them many times per
  // group, and out of line they cost more than a 16x32x32 product.
  bool defined() const { return impl_ != nullptr; }
  Dtype dtype() const;
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t storage_offset() const;
  int64_t dim() const;
  int64_t size(int64_t d) const;    // negative d counts from the end
  int64_t stride(int64_t d) const;  // negative d counts from the end
  int64_t numel() const;
  size_t element_size() const { return gg::element_size(dtype()); }
  bool is_contiguous() const;
  bool is_floating_point() const { return is_floating(dtype()); }

  // Autograd.
  bool requires_grad() const;
  Tensor& requires_grad_(bool on = true);   // only floating dtypes may require grad
  Tensor grad() const;                      // undefined until a backward reaches this leaf
  void set_grad(const Tensor& grad) const;  // replaces (or with an undefined tensor, clears) grad
  bool is_leaf() const;
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  // For the autograd engine (libtorch's set_gradient_edge): this tensor is output `output_nr` of
  // `node`. Ops get there through autograd::record; nothing else should call it.
  void set_gradient_edge(std::shared_ptr<autograd::Node> node, uint32_t output_nr) const;
  void backward() const;  // this must be a one-element tensor
  void backward(const Tensor& grad_output, bool retain_graph = false) const;
  Tensor detach() const;  // same storage, no history
  // libtorch's set_data (Python's `t.data = new_data`): this handle, and every copy of it, now
  // shows new_data's storage, shape, strides, offset and dtype, while keeping its identity, grad,
  // requires_grad and grad_fn. Throws if new_data is undefined, or is not floating while this
  // tensor requires grad (only floating tensors can).
  void set_data(const Tensor& new_data) const;

  // Conversions and copies.
  Tensor to(Dtype dtype) const;  // float -> int rounds to nearest and saturates
  Tensor contiguous() const;     // this, if already contiguous; else a contiguous copy
  Tensor clone() const;          // always a new storage
  template <class T>
  std::vector<T> to_vector() const;  // row-major copy; T must match dtype
  // The one element of a one-element tensor, converted to any arithmetic T (or BFloat16, Half) as
  // libtorch's item<T>() does: floats to integers truncate toward zero, and a value T cannot hold
  // (out of range, or NaN to an integer) throws gg::Error.
  template <class T>
  T item() const;

  // In-place (PyTorch's autograd rules). Each writes this tensor's storage, bumps the version
  // counter that all tensors on that storage share, and returns *this. With grad mode on:
  //  - a leaf that requires grad is refused (gg::Error); do it under NoGradGuard (optimizers,
  //  init);
  //  - on a tensor that requires grad (or with an operand that does) the history is rebased: the
  //    tensor's grad_fn becomes the in-place op's node, so gradients through it stay correct;
  //  - a tensor saved for backward and modified afterwards makes that backward throw gg::Error;
  //  - on a VIEW (narrow, select, reshape, ...) when the result would require grad, gg refuses
  //    with gg::Error (PyTorch rebases the view's base with CopySlices; gg does not), and a
  //    differentiable view whose base was modified in place afterwards is refused when used.
  // The result is computed in the promoted dtype and cast to this tensor's dtype; a floating
  // result cannot be written into an integer tensor, and the result's shape must be this one's.
  Tensor& zero_();
  Tensor& fill_(double value);
  Tensor& add_(const Tensor& other, double alpha = 1);  // this += alpha * other
  Tensor& add_(double other);
  Tensor& sub_(const Tensor& other, double alpha = 1);  // this -= alpha * other
  Tensor& sub_(double other);
  Tensor& mul_(const Tensor& other);
  Tensor& mul_(double other);
  Tensor& div_(const Tensor& other);
  Tensor& div_(double other);
  Tensor& copy_(const Tensor& src);  // src broadcast to this shape and cast; gradient flows to src
  // Clamps into [min, max] in place (gg::clamp's values, bounds and gradient); one bound may be
  // nullopt. An integer tensor with a non-integer bound is refused (the result would be floating).
  Tensor& clamp_(std::optional<double> min, std::optional<double> max = std::nullopt);
  Tensor& clamp_min_(double min);  // clamp_(min, nullopt)
  Tensor& clamp_max_(double max);  // clamp_(nullopt, max)

  // Autograd hooks and retained gradients (PyTorch's semantics).
  // retain_grad(): a non-leaf keeps its gradient in grad() after backward (no-op on a leaf);
  // throws if the tensor does not require grad.
  void retain_grad() const;
  bool retains_grad() const;  // whether retain_grad() was called on this non-leaf
  // Calls hook(grad) with the gradient flowing into this tensor, each time one does, before it
  // goes further (a leaf: before it is accumulated into grad()). Returning a defined tensor (of
  // the gradient's shape) replaces the gradient; an undefined one, or a void hook, keeps it.
  // Hooks run in registration order; a retained grad (retain_grad) sees their result. Returns a
  // handle for remove_hook. Throws if the tensor does not require grad.
  template <class F>
  unsigned register_hook(F&& hook) const {
    if constexpr (std::is_void_v<std::invoke_result_t<F&, const Tensor&>>) {
      return add_hook([f = std::forward<F>(hook)](const Tensor& g) mutable {
        f(g);
        return Tensor();
      });
    } else {
      return add_hook(std::function<Tensor(const Tensor&)>(std::forward<F>(hook)));
    }
  }
  // Calls hook(leaf) after backward has accumulated a gradient into this leaf's grad() (PyTorch's
  // register_post_accumulate_grad_hook). Throws on a non-leaf or a tensor not requiring grad.
  unsigned register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const;
  // Removes the hook with this handle from this tensor; throws if it has none such.
  void remove_hook(unsigned handle) const;

  // Raw access for kernels: the address of element 0 of this view. T must match dtype.
  template <class T>
  T* data_ptr() const;
  void* raw_data() const;

  // Views (no copies; results share storage with this).
  Tensor reshape(Shape shape) const;  // a view when strides allow, else a copy; one dim may be -1
  Tensor view(Shape shape) const;     // like reshape, but throws if a view is impossible
  Tensor flatten(int64_t start_dim = 0, int64_t end_dim = -1) const;
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor t() const;  // transpose of a 2-D tensor
  Tensor permute(const Shape& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;
  Tensor squeeze() const;
  Tensor squeeze(int64_t dim) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor expand(Shape shape) const;  // -1 keeps a size; new leading dims allowed

  // Math (defined with the op families in ops/).
  Tensor matmul(const Tensor& other) const;
  Tensor sum() const;
  Tensor mean() const;
  Tensor sum(int64_t dim, bool keepdim = false) const;
  Tensor mean(int64_t dim, bool keepdim = false) const;
  Tensor max(int64_t dim, bool keepdim = false) const;  // values only; see gg::max_with_indices
  // Whole-tensor and multi-dim reductions, topk and indexing (ops/reduce.hpp, ops/shape_ops.hpp).
  Tensor max() const;                                   // 0-d max of all elements
  Tensor min() const;                                   // 0-d min of all elements
  Tensor min(int64_t dim, bool keepdim = false) const;  // values only; see gg::min_with_indices
  Tensor argmax() const;                                // flattened index of the max, Int64
  Tensor argmax(int64_t dim, bool keepdim = false) const;
  Tensor argmin() const;  // flattened index of the min, Int64
  Tensor argmin(int64_t dim, bool keepdim = false) const;
  Tensor sum(const Shape& dims, bool keepdim = false) const;  // over several dims ({}: all)
  Tensor sum(std::initializer_list<int64_t> dims, bool keepdim = false) const;
  Tensor mean(const Shape& dims, bool keepdim = false) const;
  Tensor mean(std::initializer_list<int64_t> dims, bool keepdim = false) const;
  // (values, Int64 indices) of the k largest/smallest along dim; see gg::topk
  std::pair<Tensor, Tensor> topk(int64_t k, int64_t dim = -1, bool largest = true,
                                 bool sorted = true) const;
  Tensor gather(int64_t dim, const Tensor& index) const;                          // see gg::gather
  Tensor scatter_add(int64_t dim, const Tensor& index, const Tensor& src) const;  // out-of-place
  std::vector<Tensor> unbind(int64_t dim = 0) const;  // the slices along dim, as views
  Tensor flip(const Shape& dims) const;               // a copy reversed along dims
  Tensor tril(int64_t diagonal = 0) const;            // zeros above the diagonal (last two dims)
  Tensor triu(int64_t diagonal = 0) const;            // zeros below the diagonal (last two dims)
  Tensor exp() const;
  Tensor log() const;
  Tensor sqrt() const;
  Tensor tanh() const;
  Tensor sigmoid() const;
  Tensor relu() const;
  Tensor pow(double exponent) const;
  Tensor neg() const;
  Tensor operator-() const;
  // Elementwise and softmax methods, as the free functions of the same names (ops/elementwise.hpp,
  // ops/nn_ops.hpp); defined in ops/tensor_methods.cpp.
  Tensor abs() const;
  Tensor sin() const;
  Tensor cos() const;
  Tensor clamp(std::optional<double> min, std::optional<double> max = std::nullopt) const;
  Tensor clamp(const Tensor& min, const Tensor& max) const;  // undefined Tensor = no bound
  Tensor clamp_min(double min) const;
  Tensor clamp_max(double max) const;
  Tensor softmax(int64_t dim) const;
  Tensor log_softmax(int64_t dim) const;
  Tensor remainder(const Tensor& other) const;  // sign of the divisor (Python's %)
  Tensor remainder(double other) const;
  Tensor fmod(const Tensor& other) const;  // sign of the dividend (C's fmod)
  Tensor fmod(double other) const;
  Tensor masked_fill(const Tensor& mask, double value) const;         // mask nonzero = fill
  Tensor masked_fill(const Tensor& mask, const Tensor& value) const;  // value: 0-d
  Tensor isclose(const Tensor& other, double rtol = 1e-5, double atol = 1e-8,
                 bool equal_nan = false) const;  // a Float32 mask
  bool allclose(const Tensor& other, double rtol = 1e-5, double atol = 1e-8,
                bool equal_nan = false) const;
  bool equal(const Tensor& other) const;  // same shape and values (torch.equal)

  std::string to_string() const;  // PyTorch style: tensor([[1.0000, 2.0000]], dtype=float32)

  const std::shared_ptr<TensorImpl>& impl() const { return impl_; }
  // Throws "[op] ... is an undefined tensor" for an undefined tensor.
  const TensorImpl& checked(const char* op) const;

 private:
  // The throwing halves of checked(), size() and stride(), out of line.
  [[noreturn]] static void throw_undefined(const char* op);
  unsigned add_hook(std::function<Tensor(const Tensor&)> hook) const;  // register_hook's body
  // item<T>'s halves: the element as double, and as int64 (or gg::Error when it is not finite or
  // out of int64's range, naming `target`).
  double item_double() const;
  int64_t item_int64(const char* target) const;
  [[noreturn]] void throw_item_range(const char* target) const;
  [[noreturn]] void throw_bad_dim(int64_t d, const char* op) const;
  // Element d of shape or strides (negative d counts from the end), or the [op] error.
  int64_t dim_entry(const Shape& v, int64_t d, const char* op) const {
    const auto n = static_cast<int64_t>(v.size());
    const int64_t i = d < 0 ? d + n : d;
    if (i < 0 || i >= n) [[unlikely]]
      throw_bad_dim(d, op);
    return v[static_cast<size_t>(i)];
  }

  std::shared_ptr<TensorImpl> impl_;
};

inline const TensorImpl& Tensor::checked(const char* op) const {
  if (impl_ == nullptr) [[unlikely]]
    throw_undefined(op);
  return *impl_;
}
inline Dtype Tensor::dtype() const { return checked("dtype").dtype; }
inline const Shape& Tensor::shape() const { return checked("shape").shape; }
inline const Shape& Tensor::strides() const { return checked("strides").strides; }
inline int64_t Tensor::storage_offset() const { return checked("storage_offset").offset; }
inline int64_t Tensor::dim() const { return static_cast<int64_t>(checked("dim").shape.size()); }
inline int64_t Tensor::size(int64_t d) const { return dim_entry(checked("size").shape, d, "size"); }
inline int64_t Tensor::stride(int64_t d) const {
  return dim_entry(checked("stride").strides, d, "stride");
}
// A plain product: every way of making a tensor checked with numel_of that it cannot overflow.
inline int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : checked("numel").shape) n *= s;
  return n;
}

template <class T>
T Tensor::item() const {
  if constexpr (std::is_same_v<T, bool>) {
    return item_double() != 0;
  } else if constexpr (std::is_same_v<T, BFloat16> || std::is_same_v<T, Half>) {
    return T(static_cast<float>(item_double()));
  } else if constexpr (std::is_floating_point_v<T>) {
    const double v = item_double();
    // As libtorch: a finite value beyond T's range is an error, not an infinity.
    if (v == v && v - v == 0 &&
        (v > std::numeric_limits<T>::max() || -v > std::numeric_limits<T>::max()))
      throw_item_range(sizeof(T) == sizeof(float) ? "float" : "double");
    return static_cast<T>(v);
  } else {
    static_assert(std::is_integral_v<T>, "item<T>: T must be arithmetic, BFloat16 or Half");
    constexpr const char* name = std::is_signed_v<T> ? (sizeof(T) == 1   ? "int8"
                                                        : sizeof(T) == 2 ? "int16"
                                                        : sizeof(T) == 4 ? "int32"
                                                                         : "int64")
                                                     : (sizeof(T) == 1   ? "uint8"
                                                        : sizeof(T) == 2 ? "uint16"
                                                        : sizeof(T) == 4 ? "uint32"
                                                                         : "uint64");
    const int64_t v = item_int64(name);
    if constexpr (std::is_unsigned_v<T>) {
      if (v < 0 || static_cast<uint64_t>(v) > std::numeric_limits<T>::max()) throw_item_range(name);
    } else {
      if (v < std::numeric_limits<T>::min() || v > std::numeric_limits<T>::max())
        throw_item_range(name);
    }
    return static_cast<T>(v);
  }
}

std::ostream& operator<<(std::ostream& os, const Tensor& t);

// Factories. Float dtypes unless given; the random ones draw from the global generator.
Tensor empty(Shape shape, Dtype dtype = kFloat32);  // contents unspecified
Tensor zeros(Shape shape, Dtype dtype = kFloat32);
Tensor ones(Shape shape, Dtype dtype = kFloat32);
Tensor full(Shape shape, double value, Dtype dtype = kFloat32);
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor randn(Shape shape, Dtype dtype = kFloat32);                             // standard normal
Tensor rand(Shape shape, Dtype dtype = kFloat32);                              // uniform on [0, 1)
Tensor randint(int64_t low, int64_t high, Shape shape, Dtype dtype = kInt64);  // [low, high)
Tensor arange(double end, Dtype dtype = kInt64);
Tensor arange(double start, double end, double step = 1, Dtype dtype = kInt64);
Tensor scalar_tensor(double value, Dtype dtype = kFloat32);  // a 0-dim tensor
// The one constructor of views: a tensor over base's storage (and dtype) with the given shape,
// strides and offset (in elements), without autograd history (the differentiable views in ops/
// record their own nodes). Throws "[op] ..." unless the view has at most kMaxTensorDims
// dimensions, non-negative strides and, when it has elements, all of them inside the storage.
Tensor as_strided_view(const Tensor& base, Shape shape, Shape strides, int64_t offset,
                       const char* op = "as_strided_view");
template <class T>
Tensor tensor(const std::vector<T>& values, Shape shape);  // dtype from T
template <class T>
Tensor tensor(const std::vector<T>& values);  // 1-D

// Shape helpers shared by ops.
// The most dimensions a tensor or view may have: new tensors (empty()) and every view op check it,
// so the strided loops (core/strided.hpp) can keep their index counters on the stack.
inline constexpr size_t kMaxTensorDims = 16;
int64_t numel_of(const Shape& shape);  // throws on negative sizes or int64 overflow
// The same, with the error naming `op`: "[op] number of elements of [..] overflows int64 (a * b)".
int64_t numel_of(const Shape& shape, const char* op);
Shape contiguous_strides(const Shape& shape);
int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op);  // negative dims count from the end
std::string shape_str(const Shape& shape);                    // "[2, 3]"
// A tensor as error messages name it: "float32 [2, 3]" (with_dtype false: "[2, 3]"), or
// "undefined".
std::string describe(const Tensor& t, bool with_dtype = true);

}  // namespace gg
