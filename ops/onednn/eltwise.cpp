#include "ops/onednn/eltwise.hpp"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>

#include "core/strided.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/reorder.hpp"

namespace gg::onednn {

namespace {

using dnnl::algorithm;
using dnnl::memory;

struct EltwisePlan {
  std::optional<dnnl::eltwise_forward> eltwise;  // empty: no fast (jit) implementation
  memory::desc md, scratchpad_md;
};

// dst = f(alpha, beta, src), one oneDNN algorithm per op.
struct Eltwise {
  algorithm alg = algorithm::undef;
  float alpha = 0, beta = 0;
};

Eltwise to_eltwise(UnaryOp op, double scalar) {
  switch (op) {
    // alpha * x + beta with beta = -0: exactly -x, signed zeros included (-(+0) = -0 + -0).
    case UnaryOp::Neg:
      return {algorithm::eltwise_linear, -1.f, -0.f};
    case UnaryOp::Abs:
      return {algorithm::eltwise_abs};
    case UnaryOp::Exp:
      return {algorithm::eltwise_exp};
    case UnaryOp::Sqrt:
      return {algorithm::eltwise_sqrt};
    case UnaryOp::Pow:
      return {algorithm::eltwise_pow, 1.f, static_cast<float>(scalar)};
    case UnaryOp::Tanh:
      return {algorithm::eltwise_tanh};
    case UnaryOp::Sigmoid:
      return {algorithm::eltwise_logistic};
    case UnaryOp::Gelu:
      return {algorithm::eltwise_gelu_erf};
    default:
      break;
  }
  return {};
}

EltwisePlan build_plan(const Eltwise& e, const memory::desc& md) {
  EltwisePlan plan;
  auto impl = fast_implementation<dnnl::eltwise_forward>([&] {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    return dnnl::eltwise_forward::primitive_desc(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, e.alg, md, e.alpha, e.beta),
        attr, engine());
  });
  if (!impl) return plan;
  plan.eltwise = std::move(impl->primitive);
  plan.md = md;
  plan.scratchpad_md = impl->pd.scratchpad_desc();
  return plan;
}

// Whether a contiguous f32 or bf16 buffer holds a NaN (vectorised blocks, early exit between).
bool any_nan(const void* data, Dtype dtype, int64_t n) {
  constexpr int64_t kChunk = 4096;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t end = std::min(n, start + kChunk);
    uint32_t found = 0;
    if (dtype == kFloat32) {
      const uint32_t* p = static_cast<const uint32_t*>(data);
      for (int64_t i = start; i < end; ++i) found |= (p[i] & 0x7FFFFFFFu) > 0x7F800000u;
    } else {
      const uint16_t* p = static_cast<const uint16_t*>(data);
      for (int64_t i = start; i < end; ++i) found |= (p[i] & 0x7FFFu) > 0x7F80u;
    }
    if (found) return true;
  }
  return false;
}

bool is_nan(float v) { return v != v; }
bool is_nan(BFloat16 v) { return (v.bits & 0x7FFF) > 0x7F80; }

// oneDNN's exp maps NaN to +inf: put x's NaNs back into out (the loop, PyTorch and std::exp
// all propagate NaN).
void restore_nans(const Tensor& x, const Tensor& out) {
  dispatch(x.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, BFloat16>) {
      const T* in = static_cast<const T*>(x.raw_data());
      T* o = static_cast<T*>(out.raw_data());
      for_each_strided<2>(x.shape(), {out.strides().data(), x.strides().data()}, {0, 0},
                          [&](const std::array<int64_t, 2>& off) {
                            if (is_nan(in[off[1]])) o[off[0]] = in[off[1]];
                          });
    }
  });
}

constexpr int64_t kEltwiseTag = 0x454c5457;  // "ELTW"

}  // namespace

bool unary_supported(UnaryOp op, Dtype dtype) {
  return (dtype == kFloat32 || (dtype == kBFloat16 && native_bf16())) &&
         to_eltwise(op, 0).alg != algorithm::undef;
}

namespace {

// out = e(x) on one cached plan; `nans`: put x's NaNs back afterwards (for algorithms that lose
// them). False when oneDNN has no fast implementation.
bool run_eltwise(const Eltwise& e, const Tensor& x, const Tensor& out, bool nans, const char* op) {
  GG_CHECK(out.is_contiguous() && out.dtype() == x.dtype() && out.shape() == x.shape(),
           "[{}] internal: out must be a contiguous {} tensor of shape {}", op,
           dtype_name(x.dtype()), shape_str(x.shape()));
  const int64_t n = x.numel();
  if (n == 0) return true;
  // Every op is elementwise, so a contiguous tensor is one flat run of n elements.
  KeyBuilder key(kEltwiseTag);
  key.add(static_cast<int64_t>(e.alg))
      .add(std::bit_cast<int32_t>(e.alpha))
      .add(std::bit_cast<int32_t>(e.beta))
      .add(static_cast<int64_t>(x.dtype()))
      .add(n);
  const auto held =
      cached(key.str(), [&] { return build_plan(e, plain_desc({n}, {1}, x.dtype())); });
  const EltwisePlan& plan = *held;  // held: an eviction meanwhile cannot free it
  if (!plan.eltwise) return false;

  const void* src = x.raw_data();
  if (!x.is_contiguous()) {  // gather into out, then run in place
    if (!reorder(out, x)) return false;
    src = out.raw_data();
  }
  // Find the NaNs before they are overwritten, restore them after.
  nans = nans && any_nan(src, x.dtype(), n);
  dnnl::stream& s = stream();
  memory src_mem(plan.md, engine(), const_cast<void*>(src));
  memory dst_mem(plan.md, engine(), out.raw_data());
  plan.eltwise->execute(s, {{DNNL_ARG_SRC, src_mem},
                            {DNNL_ARG_DST, dst_mem},
                            {DNNL_ARG_SCRATCHPAD, scratchpad(plan.scratchpad_md)}});
  s.wait();
  if (nans) restore_nans(x, out);
  return true;
}

}  // namespace

bool unary(UnaryOp op, const Tensor& x, double scalar, const Tensor& out) {
  if (!unary_supported(op, x.dtype())) return false;
  // oneDNN's exp(NaN) is +inf: the NaNs are put back.
  return run_eltwise(to_eltwise(op, scalar), x, out, op == UnaryOp::Exp, "unary");
}

bool clamp(const Tensor& x, float lo, float hi, const Tensor& out) {
  if (!(x.dtype() == kFloat32 || (x.dtype() == kBFloat16 && native_bf16())) || !(lo <= hi))
    return false;
  // clip: lo where x <= lo, hi where x > hi, else x; it loses NaNs, which are put back.
  return run_eltwise({algorithm::eltwise_clip, lo, hi}, x, out, true, "clamp");
}

namespace {

struct GeluBackwardPlan {
  std::optional<dnnl::eltwise_backward> eltwise;  // empty: no fast (jit) implementation
  memory::desc md, scratchpad_md;
};

GeluBackwardPlan build_gelu_backward(const memory::desc& md) {
  GeluBackwardPlan plan;
  auto impl = fast_implementation<dnnl::eltwise_backward>([&] {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    // oneDNN wants the forward primitive descriptor as a hint; it is never run.
    dnnl::eltwise_forward::primitive_desc hint(
        dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, algorithm::eltwise_gelu_erf,
                                    md, 0.f, 0.f),
        engine());
    return dnnl::eltwise_backward::primitive_desc(
        dnnl::eltwise_backward::desc(algorithm::eltwise_gelu_erf, md, md, 0.f, 0.f), attr, engine(),
        hint);
  });
  if (!impl) return plan;
  plan.eltwise = std::move(impl->primitive);
  plan.md = md;
  plan.scratchpad_md = impl->pd.scratchpad_desc();
  return plan;
}

constexpr int64_t kGeluBackwardTag = 0x47454c42;  // "GELB"

}  // namespace

bool gelu_backward(const Tensor& x, const Tensor& grad, const Tensor& out) {
  if (x.dtype() != kFloat32 || grad.dtype() != kFloat32 || !x.is_contiguous() ||
      !grad.is_contiguous() || x.shape() != grad.shape())
    return false;
  GG_CHECK(out.is_contiguous() && out.dtype() == x.dtype() && out.shape() == x.shape(),
           "[gelu_backward] internal: out must be a contiguous {} tensor of shape {}",
           dtype_name(x.dtype()), shape_str(x.shape()));
  const int64_t n = x.numel();
  if (n == 0) return true;
  KeyBuilder key(kGeluBackwardTag);
  key.add(static_cast<int64_t>(x.dtype())).add(n);
  const auto held =
      cached(key.str(), [&] { return build_gelu_backward(plain_desc({n}, {1}, x.dtype())); });
  const GeluBackwardPlan& plan = *held;  // held: an eviction meanwhile cannot free it
  if (!plan.eltwise) return false;
  dnnl::stream& s = stream();
  memory src_mem(plan.md, engine(), const_cast<void*>(x.raw_data()));
  memory diff_dst_mem(plan.md, engine(), const_cast<void*>(grad.raw_data()));
  memory diff_src_mem(plan.md, engine(), out.raw_data());
  plan.eltwise->execute(s, {{DNNL_ARG_SRC, src_mem},
                            {DNNL_ARG_DIFF_DST, diff_dst_mem},
                            {DNNL_ARG_DIFF_SRC, diff_src_mem},
                            {DNNL_ARG_SCRATCHPAD, scratchpad(plan.scratchpad_md)}});
  s.wait();
  return true;
}

}  // namespace gg::onednn
