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
  GG_CHECK(x.dtype() == weight.dtype(),
           "[linear] input is {} but weight is {} (input {}, weight {})", dtype_name(x.dtype()),
           dtype_name(weight.dtype()), describe(x), describe(weight));
  if (bias.defined()) {
    GG_CHECK(bias.dim() == 1 && bias.size(0) == weight.size(0),
             "[linear] bias must be [{}] for weight {}, got {}", weight.size(0),
             shape_str(weight.shape()), shape_str(bias.shape()));
    GG_CHECK(bias.dtype() == weight.dtype(), "[linear] bias is {} but weight is {} (bias {})",
             dtype_name(bias.dtype()), dtype_name(weight.dtype()), describe(bias));
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

namespace detail {

void check_embedding_input(const Tensor& indices, const Tensor& weight, const char* op) {
  GG_CHECK(indices.defined(), "[{}] indices is an undefined tensor", op);
  GG_CHECK(weight.defined() && weight.dim() == 2,
           "[{}] weight must be 2-D [num_embeddings, dim], got {}", op, describe(weight));
  GG_CHECK(indices.dtype() == kInt64 || indices.dtype() == kInt32,
           "[{}] indices must be Int64 or Int32, got {}", op, describe(indices));
  const int64_t n = weight.size(0);
  const Tensor c = indices.contiguous();
  auto scan = [&](const auto* p) {
    for (int64_t i = 0; i < c.numel(); ++i) {
      GG_CHECK(p[i] >= 0 && p[i] < n,
               "[{}] index {} is out of range for num_embeddings={} (indices {}, weight {})", op,
               static_cast<int64_t>(p[i]), n, describe(indices), describe(weight));
    }
  };
  if (c.dtype() == kInt64) {
    scan(c.data_ptr<int64_t>());
  } else {
    scan(c.data_ptr<int32_t>());
  }
}

}  // namespace detail

Tensor embedding(const Tensor& indices, const Tensor& weight) {
  detail::check_embedding_input(indices, weight, "embedding");
  Shape out_shape = indices.shape();
  out_shape.push_back(weight.size(1));
  return index_select(weight, 0, indices.reshape({-1})).reshape(out_shape);
}

}  // namespace gg::nn::functional
