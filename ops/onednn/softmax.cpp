#include "ops/onednn/softmax.hpp"

#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "core/error.hpp"
#include "ops/onednn/context.hpp"

// What oneDNN 2.6.3 picks on this machine (avx512_core + bf16): softmax and logsoftmax over the
// last dim (inner == 1, posed as 2-D) run jit:avx512_core for f32 and bf16; a non-last axis
// (inner > 1) goes to ref:any, about 20x slower (so kernels::softmax moves the axis last first).
// Accuracy: its exp/log are polynomial approximations, a few f32 ulp (log_softmax of a
// single element gives 1.4e-6, not 0).

namespace gg::onednn {

namespace {

using dnnl::memory;

struct Plan {
  dnnl::primitive primitive;
  memory::desc data_md, scratchpad_md;
  std::string implementation;
};

memory::desc data_desc(Dtype dtype, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) return memory::desc({outer, n}, to_dnnl(dtype), memory::format_tag::ab);
  return memory::desc({outer, n, inner}, to_dnnl(dtype), memory::format_tag::abc);
}

template <class Primitive>
Plan build(const memory::desc& md) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  typename Primitive::desc desc(dnnl::prop_kind::forward_inference, md, 1);
  typename Primitive::primitive_desc pd(desc, attr, engine());
  return Plan{Primitive(pd), md, pd.scratchpad_desc(), pd.impl_info_str()};
}

constexpr int64_t kSoftmaxTag = 0x534f4654;  // "SOFT"

std::shared_ptr<const Plan> find_plan(Dtype dtype, int64_t outer, int64_t n, int64_t inner,
                                      bool log) {
  GG_CHECK(softmax_supported(dtype),
           "[softmax] oneDNN softmax needs float32, or bfloat16 from AVX512_CORE up; got {} on {}",
           dtype_name(dtype), isa_name(effective_isa()));
  GG_CHECK(outer > 0 && n > 0 && inner > 0,
           "[softmax] oneDNN softmax needs positive sizes, got [{}, {}, {}]", outer, n, inner);
  KeyBuilder key(kSoftmaxTag);
  key.add(std::array<int64_t, 5>{static_cast<int64_t>(dtype), outer, n, inner, log});
  return cached(key.str(), [&] {
    try {
      memory::desc md = data_desc(dtype, outer, n, inner);
      return log ? build<dnnl::logsoftmax_forward>(md) : build<dnnl::softmax_forward>(md);
    } catch (const dnnl::error& e) {
      fail("[{}] oneDNN rejected {} [{}, {}, {}] along dim 1: {}", log ? "log_softmax" : "softmax",
           dtype_name(dtype), outer, n, inner, e.what());
    }
  });
}

}  // namespace

bool softmax_supported(Dtype dtype) {
  return dtype == kFloat32 || (dtype == kBFloat16 && native_bf16());
}

void softmax(const void* src, void* dst, Dtype dtype, int64_t outer, int64_t n, int64_t inner,
             bool log) {
  const auto held = find_plan(dtype, outer, n, inner, log);
  const Plan& plan = *held;  // held: an eviction meanwhile cannot free it
  const dnnl::engine& e = engine();
  plan.primitive.execute(stream(), {{DNNL_ARG_SRC, memory(plan.data_md, e, const_cast<void*>(src))},
                                    {DNNL_ARG_DST, memory(plan.data_md, e, dst)},
                                    {DNNL_ARG_SCRATCHPAD, scratchpad(plan.scratchpad_md)}});
  stream().wait();
}

std::string softmax_implementation(Dtype dtype, int64_t outer, int64_t n, int64_t inner, bool log) {
  return find_plan(dtype, outer, n, inner, log)->implementation;
}

}  // namespace gg::onednn
