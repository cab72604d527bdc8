#include "ops/matmul.hpp"

#include "autograd/node.hpp"
#include "core/strided.hpp"
#include "ops/kernels/matmul_kernel.hpp"

namespace gg {

namespace {
// Views x ([batch..., r, c] broadcast to `batch`) as [B, r, c], or [1, r, c] when x has no batch
// dims (the kernel broadcasts it); copies only when the strides demand it.
Tensor as_batch3(const Tensor& x, const Shape& batch) {
  const int64_t r = x.size(-2), c = x.size(-1);
  if (x.dim() == 2) return x.detach().unsqueeze(0);
  Shape full = batch;
  full.push_back(r);
  full.push_back(c);
  return x.detach().expand(full).reshape({numel_of(batch), r, c});
}
}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  a.checked("matmul");
  b.checked("matmul");
  GG_CHECK(a.dim() >= 1 && b.dim() >= 1,
           "[matmul] both arguments need at least 1 dimension, got {} and {}", shape_str(a.shape()),
           shape_str(b.shape()));
  GG_CHECK(a.dtype() == b.dtype(), "[matmul] dtypes differ: {} {} and {} {}", dtype_name(a.dtype()),
           shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape()));
  GG_CHECK(is_floating(a.dtype()), "[matmul] needs floating dtypes, got {}", dtype_name(a.dtype()));
  if (a.dim() == 1 && b.dim() == 1) return matmul(a.unsqueeze(0), b.unsqueeze(1)).reshape({});
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(1)).squeeze(-1);

  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  GG_CHECK(b.size(-2) == K, "[matmul] shapes {} and {} cannot be multiplied ({} != {})",
           shape_str(a.shape()), shape_str(b.shape()), K, b.size(-2));
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  const int64_t B = numel_of(batch);
  Tensor out = empty({B, M, N}, a.dtype());
  if (B > 0 && M > 0 && N > 0) kernels::bmm_into(as_batch3(a, batch), as_batch3(b, batch), out);
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  out = out.reshape(out_shape);
  if (!autograd::needs_grad({a, b})) return out;
  return autograd::record(
      "MatmulBackward", {a, b}, out,
      [a = autograd::SavedTensor(a), b = autograd::SavedTensor(b)](const std::vector<Tensor>& g,
                                                                   const std::vector<bool>& needs) {
        // Batch dims that were broadcast are summed back by the engine.
        Tensor ga = needs[0] ? matmul(g[0], b.unpack().transpose(-1, -2)) : Tensor();
        Tensor gb = needs[1] ? matmul(a.unpack().transpose(-1, -2), g[0]) : Tensor();
        return std::vector<Tensor>{ga, gb};
      });
}

Tensor Tensor::matmul(const Tensor& other) const { return gg::matmul(*this, other); }

}  // namespace gg
