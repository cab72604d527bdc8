#include "distributed/collective_check.hpp"

#include <fmt/format.h>

#include "core/error.hpp"

namespace gg::distributed::detail {

void Header::add_tensor(const Tensor& t) {
  const bool defined = t.defined();
  fields.push_back(defined ? 1 : 0);
  fields.push_back(defined ? static_cast<int64_t>(t.dtype()) : 0);
  fields.push_back(defined ? t.dim() : 0);
  for (int d = 0; d < kMaxDims; ++d) fields.push_back(defined && d < t.dim() ? t.size(d) : 0);
}

void Header::add_sizes(const std::vector<int64_t>& sizes, int world) {
  fields.push_back(sizes.empty() ? 0 : static_cast<int64_t>(sizes.size()));
  for (int r = 0; r < world; ++r)
    fields.push_back(static_cast<size_t>(r) < sizes.size() ? sizes[static_cast<size_t>(r)] : 0);
}

std::string TensorDesc::str() const {
  if (!defined) return "an undefined tensor";
  if (ndim > kMaxDims) return fmt::format("a {} tensor of {} dims", dtype_name(dtype), ndim);
  return fmt::format("{} {}", dtype_name(dtype), shape_str(shape));
}

TensorDesc Headers::tensor(int rank, size_t at) const {
  TensorDesc d;
  d.defined = value(rank, at) != 0;
  d.dtype = static_cast<Dtype>(value(rank, at + 1));
  d.ndim = value(rank, at + 2);
  for (int64_t i = 0; i < std::min<int64_t>(d.ndim, kMaxDims); ++i)
    d.shape.push_back(value(rank, at + 3 + static_cast<size_t>(i)));
  return d;
}

namespace {
bool supported(Dtype d) {
  return d == kFloat32 || d == kBFloat16 || d == kFloat64 || d == kInt32 || d == kInt64;
}

// "rank 0 has float32 [2, 3], rank 1 has float32 [3, 3]" (the first 8 ranks, then "...").
std::string every_rank(const Headers& h, size_t at) {
  std::string s;
  for (int r = 0; r < h.world() && r < 8; ++r)
    s += fmt::format("{}rank {} has {}", r ? ", " : "", r, h.tensor(r, at).str());
  if (h.world() > 8) s += ", ...";
  return s;
}
}  // namespace

void check_tensors_usable(const char* op, const Headers& h, size_t at) {
  for (int r = 0; r < h.world(); ++r) {
    const TensorDesc t = h.tensor(r, at);
    GG_CHECK(t.defined, "[{}] every rank must pass a defined tensor: rank {} passed {}", op, r,
             t.str());
    GG_CHECK(t.ndim <= kMaxDims,
             "[{}] tensors of more than {} dims are not supported: rank {} has {}", op, kMaxDims, r,
             t.str());
    GG_CHECK(supported(t.dtype),
             "[{}] dtype {} is not supported (float32, bfloat16, float64, int32, int64): rank {} "
             "has {}",
             op, dtype_name(t.dtype), r, t.str());
  }
}

void check_same_tensor(const char* op, const Headers& h, size_t at) {
  const TensorDesc first = h.tensor(0, at);
  for (int r = 1; r < h.world(); ++r) {
    const TensorDesc t = h.tensor(r, at);
    GG_CHECK(t.dtype == first.dtype && t.shape == first.shape,
             "[{}] every rank must pass the same dtype and shape: {}", op, every_rank(h, at));
  }
}

void check_same_value(const char* op, const Headers& h, size_t at, const char* what) {
  for (int r = 1; r < h.world(); ++r) {
    if (h.value(r, at) == h.value(0, at)) continue;
    std::string s;
    for (int q = 0; q < h.world() && q < 8; ++q)
      s += fmt::format("{}rank {} passed {}", q ? ", " : "", q, h.value(q, at));
    fail("[{}] every rank must pass the same {}: {}", op, what, s);
  }
}

}  // namespace gg::distributed::detail
