#include "ops/onednn/reorder.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include "core/strided.hpp"
#include "ops/onednn/context.hpp"

// What oneDNN 2.6.3's reorder does on this machine (avx512_core + bf16), against gg::convert
// (tests/test_onednn_elementwise.cpp checks every pair on specials and random values):
//   f32 -> s8   round to nearest even and saturate like convert, but NaN -> 127 (convert: 0).
//   f32 -> s32  saturates at 2147483520 in some kernels and wraps to INT_MIN in others (large
//               values, infinities, NaN); convert gives INT_MAX / INT_MIN / 0. Float -> integer
//               therefore stays on the loop.
//   f32 -> bf16 identical, except that subnormal sources become 0 (vcvtneps2bf16 flushes them),
//               so sources with subnormals go to the loop (checked by a scan).
//   f16 <-> anything: -0 becomes +0 (simple:any, no jit): the loop.
//   s32 -> bf16: no reorder. s32 <-> s8 (saturating), s8/s32 -> f32/bf16, bf16 -> f32 and
//   same-dtype copies: identical.
// Speed (1M f32 elements, one thread): contiguous conversions ~80 us (the f32 -> bf16 loop takes
// 1.7 ms), a transpose ~1.1 ms (jit:uni); a stride-0 (broadcast) source runs simple:any at
// ~2.6 ms, slower than the loop, so broadcast sources are declined.

namespace gg::onednn {

namespace {

using dnnl::memory;

struct ReorderPlan {
  std::optional<dnnl::reorder> reorder;  // empty: oneDNN has no reorder for this problem
  memory::desc src_md, dst_md, scratchpad_md;
};

ReorderPlan build_plan(const StridedProblem& p, Dtype src_dtype, Dtype dst_dtype) {
  ReorderPlan plan;
  auto impl = fast_implementation<dnnl::reorder>(
      [&] {
        plan.src_md = plain_desc(p.shape, p.strides[1], src_dtype);
        plan.dst_md = plain_desc(p.shape, p.strides[0], dst_dtype);
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        return dnnl::reorder::primitive_desc(engine(), plan.src_md, engine(), plan.dst_md, attr);
      },
      /*accept_ref=*/true);
  if (!impl) return plan;
  plan.scratchpad_md = impl->pd.scratchpad_desc();
  plan.reorder = std::move(impl->primitive);
  return plan;
}

bool has_subnormal(const float* p, int64_t n) {
  constexpr int64_t kChunk = 4096;  // vectorised blocks, with an early exit between them
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t end = std::min(n, start + kChunk);
    uint32_t found = 0;
    for (int64_t i = start; i < end; ++i) {
      uint32_t bits;
      std::memcpy(&bits, p + i, sizeof bits);
      found |= ((bits & 0x7FFFFFFFu) - 1u) < 0x007FFFFFu;  // 0 < |x| < FLT_MIN
    }
    if (found) return true;
  }
  return false;
}

constexpr int64_t kReorderTag = 0x52454f52;  // "REOR"

}  // namespace

bool reorder_matches_convert(Dtype from, Dtype to) {
  auto kept = [](Dtype d) { return d == kFloat32 || d == kBFloat16 || d == kInt8 || d == kInt32; };
  if (!kept(from) || !kept(to)) return false;  // Float16: -0 becomes +0
  // No bf16 reorders below AVX512_CORE (f32 -> bf16 has none at all there).
  if (bf16_through_f32(from) || bf16_through_f32(to)) return false;
  return !(is_floating(from) && !is_floating(to));  // NaN and s32 saturation differ
}

bool reorder(const Shape& shape, Dtype src_dtype, const Shape& src_strides, const void* src,
             Dtype dst_dtype, const Shape& dst_strides, void* dst) {
  if (!reorder_matches_convert(src_dtype, dst_dtype)) return false;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return true;
    // Negative strides are not plain layouts; a broadcast dst would write one element twice.
    if (src_strides[d] < 0 || dst_strides[d] < 0) return false;
    if (dst_strides[d] == 0 && shape[d] > 1) return false;
  }
  StridedProblem p{shape, {dst_strides, src_strides}};
  coalesce(p);
  if (p.shape.size() > kMaxDims) return false;
  // A broadcast source runs simple:any, slower than the loop.
  if (std::find(p.strides[1].begin(), p.strides[1].end(), 0) != p.strides[1].end()) return false;
  // f32 -> bf16 flushes subnormal sources to 0 (convert rounds them to bf16 subnormals): scan a
  // dense source for them (a cheap vectorised pass) and leave sources that have any to the loop.
  if (src_dtype == kFloat32 && dst_dtype == kBFloat16 &&
      (!is_dense(p.shape, p.strides[1]) ||
       has_subnormal(static_cast<const float*>(src), numel_of(p.shape))))
    return false;
  KeyBuilder key(kReorderTag);
  key.add(static_cast<int64_t>(src_dtype))
      .add(static_cast<int64_t>(dst_dtype))
      .add(p.shape)
      .add(p.strides[0])
      .add(p.strides[1]);
  const auto held = cached(key.str(), [&] { return build_plan(p, src_dtype, dst_dtype); });
  const ReorderPlan& plan = *held;  // held: an eviction meanwhile cannot free it
  if (!plan.reorder) return false;
  dnnl::stream& s = stream();
  memory from(plan.src_md, engine(), const_cast<void*>(src));
  memory to(plan.dst_md, engine(), dst);
  plan.reorder->execute(s, {{DNNL_ARG_FROM, from},
                            {DNNL_ARG_TO, to},
                            {DNNL_ARG_SCRATCHPAD, scratchpad(plan.scratchpad_md)}});
  s.wait();
  return true;
}

bool reorder(const Tensor& dst, const Tensor& src) {
  dst.checked("copy_");
  src.checked("copy_");
  Shape src_strides = broadcast_strides(src, dst.shape());
  return reorder(dst.shape(), src.dtype(), src_strides, src.raw_data(), dst.dtype(), dst.strides(),
                 dst.raw_data());
}

// ---- Strided layouts ---------------------------------------------------------------------------

int64_t coalesce(StridedProblem& p, int64_t keep) {
  const size_t ops = p.strides.size();
  Shape shape;
  std::vector<Shape> strides(ops);
  int64_t new_keep = -1;
  for (size_t d = 0; d < p.shape.size(); ++d) {
    const int64_t n = p.shape[d];
    const bool is_keep = static_cast<int64_t>(d) == keep;
    if (n == 1 && !is_keep) continue;
    // The previous (outer) dim absorbs this one when every operand steps over this dim's whole
    // extent with exactly the outer stride.
    bool merge = !shape.empty() && !is_keep && new_keep != static_cast<int64_t>(shape.size()) - 1;
    for (size_t i = 0; merge && i < ops; ++i) merge = strides[i].back() == p.strides[i][d] * n;
    if (merge) {
      shape.back() *= n;
      for (size_t i = 0; i < ops; ++i) strides[i].back() = p.strides[i][d];
    } else {
      shape.push_back(n);
      for (size_t i = 0; i < ops; ++i) strides[i].push_back(p.strides[i][d]);
    }
    if (is_keep) new_keep = static_cast<int64_t>(shape.size()) - 1;
  }
  if (shape.empty()) {
    shape = {1};
    for (auto& s : strides) s = {1};
  }
  p.shape = std::move(shape);
  p.strides = std::move(strides);
  return new_keep;
}

Shape dense_strides(const Shape& shape, const Shape& strides) {
  Shape out(shape.size());
  int64_t step = 1;
  for (size_t i = shape.size(); i-- > 0;) {
    out[i] = step;
    if (strides[i] != 0) step *= shape[i];
  }
  return out;
}

bool is_dense(const Shape& shape, const Shape& strides) {
  Shape dense = dense_strides(shape, strides);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (strides[i] != 0 && shape[i] > 1 && strides[i] != dense[i]) return false;
  }
  return true;
}

Shape broadcast_dims(const Shape& shape, const Shape& strides) {
  Shape out = shape;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (strides[i] == 0) out[i] = 1;
  }
  return out;
}

dnnl::memory::desc plain_desc(const Shape& dims, const Shape& strides, Dtype dtype) {
  return memory::desc(memory::dims(dims.begin(), dims.end()), to_dnnl(dtype),
                      memory::dims(strides.begin(), strides.end()));
}

}  // namespace gg::onednn
