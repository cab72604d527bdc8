#include "ops/onednn/matmul.hpp"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <unordered_map>
#include <vector>

#include "core/error.hpp"
#include "core/parallel.hpp"
#include "ops/onednn/context.hpp"

// What oneDNN 2.6.3 does with these problems on this machine (2 cores, avx512_core with
// avx512_bf16; implementations from DNNL_VERBOSE=1; GFLOPS are wall-clock on 2 threads, and in
// brackets per core from CPU time with OMP_NUM_THREADS=1, which stays valid on a busy machine):
//   M=1024 K=512 N=1024  f32   brg:avx512_core       ~205 GFLOPS [100] (the machine's f32 peak)
//                        bf16  brg:avx512_core_bf16  ~440 GFLOPS [204]; bf16 -> f32 dst [190]
//   A transposed src or wei (layout acb) stays on brg at the same speed (within 2%).
//   f32 -> bf16 dst (f32 result, then the reorder below): ~3% slower than f32 -> f32.
//   Per-batch bias as a binary-add post-op: ~6% slower at 8 x 512x512x1024, ~18% at 8 x 320x64x64.
//   Batched 64 x 16x32x32: ~165 GFLOPS as one primitive, ~16 as 64 calls; one 16x32x32 call
//   costs ~1.0 us (the bare primitive execute ~0.6 us).
//   Layouts that are plain but not dense -- rows with a leading dimension larger than the row
//   (column slices), batch strides with gaps, heads interleaved as [M, batch, K] -- go to
//   gemm:jit, within ~10% of brg for large problems (~10-20% slower for 8 x 320x64x64).
//   A stride-0 (broadcast) batch dim, a column-major dst, a per-batch bias given as the bias
//   argument ([batch, 1, N], batch > 1), a dim with stride 0 and strides without a unit stride
//   all go to ref:any, ~800 times slower than brg (0.12 GFLOPS a core at 256^3; our plain
//   reference::matmul does 6). Hence the rewrites below: broadcast batches become batch dims of
//   1 (which brg broadcasts itself), a column-major dst is computed as dst^T = wei^T @ src^T, a
//   per-batch bias is a binary-add post-op, and what is left for ref:any runs the caller's fallback
//   (reference::matmul).
//   Zero-sized dims: M, N or K == 0 give ref:any and batch == 0 is rejected; we never pass them.
//   Inside an OpenMP parallel region (libgomp, the runtime oneDNN is built with here) a primitive
//   runs single-threaded in the calling thread, correctly, whatever thread count it was built
//   with; a primitive built inside a region still runs on all threads outside it.

namespace gg::onednn {

namespace {

using dnnl::memory;
using Dims = memory::dims;

// One operand as a [batch, rows, cols] matrix stack with element strides (before oneDNN).
struct Operand {
  int64_t batch, rows, cols;
  std::array<int64_t, 3> strides;

  Operand transposed() const { return {batch, cols, rows, {strides[0], strides[2], strides[1]}}; }
};

// The oneDNN memory descriptor of an operand. A broadcast batch (stride 0) becomes a batch dim
// of 1, which oneDNN broadcasts itself with its fast kernels (a stride-0 dim sends it to
// ref:any). Strides of size-1 dims address nothing, but oneDNN reads the layout from them, so
// they get the values a plain row-major (or, for a strided row, column-major) layout has.
// `flat`: a problem of batch 1 is posed as 2-D: gemm:jit (f32 below AVX512_CORE) runs a 3-D
// problem of batch 1 with its batched driver, ~15% slower than the 2-D one for the moe groups
// (ONEDNN_VERBOSE: 1x768x512 vs 768x512 on an AVX2 EPYC).
memory::desc describe(const Operand& op, Dtype dtype, bool flat = false) {
  auto s = op.strides;
  if (op.cols == 1) s[2] = 1;
  if (op.rows == 1) s[1] = s[2] == 1 ? op.cols : 1;
  if (flat) return memory::desc(Dims{op.rows, op.cols}, to_dnnl(dtype), Dims{s[1], s[2]});
  const bool broadcast = op.batch == 1 || s[0] == 0;
  if (broadcast) s[0] = std::max(op.rows * s[1], op.cols * s[2]);
  return memory::desc(Dims{broadcast ? 1 : op.batch, op.rows, op.cols}, to_dnnl(dtype),
                      Dims{s[0], s[1], s[2]});
}

// Whether oneDNN accepts the strides of an operand: it refuses overlapping ones, e.g. a [3, 4]
// view with strides [2, 1]. Its rule (memory_desc_strides_check), which this matches exactly on
// 4 million random 3-D layouts: ignoring size-1 dims, sorted by (stride, size), each stride is
// at least the previous stride times the previous size. Stride 0 passes. Building a
// memory::desc to find out costs ~0.1 us per operand; this is for matmul_supported's hot path.
bool describable(const Operand& op) {
  const std::array<int64_t, 3> size{op.batch, op.rows, op.cols};
  const auto& stride = op.strides;
  std::array<int, 3> order{};
  int n = 0;
  for (int d = 0; d < 3; ++d) {
    if (size[d] > 1) order[n++] = d;
  }
  auto before = [&](int a, int b) {
    return stride[a] < stride[b] || (stride[a] == stride[b] && size[a] < size[b]);
  };
  for (int i = 1; i < n; ++i) {  // insertion sort of at most 3 dims
    for (int j = i; j > 0 && before(order[j], order[j - 1]); --j) std::swap(order[j], order[j - 1]);
  }
  for (int i = 1; i < n; ++i) {
    if (stride[order[i]] < stride[order[i - 1]] * size[order[i - 1]]) return false;
  }
  return true;
}

bool is_compute_dtype(Dtype d) { return d == kFloat32 || d == kBFloat16; }
// Dtypes a reorder writes from f32 (when the matmul cannot write them itself).
bool is_dst_dtype(Dtype d) {
  return d == kFloat32 || d == kBFloat16 || d == kFloat16 || d == kInt8 || d == kInt32;
}
// The dst dtypes oneDNN's matmul writes itself for these inputs (measured, see matmul.hpp).
bool writes_natively(const MatmulProblem& p) {
  return p.dst_dtype == kFloat32 || (p.dst_dtype == kBFloat16 && p.src_dtype == kBFloat16);
}

// Everything needed to run one problem: built once per distinct problem, then shared by all
// threads (executions only read it; scratchpads and temporaries are per thread).
struct Plan {
  dnnl::matmul matmul;
  memory::desc src_md, wei_md, dst_md, bias_md, scratchpad_md;
  int bias_arg = 0;      // DNNL_ARG_BIAS or the binary post-op's src1; 0 without bias
  bool swapped = false;  // runs dst^T = wei^T @ src^T: oneDNN's src is our wei and vice versa
  // > 1: a batch-1 primitive runs once per batch, every operand moving by its batch stride.
  int64_t runs = 1;
  // The bias post-op reads a dense [batch, 1, N] copy of a bias whose batch stride is not N.
  bool dense_bias = false;
  // Set when the matmul cannot write dst's dtype: it writes f32 into a per-thread buffer
  // (dst_md), and this reorder (with a sum post-op when accumulating) converts into final_md.
  std::optional<dnnl::reorder> convert;
  memory::desc final_md, convert_scratchpad_md;
  std::string implementation;
  // oneDNN offers only ref:any (~0.12 GFLOPS a core, measured): the caller's fallback
  // (reference::matmul, a plain loop, ~6 GFLOPS a core) runs the problem instead, and nothing
  // above is set.
  bool use_reference = false;
};

// One way of posing the problem to oneDNN; build_plan tries them in order.
struct Variant {
  bool per_batch_runs;   // one execution per batch (so that a per-batch bias is shared)
  bool swapped;          // dst^T = wei^T @ src^T, for a column-major dst
  bool bias_as_post_op;  // the bias is a binary-add post-op rather than the bias argument
};

// The first implementation oneDNN offers for this matmul that we trust with it: a bias post-op
// only runs correctly in brg and ref:any (see build_plan).
std::optional<dnnl::matmul::primitive_desc> try_build(
    const memory::desc& src, const memory::desc& wei, const memory::desc& bias,
    const memory::desc& dst, const dnnl::post_ops& post_ops, bool bias_post_op) {
  try {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    attr.set_post_ops(post_ops);
    auto desc = bias.is_zero() ? dnnl::matmul::desc(src, wei, dst)
                               : dnnl::matmul::desc(src, wei, bias, dst);
    dnnl::matmul::primitive_desc pd(desc, attr, engine());
    do {
      const std::string impl = pd.impl_info_str();
      if (!bias_post_op || impl.starts_with("brg") || impl.starts_with("ref")) return pd;
    } while (pd.next_impl());
  } catch (const dnnl::error&) {
  }
  return std::nullopt;
}

// Poses the problem to oneDNN in the variants that can be right for it, best first, and keeps
// the first that oneDNN runs with a fast kernel it runs correctly; if it only has ref:any, the
// plan is to run the caller's fallback (reference::matmul).
// Bugs in oneDNN 2.6.3 found by tests/test_matmul_kernel.cpp that this steers around:
//  - brg reads a binary post-op's src1 as dense, whatever its batch stride says: a per-batch
//    bias with batch stride != N is copied to a dense buffer first.
//  - gemm:jit applies a per-batch ([batch, 1, N]) binary post-op at the wrong place when dst
//    is not dense, and crashes for some dst layouts (heads interleaved as [M, batch, N]); so a
//    bias post-op is only used with brg or ref:any (try_build skips to the next implementation),
//    and gemm:jit gets the bias argument, one execution per batch when it differs per batch.
Plan build_plan(const MatmulProblem& p) {
  const bool native = writes_natively(p);
  const Dtype result_dtype = native ? p.dst_dtype : kFloat32;
  const bool per_batch_bias = p.has_bias && p.batch > 1 && p.bias_batch_stride != 0;
  // oneDNN takes dst's batch from src or wei: with both broadcast, one execution per batch.
  const bool both_broadcast = p.batch > 1 && p.src_strides[0] == 0 && p.wei_strides[0] == 0;
  auto dst_operand = [&](int64_t batch) {
    return native ? Operand{batch, p.M, p.N, p.dst_strides}
                  : Operand{batch, p.M, p.N, {p.M * p.N, p.N, 1}};  // the f32 buffer
  };
  const bool dst_row_major =
      describe(dst_operand(p.batch), result_dtype).data.format_desc.blocking.strides[2] == 1;

  std::vector<Variant> variants;
  for (bool runs : {false, true}) {
    if (runs != both_broadcast && !(runs && per_batch_bias)) continue;
    const bool shared_bias = runs || !per_batch_bias;
    for (bool swapped : {false, true}) {
      if (swapped && (dst_row_major || !native)) continue;
      // The bias argument is [1, 1, N]: a per-batch or (swapped) per-row bias is a post-op.
      if (p.has_bias && shared_bias && !swapped) variants.push_back({runs, swapped, false});
      variants.push_back({runs, swapped, p.has_bias});
    }
  }

  Plan plan;
  std::optional<dnnl::matmul::primitive_desc> chosen;
  bool chosen_is_reference = false;
  for (const Variant& v : variants) {
    const int64_t batch = v.per_batch_runs ? 1 : p.batch;
    const Operand src{batch, p.M, p.K, p.src_strides}, wei{batch, p.K, p.N, p.wei_strides};
    const Operand dst = dst_operand(batch);
    // brg refuses a per-row ({N, 1}) binary post-op on 2D descriptors but takes it in 3D.
    const bool flat = batch == 1 && !(v.swapped && v.bias_as_post_op);
    memory::desc src_md = v.swapped ? describe(wei.transposed(), p.wei_dtype, flat)
                                    : describe(src, p.src_dtype, flat);
    memory::desc wei_md = v.swapped ? describe(src.transposed(), p.src_dtype, flat)
                                    : describe(wei, p.wei_dtype, flat);
    memory::desc dst_md = describe(v.swapped ? dst.transposed() : dst, result_dtype, flat);
    memory::desc bias_md;
    dnnl::post_ops post_ops;
    if (p.has_bias) {
      const int64_t bias_batch = per_batch_bias && !v.per_batch_runs ? p.batch : 1;
      const auto bias_type = to_dnnl(p.bias_dtype);
      if (flat) {  // (bias_batch is 1 then)
        bias_md = v.bias_as_post_op && v.swapped ? memory::desc({p.N, 1}, bias_type, Dims{1, 1})
                                                 : memory::desc({1, p.N}, bias_type, Dims{p.N, 1});
      } else {
        bias_md = !v.bias_as_post_op ? memory::desc({1, 1, p.N}, bias_type, Dims{p.N, p.N, 1})
                  : v.swapped ? memory::desc({bias_batch, p.N, 1}, bias_type, Dims{p.N, 1, 1})
                              : memory::desc({bias_batch, 1, p.N}, bias_type, Dims{p.N, p.N, 1});
      }
      if (v.bias_as_post_op) post_ops.append_binary(dnnl::algorithm::binary_add, bias_md);
    }
    if (p.accumulate && native) post_ops.append_sum(1.f);
    auto pd = try_build(src_md, wei_md, v.bias_as_post_op ? memory::desc() : bias_md, dst_md,
                        post_ops, v.bias_as_post_op);
    if (!pd) continue;
    const bool reference = std::string(pd->impl_info_str()).starts_with("ref");
    if (!chosen || (chosen_is_reference && !reference)) {
      chosen = pd;
      chosen_is_reference = reference;
      plan.src_md = src_md;
      plan.wei_md = wei_md;
      plan.dst_md = dst_md;
      plan.bias_md = bias_md;
      plan.swapped = v.swapped;
      plan.runs = v.per_batch_runs ? p.batch : 1;
      plan.dense_bias =
          v.bias_as_post_op && per_batch_bias && !v.per_batch_runs && p.bias_batch_stride != p.N;
      plan.bias_arg = !p.has_bias         ? 0
                      : v.bias_as_post_op ? DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1
                                          : DNNL_ARG_BIAS;
    }
    if (!reference) break;
  }
  GG_CHECK(chosen, "[matmul] oneDNN has no implementation for {}", to_string(p));
  if (chosen_is_reference) {
    Plan reference;
    reference.use_reference = true;
    reference.implementation = "reference (oneDNN offers only ref:any)";
    return reference;
  }
  plan.matmul = dnnl::matmul(*chosen);
  plan.scratchpad_md = chosen->scratchpad_desc();
  plan.implementation = chosen->impl_info_str();
  if (plan.runs > 1) plan.implementation += " (one execution per batch)";

  if (!native) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (p.accumulate) {
      dnnl::post_ops sum;
      sum.append_sum(1.f);
      attr.set_post_ops(sum);
    }
    const int64_t batch = plan.runs > 1 ? 1 : p.batch;
    plan.final_md = describe({batch, p.M, p.N, p.dst_strides}, p.dst_dtype, batch == 1);
    dnnl::reorder::primitive_desc pd(engine(), plan.dst_md, engine(), plan.final_md, attr);
    plan.convert = dnnl::reorder(pd);
    plan.convert_scratchpad_md = pd.scratchpad_desc();
    plan.implementation += std::string(" + reorder ") + pd.impl_info_str();
  }
  return plan;
}

constexpr int64_t kMatmulTag = 0x4d41544d;  // "MATM"

// Every field that changes the primitive, as raw bytes (no formatting on the hot path), with
// the fields that cannot matter zeroed so that equivalent problems share an entry. (KeyBuilder
// adds the thread count: oneDNN's kernels are blocked for the threads they will use.) Valid until
// this thread builds its next key.
const std::string& cache_key(const MatmulProblem& p) {
  const bool batched = p.batch > 1;
  KeyBuilder key(kMatmulTag);
  key.add(std::array<int64_t, 19>{
      p.batch, p.M, p.K, p.N, static_cast<int64_t>(p.src_dtype), static_cast<int64_t>(p.wei_dtype),
      static_cast<int64_t>(p.dst_dtype), p.has_bias ? static_cast<int64_t>(p.bias_dtype) : -1,
      batched ? p.src_strides[0] : 0, p.src_strides[1], p.src_strides[2],
      batched ? p.wei_strides[0] : 0, p.wei_strides[1], p.wei_strides[2],
      batched ? p.dst_strides[0] : 0, p.dst_strides[1], p.dst_strides[2],
      p.has_bias && batched ? p.bias_batch_stride : 0, p.accumulate});
  return key.str();
}

std::shared_ptr<const Plan> find_plan(const MatmulProblem& p) {
  return cached(cache_key(p), [&] {
    try {
      return build_plan(p);
    } catch (const dnnl::error& e) {
      fail("[matmul] oneDNN rejected {}: {}", to_string(p), e.what());
    }
  });
}

// Per-thread temporaries: the f32 result of problems whose dst dtype oneDNN's matmul cannot
// write, and dense copies of strided per-batch biases. They grow to the largest problem seen.
// (And the Float32 copies of the operands of a bf16 problem computed through f32, and the padded
// copies of weights, see pads_weights.)
enum ThreadBuffer {
  kResultBuffer,
  kBiasBuffer,
  kSrc32,
  kWei32,
  kBias32,
  kDst32,
  kPaddedWei,
  kBuffers
};
void* thread_buffer(ThreadBuffer which, size_t bytes) {
  thread_local std::vector<double> buffers[kBuffers];  // double: aligned for every dtype
  auto& buffer = buffers[which];
  if (buffer.size() * sizeof(double) < bytes)
    buffer.resize((bytes + sizeof(double) - 1) / sizeof(double));
  return buffer.data();
}

// A plan's memory objects and argument maps for one thread, re-pointed with set_data_handle
// on every call: creating the dnnl::memory objects anew costs ~0.2 us each, which is more than
// a 16x32x32 matmul takes (measured: 1.7 us per call with fresh objects, 0.6 us for the bare
// execute). The scratchpads are bound the same way, to the thread's scratchpad buffer.
struct Bound {
  std::shared_ptr<const Plan> plan;  // held: an eviction from the shared cache cannot free it
  memory src, wei, dst, bias, final_dst, scratch, convert_scratch;
  size_t scratch_bytes = 0, convert_scratch_bytes = 0;
  std::unordered_map<int, memory> matmul_args, convert_args;
};

Bound bind(std::shared_ptr<const Plan> held) {
  Bound b;
  const Plan& plan = *held;
  b.plan = std::move(held);
  if (plan.use_reference) return b;
  const dnnl::engine& e = engine();
  b.src = memory(plan.src_md, e, nullptr);
  b.wei = memory(plan.wei_md, e, nullptr);
  b.dst = memory(plan.dst_md, e, nullptr);
  b.matmul_args = {{DNNL_ARG_SRC, b.src}, {DNNL_ARG_WEIGHTS, b.wei}, {DNNL_ARG_DST, b.dst}};
  if (plan.bias_arg) {
    b.bias = memory(plan.bias_md, e, nullptr);
    b.matmul_args.emplace(plan.bias_arg, b.bias);
  }
  if (plan.scratchpad_md.get_size() > 0) {
    b.scratch = memory(plan.scratchpad_md, e, nullptr);
    b.scratch_bytes = plan.scratchpad_md.get_size();
    b.matmul_args.emplace(DNNL_ARG_SCRATCHPAD, b.scratch);
  }
  if (plan.convert) {
    b.final_dst = memory(plan.final_md, e, nullptr);
    b.convert_args = {{DNNL_ARG_FROM, b.dst}, {DNNL_ARG_TO, b.final_dst}};
    if (plan.convert_scratchpad_md.get_size() > 0) {
      b.convert_scratch = memory(plan.convert_scratchpad_md, e, nullptr);
      b.convert_scratch_bytes = plan.convert_scratchpad_md.get_size();
      b.convert_args.emplace(DNNL_ARG_SCRATCHPAD, b.convert_scratch);
    }
  }
  return b;
}

// The plan for p with this thread's memory objects. Each thread keeps the plans it has used by
// key, so that a repeated problem takes no lock and builds nothing (it still counts as a cache
// hit); a problem new to the thread goes through the shared cache. The table is bounded like the
// shared cache: when full, it drops the plans the shared cache has evicted (only this table still
// holds them), and if that is not enough, everything (rebinding from the shared cache is cheap).
Bound& find_bound(const MatmulProblem& p) {
  thread_local std::unordered_map<std::string, Bound> bound;
  const std::string& key = cache_key(p);
  if (auto it = bound.find(key); it != bound.end()) {
    record_cache_hit();
    return it->second;
  }
  if (bound.size() >= std::max<size_t>(primitive_cache_capacity(), 1)) {
    std::erase_if(bound, [](const auto& kv) { return kv.second.plan.use_count() == 1; });
    if (bound.size() >= std::max<size_t>(primitive_cache_capacity(), 1)) bound.clear();
  }
  Bound b = bind(find_plan(p));
  return bound.try_emplace(key, std::move(b)).first->second;
}

// Points a bound scratchpad at the thread's scratchpad buffer (which may have grown and moved).
void point_scratchpad(memory& scratch, size_t bytes) {
  if (bytes == 0) return;
  void* data = scratchpad_buffer(bytes);
  if (scratch.get_data_handle() != data) scratch.set_data_handle(data);
}

void check_dtypes(const MatmulProblem& p) {
  GG_CHECK(p.src_dtype == p.wei_dtype && is_compute_dtype(p.src_dtype) &&
               is_dst_dtype(p.dst_dtype) && (!p.has_bias || is_compute_dtype(p.bias_dtype)),
           "[matmul] oneDNN has no matmul for src {} x wei {} -> dst {}{} (supported: float32 or "
           "bfloat16 inputs of one dtype, float32/bfloat16 bias)",
           dtype_name(p.src_dtype), dtype_name(p.wei_dtype), dtype_name(p.dst_dtype),
           p.has_bias ? fmt::format(" with a {} bias", dtype_name(p.bias_dtype)) : "");
}

// Sizes of M and K vary from call to call where grouped_mm splits tokens among experts by a
// router: every new size would build a primitive (~0.1-0.3 ms, more than the product takes),
// and a training run meets hundreds of them. So an f32 problem marked sizes_vary runs in
// pieces of few sizes (fixed shapes stay whole: pieces cost ~1.5x for the bench's mixed list):
// powers of two, then a tail under kSmallPiece, at most ~25 distinct sizes per dim; a fixed
// power-of-two size stays one piece. Rows (M) split exactly; depth (K) pieces accumulate into
// dst (oneDNN's sum post-op, exact in f32: only the summation order changes).
constexpr int64_t kSmallPiece = 32;

// Pieces pay only where a new size is expensive: brg (f32 from AVX512_CORE up) generates a kernel
// per shape, ~0.1-0.3 ms. Below it f32 runs gemm:jit, whose kernels do not depend on the shape:
// a new size costs ~20 us (measured on AVX2 and SSE41: 43 new M of [M, 512] @ [512, 1024]), ~1%
// of the smallest MoE group's product, while the pieces cost the moe workload ~15-25% there
// (tools/bench -w moe on an AVX2 EPYC, 2 threads: 0.89x the dense GEMM with pieces, 1.15x without).
bool pieces_pay() { return brgemm_isa(); }

int64_t next_piece(int64_t n) {
  if (n < kSmallPiece || std::has_single_bit(static_cast<uint64_t>(n))) return n;
  return static_cast<int64_t>(std::bit_floor(static_cast<uint64_t>(n)));
}

// Only where the pieces keep the layout dense: a piece of rows of a row-major src and dst, a
// piece of depth of a column-major src and a row-major wei (as grouped_mm's dW = X^T dY). The
// other cut leaves rows with a leading dimension larger than the row, which sends oneDNN to
// gemm:jit (measured ~8x slower than brg for the head's 512x72x64 cut at K = 64).
bool splits_rows(const MatmulProblem& p) {
  return next_piece(p.M) != p.M && p.src_strides[1] != 1 && p.dst_strides[1] != 1;
}
bool splits_depth(const MatmulProblem& p) {
  return next_piece(p.K) != p.K && p.src_strides[2] != 1 && p.wei_strides[1] != 1;
}
bool splits(const MatmulProblem& p) {
  return p.sizes_vary && pieces_pay() && p.src_dtype == kFloat32 && p.dst_dtype == kFloat32 &&
         (splits_rows(p) || splits_depth(p));
}

// ---- Weights whose rows lie a multiple of 1 KiB apart, on gemm:jit ----------------------------
// Below AVX512_CORE f32 runs gemm:jit, and its driver (oneDNN 2.6, gemm_driver.cpp) multiplies a
// product with few rows -- 1/M + 1/N >= 0.0038, e.g. M < 355 at N = 1024 -- with its no-copy
// kernels, which read the weights in place. Those run at half speed when the weights' rows lie a
// multiple of 256 floats apart (cache-set conflicts; the copy-based kernels, which repack the
// weights, do not care). Measured on an AVX2 EPYC, one thread, [M, 512] @ [512, N]:
//   M = 128, N = 1024: 40 GFLOPS with the rows 1024 floats apart, 89 with them 1040 apart;
//   N = 512: 53 vs 83;  N = 2048: 40 vs 80;  N = 768 or 1536 (768 apart): 63-68 vs 77-88;
//   M = 256 and 320 (N = 1024): 41-44 vs 83-90; M >= 368 (copy-based): 87 either way.
// (The moe workload's experts are [512, 1024] blocks of one tensor: every one of them is like
// that.) So such a product first copies its weights to rows kPaddedStep floats further apart: a
// copy of K x N floats against a product of M x K x N multiply-adds, which pays from ~32 rows.
constexpr int64_t kBadRowStep = 256;
constexpr int64_t kPaddedStep = 16;
constexpr int64_t kPadFromRows = 32;
constexpr double kNoCopyThreshold = 0.0038;

bool pads_weights(const MatmulProblem& p) {
  if (brgemm_isa() || p.src_dtype != kFloat32 || p.batch != 1 || p.M < kPadFromRows || p.K < 2)
    return false;
  // Row-major weights and dst (a column-major dst runs swapped: the weights become src).
  if (p.wei_strides[2] != 1 || p.wei_strides[1] % kBadRowStep != 0 || p.dst_strides[2] != 1)
    return false;
  return 1.0 / static_cast<double>(p.M) + 1.0 / static_cast<double>(p.N) >= kNoCopyThreshold;
}

// p with its weights as the padded copy that matmul_padded_weights makes.
MatmulProblem padded_problem(const MatmulProblem& p) {
  MatmulProblem q = p;
  int64_t step = (p.N + kPaddedStep - 1) / kPaddedStep * kPaddedStep;
  if (step % kBadRowStep == 0) step += kPaddedStep;
  q.wei_strides = {p.K * step, step, 1};
  return q;
}

// ---- Plain Float32 products on gemm:jit, through dnnl_sgemm ---------------------------------
// Below AVX512_CORE the f32 matmul primitive is gemm:jit: it hands the product to oneDNN's gemm
// driver. oneDNN's BLAS-style dnnl_sgemm calls the same driver without the primitive's per-call
// work (argument map, scratchpad, stream), which is ~4% of a small product: 8 calls of
// [320, 64] @ [64, 64] took 307 us as primitive executions and 294 us through dnnl_sgemm (one
// AVX2 EPYC thread, medians of 300). Taken for a batch-1 f32 product without a bias whose every
// operand has a unit stride in one dim; anything else keeps the primitive.

// How dnnl_sgemm (row-major) reads a rows x cols operand with row stride rs and column stride cs:
// as is ('N', leading dimension rs) or transposed ('T', leading dimension cs).
struct BlasLayout {
  char trans = 0;  // 0: dnnl_sgemm cannot read it
  int64_t ld = 0;
};

BlasLayout blas_layout(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  if (cols == 1) cs = 1;
  if (rows == 1) rs = cs == 1 ? cols : 1;
  if (cs == 1 && rs >= std::max<int64_t>(cols, 1)) return {'N', rs};
  if (rs == 1 && cs >= std::max<int64_t>(rows, 1)) return {'T', cs};
  return {};
}

// The layouts dnnl_sgemm reads src, wei and dst with, when p is a product it takes.
struct SgemmLayouts {
  BlasLayout src, wei, dst;
};

std::optional<SgemmLayouts> sgemm_layouts(const MatmulProblem& p) {
  if (brgemm_isa() || p.batch != 1 || p.has_bias || p.src_dtype != kFloat32 ||
      p.wei_dtype != kFloat32 || p.dst_dtype != kFloat32)
    return std::nullopt;
  const SgemmLayouts l{blas_layout(p.M, p.K, p.src_strides[1], p.src_strides[2]),
                       blas_layout(p.K, p.N, p.wei_strides[1], p.wei_strides[2]),
                       blas_layout(p.M, p.N, p.dst_strides[1], p.dst_strides[2])};
  if (!l.src.trans || !l.wei.trans || !l.dst.trans) return std::nullopt;
  return l;
}

// dst = src @ wei (+ dst when accumulating). A column-major dst is computed as
// dst^T = wei^T @ src^T. Returns false when oneDNN refuses (then the primitive runs it).
bool sgemm(const MatmulProblem& p, const SgemmLayouts& l, const void* src, const void* wei,
           void* dst) {
  const BlasLayout &a = l.src, &b = l.wei, &d = l.dst;
  const auto* x = static_cast<const float*>(src);
  const auto* w = static_cast<const float*>(wei);
  const float beta = p.accumulate ? 1.0f : 0.0f;
  auto flip = [](char trans) { return trans == 'N' ? 'T' : 'N'; };
  const dnnl_status_t status =
      d.trans == 'T' ? dnnl_sgemm(flip(b.trans), flip(a.trans), p.N, p.M, p.K, 1.0f, w, b.ld, x,
                                  a.ld, beta, static_cast<float*>(dst), d.ld)
                     : dnnl_sgemm(a.trans, b.trans, p.M, p.N, p.K, 1.0f, x, a.ld, w, b.ld, beta,
                                  static_cast<float*>(dst), d.ld);
  return status == dnnl_success;
}

// ---- BFloat16 through Float32 ----------------------------------------------------------------
// oneDNN 2.6 has no bf16 matmul below AVX512_CORE, and no f32 -> bf16 reorder for the result
// either (context.hpp, native_bf16). There a problem with any bf16 operand runs as the Float32
// problem on f32 copies of its bf16 operands (a copy is O(rows x cols), the product O(rows x
// cols x inner)), and a bf16 dst is written from an f32 result, rounded once: exactly what the
// Float32 matmul of the converted operands gives, converted to bf16.

bool through_f32(const MatmulProblem& p) {
  const bool bf16 = p.src_dtype == kBFloat16 || p.wei_dtype == kBFloat16 ||
                    p.dst_dtype == kBFloat16 || (p.has_bias && p.bias_dtype == kBFloat16);
  return bf16 && !native_bf16();
}

// Copies made from this many elements run on all threads (outside a parallel region).
constexpr int64_t kParallelConvertElements = int64_t{1} << 16;

// Converts `copies` [rows, cols] matrices between strided layouts (element strides, batch
// first) with bulk(in, out, n) on each contiguous run, walking lines along the dim in which `to`
// has unit stride.
template <class From, class To>
void convert_matrices(const From* from, const std::array<int64_t, 3>& fs, To* to,
                      const std::array<int64_t, 3>& ts, int64_t copies, int64_t rows, int64_t cols,
                      void (*bulk)(const From*, To*, int64_t)) {
  const bool by_rows = ts[2] == 1 || cols == 1;
  const int64_t lines = by_rows ? rows : cols, length = by_rows ? cols : rows;
  const int64_t from_line = by_rows ? fs[1] : fs[2], from_step = by_rows ? fs[2] : fs[1];
  const int64_t to_line = by_rows ? ts[1] : ts[2], to_step = by_rows ? ts[2] : ts[1];
  auto line = [&](int64_t i) {
    const int64_t b = i / lines, l = i % lines;
    const From* f = from + b * fs[0] + l * from_line;
    To* t = to + b * ts[0] + l * to_line;
    if (from_step == 1 && to_step == 1) {
      bulk(f, t, length);
    } else {
      for (int64_t e = 0; e < length; ++e) bulk(f + e * from_step, t + e * to_step, 1);
    }
  };
  const int64_t n = copies * lines;
  if (copies * rows * cols >= kParallelConvertElements && !omp_in_parallel() &&
      omp_get_max_threads() > 1) {
    parallel_for(n, Schedule::kStatic, line);
  } else {
    for (int64_t i = 0; i < n; ++i) line(i);
  }
}

// The dense layout of the f32 copy of a [batch, rows, cols] operand with strides s: in s's own
// orientation (a transposed operand stays transposed, which keeps oneDNN on its fast kernels),
// and a broadcast batch (stride 0) stays broadcast.
std::array<int64_t, 3> widened_strides(int64_t batch, int64_t rows, int64_t cols,
                                       const std::array<int64_t, 3>& s) {
  const int64_t batch_stride = batch > 1 && s[0] == 0 ? 0 : rows * cols;
  if (s[1] == 1 && s[2] != 1) return {batch_stride, 1, rows};  // column-major
  return {batch_stride, cols, 1};
}

// The Float32 problem that computes p (strides of the f32 copies; see matmul_through_f32).
MatmulProblem f32_problem(const MatmulProblem& p) {
  MatmulProblem q = p;
  if (p.src_dtype == kBFloat16) {
    q.src_dtype = kFloat32;
    q.src_strides = widened_strides(p.batch, p.M, p.K, p.src_strides);
  }
  if (p.wei_dtype == kBFloat16) {
    q.wei_dtype = kFloat32;
    q.wei_strides = widened_strides(p.batch, p.K, p.N, p.wei_strides);
  }
  if (p.has_bias && p.bias_dtype == kBFloat16) {
    q.bias_dtype = kFloat32;
    q.bias_batch_stride = p.bias_batch_stride == 0 ? 0 : p.N;
  }
  if (p.dst_dtype == kBFloat16) {
    q.dst_dtype = kFloat32;
    q.dst_strides = {p.M * p.N, p.N, 1};
  }
  return q;
}

void matmul_through_f32(const MatmulProblem& p, const void* src, const void* wei, const void* bias,
                        void* dst, MatmulFallback fallback) {
  MatmulProblem q = f32_problem(p);
  // Weights that the f32 problem would copy to padded rows (pads_weights) are padded as they
  // are widened: one copy, not two.
  if (p.wei_dtype == kBFloat16 && pads_weights(q)) q = padded_problem(q);
  // Operand `data` (bf16, strides s) as an f32 copy in buffer `which` with strides t.
  auto widen = [](ThreadBuffer which, const void* data, const std::array<int64_t, 3>& s,
                  const std::array<int64_t, 3>& t, int64_t batch, int64_t rows, int64_t cols) {
    const int64_t copies = batch > 1 && t[0] == 0 ? 1 : batch;
    const int64_t each = std::max(t[0], rows * cols);  // (t[0] is larger for padded weights)
    auto* copy = static_cast<float*>(
        thread_buffer(which, static_cast<size_t>(copies * each) * sizeof(float)));
    convert_matrices(static_cast<const BFloat16*>(data), s, copy, t, copies, rows, cols,
                     &convert_bf16_to_f32);
    return static_cast<const void*>(copy);
  };
  if (p.src_dtype == kBFloat16)
    src = widen(kSrc32, src, p.src_strides, q.src_strides, p.batch, p.M, p.K);
  if (p.wei_dtype == kBFloat16)
    wei = widen(kWei32, wei, p.wei_strides, q.wei_strides, p.batch, p.K, p.N);
  if (p.has_bias && p.bias_dtype == kBFloat16) {
    const int64_t copies = p.bias_batch_stride == 0 ? 1 : p.batch;
    bias = widen(kBias32, bias, {p.bias_batch_stride, p.N, 1}, {p.N, p.N, 1}, copies, 1, p.N);
  }
  void* result = dst;
  if (p.dst_dtype == kBFloat16) {
    // The f32 result; when accumulating it starts as dst (oneDNN's sum post-op adds in f32).
    result = thread_buffer(kDst32, static_cast<size_t>(p.batch * p.M * p.N) * sizeof(float));
    if (p.accumulate) {
      convert_matrices(static_cast<const BFloat16*>(dst), p.dst_strides,
                       static_cast<float*>(result), q.dst_strides, p.batch, p.M, p.N,
                       &convert_bf16_to_f32);
    }
  }
  matmul(q, src, wei, bias, result, fallback);
  if (p.dst_dtype == kBFloat16) {
    convert_matrices(static_cast<const float*>(result), q.dst_strides, static_cast<BFloat16*>(dst),
                     p.dst_strides, p.batch, p.M, p.N, &convert_f32_to_bf16);
  }
}

void matmul_padded_weights(const MatmulProblem& p, const void* src, const void* wei,
                           const void* bias, void* dst, MatmulFallback fallback) {
  const MatmulProblem q = padded_problem(p);
  auto* copy = static_cast<float*>(
      thread_buffer(kPaddedWei, static_cast<size_t>(q.wei_strides[0]) * sizeof(float)));
  convert_matrices(
      static_cast<const float*>(wei), p.wei_strides, copy, q.wei_strides, 1, p.K, p.N,
      +[](const float* from, float* to, int64_t n) {
        std::memcpy(to, from, static_cast<size_t>(n) * sizeof(float));
      });
  matmul(q, src, copy, bias, dst, fallback);
}

}  // namespace

bool matmul_supported(const MatmulProblem& p) {
  if (p.batch < 0 || p.M < 0 || p.K < 0 || p.N < 0) return false;
  if (p.batch > 1 && p.M > 0 && p.N > 0 && p.dst_strides[0] == 0) return false;
  if (p.src_dtype != p.wei_dtype || !is_compute_dtype(p.src_dtype)) return false;
  if (!is_dst_dtype(p.dst_dtype) || (p.has_bias && !is_compute_dtype(p.bias_dtype))) return false;
  for (const auto* s : {&p.src_strides, &p.wei_strides, &p.dst_strides}) {
    if (std::any_of(s->begin(), s->end(), [](int64_t x) { return x < 0; })) return false;
  }
  if (p.has_bias && p.bias_batch_stride < 0) return false;
  if (p.batch == 0 || p.M == 0 || p.N == 0 || p.K == 0) return true;  // never reaches oneDNN
  return describable({p.batch, p.M, p.K, p.src_strides}) &&
         describable({p.batch, p.K, p.N, p.wei_strides}) &&
         describable({p.batch, p.M, p.N, p.dst_strides});
}

bool runs_on_sgemm(const MatmulProblem& p) {
  return p.batch == 1 && p.M > 0 && p.N > 0 && p.K > 0 && !through_f32(p) && !pads_weights(p) &&
         !splits(p) && sgemm_layouts(p).has_value();
}

void matmul(const MatmulProblem& p, const void* src, const void* wei, const void* bias, void* dst,
            MatmulFallback fallback) {
  check_matmul_problem(p);
  check_dtypes(p);
  GG_CHECK(!p.has_bias || bias, "[matmul] has_bias is set but the bias pointer is null");
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  if (p.K == 0) {  // oneDNN sends K == 0 to ref:any; the result is just the bias (or zeros)
    fallback(p, src, wei, bias, dst);
    return;
  }
  if (through_f32(p)) {
    matmul_through_f32(p, src, wei, bias, dst, fallback);
    return;
  }
  if (pads_weights(p)) {
    matmul_padded_weights(p, src, wei, bias, dst, fallback);
    return;
  }
  if (splits(p)) {
    const auto* src_bytes = static_cast<const char*>(src);
    const auto* wei_bytes = static_cast<const char*>(wei);
    auto* dst_bytes = static_cast<char*>(dst);
    const int64_t f32 = static_cast<int64_t>(sizeof(float));
    const bool by_rows = splits_rows(p), by_depth = splits_depth(p);
    for (int64_t m = 0, rows = 0; m < p.M; m += rows) {
      rows = by_rows ? next_piece(p.M - m) : p.M;
      for (int64_t k = 0, depth = 0; k < p.K; k += depth) {
        depth = by_depth ? next_piece(p.K - k) : p.K;
        MatmulProblem piece = p;
        piece.M = rows;
        piece.K = depth;
        piece.has_bias = p.has_bias && k == 0;  // added once
        piece.accumulate = p.accumulate || k > 0;
        matmul(piece, src_bytes + (m * p.src_strides[1] + k * p.src_strides[2]) * f32,
               wei_bytes + k * p.wei_strides[1] * f32, piece.has_bias ? bias : nullptr,
               dst_bytes + m * p.dst_strides[1] * f32, fallback);
      }
    }
    return;
  }
  if (const auto l = sgemm_layouts(p); l && sgemm(p, *l, src, wei, dst)) return;
  Bound& b = find_bound(p);
  const Plan& plan = *b.plan;
  if (plan.use_reference) {
    fallback(p, src, wei, bias, dst);
    return;
  }
  if (plan.dense_bias) {
    const size_t row = static_cast<size_t>(p.N) * element_size(p.bias_dtype);
    auto* dense = static_cast<char*>(thread_buffer(kBiasBuffer, row * p.batch));
    for (int64_t b = 0; b < p.batch; ++b) {
      std::memcpy(
          dense + b * row,
          static_cast<const char*>(bias) + b * p.bias_batch_stride * element_size(p.bias_dtype),
          row);
    }
    bias = dense;
  }
  void* result = plan.convert ? thread_buffer(kResultBuffer, plan.dst_md.get_size()) : nullptr;
  // Byte steps between executions (only when a batch-1 primitive runs once per batch).
  auto step = [&](int64_t batch_stride, Dtype dtype) {
    return plan.runs > 1 ? batch_stride * static_cast<int64_t>(element_size(dtype)) : 0;
  };
  const int64_t src_step = step(p.src_strides[0], p.src_dtype);
  const int64_t wei_step = step(p.wei_strides[0], p.wei_dtype);
  const int64_t dst_step = step(p.dst_strides[0], p.dst_dtype);
  const int64_t bias_step = step(p.bias_batch_stride, p.bias_dtype);
  dnnl::stream& s = stream();
  for (int64_t run = 0; run < plan.runs; ++run) {
    auto* run_src = const_cast<char*>(static_cast<const char*>(src)) + run * src_step;
    auto* run_wei = const_cast<char*>(static_cast<const char*>(wei)) + run * wei_step;
    auto* run_dst = static_cast<char*>(dst) + run * dst_step;
    b.src.set_data_handle(plan.swapped ? run_wei : run_src);
    b.wei.set_data_handle(plan.swapped ? run_src : run_wei);
    b.dst.set_data_handle(plan.convert ? result : run_dst);
    if (plan.bias_arg) {
      b.bias.set_data_handle(const_cast<char*>(static_cast<const char*>(bias)) + run * bias_step);
    }
    point_scratchpad(b.scratch, b.scratch_bytes);
    plan.matmul.execute(s, b.matmul_args);
    if (plan.convert) {
      b.final_dst.set_data_handle(run_dst);
      point_scratchpad(b.convert_scratch, b.convert_scratch_bytes);
      plan.convert->execute(s, b.convert_args);
    }
  }
  s.wait();
}

std::string matmul_implementation(const MatmulProblem& p) {
  check_matmul_problem(p);
  check_dtypes(p);
  if (p.batch == 0 || p.M == 0 || p.N == 0) return "none";
  if (p.K == 0) return "reference";
  if (through_f32(p)) return matmul_implementation(f32_problem(p)) + " (bfloat16 through float32)";
  if (pads_weights(p)) return matmul_implementation(padded_problem(p)) + " (weights padded)";
  if (sgemm_layouts(p)) return "gemm:jit (dnnl_sgemm)";
  return find_plan(p)->implementation;
}

}  // namespace gg::onednn
