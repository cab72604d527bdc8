#include "nn/functional.hpp"

#include "ops/matmul.hpp"
#include "ops/shape_ops.hpp"

namespace gg::nn::functional {

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  x.checked("linear");
  weight.checked("linear");
  GG_CHECK(weight.dim() == 2, "[linear] weight must be 2-D [out, in], got {}",
           shape_str(weight.shape()));
  GG_CHECK(x.dim() >= 1 && x.size(-1) == weight.size(1),
           "[linear] input has {} features in its last dim but weight expects in={} (input {}, "
           "weight {})",
           x.dim() >= 1 ? x.size(-1) : 0, weight.size(1), shape_str(x.shape()),
           shape_str(weight.shape()));
  if (bias.defined()) {
    GG_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0),
             "[linear] bias must be [{}] for weight {}, got {}", weight.size(0),
             shape_str(weight.shape()), shape_str(bias.shape()));
  }
  // Fold leading dims into one so a single 2-D matmul runs (and the weight gradient is one GEMM).
  Tensor y;
  if (x.dim() <= 2) {
    y = x.matmul(weight.t());
  } else {
    Shape out_shape(x.shape().begin(), x.shape().end() - 1);
    out_shape.push_back(weight.size(0));
    y = x.reshape({-1, weight.size(1)}).matmul(weight.t()).reshape(out_shape);
  }
  return bias.defined() ? y + bias : y;
}

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  indices.checked("embedding");
  weight.checked("embedding");
  GG_CHECK(weight.dim() == 2, "[embedding] weight must be 2-D [num_embeddings, dim], got {}",
           shape_str(weight.shape()));
  GG_CHECK(indices.dtype() == kInt64 || indices.dtype() == kInt32,
           "[embedding] indices must be Int64 or Int32, got {} {}", dtype_name(indices.dtype()),
           shape_str(indices.shape()));
  Shape out_shape = indices.shape();
  out_shape.push_back(weight.size(1));
  return index_select(weight, 0, indices.reshape({-1})).reshape(out_shape);
}

}  // namespace gg::nn::functional
