#include "ops/kernels/matmul_kernel.hpp"

#include "core/copy.hpp"
#include "ops/onednn/matmul.hpp"
#include "ops/reference/matmul.hpp"

namespace gg::kernels {

namespace {
std::array<int64_t, 3> strides3(const Tensor& t) {
  const Shape& s = t.strides();
  return {t.size(0) == 1 ? 0 : s[0], s[1], s[2]};
}

// Whether oneDNN reads the [batch, rows, cols] operand t only with its ref:any kernel (which
// matmul() below replaces with reference::matmul, ~15x slower than brg a core): a row or column
// with stride 0 (e.g. the expanded gradient that sum() hands to matmul's backward, which took
// seconds for a 4096x512x1024 product), or no unit stride at all.
bool only_ref_kernel(const Tensor& t) {
  const int64_t rows = t.size(1), cols = t.size(2), rs = t.stride(1), cs = t.stride(2);
  const bool zero = (rows > 1 && rs == 0) || (cols > 1 && cs == 0);
  const bool unit = rows == 1 || cols == 1 || rs == 1 || cs == 1;
  return zero || !unit;
}

// t as a dense copy (one matrix when its batch is broadcast, which oneDNN broadcasts itself).
Tensor dense(const Tensor& t) {
  if (t.size(0) > 1 && t.stride(0) == 0)  // (a view of batch 0, made contiguous)
    return as_contiguous(
        as_strided_view(t, {1, t.size(1), t.size(2)}, t.strides(), t.storage_offset()));
  return as_contiguous(t);
}
}  // namespace

void matmul(const MatmulProblem& p, const void* src, const void* wei, const void* bias, void* dst) {
  onednn::matmul(p, src, wei, bias, dst, &reference::matmul);
}

void bmm_into(const Tensor& a, const Tensor& w, const Tensor& out, const Tensor& bias,
              bool accumulate) {
  if ((a.dtype() == kFloat32 || a.dtype() == kBFloat16) &&
      (only_ref_kernel(a) || only_ref_kernel(w))) {
    // A copy costs O(rows x cols), the slow kernel O(rows x cols x inner) at a fraction of brg.
    bmm_into(only_ref_kernel(a) ? dense(a) : a, only_ref_kernel(w) ? dense(w) : w, out, bias,
             accumulate);
    return;
  }
  MatmulProblem p;
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
      b = as_contiguous(b);
      p.bias_batch_stride = b.stride(0);
    } else {
      b = as_contiguous(b);  // [N] or [1, N]: N contiguous elements either way
    }
  }
  const void* bias_ptr = b.defined() ? b.raw_data() : nullptr;
  if (onednn::matmul_supported(p)) {
    matmul(p, a.raw_data(), w.raw_data(), bias_ptr, out.raw_data());
    return;
  }
  if (a.dtype() == kFloat16 && w.dtype() == kFloat16) {
    // No f16 matmul on this CPU: compute through f32 (oneDNN writes the f16 result).
    Tensor a32 = as_dtype(a, kFloat32), w32 = as_dtype(w, kFloat32);
    Tensor b32 = b.defined() ? as_dtype(b, kFloat32) : Tensor();
    bmm_into(a32, w32, out, b32, accumulate);
    return;
  }
  reference::matmul(p, a.raw_data(), w.raw_data(), bias_ptr, out.raw_data());
}

}  // namespace gg::kernels
