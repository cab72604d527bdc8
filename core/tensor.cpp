#include "core/tensor.hpp"

#include <cstring>
#include <limits>

#include "core/strided.hpp"

namespace gg {

// ---- shape helpers ---------------------------------------------------------------------------

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

std::string describe(const Tensor& t, bool with_dtype) {
  if (!t.defined()) return "undefined";
  return with_dtype ? fmt::format("{} {}", dtype_name(t.dtype()), shape_str(t.shape()))
                    : shape_str(t.shape());
}

int64_t numel_of(const Shape& shape, const char* op) {
  // The product of the NON-ZERO sizes must fit in int64, whatever the order of the sizes and even
  // when a zero size makes the tensor empty: contiguous strides are partial products of the sizes,
  // so this keeps them from overflowing too.
  for (int64_t s : shape)
    GG_CHECK(s >= 0, "[{}] sizes must be non-negative, got {}", op, shape_str(shape));
  return size_product(shape, op, [&] { return "number of elements of " + shape_str(shape); });
}

int64_t numel_of(const Shape& shape) { return numel_of(shape, "shape"); }

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    s *= std::max<int64_t>(shape[i], 1);
  }
  return strides;
}

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  GG_CHECK(dim >= lo && dim <= hi,
           "[{}] dimension {} out of range for a {}-d tensor (expected {} to {})", op, dim, ndim,
           lo, hi);
  return dim < 0 ? dim + std::max<int64_t>(ndim, 1) : dim;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t sa = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t sb = i < n - b.size() ? 1 : b[i - (n - b.size())];
    GG_CHECK(sa == sb || sa == 1 || sb == 1,
             "[{}] shapes {} and {} cannot be broadcast (dimension {}: {} vs {})", op, shape_str(a),
             shape_str(b), i, sa, sb);
    out[i] = sa == 1 ? sb : sa;
  }
  return out;
}

Shape broadcast_strides(const Tensor& t, const Shape& out_shape) {
  const Shape& shape = t.shape();
  GG_CHECK(shape.size() <= out_shape.size(), "[broadcast] cannot broadcast {} to {}",
           shape_str(shape), shape_str(out_shape));
  Shape strides(out_shape.size(), 0);
  size_t lead = out_shape.size() - shape.size();
  for (size_t i = 0; i < shape.size(); ++i) {
    GG_CHECK(shape[i] == out_shape[lead + i] || shape[i] == 1,
             "[broadcast] cannot broadcast {} to {}", shape_str(shape), shape_str(out_shape));
    strides[lead + i] = shape[i] == 1 ? 0 : t.strides()[i];
  }
  return strides;
}

double load_as_double(const void* base, Dtype dtype, int64_t offset) {
  return dispatch(dtype,
                  [&]<class T>() { return convert<double>(static_cast<const T*>(base)[offset]); });
}

void store_from_double(void* base, Dtype dtype, int64_t offset, double value) {
  dispatch(dtype, [&]<class T>() { static_cast<T*>(base)[offset] = convert<T>(value); });
}

// ---- accessors -------------------------------------------------------------------------------

void Tensor::throw_undefined(const char* op) {
  fail("[{}] the tensor is undefined (a default-constructed gg::Tensor)", op);
}

void Tensor::throw_bad_dim(int64_t d, const char* op) const {
  GG_CHECK(dim() > 0, "[{}] dimension {} out of range: the tensor is 0-d", op, d);
  wrap_dim(d, dim(), op);  // throws the range message
  fail("[{}] dimension {} out of range", op, d);
}

bool Tensor::is_contiguous() const {
  const TensorImpl& t = checked("is_contiguous");
  for (int64_t s : t.shape)
    if (s == 0) return true;  // no elements: any strides are contiguous
  int64_t expected = 1;
  for (size_t i = t.shape.size(); i-- > 0;) {
    if (t.shape[i] == 1) continue;
    if (t.strides[i] != expected) return false;
    expected *= t.shape[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  const TensorImpl& t = checked("data");
  // An empty view addresses no element, and its offset may lie far past its storage (select or
  // narrow along another dimension of an empty tensor; found by tests/fuzz/fuzz_views, where
  // offset * element size overflowed): its data pointer is the storage's.
  if (numel() == 0) return t.storage->data();
  return static_cast<uint8_t*>(t.storage->data()) + t.offset * static_cast<int64_t>(element_size());
}

template <class T>
T* Tensor::data_ptr() const {
  GG_CHECK(dtype() == dtype_of<T>(), "[data_ptr] requested {} but the tensor is {}",
           dtype_name(dtype_of<T>()), dtype_name(dtype()));
  return static_cast<T*>(raw_data());
}

template <class T>
std::vector<T> Tensor::to_vector() const {
  GG_CHECK(dtype() == dtype_of<T>(), "[to_vector] requested {} but the tensor is {}",
           dtype_name(dtype_of<T>()), dtype_name(dtype()));
  Tensor c = contiguous();
  // A std::vector as big as the tensor: checked like any allocation sized from input.
  check_allocation(static_cast<uint64_t>(c.numel()), sizeof(T), "to_vector",
                   fmt::format("a copy of {}", shape_str(c.shape())));
  const T* p = c.data_ptr<T>();
  return std::vector<T>(p, p + c.numel());
}

double Tensor::item_double() const {
  GG_CHECK(checked("item").shape.empty() || numel() == 1,
           "[item] expected a one-element tensor, got shape {}", shape_str(shape()));
  return load_as_double(raw_data(), dtype(), 0);
}

int64_t Tensor::item_int64(const char* target) const {
  if (is_floating(dtype())) {
    const double v = item_double();
    // Truncation toward zero, as static_cast (and libtorch) convert; only in int64's range.
    if (!(v >= -0x1p63 && v < 0x1p63)) throw_item_range(target);
    return static_cast<int64_t>(v);
  }
  GG_CHECK(checked("item").shape.empty() || numel() == 1,
           "[item] expected a one-element tensor, got shape {}", shape_str(shape()));
  return dispatch(dtype(), [&]<class T>() -> int64_t {
    if constexpr (std::is_integral_v<T>) return *static_cast<const T*>(raw_data());
    return 0;  // floating dtypes are handled above
  });
}

void Tensor::throw_item_range(const char* target) const {
  fail("[item] the value {} of the {} tensor cannot be converted to {} without overflow",
       item_double(), dtype_name(dtype()), target);
}

// ---- autograd accessors ----------------------------------------------------------------------

bool Tensor::requires_grad() const {
  const TensorImpl& t = checked("requires_grad");
  return t.requires_grad || t.grad_fn != nullptr;
}

Tensor& Tensor::requires_grad_(bool on) {
  const TensorImpl& t = checked("requires_grad_");
  GG_CHECK(!on || is_floating(t.dtype),
           "[requires_grad_] only floating-point tensors can require grad, this one is {} {}",
           dtype_name(t.dtype), shape_str(t.shape));
  GG_CHECK(t.grad_fn == nullptr,
           "[requires_grad_] can only change requires_grad of a leaf tensor; use detach() first");
  impl_->requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  const TensorImpl& t = checked("grad");
  return t.grad ? Tensor(t.grad) : Tensor();
}

void Tensor::set_gradient_edge(std::shared_ptr<autograd::Node> node, uint32_t output_nr) const {
  checked("set_gradient_edge");
  impl_->grad_fn = std::move(node);
  impl_->output_nr = output_nr;
  // A view's history is current as of now (see TensorImpl::view_version).
  if (impl_->is_view) impl_->view_version = impl_->storage->version();
}

void Tensor::set_grad(const Tensor& grad) const {
  const TensorImpl& t = checked("set_grad");
  if (grad.defined()) {
    GG_CHECK(grad.shape() == t.shape && grad.dtype() == t.dtype,
             "[set_grad] gradient {} {} does not match the tensor {} {}", dtype_name(grad.dtype()),
             shape_str(grad.shape()), dtype_name(t.dtype), shape_str(t.shape));
  }
  impl_->grad = grad.impl();
}

bool Tensor::is_leaf() const { return checked("is_leaf").grad_fn == nullptr; }

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  return checked("grad_fn").grad_fn;
}

Tensor Tensor::detach() const {
  const TensorImpl& t = checked("detach");
  auto impl = std::make_shared_for_overwrite<TensorImpl>();  // see make_tensor
  impl->storage = t.storage;
  impl->shape = t.shape;
  impl->strides = t.strides;
  impl->offset = t.offset;
  impl->dtype = t.dtype;
  return Tensor(std::move(impl));
}

void Tensor::set_data(const Tensor& new_data) const {
  const TensorImpl& t = checked("set_data");
  const TensorImpl& src = new_data.checked("set_data");
  GG_CHECK(!requires_grad() || is_floating(src.dtype),
           "[set_data] the tensor {} {} requires grad, so its new data must be floating, got {} {}",
           dtype_name(t.dtype), shape_str(t.shape), dtype_name(src.dtype), shape_str(src.shape));
  // Copied first: new_data may share this tensor's TensorImpl.
  std::shared_ptr<Storage> storage = src.storage;
  Shape shape = src.shape, strides = src.strides;
  // Fields that keep their value are not written: a module that re-packs its parameters under a
  // lock (GroupedLinear) swaps only the storage and strides while other threads' forwards read
  // the parameters' shape and dtype (tests/test_threads.cpp, under TSan in CI).
  impl_->storage = std::move(storage);
  if (impl_->shape != shape) impl_->shape = std::move(shape);
  if (impl_->strides != strides) impl_->strides = std::move(strides);
  if (impl_->offset != src.offset) impl_->offset = src.offset;
  if (impl_->dtype != src.dtype) impl_->dtype = src.dtype;
}

// ---- factories -------------------------------------------------------------------------------

namespace {
Tensor make_tensor(Shape shape, Dtype dtype, bool zero) {
  int64_t n = numel_of(shape);
  GG_CHECK(shape.size() <= kMaxTensorDims, "[empty] at most {} dimensions are supported, got {}",
           kMaxTensorDims, shape.size());
  size_t elem = gg::element_size(dtype);
  GG_CHECK(static_cast<uint64_t>(n) <= std::numeric_limits<int64_t>::max() / elem,
           "[empty] {} bytes for shape {} overflows", dtype_name(dtype), shape_str(shape));
  // The allocation rule (core/checked.hpp): never more than the machine's memory in one block.
  GG_CHECK(static_cast<uint64_t>(n) <= max_allocation_bytes() / elem,
           "[storage] cannot allocate {} bytes for a {} tensor of shape {}: more than the {} "
           "bytes one allocation may take (the machine's physical memory)",
           static_cast<uint64_t>(n) * elem, dtype_name(dtype), shape_str(shape),
           max_allocation_bytes());
  // _for_overwrite: every member of TensorImpl has an initializer, and value-initialising
  // (make_shared<TensorImpl>()) first zeroes all 152 bytes with a `rep stos`, a tenth of the
  // cost of making a small tensor.
  auto impl = std::make_shared_for_overwrite<TensorImpl>();
  impl->storage = std::make_shared<Storage>(static_cast<size_t>(n) * elem, zero);
  impl->strides = contiguous_strides(shape);
  impl->shape = std::move(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}
}  // namespace

Tensor empty(Shape shape, Dtype dtype) { return make_tensor(std::move(shape), dtype, false); }
Tensor zeros(Shape shape, Dtype dtype) { return make_tensor(std::move(shape), dtype, true); }

Tensor full(Shape shape, double value, Dtype dtype) {
  Tensor t = empty(std::move(shape), dtype);
  dispatch(dtype, [&]<class T>() {
    T v = convert<T>(value);
    T* p = t.data_ptr<T>();
    std::fill(p, p + t.numel(), v);
  });
  return t;
}

Tensor ones(Shape shape, Dtype dtype) { return full(std::move(shape), 1.0, dtype); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype()); }
Tensor scalar_tensor(double value, Dtype dtype) { return full({}, value, dtype); }

Tensor as_strided_view(const Tensor& base, Shape shape, Shape strides, int64_t offset,
                       const char* op) {
  const TensorImpl& b = base.checked(op);
  GG_CHECK(shape.size() <= kMaxTensorDims,
           "[{}] at most {} dimensions are supported, the view would have {} (input shape {})", op,
           kMaxTensorDims, shape.size(), shape_str(b.shape));
  GG_CHECK(strides.size() == shape.size(),
           "[{}] the view's shape {} and strides {} differ in length", op, shape_str(shape),
           shape_str(strides));
  // An empty view addresses no element, so its offset may lie past the storage (Tensor::raw_data).
  if (numel_of(shape, op) > 0) {
    // The view's last element, offset + sum((size - 1) * stride), must be in the storage.
    int64_t last = offset;
    bool overflow = false;
    for (size_t i = 0; i < shape.size(); ++i) {
      GG_CHECK(strides[i] >= 0, "[{}] negative strides are not supported, got strides {}", op,
               shape_str(strides));
      int64_t step = 0;
      overflow = overflow || __builtin_mul_overflow(shape[i] - 1, strides[i], &step) ||
                 __builtin_add_overflow(last, step, &last);
    }
    const auto capacity = static_cast<int64_t>(b.storage->nbytes() / gg::element_size(b.dtype));
    GG_CHECK(offset >= 0 && !overflow && last < capacity,
             "[{}] a view of shape {} with strides {} at offset {} does not fit in the storage of "
             "{} {} elements (the base tensor has shape {})",
             op, shape_str(shape), shape_str(strides), offset, capacity, dtype_name(b.dtype),
             shape_str(b.shape));
  }
  auto impl = std::make_shared_for_overwrite<TensorImpl>();  // see make_tensor
  impl->storage = b.storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = b.dtype;
  impl->is_view = true;
  impl->view_version = b.storage->version();
  return Tensor(std::move(impl));
}

Tensor arange(double end, Dtype dtype) { return arange(0, end, 1, dtype); }

Tensor arange(double start, double end, double step, Dtype dtype) {
  GG_CHECK(step != 0, "[arange] step must be nonzero");
  GG_CHECK(std::isfinite(start) && std::isfinite(end) && std::isfinite(step),
           "[arange] start, end and step must be finite (got {}, {}, {})", start, end, step);
  double count = std::ceil((end - start) / step);
  GG_CHECK(count < 0x1p62, "[arange] ({}, {}, step {}) has too many elements", start, end, step);
  int64_t n = count > 0 ? static_cast<int64_t>(count) : 0;
  Tensor t = empty({n}, dtype);
  dispatch(dtype, [&]<class T>() {
    T* p = t.data_ptr<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = convert<T>(start + static_cast<double>(i) * step);
  });
  return t;
}

template <class T>
Tensor tensor(const std::vector<T>& values, Shape shape) {
  int64_t n = numel_of(shape);
  GG_CHECK(static_cast<int64_t>(values.size()) == n,
           "[tensor] {} values do not fill shape {} ({} elements)", values.size(), shape_str(shape),
           n);
  Tensor t = empty(std::move(shape), dtype_of<T>());
  if (n) std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(T));
  return t;
}

template <class T>
Tensor tensor(const std::vector<T>& values) {
  return tensor<T>(values, {static_cast<int64_t>(values.size())});
}

#define GG_INSTANTIATE(T)                                               \
  template T* Tensor::data_ptr<T>() const;                              \
  template std::vector<T> Tensor::to_vector<T>() const;                 \
  template Tensor tensor<T>(const std::vector<T>& values, Shape shape); \
  template Tensor tensor<T>(const std::vector<T>& values);
GG_INSTANTIATE(float)
GG_INSTANTIATE(double)
GG_INSTANTIATE(BFloat16)
GG_INSTANTIATE(Half)
GG_INSTANTIATE(int8_t)
GG_INSTANTIATE(int32_t)
GG_INSTANTIATE(int64_t)
#undef GG_INSTANTIATE

}  // namespace gg
