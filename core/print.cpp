// PyTorch-style printing: tensor([[1.0000, 2.0000],
//                                 [3.0000, 4.0000]], dtype=float32, requires_grad=True)
// The layout follows torch/_tensor_str.py (common element width, 80-column lines, summarizing
// with " ..." past 1000 elements, blank lines between 3-D blocks, suffixes wrapped at 80
// columns). Two deliberate differences: float values always print with 4 decimals ("1.0000",
// where PyTorch prints "1." for all-integer tensors), and dtype=... is always printed.
#include <cmath>
#include <ostream>
#include <type_traits>

#include "core/strided.hpp"
#include "core/tensor.hpp"

namespace gg {

namespace {
constexpr int64_t kSummarizeThreshold = 1000;
constexpr int64_t kEdgeItems = 3;
constexpr int64_t kLineWidth = 80;
constexpr int kIndent = 7;  // strlen("tensor(")

struct Formatter {
  const void* base = nullptr;
  Dtype dtype = kFloat32;
  bool scientific = false;
  size_t width = 1;
  std::string raw(int64_t offset) const {
    if (!is_floating(dtype)) {  // exact, also past 2^53
      return dispatch(dtype, [&]<class T>() {
        if constexpr (std::is_integral_v<T>) {
          return fmt::format("{}", static_cast<int64_t>(static_cast<const T*>(base)[offset]));
        } else {
          return std::string();  // unreachable: floating dtypes are handled below
        }
      });
    }
    double v = load_as_double(base, dtype, offset);
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    return scientific ? fmt::format("{:.4e}", v) : fmt::format("{:.4f}", v);
  }
  std::string operator()(int64_t offset) const { return fmt::format("{:>{}}", raw(offset), width); }
};

// Calls f(offset) for every element that gets printed (with summarizing, only the first and last
// kEdgeItems of each long dimension), in printing order.
template <class F>
void visit_printed(const TensorImpl& t, size_t d, int64_t offset, bool summarize, F& f) {
  if (d == t.shape.size()) {
    f(offset);
    return;
  }
  const int64_t n = t.shape[d];
  for (int64_t i = 0; i < n; ++i) {
    if (summarize && n > 2 * kEdgeItems && i == kEdgeItems) i = n - kEdgeItems;
    visit_printed(t, d + 1, offset + i * t.strides[d], summarize, f);
  }
}

Formatter make_formatter(const TensorImpl& t, bool summarize) {
  Formatter f;
  f.base = t.storage->data();
  f.dtype = t.dtype;
  if (is_floating(t.dtype)) {  // PyTorch's rule, over the nonzero finite values that are printed
    double max_abs = 0, min_abs = INFINITY;
    auto stats = [&](int64_t o) {
      double v = std::fabs(load_as_double(f.base, t.dtype, o));
      if (!std::isfinite(v) || v == 0) return;
      max_abs = std::max(max_abs, v);
      min_abs = std::min(min_abs, v);
    };
    visit_printed(t, 0, t.offset, summarize, stats);
    f.scientific = max_abs > 0 && (max_abs / min_abs > 1000.0 || max_abs > 1e8 || min_abs < 1e-4);
  }
  auto widths = [&](int64_t o) { f.width = std::max(f.width, f.raw(o).size()); };
  visit_printed(t, 0, t.offset, summarize, widths);
  return f;
}

std::string format_rec(const TensorImpl& t, const Formatter& f, size_t d, int64_t offset,
                       bool summarize, int64_t indent) {
  const int64_t n = t.shape[d];
  const bool elide = summarize && n > 2 * kEdgeItems;
  const int64_t ndim = static_cast<int64_t>(t.shape.size());
  std::vector<std::string> items;
  for (int64_t i = 0; i < n; ++i) {
    if (elide && i == kEdgeItems) {
      items.push_back(d + 1 == t.shape.size() ? " ..." : "...");
      i = n - kEdgeItems;
    }
    int64_t o = offset + i * t.strides[d];
    items.push_back(d + 1 == t.shape.size() ? f(o)
                                            : format_rec(t, f, d + 1, o, summarize, indent + 1));
  }
  std::string out = "[";
  if (d + 1 == t.shape.size()) {  // a row: as many elements per line as fit in 80 columns
    const int64_t per_line =
        std::max<int64_t>(1, (kLineWidth - indent) / static_cast<int64_t>(f.width + 2));
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0)
        out += i % per_line == 0 ? fmt::format(",\n{:{}}", "", indent + 1) : std::string(", ");
      out += items[i];
    }
  } else {
    for (size_t i = 0; i < items.size(); ++i) {
      if (i > 0)
        out += fmt::format(",{}{:{}}", std::string(ndim - static_cast<int64_t>(d) - 1, '\n'), "",
                           indent + 1);
      out += items[i];
    }
  }
  return out + "]";
}
}  // namespace

std::string Tensor::to_string() const {
  if (!defined()) return "tensor(undefined)";
  const TensorImpl& t = *impl_;
  const int64_t n = numel();
  std::string body;
  if (n == 0) {
    body = "[]";
  } else {
    const bool summarize = n > kSummarizeThreshold;
    Formatter f = make_formatter(t, summarize);
    body = t.shape.empty() ? f(t.offset) : format_rec(t, f, 0, t.offset, summarize, kIndent);
  }
  std::vector<std::string> suffixes;
  if (n == 0 && t.shape.size() != 1) {
    suffixes.push_back(fmt::format("size=({})", fmt::join(t.shape, ", ")));
  }
  suffixes.push_back(fmt::format("dtype={}", dtype_name(t.dtype)));
  if (t.grad_fn) {
    suffixes.push_back(fmt::format("grad_fn=<{}>", autograd::node_name(*t.grad_fn)));
  } else if (t.requires_grad) {
    suffixes.push_back("requires_grad=True");
  }
  // Like PyTorch's _add_suffixes: a suffix that would pass column 80 starts a new line.
  std::string out = "tensor(" + body;
  size_t newline = out.rfind('\n');
  int64_t last_line = static_cast<int64_t>(out.size()) -
                      (newline == std::string::npos ? -1 : static_cast<int64_t>(newline)) + 1;
  for (const std::string& s : suffixes) {
    const int64_t len = static_cast<int64_t>(s.size());
    if (last_line + len + 2 > kLineWidth) {
      out += fmt::format(",\n{:{}}{}", "", kIndent, s);
      last_line = kIndent + len;
    } else {
      out += ", " + s;
      last_line += len + 2;
    }
  }
  return out + ")";
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace gg
