#pragma once
// The functional ops under one namespace, as torch::nn::functional:
//   namespace F = gg::nn::functional;
//   auto y = F::gelu(F::linear(x, w, b));
#include "../ops/elementwise.hpp"
#include "../ops/grouped_mm.hpp"
#include "../ops/nn_ops.hpp"

namespace gg::nn::functional {

using gg::cross_entropy;
using gg::dropout;
using gg::gelu;
using gg::grouped_mm;
using gg::GroupedMMOptions;
using gg::layer_norm;
using gg::log_softmax;
using gg::mse_loss;
using gg::PackedGroupedMMOptions;
using gg::Reduction;
using gg::relu;
using gg::sigmoid;
using gg::softmax;
using gg::tanh;
// Losses added for issue #18.
using gg::binary_cross_entropy;
using gg::binary_cross_entropy_with_logits;
using gg::huber_loss;
using gg::l1_loss;
using gg::nll_loss;
using gg::smooth_l1_loss;

// y = x @ weight^T + bias: x [*, in], weight [out, in], bias [out] or undefined -> [*, out].
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias = {});
// Rows of weight [num_embeddings, dim] picked by an Int32/Int64 index of any shape -> [*, dim].
// Every index must be in [0, num_embeddings).
Tensor embedding(const Tensor& indices, const Tensor& weight);

namespace detail {
// embedding's checks with `op` named in the errors ("Embedding" for the layer): indices defined
// and Int32/Int64, weight 2-D, every index in [0, weight.size(0)).
void check_embedding_input(const Tensor& indices, const Tensor& weight, const char* op);
}  // namespace detail

}  // namespace gg::nn::functional
