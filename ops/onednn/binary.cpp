#include "ops/onednn/binary.hpp"

#include <algorithm>
#include <optional>

#include "core/strided.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/reorder.hpp"

// What oneDNN 2.6.3's binary primitive does on this machine (avx512_core + bf16):
//   jit:uni runs when src0 and dst have the same dense layout and dtype and src1 is dense in its
//   own (broadcast) dims: no broadcast, a scalar, a row [1, N], a column [M, 1], a middle dim
//   [A, 1, C] or [1, B, 1]; src1 may be bf16 with an f32 src0/dst. Everything else is ref:any,
//   hundreds of times slower (0.6 s for a 1M-element add with a transposed src0):
//   a broadcast src0, transposed or sliced operands, bf16 src0 with f32 dst (comparisons of bf16),
//   and some broadcast patterns such as [A, B, C, D] with src1 [1, B, 1, D].
//   Semantics: add/sub/mul/div are one f32 IEEE operation and one rounding to dst (bit-equal to
//   the loop); lt/le/eq are false for NaN, but gt and ge are TRUE for NaN (oneDNN compares with
//   "not less-or-equal" / "not less"), and max/min return src1 when src0 is NaN. Source scales
//   (set_scales on SRC_0/SRC_1) multiply before the op and keep jit:uni.
// So max/min stay on the loop, and every op is posed as alg(s0 * src0, s1 * src1) with scales
// s0, s1 in {1, -1}, which is exact (negation is exact) and lets any op but div take its
// operands in either order: a - b = (-b) + a, a > b = (-a) < (-b) = b < a, a < b = (-b) < (-a).
// Coalescing dims turns most broadcast patterns into fast ones. The order is chosen so that src0
// is full and dense; failing that, src0 is copied into dst first (a jit reorder; a broadcast
// scalar is a fill) and the op runs in place, and a src1 that is not dense is copied into a
// contiguous temporary. A broadcast src0 that is not a scalar, with div (e.g. [N, 1] / [1, M]),
// or a plan that would still be ref:any is declined: the one-pass loop is as fast as a
// stride-0 reorder (simple:any) followed by the op.

namespace gg::onednn {

namespace {

using dnnl::algorithm;
using dnnl::memory;

struct BinaryPlan {
  std::optional<dnnl::binary> binary;  // empty: no fast (jit) implementation
  memory::desc src0_md, src1_md, dst_md, scratchpad_md;
};

// dst = alg(s0 * src0, s1 * src1) with s = -1 where negated.
struct Form {
  algorithm alg;
  bool negate_src0 = false, negate_src1 = false;
};

// The exact formulation of a op b, with src0 = a and src1 = b, or swapped (src0 = b, src1 = a).
Form formulate(BinaryOp op, bool swapped) {
  switch (op) {
    case BinaryOp::Add:
      return {algorithm::binary_add};
    case BinaryOp::Mul:
      return {algorithm::binary_mul};
    case BinaryOp::Eq:
      return {algorithm::binary_eq};
    case BinaryOp::Div:
      return {algorithm::binary_div};  // never swapped
    case BinaryOp::Sub:
      return swapped ? Form{algorithm::binary_add, true, false} : Form{algorithm::binary_sub};
    case BinaryOp::Lt:  // a < b = (-b) < (-a)
      return swapped ? Form{algorithm::binary_lt, true, true} : Form{algorithm::binary_lt};
    case BinaryOp::Le:
      return swapped ? Form{algorithm::binary_le, true, true} : Form{algorithm::binary_le};
    case BinaryOp::Gt:  // a > b = (-a) < (-b) = b < a
      return swapped ? Form{algorithm::binary_lt} : Form{algorithm::binary_lt, true, true};
    case BinaryOp::Ge:
      return swapped ? Form{algorithm::binary_le} : Form{algorithm::binary_le, true, true};
    case BinaryOp::Max:
    case BinaryOp::Min:
    case BinaryOp::Remainder:
    case BinaryOp::Fmod:
      break;  // not supported
  }
  return {algorithm::undef};
}

// bf16 only where oneDNN has bf16 kernels (context.hpp, native_bf16).
bool is_compute_dtype(Dtype d) { return d == kFloat32 || (d == kBFloat16 && native_bf16()); }

// Fills a contiguous f32 or bf16 tensor with one value (exactly representable in its dtype).
void fill(const Tensor& out, double value) {
  if (out.dtype() == kFloat32) {
    std::fill_n(out.data_ptr<float>(), out.numel(), static_cast<float>(value));
  } else {
    std::fill_n(out.data_ptr<BFloat16>(), out.numel(), BFloat16(static_cast<float>(value)));
  }
}

BinaryPlan build_plan(const Form& form, const memory::desc& src0, const memory::desc& src1,
                      const memory::desc& dst) {
  BinaryPlan plan;
  auto impl = fast_implementation<dnnl::binary>([&] {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (form.negate_src0) attr.set_scales(DNNL_ARG_SRC_0, 0, {-1.f});
    if (form.negate_src1) attr.set_scales(DNNL_ARG_SRC_1, 0, {-1.f});
    return dnnl::binary::primitive_desc(dnnl::binary::desc(form.alg, src0, src1, dst), attr,
                                        engine());
  });
  if (!impl) return plan;
  plan.binary = std::move(impl->primitive);
  plan.src0_md = src0;
  plan.src1_md = src1;
  plan.dst_md = dst;
  plan.scratchpad_md = impl->pd.scratchpad_desc();
  return plan;
}

constexpr int64_t kBinaryTag = 0x42494e41;  // "BINA"

}  // namespace

bool binary_supported(BinaryOp op, Dtype a, Dtype b) {
  if (formulate(op, false).alg == algorithm::undef) return false;  // max, min, remainder, fmod
  return is_compute_dtype(a) && is_compute_dtype(b);
}

bool binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  if (!binary_supported(op, a.dtype(), b.dtype())) return false;
  const Dtype out_dtype = out.dtype();
  GG_CHECK(out.is_contiguous() && out_dtype == binary_result_dtype(op, a.dtype(), b.dtype()),
           "[binary] internal: out must be a contiguous {} tensor, got {} with strides {}",
           dtype_name(binary_result_dtype(op, a.dtype(), b.dtype())), dtype_name(out_dtype),
           shape_str(out.strides()));
  if (out.numel() == 0) return true;

  StridedProblem p{
      out.shape(),
      {out.strides(), broadcast_strides(a, out.shape()), broadcast_strides(b, out.shape())}};
  for (const Shape& s : p.strides) {
    if (std::any_of(s.begin(), s.end(), [](int64_t v) { return v < 0; })) return false;
  }
  coalesce(p);
  if (p.shape.size() > kMaxDims) return false;
  const Tensor* operand[3] = {&out, &a, &b};

  // What putting operand i0 in src0 and i1 in src1 costs: src0 must be full, dense and of dst's
  // dtype, else it is copied into dst (impossible for a broadcast that is not a scalar); src1
  // must be dense in its own dims, else it is copied into a temporary (an allocation too).
  constexpr int kImpossible = 100;
  auto cost = [&](int i0, int i1) {
    const Shape& s0 = p.strides[i0];
    const auto zeros = std::count(s0.begin(), s0.end(), 0);
    int c = 0;
    if (zeros == static_cast<int64_t>(s0.size()))
      c += 1;  // a scalar: fill dst with it
    else if (zeros > 0)
      c += kImpossible;
    else if (!is_dense(p.shape, s0) || operand[i0]->dtype() != out_dtype)
      c += 1;
    if (!is_dense(p.shape, p.strides[i1])) c += 2;
    return c;
  };
  const bool swapped = op != BinaryOp::Div && cost(2, 1) < cost(1, 2);
  const int i0 = swapped ? 2 : 1, i1 = swapped ? 1 : 2;
  if (cost(i0, i1) >= kImpossible) return false;
  const Form form = formulate(op, swapped);
  const Shape src1_dims = broadcast_dims(p.shape, p.strides[i1]);
  const Dtype src1_dtype = operand[i1]->dtype();

  KeyBuilder key(kBinaryTag);
  key.add(static_cast<int64_t>(form.alg))
      .add(form.negate_src0)
      .add(form.negate_src1)
      .add(static_cast<int64_t>(out_dtype))
      .add(static_cast<int64_t>(src1_dtype))
      .add(p.shape)
      .add(src1_dims);
  const auto held = cached(key.str(), [&] {
    memory::desc dst = plain_desc(p.shape, p.strides[0], out_dtype);
    memory::desc src1 = plain_desc(src1_dims, contiguous_strides(src1_dims), src1_dtype);
    return build_plan(form, dst, src1, dst);
  });
  const BinaryPlan& plan = *held;  // held: an eviction meanwhile cannot free it
  if (!plan.binary) return false;

  const Tensor& src0_operand = *operand[i0];
  const void* src0_data = src0_operand.raw_data();
  const Shape& s0 = p.strides[i0];
  if (std::all_of(s0.begin(), s0.end(), [](int64_t v) { return v == 0; })) {
    fill(out, load_as_double(src0_data, src0_operand.dtype(), 0));
    src0_data = out.raw_data();
  } else if (!is_dense(p.shape, s0) || src0_operand.dtype() != out_dtype) {
    if (!reorder(p.shape, src0_operand.dtype(), s0, src0_data, out_dtype, p.strides[0],
                 out.raw_data()))
      return false;
    src0_data = out.raw_data();
  }
  const void* src1_data = operand[i1]->raw_data();
  Tensor temporary;
  if (!is_dense(p.shape, p.strides[i1])) {
    temporary = empty(src1_dims, src1_dtype);
    if (!reorder(src1_dims, src1_dtype, p.strides[i1], src1_data, src1_dtype, temporary.strides(),
                 temporary.raw_data()))
      return false;
    src1_data = temporary.raw_data();
  }
  dnnl::stream& s = stream();
  memory src0(plan.src0_md, engine(), const_cast<void*>(src0_data));
  memory src1(plan.src1_md, engine(), const_cast<void*>(src1_data));
  memory dst(plan.dst_md, engine(), out.raw_data());
  plan.binary->execute(s, {{DNNL_ARG_SRC_0, src0},
                           {DNNL_ARG_SRC_1, src1},
                           {DNNL_ARG_DST, dst},
                           {DNNL_ARG_SCRATCHPAD, scratchpad(plan.scratchpad_md)}});
  s.wait();
  return true;
}

bool add_into(const Tensor& dst, const Tensor& src) {
  // With src0 and src1 both dense and of one dtype, binary() neither swaps them nor copies src0:
  // src0 = dst is read and written in place. (A strided src would be swapped into src0 and
  // copied over dst before the add.)
  if (!dst.is_contiguous() || !src.is_contiguous() || dst.shape() != src.shape() ||
      dst.dtype() != src.dtype())
    return false;
  return binary(BinaryOp::Add, dst, src, dst);
}

}  // namespace gg::onednn
