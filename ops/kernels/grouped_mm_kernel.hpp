#pragma once
// How grouped_mm runs its matmuls: the op describes each group's product as a GemmTask on raw
// strided memory (forward and backward alike), and run_gemm_tasks decides how to execute them:
//   - identical problems of one allocation at equally spaced addresses (3D x 3D, equal groups of
//     a packed layout, the list outputs) become ONE batched oneDNN primitive; identical small
//     problems in separate allocations (list tensors) are copied into such a batch first, when
//     two memcpys per group cost less than a primitive call per group (<= 48 KB a group), each
//     thread copying and multiplying its own share of the groups in one parallel region (below
//     AVX512_CORE such f32 groups run as one dnnl_sgemm call each instead, in place). Batches
//     under 1 MFLOP run on the calling thread; under 4 MFLOP they do too for a second after one
//     of their regions stalled (small_batches_alone below);
//   - the rest: one cached primitive per distinct shape (onednn::matmul keys its cache by
//     problem). Groups are dealt to the OpenMP threads largest first (LPT) and run side by side
//     in one parallel region, each single-threaded (oneDNN runs single-threaded inside a
//     region); a group bigger than its share of the work runs alone on all threads first;
//   - Float32 / BFloat16 inputs run on oneDNN, anything else (Float64) on the reference kernel.
// No autograd and no validation here: the op has checked everything already.
#include <cstdint>
#include <optional>
#include <vector>

#include "../../core/dtype.hpp"
#include "../matmul_problem.hpp"

namespace gg::kernels {

// A 2-D matrix on raw memory: element (i, j) is at data + (i * row_stride + j * col_stride)
// elements. Slicing and transposing only change these numbers. `owner` identifies the allocation
// (the Storage): matrices of one owner at evenly spaced addresses are a batch that oneDNN can
// read in place; separate allocations never are (their spacing is the allocator's whim, and a
// batch stride taken from it would key a new primitive on every call).
struct MatRef {
  void* data = nullptr;
  int64_t rows = 0, cols = 0;
  int64_t row_stride = 0, col_stride = 0;
  Dtype dtype = kFloat32;
  const void* owner = nullptr;

  MatRef t() const { return {data, cols, rows, col_stride, row_stride, dtype, owner}; }
  MatRef row_range(int64_t begin, int64_t end) const;  // rows [begin, end)
  MatRef col_range(int64_t begin, int64_t end) const;  // columns [begin, end)
};

// dst = src @ wei (+ bias, a contiguous row of dst.cols elements), with the operands' owners.
struct GemmTask {
  MatmulProblem problem;
  const void* src = nullptr;
  const void* wei = nullptr;
  const void* bias = nullptr;
  void* dst = nullptr;
  const void *src_owner = nullptr, *wei_owner = nullptr, *bias_owner = nullptr,
             *dst_owner = nullptr;
};

// Appends the task for dst = src @ wei (+ bias, a 1 x dst.cols row with unit column stride) to
// `tasks`, unless dst is empty. An empty inner dimension (src.cols == 0) is kept: it writes the
// bias, or zeros.
void add_gemm(std::vector<GemmTask>& tasks, const MatRef& src, const MatRef& wei, const MatRef& dst,
              const std::optional<MatRef>& bias = std::nullopt);

// Runs every task (see the top of this file). Tasks must not write overlapping memory.
void run_gemm_tasks(const std::vector<GemmTask>& tasks);

// Small batches (under 4 MFLOP) of identical groups run on every thread while the machine is
// quiet. When one of their parallel regions waited over 1 ms for a thread (beyond the time its
// threads worked: a busy machine, where every fork/join waits a time slice for a descheduled
// thread), such batches run on the calling thread alone for the next second. These report and
// set that state (for tests); the kernel calls note_small_batch_region with each region's wait.
bool small_batches_alone();
void set_small_batches_alone(bool alone);
void note_small_batch_region(int64_t waited_ns);

// Whether oneDNN can read/write m as it is: one of its two strides is 1 (or the matrix is a
// single row or column) and rows do not overlap. Otherwise the op makes a contiguous copy.
bool gemm_ready(const MatRef& m);

// One column-sum job: dst[j * dst_stride] = sum over i of src(i, j) (zeros when src has no rows).
struct ColumnSumTask {
  MatRef src;
  void* dst = nullptr;
  int64_t dst_stride = 1;
  Dtype dst_dtype = kFloat32;
};
// Runs the jobs (in parallel across jobs and column blocks), accumulating in double.
void run_column_sums(const std::vector<ColumnSumTask>& tasks);

// Sets every element of m to zero.
void fill_zero(const MatRef& m);

}  // namespace gg::kernels
