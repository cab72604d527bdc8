#pragma once
// Runs a (batched) matmul on tensors: oneDNN when it supports the problem, otherwise the reference
// loop (Float64), or oneDNN in Float32 for Float16 inputs. No autograd, no validation beyond
// shapes.
#include "../../core/tensor.hpp"
#include "../matmul_problem.hpp"

namespace gg::kernels {

// Runs p on raw memory: onednn::matmul, which hands K == 0 and the layouts oneDNN has only its
// ref:any kernel for to reference::matmul. The two backends are siblings that do not know each
// other; this is where the fallback is chosen. p must pass onednn::matmul_supported (else
// gg::Error, as onednn::matmul throws).
void matmul(const MatmulProblem& p, const void* src, const void* wei, const void* bias, void* dst);

// out[b] = a[b] @ w[b] (+ bias) (+ out[b] if accumulate). a is [B or 1, M, K], w [B or 1, K, N],
// out [B, M, N] (a batch of size 1 broadcasts); bias undefined, [N], or [B, N]. Any strides.
void bmm_into(const Tensor& a, const Tensor& w, const Tensor& out, const Tensor& bias = {},
              bool accumulate = false);

}  // namespace gg::kernels
