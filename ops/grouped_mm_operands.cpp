// grouped_mm's shared validation pieces and operand preparation (see grouped_mm_operands.hpp).
#include "ops/grouped_mm_operands.hpp"

#include "core/copy.hpp"

namespace gg::gmm {

std::string shapes(const Tensor& input, const Tensor& mat2, const Tensor& bias) {
  std::string s = fmt::format("(input {}, mat2 {}", describe(input, false), describe(mat2, false));
  if (bias.defined()) s += fmt::format(", bias {}", describe(bias, false));
  return s + ")";
}

std::string group_prefix(int64_t group) {
  return group < 0 ? std::string("[grouped_mm]") : fmt::format("[grouped_mm] group {}:", group);
}

MatRef list_operand(const Tensor& t, std::vector<Tensor>& keep) {
  const Dtype c = compute_dtype(t.dtype());
  if (c == t.dtype()) {
    std::optional<MatRef> m = rows_of(t);
    if (m && (t.numel() == 0 || kernels::gemm_ready(*m))) return *m;
  }
  const Tensor& copy = keep.emplace_back(as_contiguous(as_dtype(t, c)));
  return *rows_of(copy);
}

std::optional<MatRef> list_bias(const Tensor& b, std::vector<Tensor>& keep) {
  if (!b.defined()) return std::nullopt;
  const Dtype c = compute_dtype(b.dtype());
  if (c == b.dtype() && b.stride(0) == 1) return bias_row(b, 0, b.size(0));
  const Tensor& copy = keep.emplace_back(as_contiguous(as_dtype(b, c)));
  return bias_row(copy, 0, copy.size(0));
}

Tensor operand(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor c = t.detach();
  if (c.dtype() != compute_dtype(c.dtype())) c = c.to(compute_dtype(c.dtype()));
  if (c.dim() == 1) return c.stride(0) == 1 ? c : c.contiguous();
  const MatRef m = c.dim() == 2 ? mat(c) : mat(c, 0);
  if (c.numel() > 0 && !kernels::gemm_ready(m)) c = c.contiguous();
  return c;
}

namespace {

// A tensor over existing storage (the outputs of one call share one allocation).
Tensor view_of(const Tensor& buffer, int64_t offset, Shape shape) {
  Shape strides = contiguous_strides(shape);
  return as_strided_view(buffer, std::move(shape), std::move(strides), offset, "grouped_mm");
}

}  // namespace

std::vector<Tensor> allocate(std::vector<Shape> shapes, const std::vector<Dtype>& dtypes) {
  std::vector<Tensor> out(shapes.size());
  if (shapes.empty()) return out;
  if (std::all_of(dtypes.begin(), dtypes.end(), [&](Dtype d) { return d == dtypes[0]; })) {
    // The sum of the sizes, checked: 4 groups of 2^62 elements wrapped to 0 and the kernel wrote
    // 2^62 rows into an empty buffer.
    int64_t total = 0;
    for (const Shape& s : shapes) {
      total = size_add(total, numel_of(s, "grouped_mm"), "grouped_mm", [&] {
        std::string list;
        for (size_t i = 0; i < shapes.size() && i < 8; ++i)
          list += (i ? ", " : "") + shape_str(shapes[i]);
        return fmt::format("the total element count of {} tensors ({}{})", shapes.size(), list,
                           shapes.size() > 8 ? ", ..." : "");
      });
    }
    Tensor buffer = empty({total}, dtypes[0]);
    int64_t offset = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const int64_t n = numel_of(shapes[i]);
      out[i] = view_of(buffer, offset, std::move(shapes[i]));
      offset += n;
    }
  } else {
    for (size_t i = 0; i < shapes.size(); ++i) out[i] = empty(std::move(shapes[i]), dtypes[i]);
  }
  return out;
}

}  // namespace gg::gmm
