#pragma once
// grouped_mm: the seed's operator (see docs/api.md). output[i] = input[i] @ mat2[i] + bias[i].
// Defined in gg; nn/functional.hpp re-exports it (and its options) into gg::nn::functional.
//
// Which form a call runs (tests/test_grouped_mm_spellings.cpp compiles each spelling):
//   grouped_mm(xs, ws), (xs, ws, {}), (xs, ws, {.bias = bs, .out_dtype = d})  list, options
//   grouped_mm(xs, ws, bs), (xs, ws, {b0, b1}), (xs, ws, {}, gg::kInt8)       list, positional
//   grouped_mm({x0, x1}, {w0, w1}), ({x}, {w})                               list, braced
//   grouped_mm(x, w), (x, w, {.offs = offs, .bias = b})                      packed
#include <concepts>
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

// The seed's positional form: grouped_mm(inputs, weights, biases, out_dtype), where {} is the
// seed's null bias: grouped_mm(inputs, weights, {}, gg::kInt8). A template only to lose ties: a
// braced third argument that converts to both this bias list and GroupedMMOptions ({}, and on
// g++ 12 {.bias = bs}) was ambiguous; a non-template wins a tie, so such a call now takes the
// options form, which means the same. Calls only this form accepts are resolved as before.
template <class = void>
std::vector<Tensor> grouped_mm(const std::vector<Tensor>& input, const std::vector<Tensor>& mat2,
                               const std::vector<Tensor>& bias,
                               std::optional<Dtype> out_dtype = std::nullopt) {
  return grouped_mm(input, mat2, GroupedMMOptions{.bias = bias, .out_dtype = out_dtype});
}

struct PackedGroupedMMOptions {
  Tensor offs = {};  // 1-D Int32 or Int64: cumulative END offsets, no leading 0
  Tensor bias = {};  // undefined, or one output row per group
  std::optional<Dtype> out_dtype = std::nullopt;
};
// Packed form, the four layouts of PyTorch's F.grouped_mm (G groups):
//   layout    input          mat2           offs splits   output         bias
//   2D x 3D   (M_total, K)   (G, K, N)      M             (M_total, N)   (G, N)
//   3D x 2D   (G, M, K)      (K, N_total)   N             (M, N_total)   (N_total)
//   2D x 2D   (M, K_total)   (K_total, N)   K             (G, M, N)      (G, N)
//   3D x 3D   (G, M, K)      (G, K, N)      (no offs)     (G, M, N)      (G, N)
// Input and Mat2 are Tensor; being deduced, they keep braced lists out: {x} used to convert to a
// Tensor exactly, so grouped_mm({x}, {w}) ran this form (and asked for offs) where a PyTorch user
// means the list form with one group. Defined, and instantiated for Tensor, in
// grouped_mm_packed.cpp.
template <std::same_as<Tensor> Input, std::same_as<Tensor> Mat2>
Tensor grouped_mm(const Input& input, const Mat2& mat2, const PackedGroupedMMOptions& options = {});

}  // namespace gg
