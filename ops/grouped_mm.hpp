#pragma once
// grouped_mm: the seed's operator (see API.md). output[i] = input[i] @ mat2[i] + bias[i].
// Defined in gg; nn/functional.hpp re-exports it (and its options) into gg::nn::functional.
#include <optional>
#include <vector>

#include "../core/tensor.hpp"

namespace gg {

struct GroupedMMOptions {
  std::vector<Tensor> bias = {};  // empty, or one per group; an undefined Tensor = no bias there
  std::optional<Dtype> out_dtype = std::nullopt;  // default: the inputs' dtype
};

// List form: each group with its own k_i and m_i; input [k], [p, k] or [*, k], mat2 [k, m].
std::vector<Tensor> grouped_mm(const std::vector<Tensor>& input, const std::vector<Tensor>& mat2,
                               const GroupedMMOptions& options = {});
// The seed's positional form: grouped_mm(inputs, weights, biases, out_dtype).
std::vector<Tensor> grouped_mm(const std::vector<Tensor>& input, const std::vector<Tensor>& mat2,
                               const std::vector<Tensor>& bias,
                               std::optional<Dtype> out_dtype = std::nullopt);

struct PackedGroupedMMOptions {
  Tensor offs = {};  // 1-D Int32 or Int64: cumulative END offsets, no leading 0
  Tensor bias = {};  // undefined, or one output row per group
  std::optional<Dtype> out_dtype = std::nullopt;
};
// Packed form, the four layouts of PyTorch's F.grouped_mm (G groups):
//   2D x 3D: input (M_total, K),   mat2 (G, K, N),   offs splits M  -> (M_total, N),  bias (G, N)
//   3D x 2D: input (G, M, K),      mat2 (K, N_total), offs splits N -> (M, N_total),  bias
//   (N_total) 2D x 2D: input (M, K_total),   mat2 (K_total, N), offs splits K -> (G, M, N),    bias
//   (G, N) 3D x 3D: input (G, M, K),      mat2 (G, K, N),   no offs        -> (G, M, N),    bias
//   (G, N)
Tensor grouped_mm(const Tensor& input, const Tensor& mat2,
                  const PackedGroupedMMOptions& options = {});

}  // namespace gg
