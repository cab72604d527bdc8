#pragma once
// The matmul kernel that every matmul in the library (matmul, bmm, grouped_mm forward and
// backward) calls: one (batched) problem on raw strided memory, run by a cached oneDNN primitive.
// ops/reference/matmul.hpp runs the same problem with a plain loop (Float64, and the test oracle);
// ops/kernels/matmul_kernel.hpp picks between the two.
#include <string>

#include "ops/matmul_problem.hpp"

namespace gg::onednn {

// The problem type and its helpers live in ops/matmul_problem.hpp (shared with reference::matmul);
// these keep the onednn:: spellings working.
using gg::check_matmul_problem;
using gg::MatmulProblem;
using gg::to_string;

// Whether onednn::matmul runs p: src and wei both Float32 or both BFloat16; dst Float32,
// BFloat16, Float16, Int8 or Int32; bias Float32 or BFloat16; no negative strides, and no
// overlapping rows (oneDNN rejects, e.g., a [3, 4] view with strides [2, 1]). Anything else
// (Float64, Float16 or integer inputs, mixed src/wei) is for reference::matmul or a conversion.
//
// What oneDNN 2.6.3 itself implements, measured on avx512_core + bf16 (the rest is done here):
//   f32 x f32 -> f32            brg:avx512_core
//   bf16 x bf16 -> bf16 or f32  brg:avx512_core_bf16
//   f32 x f32 -> bf16           no implementation at all: computed as f32 into a per-thread
//                               buffer, then a reorder (jit:uni) writes bf16. Same for f16
//                               (simple:any reorder), s8 and s32 dst (round to nearest even,
//                               saturate) from either input type.
//   f32 matmul, bf16 bias       no implementation with the bias argument; the bias goes in as a
//                               binary-add post-op instead.
// Below AVX512_CORE (context.hpp, native_bf16) oneDNN has no bf16 matmul and no f32 -> bf16
// reorder: a problem with any bf16 operand runs as the f32 problem on f32 copies of its bf16
// operands, and a bf16 dst is written from the f32 result, rounded once. f32 runs gemm:jit there
// (AVX2 and SSE4.1 alike), which has no per-shape kernels to build.
bool matmul_supported(const MatmulProblem& p);
// Whether matmul(p) runs as one dnnl_sgemm call (below AVX512_CORE: a plain f32 product, batch 1,
// no bias, each operand with a unit stride, weights that need no padded copy).
bool runs_on_sgemm(const MatmulProblem& p);

// What runs a problem (or a piece of one) that oneDNN has no fast kernel for. The caller chooses
// it (kernels::matmul passes reference::matmul), so that this backend does not reach into its
// sibling ops/reference/.
using MatmulFallback = void (*)(const MatmulProblem& p, const void* src, const void* wei,
                                const void* bias, void* dst);

// Runs p with a oneDNN primitive built on the first call for this problem (every field; not the
// pointers) and reused from then on. Thread-safe: the same problem may run concurrently from
// several threads, and from inside an OpenMP parallel region (the primitive then runs
// single-threaded in the calling thread). Transposed and broadcast operands cost nothing; empty
// problems do nothing. K == 0 (which oneDNN sends to ref:any; the result is the bias, or zeros,
// or the bias added when accumulating) and layouts for which oneDNN has only its ref:any kernel
// (no unit stride, a stride-0 row or column, and a few bias combinations) run `fallback` instead:
// reference::matmul is ~50x faster than ref:any but ~15x slower than brg per core, so copy such
// operands if they are big. Use kernels::matmul (ops/kernels/matmul_kernel.hpp), which passes it.
// Throws gg::Error when !matmul_supported(p).
void matmul(const MatmulProblem& p, const void* src, const void* wei, const void* bias, void* dst,
            MatmulFallback fallback);

// The oneDNN implementation(s) that run p, e.g. "brg:avx512_core" or
// "brg:avx512_core + reorder jit:uni" or "gemm:jit (one execution per batch)"; "none" when
// nothing runs (empty problem), "reference" for K == 0 and "reference (oneDNN offers only
// ref:any)". Builds (and caches) the plan like matmul does. For tests and tools/bench.
std::string matmul_implementation(const MatmulProblem& p);

}  // namespace gg::onednn
