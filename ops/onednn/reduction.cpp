#include "ops/onednn/reduction.hpp"

#include <algorithm>
#include <optional>

#include "ops/onednn/context.hpp"
#include "ops/onednn/reorder.hpp"

// oneDNN 2.6.3 on this machine: reducing the innermost dim of a dense tensor ([M, N] -> [M, 1],
// [N] -> [1]) runs jit:avx512_core_bf16 (f32 and bf16 alike); reducing any other dim
// ([M, N] -> [1, N], [A, B, C] -> [A, 1, C]) or a transposed or sliced src is ref:any, far
// slower than our loop. So every problem is posed as [outer, n] -> [outer, 1]: after coalescing,
// an x whose reduced dim is not its innermost dense one is first reordered (a jit transpose)
// into a temporary with that dim last. A reduced dim of size 1 is a copy (oneDNN rejects a
// reduction that reduces nothing).

namespace gg::onednn {

namespace {

using dnnl::memory;

struct ReductionPlan {
  std::optional<dnnl::reduction> reduction;  // empty: no fast (jit) implementation
  memory::desc src_md, dst_md, scratchpad_md;
};

ReductionPlan build_plan(int64_t outer, int64_t n, Dtype dtype) {
  ReductionPlan plan;
  auto impl = fast_implementation<dnnl::reduction>([&] {
    plan.src_md = plain_desc({outer, n}, {n, 1}, dtype);
    plan.dst_md = plain_desc({outer, 1}, {1, 1}, dtype);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return dnnl::reduction::primitive_desc(
        dnnl::reduction::desc(dnnl::algorithm::reduction_sum, plan.src_md, plan.dst_md, 0.f, 0.f),
        attr, engine());
  });
  if (!impl) return plan;
  plan.reduction = std::move(impl->primitive);
  plan.scratchpad_md = impl->pd.scratchpad_desc();
  return plan;
}

constexpr int64_t kReductionTag = 0x52454455;  // "REDU"

}  // namespace

bool sum_dim(const Tensor& x, int64_t dim, const Tensor& out) {
  const Dtype dtype = x.dtype();
  if (dtype != kFloat32 && (dtype != kBFloat16 || !native_bf16())) return false;
  Shape kept = x.shape();
  kept[dim] = 1;
  GG_CHECK(out.is_contiguous() && out.dtype() == dtype && out.shape() == kept,
           "[sum] internal: out must be a contiguous {} tensor of shape {}", dtype_name(dtype),
           shape_str(kept));
  const int64_t n = x.size(dim);
  if (n == 0) return false;  // the loop writes the zeros
  if (out.numel() == 0) return true;
  if (n == 1) return reorder(out, x);

  Shape out_strides = out.strides();
  out_strides[dim] = 0;
  StridedProblem p{x.shape(), {x.strides(), out_strides}};
  const int64_t r = coalesce(p, dim);
  const int64_t last = static_cast<int64_t>(p.shape.size()) - 1;
  const int64_t outer = out.numel();

  KeyBuilder key(kReductionTag);
  key.add(static_cast<int64_t>(dtype)).add(outer).add(n);
  const auto held = cached(key.str(), [&] { return build_plan(outer, n, dtype); });
  const ReductionPlan& plan = *held;  // held: an eviction meanwhile cannot free it
  if (!plan.reduction) return false;

  const void* src = x.raw_data();
  Tensor temporary;
  const Shape& xs = p.strides[0];
  const bool full = std::none_of(xs.begin(), xs.end(), [](int64_t v) { return v == 0; });
  if (r != last || !full || !is_dense(p.shape, xs)) {
    // Transpose into [other dims..., n]: the reduced dim gets stride 1, the others the dense
    // strides of the remaining dims, in order (which is also out's element order).
    temporary = empty({outer, n}, dtype);
    Shape to(p.shape.size());
    int64_t step = n;
    for (int64_t d = last; d >= 0; --d) {
      if (d == r) {
        to[d] = 1;
      } else {
        to[d] = step;
        step *= p.shape[d];
      }
    }
    if (!reorder(p.shape, dtype, xs, src, dtype, to, temporary.raw_data())) return false;
    src = temporary.raw_data();
  }
  dnnl::stream& s = stream();
  memory src_mem(plan.src_md, engine(), const_cast<void*>(src));
  memory dst_mem(plan.dst_md, engine(), out.raw_data());
  plan.reduction->execute(s, {{DNNL_ARG_SRC, src_mem},
                              {DNNL_ARG_DST, dst_mem},
                              {DNNL_ARG_SCRATCHPAD, scratchpad(plan.scratchpad_md)}});
  s.wait();
  return true;
}

}  // namespace gg::onednn
