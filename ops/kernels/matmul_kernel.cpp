#include "ops/kernels/matmul_kernel.hpp"

#include "ops/onednn/matmul.hpp"
#include "ops/reference/matmul.hpp"

namespace gg::kernels {

namespace {
// A row or column stride of 0 (an expanded operand, e.g. the gradient of sum()): oneDNN accepts
// the description but only its slow reference kernel runs it.
bool expanded_matrix(const Tensor& t) {
  return (t.size(1) > 1 && t.stride(1) == 0) || (t.size(2) > 1 && t.stride(2) == 0);
}

std::array<int64_t, 3> strides3(const Tensor& t) {
  const Shape& s = t.strides();
  return {t.size(0) == 1 ? 0 : s[0], s[1], s[2]};
}
}  // namespace

void bmm_into(const Tensor& a, const Tensor& w, const Tensor& out, const Tensor& bias,
              bool accumulate) {
  if ((a.dtype() == kFloat32 || a.dtype() == kBFloat16) &&
      (expanded_matrix(a) || expanded_matrix(w))) {
    // One copy of the operand is far cheaper than the reference loop (~100x).
    bmm_into(expanded_matrix(a) ? a.detach().contiguous() : a,
             expanded_matrix(w) ? w.detach().contiguous() : w, out, bias, accumulate);
    return;
  }
  onednn::MatmulProblem p;
  p.batch = out.size(0);
  p.M = out.size(1);
  p.K = a.size(2);
  p.N = out.size(2);
  p.src_dtype = a.dtype();
  p.wei_dtype = w.dtype();
  p.dst_dtype = out.dtype();
  p.src_strides = strides3(a);
  p.wei_strides = strides3(w);
  p.dst_strides = {out.stride(0), out.stride(1), out.stride(2)};
  p.accumulate = accumulate;
  Tensor b = bias;
  if (b.defined()) {
    p.has_bias = true;
    p.bias_dtype = b.dtype();
    if (b.dim() == 2 && b.size(0) > 1) {
      b = b.contiguous();
      p.bias_batch_stride = b.stride(0);
    } else {
      b = b.reshape({b.size(-1)}).contiguous();
    }
  }
  const void* bias_ptr = b.defined() ? b.raw_data() : nullptr;
  if (onednn::matmul_supported(p)) {
    onednn::matmul(p, a.raw_data(), w.raw_data(), bias_ptr, out.raw_data());
    return;
  }
  if (a.dtype() == kFloat16 && w.dtype() == kFloat16) {
    // No f16 matmul on this CPU: compute through f32 (oneDNN writes the f16 result).
    Tensor a32 = a.detach().to(kFloat32), w32 = w.detach().to(kFloat32);
    Tensor b32 = b.defined() ? b.detach().to(kFloat32) : Tensor();
    bmm_into(a32, w32, out, b32, accumulate);
    return;
  }
  reference::matmul(p, a.raw_data(), w.raw_data(), bias_ptr, out.raw_data());
}

}  // namespace gg::kernels
