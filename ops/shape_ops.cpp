// Ops that assemble tensors from pieces or pick pieces out: cat/stack copy, split/chunk/unbind are
// views, index_select gathers rows, gather/scatter_add elements, flip/tril/triu copy (kernels in
// ops/kernels/index_kernels.cpp).
#include "ops/shape_ops.hpp"

#include <algorithm>

#include "autograd/node.hpp"
#include "core/copy.hpp"
#include "ops/kernels/index_kernels.hpp"

namespace gg {

namespace {
using autograd::record;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// The checks cat and stack share: a non-empty list of defined tensors of one dtype.
void check_list(const std::vector<Tensor>& tensors, const char* op) {
  GG_CHECK(!tensors.empty(), "[{}] expects a non-empty list of tensors", op);
  for (size_t i = 0; i < tensors.size(); ++i) {
    GG_CHECK(tensors[i].defined(), "[{}] tensor {} is undefined", op, i);
    GG_CHECK(tensors[i].dtype() == tensors[0].dtype(),
             "[{}] all tensors must have the same dtype: tensor 0 is {} but tensor {} is {}", op,
             dtype_name(tensors[0].dtype()), i, dtype_name(tensors[i].dtype()));
  }
}
// Each piece of split/chunk is a view (a Tensor, its TensorImpl and two small vectors) and a size:
// 2^40 empty pieces are a gg::Error before anything is allocated, not std::bad_alloc.
constexpr size_t kPieceBytes = sizeof(Tensor) + sizeof(TensorImpl) + 2 * sizeof(int64_t) + 64;
void check_pieces(int64_t count, const char* op, const Tensor& x) {
  check_allocation(
      static_cast<uint64_t>(count), kPieceBytes + 2 * sizeof(int64_t) * x.shape().size(), op,
      fmt::format("{} pieces", count), fmt::format("(input {})", shape_str(x.shape())));
}
void reserve_pieces(std::vector<Tensor>& pieces, size_t count, const char* op, const Tensor& x) {
  check_pieces(static_cast<int64_t>(count), op, x);
  pieces.reserve(count);
}
}  // namespace

Tensor cat(const std::vector<Tensor>& tensors, int64_t dim) {
  check_list(tensors, "cat");
  const Tensor& first = tensors[0];
  GG_CHECK(first.dim() > 0, "[cat] zero-dimensional tensor 0 cannot be concatenated (use stack)");
  dim = wrap_dim(dim, first.dim(), "cat");
  Shape shape = first.shape();
  shape[dim] = 0;
  std::vector<int64_t> sizes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Shape& s = tensors[i].shape();
    bool same = s.size() == shape.size();
    for (size_t d = 0; same && d < s.size(); ++d)
      same = static_cast<int64_t>(d) == dim || s[d] == shape[d];
    GG_CHECK(same,
             "[cat] tensor {} has shape {} but tensor 0 has shape {}: all sizes must match "
             "except in dimension {}",
             i, shape_str(s), shape_str(first.shape()), dim);
    sizes.push_back(s[dim]);
    shape[dim] = size_add(shape[dim], s[dim], "cat", [&] {
      return fmt::format("the size of dimension {} after tensor {} of shape {}", dim, i,
                         shape_str(s));
    });
  }
  Tensor out = empty(shape, first.dtype());
  int64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    copy_(out.narrow(dim, offset, sizes[i]), tensors[i]);
    offset += sizes[i];
  }
  return record("CatBackward", tensors, out, [=](const Grads& g, const Needs& needs) {
    Grads grads(sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (needs[i]) grads[i] = g[0].narrow(dim, start, sizes[i]);
      start += sizes[i];
    }
    return grads;
  });
}

Tensor stack(const std::vector<Tensor>& tensors, int64_t dim) {
  check_list(tensors, "stack");
  const Tensor& first = tensors[0];
  for (size_t i = 1; i < tensors.size(); ++i) {
    GG_CHECK(tensors[i].shape() == first.shape(),
             "[stack] all tensors must have the same shape: tensor 0 is {} but tensor {} is {}",
             shape_str(first.shape()), i, shape_str(tensors[i].shape()));
  }
  dim = wrap_dim(dim, first.dim() + 1, "stack");
  Shape shape = first.shape();
  shape.insert(shape.begin() + dim, static_cast<int64_t>(tensors.size()));
  Tensor out = empty(shape, first.dtype());
  for (size_t i = 0; i < tensors.size(); ++i)
    copy_(out.select(dim, static_cast<int64_t>(i)), tensors[i]);
  return record("StackBackward", tensors, out, [dim](const Grads& g, const Needs& needs) {
    Grads grads(needs.size());
    for (size_t i = 0; i < needs.size(); ++i)
      if (needs[i]) grads[i] = g[0].select(dim, static_cast<int64_t>(i));
    return grads;
  });
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  x.checked("split");
  GG_CHECK(x.dim() > 0, "[split] cannot split a 0-d tensor");
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    GG_CHECK(sizes[i] >= 0, "[split] size {} at position {} is negative (sizes [{}])", sizes[i], i,
             fmt::join(sizes, ", "));
    total = size_add(total, sizes[i], "split", [&] {
      return fmt::format("the sum of the sizes (splitting dimension {} of {})", dim,
                         shape_str(x.shape()));
    });
  }
  GG_CHECK(total == x.size(dim),
           "[split] sizes [{}] sum to {} but dimension {} has size {} (shape {})",
           fmt::join(sizes, ", "), total, dim, x.size(dim), shape_str(x.shape()));
  std::vector<Tensor> pieces;
  reserve_pieces(pieces, sizes.size(), "split", x);
  int64_t start = 0;
  for (int64_t s : sizes) {
    pieces.push_back(x.narrow(dim, start, s));
    start += s;
  }
  return pieces;
}

std::vector<Tensor> split(const Tensor& x, int64_t split_size, int64_t dim) {
  x.checked("split");
  GG_CHECK(x.dim() > 0, "[split] cannot split a 0-d tensor");
  dim = wrap_dim(dim, x.dim(), "split");
  const int64_t n = x.size(dim);
  GG_CHECK(split_size > 0 || (split_size == 0 && n == 0),
           "[split] split_size must be positive, got {} (dimension {} has size {})", split_size,
           dim, n);
  // As in PyTorch: at least one piece (an empty dim gives one empty piece). (No n + split_size - 1:
  // it overflows for a huge split_size.)
  const int64_t count =
      split_size == 0 ? 1 : std::max<int64_t>(n / split_size + (n % split_size != 0), 1);
  check_pieces(count, "split", x);
  std::vector<int64_t> sizes(static_cast<size_t>(count), split_size);
  sizes.back() = n - split_size * (count - 1);
  return split(x, sizes, dim);
}

std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  x.checked("chunk");
  GG_CHECK(x.dim() > 0, "[chunk] cannot chunk a 0-d tensor");
  GG_CHECK(chunks > 0, "[chunk] chunks must be positive, got {}", chunks);
  dim = wrap_dim(dim, x.dim(), "chunk");
  const int64_t n = x.size(dim);
  // PyTorch's rule: pieces of ceil(n / chunks), so there may be fewer than `chunks` of them;
  // an empty dim gives `chunks` empty pieces.
  if (n == 0) {
    check_pieces(chunks, "chunk", x);
    return split(x, std::vector<int64_t>(static_cast<size_t>(chunks), 0), dim);
  }
  return split(x, n / chunks + (n % chunks != 0), dim);
}

Tensor index_select(const Tensor& x, int64_t dim, const Tensor& index) {
  x.checked("index_select");
  index.checked("index_select");
  GG_CHECK(index.dtype() == kInt64 || index.dtype() == kInt32,
           "[index_select] index must be int64 or int32, got {} (shape {})",
           dtype_name(index.dtype()), shape_str(index.shape()));
  GG_CHECK(index.dim() <= 1, "[index_select] index must be 0-d or 1-d, got shape {}",
           shape_str(index.shape()));
  GG_CHECK(x.dim() > 0, "[index_select] cannot index a 0-d tensor");
  dim = wrap_dim(dim, x.dim(), "index_select");
  const int64_t n = x.size(dim);
  std::vector<int64_t> idx = index.to(kInt64).to_vector<int64_t>();
  for (size_t i = 0; i < idx.size(); ++i) {
    GG_CHECK(idx[i] >= 0 && idx[i] < n,
             "[index_select] index {} at position {} is out of range for dimension {} of size {} "
             "(shape {})",
             idx[i], i, dim, n, shape_str(x.shape()));
  }
  Tensor out = kernels::index_select(x, dim, idx);
  if (!autograd::needs_grad({x})) return out;
  Shape in_shape = x.shape();
  // The backward is a kernel: once differentiable.
  return autograd::once_differentiable(
      record("IndexSelectBackward", {x}, out,
             [in_shape, dim, idx = std::move(idx)](const Grads& g, const Needs&) {
               return Grads{kernels::index_add(in_shape, dim, idx, g[0])};
             }));
}

namespace {

// The checks gather and scatter_add share: an Int64/Int32 index with as many dims as x (a 0-d
// tensor counts as 1-d, as in PyTorch), no larger than x in any dim but dim. Returns dim wrapped.
int64_t check_index(const Tensor& x, int64_t dim, const Tensor& index, const char* op) {
  x.checked(op);
  index.checked(op);
  GG_CHECK(index.dtype() == kInt64 || index.dtype() == kInt32,
           "[{}] index must be int64 or int32, got {} (index {})", op, dtype_name(index.dtype()),
           shape_str(index.shape()));
  GG_CHECK(std::max<int64_t>(index.dim(), 1) == std::max<int64_t>(x.dim(), 1),
           "[{}] index has {} dims but input has {} (index {}, input {})", op, index.dim(), x.dim(),
           shape_str(index.shape()), shape_str(x.shape()));
  dim = wrap_dim(dim, x.dim(), op);
  for (int64_t d = 0; d < index.dim(); ++d) {
    GG_CHECK(d == dim || x.dim() == 0 || index.size(d) <= x.size(d),
             "[{}] index is larger than input in dimension {}: {} > {} (index {}, input {}; only "
             "dimension {} may be larger)",
             op, d, index.size(d), x.size(d), shape_str(index.shape()), shape_str(x.shape()), dim);
  }
  return dim;
}

// index as a contiguous Int64 tensor of at least 1 dim, every value checked to be in [0, bound).
Tensor checked_indices(const Tensor& index, int64_t dim, int64_t bound, const Tensor& x,
                       const char* op) {
  Tensor idx = as_contiguous(as_dtype(index, kInt64));
  if (idx.dim() == 0) idx = as_strided_view(idx, {1}, {1}, idx.storage_offset());
  const int64_t* p = static_cast<const int64_t*>(idx.raw_data());
  for (int64_t i = 0; i < idx.numel(); ++i) {
    if (p[i] >= 0 && p[i] < bound) [[likely]]
      continue;
    Shape position(idx.shape().size());  // i as a multi-index of index
    for (int64_t d = idx.dim() - 1, rest = i; d >= 0; --d) {
      position[d] = rest % idx.size(d);
      rest /= idx.size(d);
    }
    fail(
        "[{}] index {} at position {} is out of range for dimension {} of size {} (input {}, "
        "index {})",
        op, p[i], shape_str(position), dim, bound, shape_str(x.shape()), shape_str(index.shape()));
  }
  return idx;
}

// t with zeros appended in every dim where it is smaller than `shape` (of t's rank once a 0-d t or
// shape counts as [1]), then given `shape` exactly (differentiable: cat and reshape).
Tensor pad_with_zeros(Tensor t, const Shape& shape) {
  const Shape target = shape.empty() ? Shape{1} : shape;
  if (t.dim() == 0) t = t.reshape({1});
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) == target[d]) continue;
    Shape zs = t.shape();
    zs[d] = target[d] - t.size(d);
    t = cat({t, zeros(zs, t.dtype())}, d);
  }
  return t.reshape(shape);
}

// x as a tensor of at least one dim (a 0-d x viewed as [1]), for the kernels.
Tensor at_least_1d(const Tensor& x) {
  return x.dim() == 0 ? as_strided_view(x, {1}, {1}, x.storage_offset()) : x;
}

}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& index) {
  dim = check_index(x, dim, index, "gather");
  const Tensor src = at_least_1d(x);
  Tensor idx = checked_indices(index, dim, src.size(dim), x, "gather");
  Tensor out = kernels::gather(src, dim, idx);
  if (index.dim() == 0) out = as_strided_view(out, {}, {}, out.storage_offset());
  if (!autograd::needs_grad({x})) return out;
  return record(
      "GatherBackward", {x}, out,
      [dim, in_shape = x.shape(), index = autograd::SavedTensor(index)](const Grads& g,
                                                                        const Needs&) {
        return Grads{scatter_add(zeros(in_shape, g[0].dtype()), dim, index.unpack(), g[0])};
      });
}

Tensor scatter_add(const Tensor& x, int64_t dim, const Tensor& index, const Tensor& src) {
  dim = check_index(x, dim, index, "scatter_add");
  src.checked("scatter_add");
  GG_CHECK(src.dtype() == x.dtype(), "[scatter_add] src has dtype {} but input has {}",
           dtype_name(src.dtype()), dtype_name(x.dtype()));
  GG_CHECK(std::max<int64_t>(src.dim(), 1) == std::max<int64_t>(x.dim(), 1),
           "[scatter_add] src has {} dims but input has {} (src {}, input {})", src.dim(), x.dim(),
           shape_str(src.shape()), shape_str(x.shape()));
  const Tensor src1 = at_least_1d(src), index1 = at_least_1d(index);  // 0-d counts as [1]
  for (int64_t d = 0; d < index1.dim(); ++d) {
    GG_CHECK(index1.size(d) <= src1.size(d),
             "[scatter_add] index is larger than src in dimension {}: {} > {} (index {}, src {})",
             d, index1.size(d), src1.size(d), shape_str(index.shape()), shape_str(src.shape()));
  }
  const Tensor base = at_least_1d(x);
  Tensor idx = checked_indices(index, dim, base.size(dim), x, "scatter_add");
  Tensor out = kernels::scatter_add(base, dim, idx, src1);
  if (x.dim() == 0) out = as_strided_view(out, {}, {}, out.storage_offset());
  return record("ScatterAddBackward", {x, src}, out,
                [dim, index = autograd::SavedTensor(index), src_shape = src.shape()](
                    const Grads& g, const Needs& needs) {
                  Grads grads(2);
                  if (needs[0]) grads[0] = g[0];
                  if (needs[1]) {
                    grads[1] = pad_with_zeros(gather(g[0], dim, index.unpack()), src_shape);
                  }
                  return grads;
                });
}

std::vector<Tensor> unbind(const Tensor& x, int64_t dim) {
  x.checked("unbind");
  GG_CHECK(x.dim() > 0, "[unbind] cannot unbind a 0-d tensor");
  dim = wrap_dim(dim, x.dim(), "unbind");
  std::vector<Tensor> pieces;
  reserve_pieces(pieces, static_cast<size_t>(x.size(dim)), "unbind", x);
  for (int64_t i = 0; i < x.size(dim); ++i) pieces.push_back(x.select(dim, i));
  return pieces;
}

Tensor flip(const Tensor& x, const Shape& dims) {
  x.checked("flip");
  std::vector<bool> flipped(static_cast<size_t>(x.dim()), false);
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(x.dim(), 1)), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), "flip");
    GG_CHECK(!seen[w], "[flip] dimension {} appears more than once in dims [{}] (shape {})", w,
             fmt::join(dims, ", "), shape_str(x.shape()));
    seen[w] = true;
    if (x.dim() > 0) flipped[w] = true;
  }
  Tensor out = kernels::flip(x, flipped);
  return record("FlipBackward", {x}, out,
                [dims](const Grads& g, const Needs&) { return Grads{flip(g[0], dims)}; });
}

namespace {
Tensor triangle(const Tensor& x, int64_t diagonal, bool lower) {
  const char* op = lower ? "tril" : "triu";
  x.checked(op);
  GG_CHECK(x.dim() >= 2, "[{}] needs a tensor of at least 2 dims, got shape {}", op,
           shape_str(x.shape()));
  Tensor out = kernels::triangle(x, diagonal, lower);
  return record(lower ? "TrilBackward" : "TriuBackward", {x}, out,
                [diagonal, lower](const Grads& g, const Needs&) {
                  return Grads{lower ? tril(g[0], diagonal) : triu(g[0], diagonal)};
                });
}
}  // namespace

Tensor tril(const Tensor& x, int64_t diagonal) { return triangle(x, diagonal, true); }
Tensor triu(const Tensor& x, int64_t diagonal) { return triangle(x, diagonal, false); }

Tensor Tensor::gather(int64_t dim, const Tensor& index) const {
  return gg::gather(*this, dim, index);
}
Tensor Tensor::scatter_add(int64_t dim, const Tensor& index, const Tensor& src) const {
  return gg::scatter_add(*this, dim, index, src);
}
std::vector<Tensor> Tensor::unbind(int64_t dim) const { return gg::unbind(*this, dim); }
Tensor Tensor::flip(const Shape& dims) const { return gg::flip(*this, dims); }
Tensor Tensor::tril(int64_t diagonal) const { return gg::tril(*this, diagonal); }
Tensor Tensor::triu(int64_t diagonal) const { return gg::triu(*this, diagonal); }

}  // namespace gg
