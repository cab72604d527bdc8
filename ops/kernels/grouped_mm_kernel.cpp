#include "ops/kernels/grouped_mm_kernel.hpp"

#include <omp.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <span>

#include "core/parallel.hpp"
#include "core/strided.hpp"
#include "ops/kernels/matmul_kernel.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/matmul.hpp"
#include "ops/reference/matmul.hpp"

namespace gg::kernels {

namespace {

// Tasks of one class (identical problems, see same_problem).
using Tasks = std::span<const GemmTask* const>;

// A group runs alone on all threads when it is more than this times its share of the work;
// otherwise groups run side by side, one thread each (see run_balanced).
constexpr double kShareSlack = 1.1;
// Below AVX512_CORE f32 runs gemm:jit, which splits one big product over the threads better than
// the threads run separate products each (measured on an AVX2 EPYC, 2 threads, quiet machine: the
// moe forward, groups of 128-1024 x 512 x 1024, took 35.4 ms dealt to the threads one group each
// and 27.4 ms as one primitive per group on all threads). There a group of at least this many
// flops runs alone on all threads; smaller ones (the heads' 320 x 64 x 64, 2.6 MFLOP) are still
// dealt to the threads.
constexpr double kGemmJitAloneFlops = 32e6;
// What starting one more product costs, in flops of work, when dealing groups to threads.
constexpr double kJobOverheadFlops = 2e5;
// Identical small groups in separate allocations are copied into one batch when a group's
// operands take at most this many bytes (see run_as_one_batch).
constexpr double kCopyBytes = 48 * 1024;
// A batch of fewer flops runs on the calling thread alone, copies and primitive (OneThread): a
// fork/join costs ~2 us on a quiet machine. The tiny workload's batches (64 x 16x32x32, 2.1
// MFLOP) use both threads: 15.8 us forward as 3D x 3D on 2 threads of an AVX-512 EPYC against
// 25.2 on one (PyTorch 2.15's bmm: 23 on two).
constexpr double kOneThreadFlops = 1e6;
// Under load a region waits a time slice for a descheduled thread (load 9 on 2 cores: 409
// us/group for the tiny workload on 2 threads; load 2.3: 6.7 ms a forward call instead of 0.03).
// Batches under kSmallBatchFlops therefore watch their regions: one that waited longer than
// kStalledRegionNs for a thread (~30x a quiet region's whole time) sends such batches to one
// thread for kAloneForNs.
constexpr double kSmallBatchFlops = 4e6;
constexpr int64_t kStalledRegionNs = 1'000'000;
constexpr int64_t kAloneForNs = 1'000'000'000;
std::atomic<int64_t> small_batches_alone_until{0};  // steady-clock ns

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// Column sums are split into blocks of this many columns (the unit of parallel work).
constexpr int64_t kColumnBlock = 256;

char* at(void* base, int64_t elements, Dtype dtype) {
  return static_cast<char*>(base) + elements * static_cast<int64_t>(element_size(dtype));
}

// The strides oneDNN reads a size-1 dim with (see onednn::describe): strides of such dims address
// nothing, so canonical values let equal problems share a cache entry and merge into a batch.
void canonical_strides(int64_t rows, int64_t cols, int64_t& rs, int64_t& cs) {
  if (cols == 1) cs = 1;
  if (rows == 1) rs = cs == 1 ? cols : 1;
}

bool runs_on_onednn(const MatmulProblem& p) {
  return p.src_dtype == p.wei_dtype && (p.src_dtype == kFloat32 || p.src_dtype == kBFloat16) &&
         onednn::matmul_supported(p);
}

double flops(const MatmulProblem& p) {
  return 2.0 * static_cast<double>(p.batch) * static_cast<double>(p.M) * static_cast<double>(p.N) *
         static_cast<double>(p.K);
}

// Whether a group of this many flops runs best alone on all threads rather than dealt to one:
// below AVX512_CORE from kGemmJitAloneFlops up (gemm:jit splits one big product well).
bool alone_on_all_threads(double group_flops) {
  return !onednn::brgemm_isa() && group_flops >= kGemmJitAloneFlops;
}

void run(const GemmTask& t, bool onednn_ok) {
  if (onednn_ok) {
    kernels::matmul(t.problem, t.src, t.wei, t.bias, t.dst);
  } else {
    reference::matmul(t.problem, t.src, t.wei, t.bias, t.dst);
  }
}

// Runs `body(i)` for i < n on the OpenMP threads, one task at a time to whichever thread is free
// (tasks differ in size), rethrowing the first exception afterwards; a single task runs here.
template <class Body>
void for_each_dynamic(int64_t n, Body body) {
  if (n == 1) {
    body(0);
    return;
  }
  parallel_for(n, Schedule::kDynamic, body);
}

// Everything but the addresses (and the batch strides, meaningless for batch 1) is equal.
bool same_problem(const MatmulProblem& a, const MatmulProblem& b) {
  auto tail = [](const std::array<int64_t, 3>& s) { return std::array<int64_t, 2>{s[1], s[2]}; };
  return a.batch == 1 && b.batch == 1 && a.M == b.M && a.K == b.K && a.N == b.N &&
         a.src_dtype == b.src_dtype && a.wei_dtype == b.wei_dtype && a.dst_dtype == b.dst_dtype &&
         a.has_bias == b.has_bias && (!a.has_bias || a.bias_dtype == b.bias_dtype) &&
         a.accumulate == b.accumulate && tail(a.src_strides) == tail(b.src_strides) &&
         tail(a.wei_strides) == tail(b.wei_strides) && tail(a.dst_strides) == tail(b.dst_strides);
}

// The element stride s with ptr(i) == ptr(0) + i * s for every task, if there is one (>= 0).
template <class Get>
std::optional<int64_t> common_stride(Tasks tasks, Dtype dtype, Get get,
                                     const void* GemmTask::*owner) {
  const void* first_owner = tasks[0]->*owner;
  if (first_owner == nullptr) return std::nullopt;
  for (const GemmTask* t : tasks) {
    if (t->*owner != first_owner) return std::nullopt;
  }
  // Addresses as integers: the tasks' operands may live in unrelated allocations.
  auto address = [&](size_t i) {
    return static_cast<int64_t>(reinterpret_cast<uintptr_t>(get(*tasks[i])));
  };
  const int64_t step = address(1) - address(0);
  const auto elem = static_cast<int64_t>(element_size(dtype));
  if (step < 0 || step % elem != 0) return std::nullopt;
  for (size_t i = 2; i < tasks.size(); ++i) {
    if (address(i) - address(0) != static_cast<int64_t>(i) * step) return std::nullopt;
  }
  return step / elem;
}

// Where one operand of every task lies, as a batch: in place when the tasks' copies are equally
// spaced, else in a dense [G, rows, cols] block of scratch memory (same orientation).
struct BatchOperand {
  const void* data = nullptr;
  int64_t batch_stride = 0;
  std::array<int64_t, 2> strides{};  // row, column
  bool copied = false;
  size_t task_bytes = 0;  // one task's copy, when copied
};

// Bytes of scratch that `n` tasks' copies of an operand take (a multiple of 64: every slot
// starts on a cache line).
size_t scratch_bytes(const BatchOperand& op, size_t n) {
  return op.copied ? (op.task_bytes * n + 63) / 64 * 64 : 0;
}

// Copies a rows x cols matrix between two strided layouts: in one piece when both are dense in
// the same order, else row by row or column by column when both have the same unit stride.
void copy_matrix(const char* from, std::array<int64_t, 2> fs, char* to, std::array<int64_t, 2> ts,
                 int64_t rows, int64_t cols, int64_t elem) {
  if (rows == 0 || cols == 0) return;  // an empty operand may have a null address (memcpy UB)
  if (fs == ts && ((fs[1] == 1 && fs[0] == cols) || (fs[0] == 1 && fs[1] == rows))) {
    std::memcpy(to, from, static_cast<size_t>(rows * cols * elem));  // both dense, same order
  } else if (fs[1] == 1 && ts[1] == 1) {
    for (int64_t i = 0; i < rows; ++i)
      std::memcpy(to + i * ts[0] * elem, from + i * fs[0] * elem, static_cast<size_t>(cols * elem));
  } else if (fs[0] == 1 && ts[0] == 1) {
    for (int64_t j = 0; j < cols; ++j)
      std::memcpy(to + j * ts[1] * elem, from + j * fs[1] * elem, static_cast<size_t>(rows * elem));
  } else {
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        std::memcpy(to + (i * ts[0] + j * ts[1]) * elem, from + (i * fs[0] + j * fs[1]) * elem,
                    static_cast<size_t>(elem));
  }
}

// Plans operand `get` of every task (a rows x cols matrix with the given strides) as a batch,
// reserving scratch bytes when it has to be copied. A batch stride of 0 (every task reads the same
// matrix, e.g. one input for several models) is fine for inputs, not for dst.
template <class Get>
BatchOperand plan_operand(Tasks tasks, Dtype dtype, int64_t rows, int64_t cols,
                          std::array<int64_t, 3> strides, bool is_dst, Get get,
                          const void* GemmTask::*owner, size_t& scratch) {
  BatchOperand op;
  op.strides = {strides[1], strides[2]};
  if (auto step = common_stride(tasks, dtype, get, owner); step && (*step != 0 || !is_dst)) {
    op.data = get(*tasks[0]);
    op.batch_stride = *step;
    return op;
  }
  op.copied = true;
  op.strides = strides[2] == 1 ? std::array<int64_t, 2>{cols, 1} : std::array<int64_t, 2>{1, rows};
  op.batch_stride = rows * cols;
  op.task_bytes = static_cast<size_t>(rows * cols) * element_size(dtype);
  scratch += scratch_bytes(op, tasks.size());
  return op;
}

// Copies of the operands for packed batches, reused per thread, on a cache-line boundary (the
// operand slots are multiples of 64 bytes apart, so every copy starts aligned).
char* scratch_buffer(size_t bytes) {
  constexpr size_t kAlign = 64;
  thread_local std::vector<char> buffer;
  if (buffer.size() < bytes + kAlign) buffer.resize(bytes + kAlign);
  const auto address = reinterpret_cast<uintptr_t>(buffer.data());
  return buffer.data() + (kAlign - address % kAlign) % kAlign;
}

// Runs body(part) for each part < parts, on `parts` threads, one part each. A small batch's region
// (`watch`) is timed: its time beyond the longest part was spent waiting for a thread, which
// note_small_batch_region judges (a long part, e.g. a first call JIT-compiling, is no stall).
template <class Body>
void run_parts(size_t parts, bool watch, Body body) {
  thread_local std::vector<int64_t> busy_of_this_thread;
  std::vector<int64_t>& busy = busy_of_this_thread;  // the caller's (in the region too)
  busy.assign(parts, 0);
  const int64_t start = watch ? now_ns() : 0;
  parallel_for(
      static_cast<int64_t>(parts), Schedule::kStatic,
      [&](int64_t part) {
        const int64_t from = watch ? now_ns() : 0;
        body(static_cast<size_t>(part));
        if (watch) busy[static_cast<size_t>(part)] = now_ns() - from;
      },
      static_cast<int>(parts));
  if (watch)
    note_small_batch_region(now_ns() - start - *std::max_element(busy.begin(), busy.end()));
}

// Runs identical tasks as ONE batched oneDNN problem: directly when their operands are equally
// spaced in memory (3D x 3D, equal groups of a packed layout, list tensors cut from one buffer),
// or -- when `allow_copies` -- after copying the scattered ones into a batch (small list groups
// in separate allocations: two memcpys per group cost less than a primitive call per group).
// Returns false, having done nothing, when the tasks are not like that.
bool run_as_one_batch(Tasks tasks, bool allow_copies) {
  if (tasks.size() < 2) return false;
  const MatmulProblem& first = tasks[0]->problem;
  if (!runs_on_onednn(first) || first.accumulate) return false;
  size_t scratch = 0;
  const BatchOperand src = plan_operand(
      tasks, first.src_dtype, first.M, first.K, first.src_strides, false,
      [](const GemmTask& t) { return t.src; }, &GemmTask::src_owner, scratch);
  const BatchOperand wei = plan_operand(
      tasks, first.wei_dtype, first.K, first.N, first.wei_strides, false,
      [](const GemmTask& t) { return t.wei; }, &GemmTask::wei_owner, scratch);
  const BatchOperand dst = plan_operand(
      tasks, first.dst_dtype, first.M, first.N, first.dst_strides, true,
      [](const GemmTask& t) -> const void* { return t.dst; }, &GemmTask::dst_owner, scratch);
  BatchOperand bias;
  if (first.has_bias) {
    bias = plan_operand(
        tasks, first.bias_dtype, 1, first.N, {0, first.N, 1}, false,
        [](const GemmTask& t) { return t.bias; }, &GemmTask::bias_owner, scratch);
  }
  if (scratch > 0 && !allow_copies) return false;

  MatmulProblem p = first;
  p.batch = static_cast<int64_t>(tasks.size());
  p.src_strides = {src.batch_stride, src.strides[0], src.strides[1]};
  p.wei_strides = {wei.batch_stride, wei.strides[0], wei.strides[1]};
  p.dst_strides = {dst.batch_stride, dst.strides[0], dst.strides[1]};
  p.bias_batch_stride = bias.batch_stride;
  if (!runs_on_onednn(p)) return false;

  // Runs tasks [begin, end) as one batch: copies the scattered operands into this thread's
  // scratch, runs the primitive, scatters the results.
  auto run_slice = [&](size_t begin, size_t end) {
    const auto n = static_cast<int64_t>(end - begin);
    // The copied operands' blocks in this thread's scratch, one after the other.
    const size_t src_at = 0, wei_at = src_at + scratch_bytes(src, end - begin),
                 dst_at = wei_at + scratch_bytes(wei, end - begin),
                 bias_at = dst_at + scratch_bytes(dst, end - begin),
                 bytes = bias_at + scratch_bytes(bias, end - begin);
    char* base = bytes > 0 ? scratch_buffer(bytes) : nullptr;
    // Where operand `op` (whose copies start at byte `at`) of task i lies.
    auto slot_of = [&](const BatchOperand& op, size_t at, Dtype dtype, size_t i) -> char* {
      const auto elem = static_cast<int64_t>(element_size(dtype));
      if (op.copied) return base + at + (i - begin) * op.task_bytes;
      return static_cast<char*>(const_cast<void*>(op.data)) +
             static_cast<int64_t>(i) * op.batch_stride * elem;
    };
    auto copy_in = [&](size_t i, const BatchOperand& op, size_t at, Dtype dtype, int64_t rows,
                       int64_t cols, const std::array<int64_t, 3>& strides, const void* from) {
      if (!op.copied) return;
      const auto elem = static_cast<int64_t>(element_size(dtype));
      copy_matrix(static_cast<const char*>(from), {strides[1], strides[2]},
                  slot_of(op, at, dtype, i), op.strides, rows, cols, elem);
    };
    for (size_t i = begin; i < end; ++i) {
      const GemmTask& t = *tasks[i];
      copy_in(i, src, src_at, first.src_dtype, first.M, first.K, first.src_strides, t.src);
      copy_in(i, wei, wei_at, first.wei_dtype, first.K, first.N, first.wei_strides, t.wei);
      if (first.has_bias)
        copy_in(i, bias, bias_at, first.bias_dtype, 1, first.N, {0, first.N, 1}, t.bias);
    }
    MatmulProblem slice = p;
    slice.batch = n;
    kernels::matmul(slice, slot_of(src, src_at, first.src_dtype, begin),
                    slot_of(wei, wei_at, first.wei_dtype, begin),
                    first.has_bias ? slot_of(bias, bias_at, first.bias_dtype, begin) : nullptr,
                    slot_of(dst, dst_at, first.dst_dtype, begin));
    if (dst.copied) {  // scatter the results to where each task wants them
      const auto elem = static_cast<int64_t>(element_size(first.dst_dtype));
      for (size_t i = begin; i < end; ++i)
        copy_matrix(slot_of(dst, dst_at, first.dst_dtype, i), dst.strides,
                    static_cast<char*>(tasks[i]->dst), {first.dst_strides[1], first.dst_strides[2]},
                    first.M, first.N, elem);
    }
  };
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  const bool small = flops(p) < kSmallBatchFlops;
  if (flops(p) < kOneThreadFlops || threads == 1 || (small && small_batches_alone())) {
    const OneThread one_thread(true);  // on this thread alone
    run_slice(0, tasks.size());
    return true;
  }
  // In place, the batch also runs as one share per thread when the shares come out even (within
  // 25%) and each group is small enough to run on one thread (kGemmJitAloneFlops below
  // AVX512_CORE): oneDNN's own split of the batched primitive over the threads was slower (the
  // heads workload as 3D x 3D, 8 x 320x64x64 on 2 threads of an AVX-512 EPYC: 0.138 ms, as 4
  // groups per thread 0.101). Otherwise one primitive on all threads.
  const auto n = static_cast<double>(tasks.size());
  const double per_thread = std::ceil(n / threads);
  const bool even = n >= threads && per_thread <= 1.25 * n / threads;
  if (scratch == 0 && !small && !(even && !alone_on_all_threads(flops(p) / n))) {
    run_slice(0, tasks.size());
    return true;
  }
  // Each thread copies (if it must) and multiplies a contiguous share of the groups, in its own
  // scratch (its primitive runs single-threaded inside the region): one fork/join in all, and the
  // copies still in its cache when its primitive reads them.
  const size_t parts = std::min(tasks.size(), static_cast<size_t>(threads));
  const size_t share = tasks.size() / parts, extra = tasks.size() % parts;
  run_parts(parts, small, [&](size_t u) {
    const size_t begin = u * share + std::min(u, extra);
    run_slice(begin, begin + share + (u < extra ? 1 : 0));
  });
  return true;
}

// Whether copying one task's operands costs less than running it as its own primitive call.
bool cheap_to_copy(const MatmulProblem& p) {
  const double bytes = static_cast<double>(p.M * p.K + p.K * p.N + p.M * p.N) *
                       static_cast<double>(element_size(p.src_dtype));
  return bytes <= kCopyBytes;
}

// One task left to run on its own, with what it costs.
struct Job {
  const GemmTask* task;
  bool onednn_ok;
  double flops;
};

// Runs the jobs on the OpenMP threads with as few fork/joins as possible. A job bigger than its
// share of the work (> kShareSlack x total / threads) runs alone on all threads (oneDNN splits
// it); the others are dealt to the threads largest first, each to the least loaded thread (LPT),
// and run in ONE parallel region, each single-threaded. (The MoE groups 1024..128 x 512 x 1024
// split into two equal halves this way: one fork/join instead of one per group.)
void run_balanced(std::vector<Job>& jobs) {
  if (jobs.empty()) return;
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.flops > b.flops; });
  const int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
  double total = 0;
  for (const Job& j : jobs) total += j.flops;
  size_t first = 0;
  if (threads > 1) {
    for (; first < jobs.size(); ++first) {
      const Job& j = jobs[first];
      if (!j.onednn_ok ||
          (j.flops <= kShareSlack * total / threads && !alone_on_all_threads(j.flops)))
        break;
      run(*j.task, true);  // on all threads
      total -= j.flops;
    }
  }
  if (first == jobs.size()) return;
  // Small work (dnnl_sgemm groups below AVX512_CORE) as small batches are run: on this thread
  // alone under kOneThreadFlops or while small batches stay alone, else watched for stalls.
  const bool small = total < kSmallBatchFlops;
  const bool alone = small && (total < kOneThreadFlops || small_batches_alone());
  if (threads == 1 || jobs.size() - first == 1 || alone) {
    const OneThread one_thread(alone);
    for (size_t i = first; i < jobs.size(); ++i) run(*jobs[i].task, jobs[i].onednn_ok);
    return;
  }
  std::vector<std::vector<const Job*>> bins(static_cast<size_t>(threads));
  std::vector<double> load(static_cast<size_t>(threads), 0.0);
  for (size_t i = first; i < jobs.size(); ++i) {
    const size_t t = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    bins[t].push_back(&jobs[i]);
    load[t] += jobs[i].flops + kJobOverheadFlops;
  }
  run_parts(static_cast<size_t>(threads), small, [&](size_t t) {
    for (const Job* j : bins[t]) run(*j->task, j->onednn_ok);
  });
}

}  // namespace

MatRef MatRef::row_range(int64_t begin, int64_t end) const {
  return {
      at(data, begin * row_stride, dtype), end - begin, cols, row_stride, col_stride, dtype, owner};
}

MatRef MatRef::col_range(int64_t begin, int64_t end) const {
  return {
      at(data, begin * col_stride, dtype), rows, end - begin, row_stride, col_stride, dtype, owner};
}

bool small_batches_alone() {
  return now_ns() < small_batches_alone_until.load(std::memory_order_relaxed);
}

void set_small_batches_alone(bool alone) {
  small_batches_alone_until.store(alone ? now_ns() + kAloneForNs : 0, std::memory_order_relaxed);
}

void note_small_batch_region(int64_t waited_ns) {
  if (waited_ns > kStalledRegionNs) set_small_batches_alone(true);
}

bool gemm_ready(const MatRef& m) {
  if (m.rows == 0 || m.cols == 0) return true;
  int64_t rs = m.row_stride, cs = m.col_stride;
  canonical_strides(m.rows, m.cols, rs, cs);
  return (cs == 1 && rs >= m.cols) || (rs == 1 && cs >= m.rows);
}

void add_gemm(std::vector<GemmTask>& tasks, const MatRef& src, const MatRef& wei, const MatRef& dst,
              const std::optional<MatRef>& bias) {
  if (dst.rows == 0 || dst.cols == 0) return;
  GemmTask& t = tasks.emplace_back();  // filled in place: a task is ~200 bytes
  MatmulProblem& p = t.problem;
  p.M = dst.rows;
  p.K = src.cols;
  p.N = dst.cols;
  p.src_dtype = src.dtype;
  p.wei_dtype = wei.dtype;
  p.dst_dtype = dst.dtype;
  auto strides = [](const MatRef& m) {
    int64_t rs = m.row_stride, cs = m.col_stride;
    canonical_strides(m.rows, m.cols, rs, cs);
    return std::array<int64_t, 3>{0, rs, cs};
  };
  p.src_strides = strides(src);
  p.wei_strides = strides(wei);
  p.dst_strides = strides(dst);
  p.has_bias = bias.has_value();
  t.src = src.data;
  t.wei = wei.data;
  t.dst = dst.data;
  t.src_owner = src.owner;
  t.wei_owner = wei.owner;
  t.dst_owner = dst.owner;
  if (bias) {
    p.bias_dtype = bias->dtype;
    t.bias = bias->data;
    t.bias_owner = bias->owner;
  }
}

void run_gemm_tasks(const std::vector<GemmTask>& tasks) {
  if (tasks.empty()) return;
  // Tasks with identical problems (in order of first appearance) may run as one batch each.
  // The lists are per thread and keep their capacity: a call allocates nothing here.
  thread_local std::vector<std::vector<const GemmTask*>> classes;
  thread_local std::vector<Job> rest;
  size_t used = 0;  // classes[0, used) are this call's
  for (const GemmTask& t : tasks) {
    size_t c = 0;
    while (c < used && !same_problem(classes[c].front()->problem, t.problem)) ++c;
    if (c == used) {
      if (used == classes.size()) classes.emplace_back();
      classes[used++].clear();
    }
    classes[c].push_back(&t);
  }
  rest.clear();
  for (size_t c = 0; c < used; ++c) {
    const std::vector<const GemmTask*>& members = classes[c];
    const MatmulProblem& problem = members.front()->problem;
    // Below AVX512_CORE small f32 products in separate allocations run as one dnnl_sgemm each,
    // in place, rather than copied into a batch (AMD EPYC as AVX2, one thread: 64 x 16x32x32
    // took 31 us as bare sgemm calls, 42 as one batched gemm:jit primitive plus ~19 us of
    // copies); a batch that needs no copies still runs as one primitive.
    const bool per_task = onednn::runs_on_sgemm(problem);
    if (run_as_one_batch(members, cheap_to_copy(problem) && !per_task)) continue;
    const bool onednn_ok = runs_on_onednn(problem);  // the same for the whole class
    for (const GemmTask* t : members) rest.push_back({t, onednn_ok, flops(t->problem)});
  }
  run_balanced(rest);
}

void run_column_sums(const std::vector<ColumnSumTask>& tasks) {
  struct Block {
    const ColumnSumTask* task;
    int64_t begin, end;
  };
  std::vector<Block> blocks;
  int64_t elements = 0;
  for (const ColumnSumTask& t : tasks) {
    for (int64_t j = 0; j < t.src.cols; j += kColumnBlock)
      blocks.push_back({&t, j, std::min(j + kColumnBlock, t.src.cols)});
    elements += t.src.rows * t.src.cols;
  }
  auto body = [&](int64_t b) {
    const Block& block = blocks[b];
    const MatRef& s = block.task->src;
    const int64_t n = block.end - block.begin;
    std::array<double, kColumnBlock> acc{};
    dispatch(s.dtype, [&]<class T>() {
      const T* base = static_cast<const T*>(s.data) + block.begin * s.col_stride;
      for (int64_t i = 0; i < s.rows; ++i) {
        const T* row = base + i * s.row_stride;
        if (s.col_stride == 1) {
          for (int64_t j = 0; j < n; ++j) acc[j] += convert<double>(row[j]);
        } else {
          for (int64_t j = 0; j < n; ++j) acc[j] += convert<double>(row[j * s.col_stride]);
        }
      }
    });
    dispatch(block.task->dst_dtype, [&]<class T>() {
      T* out = static_cast<T*>(block.task->dst) + block.begin * block.task->dst_stride;
      for (int64_t j = 0; j < n; ++j) out[j * block.task->dst_stride] = convert<T>(acc[j]);
    });
  };
  const auto n = static_cast<int64_t>(blocks.size());
  if (n == 0) return;
  if (elements < (int64_t{1} << 16)) {
    for (int64_t b = 0; b < n; ++b) body(b);
  } else {
    for_each_dynamic(n, body);
  }
}

void fill_zero(const MatRef& m) {
  if (m.rows == 0 || m.cols == 0) return;
  const auto elem = static_cast<int64_t>(element_size(m.dtype));
  // Every dtype's zero is all zero bits.
  for (int64_t i = 0; i < m.rows; ++i) {
    char* row = at(m.data, i * m.row_stride, m.dtype);
    if (m.col_stride == 1) {
      std::memset(row, 0, static_cast<size_t>(m.cols * elem));
    } else {
      for (int64_t j = 0; j < m.cols; ++j)
        std::memset(row + j * m.col_stride * elem, 0, static_cast<size_t>(elem));
    }
  }
}

}  // namespace gg::kernels
