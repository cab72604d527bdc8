// PyTorch-style printing: tensor([[1.0000, 2.0000],
//                                 [3.0000, 4.0000]], dtype=float32, requires_grad=True)
#include <cmath>
#include <ostream>

#include "autograd/node.hpp"
#include "core/strided.hpp"
#include "core/tensor.hpp"

namespace gg {

namespace {
constexpr int64_t kSummarizeThreshold = 1000;
constexpr int64_t kEdgeItems = 3;

struct Formatter {
  bool floating;
  bool scientific;
  std::string operator()(double v) const {
    if (!floating) return fmt::format("{}", static_cast<int64_t>(v));
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return scientific ? fmt::format("{:.4e}", v) : fmt::format("{:.4f}", v);
  }
};

void format_rec(std::string& out, const Tensor& t, const Formatter& f, int64_t d, int64_t offset,
                bool summarize, int indent) {
  const int64_t n = t.size(d);
  const bool last = d == t.dim() - 1;
  out += '[';
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) {
      out += last ? "..., " : fmt::format("...,\n{:{}}", "", indent + 1);
      i = n - kEdgeItems;
    }
    int64_t o = offset + i * t.strides()[d];
    if (last) {
      out += f(load_as_double(t.impl()->storage->data(), t.dtype(), o));
    } else {
      format_rec(out, t, f, d + 1, o, summarize, indent + 1);
    }
    if (i + 1 < n) out += last ? ", " : fmt::format(",{}{:{}}", std::string(t.dim() - d - 1, '\n'), "", indent + 1);
  }
  out += ']';
}
}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  const TensorImpl& t = *impl_;
  Formatter f{is_floating(t.dtype), false};
  if (f.floating) {
    double max_abs = 0, min_abs = INFINITY;
    const void* base = t.storage->data();
    for_each_strided<1>(t.shape, {t.strides.data()}, {t.offset}, [&](const std::array<int64_t, 1>& o) {
      double v = std::fabs(load_as_double(base, t.dtype, o[0]));
      if (!std::isfinite(v)) return;
      max_abs = std::max(max_abs, v);
      if (v > 0) min_abs = std::min(min_abs, v);
    });
    f.scientific = max_abs >= 1e8 || (min_abs < 1e-4 && max_abs > 0);
  }
  std::string body;
  if (t.shape.empty()) {
    body = f(load_as_double(t.storage->data(), t.dtype, t.offset));
  } else {
    format_rec(body, *this, f, 0, t.offset, numel() > kSummarizeThreshold, 7);
  }
  std::string out = fmt::format("tensor({}, dtype={}", body, dtype_name(t.dtype));
  if (numel() == 0) out += fmt::format(", size={}", shape_str(t.shape));
  if (t.grad_fn) out += fmt::format(", grad_fn=<{}>", t.grad_fn->name());
  else if (t.requires_grad) out += ", requires_grad=True";
  return out + ")";
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace gg
