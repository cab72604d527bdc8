#pragma once
// What grouped_mm's list form (grouped_mm_list.cpp) and packed form (grouped_mm_packed.cpp) share:
// the named operand kinds of a node, the checks and message pieces both forms validate with, the
// parsing of offs, and the preparation of operands and biases as MatRefs the kernel reads in place.
// Internal to ops/: not included by any public header.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/grouped_mm.hpp"
#include "ops/kernels/grouped_mm_kernel.hpp"

namespace gg::gmm {

using kernels::ColumnSumTask;
using kernels::GemmTask;
using kernels::MatRef;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// ==== operand kinds ==============================================================================

// What a grouped_mm node's inputs, and so its gradients, are. A packed node has one of each, in
// this order; a list node has G of each, kind after kind: the G inputs, then the G mat2s, then the
// G biases (undefined where a group has none).
enum class Operand : size_t { kInput, kMat2, kBias };
inline constexpr Operand kOperands[] = {Operand::kInput, Operand::kMat2, Operand::kBias};
inline constexpr size_t kOperandKinds = std::size(kOperands);

constexpr size_t index(Operand kind) { return static_cast<size_t>(kind); }

// Where group `group`'s operand of kind `kind` sits among a node's inputs and gradients, when each
// kind fills `groups` consecutive places (the packed form: one group).
constexpr size_t slot(Operand kind, size_t group = 0, size_t groups = 1) {
  return index(kind) * groups + group;
}

// ==== validation =================================================================================

// "(input [100, 75], mat2 [50, 64])", with the bias when there is one.
std::string shapes(const Tensor& input, const Tensor& mat2, const Tensor& bias = {});

std::string group_prefix(int64_t group);

// `ctx` makes the "(input [..], mat2 [..])" part of a message: only called on failure.
template <class Ctx>
void check_grad_dtype(const Tensor& t, const char* what, int64_t group, const Ctx& ctx) {
  GG_CHECK(!t.requires_grad() || is_floating(t.dtype()),
           "{} {} is {} but requires grad; only floating tensors can require grad {}",
           group_prefix(group), what, dtype_name(t.dtype()), ctx());
}

template <class Ctx>
void check_same_dtype(const Tensor& a, const char* a_name, const Tensor& b, const char* b_name,
                      int64_t group, const Ctx& ctx) {
  GG_CHECK(a.dtype() == b.dtype(), "{} {} and {} dtypes differ: {} is {}, {} is {} {}",
           group_prefix(group), a_name, b_name, a_name, dtype_name(a.dtype()), b_name,
           dtype_name(b.dtype()), ctx());
}

// offs as G group ends, each checked as it is read (non-negative, non-decreasing, at most
// `extent`), after the caller has compared G with the other operand. A stride-0 (expanded) offs
// can claim up to 2^62 entries while holding one value: its entries are all equal, so one is
// checked, and its G ends are sized only after check_allocation, so that a G no memory holds is a
// gg::Error.
template <class Ctx>
std::vector<int64_t> read_offs(const Tensor& offs, int64_t extent, const char* split,
                               const Ctx& ctx) {
  const int64_t groups = offs.size(0), stride = offs.stride(0);
  const int64_t distinct = stride == 0 ? std::min<int64_t>(groups, 1) : groups;
  std::vector<int64_t> ends(static_cast<size_t>(distinct));
  dispatch(offs.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, int32_t> || std::is_same_v<T, int64_t>) {
      const T* p = static_cast<const T*>(offs.raw_data());
      for (int64_t g = 0; g < distinct; ++g) {
        const int64_t e = ends[g] = p[g * stride];
        GG_CHECK(e >= 0, "[grouped_mm] group {}: offs[{}]={} is negative {}", g, g, e, ctx());
        GG_CHECK(g == 0 || e >= ends[g - 1],
                 "[grouped_mm] group {}: offs must be non-decreasing, but offs[{}]={} < "
                 "offs[{}]={} {}",
                 g, g, e, g - 1, ends[g - 1], ctx());
        GG_CHECK(e <= extent, "[grouped_mm] group {}: offs[{}]={} is past {}={} {}", g, g, e, split,
                 extent, ctx());
      }
    }
  });
  if (distinct == groups) return ends;
  check_allocation(static_cast<uint64_t>(groups), sizeof(int64_t), "grouped_mm",
                   fmt::format("offs has G={} entries (a stride-0 view)", groups), ctx());
  ends.assign(static_cast<size_t>(groups), ends[0]);
  return ends;
}

// ==== operands ===================================================================================

// Float16 has no matmul on this CPU: it computes in Float32 (and the output is written as f16).
inline Dtype compute_dtype(Dtype d) { return d == kFloat16 ? kFloat32 : d; }

inline MatRef mat(const Tensor& t) {
  return {t.raw_data(),           t.size(0), t.size(1), t.stride(0), t.stride(1), t.dtype(),
          t.impl()->storage.get()};
}
// Matrix `index` of a 3-D tensor.
inline MatRef mat(const Tensor& t, int64_t index) {
  char* data = static_cast<char*>(t.raw_data()) +
               index * t.stride(0) * static_cast<int64_t>(t.element_size());
  return {data, t.size(1), t.size(2), t.stride(1), t.stride(2), t.dtype(), t.impl()->storage.get()};
}
// `length` elements of a contiguous 1-D or 2-D bias from element `offset`, as a bias row (none
// for an undefined bias).
inline std::optional<MatRef> bias_row(const Tensor& b, int64_t offset, int64_t length) {
  if (!b.defined()) return std::nullopt;
  char* data = static_cast<char*>(b.raw_data()) + offset * static_cast<int64_t>(b.element_size());
  return MatRef{data, 1, length, length, 1, b.dtype(), b.impl()->storage.get()};
}

// Operands are read in place when oneDNN can (no Tensor objects made per group: the list form
// with many tiny groups is bound by such overheads); a copy is made, and kept alive in `keep`,
// only for Float16 (computed in Float32) or a layout no kernel reads.

// x [k], [p, k] or [*, k] as the matrix [p, k] on x's own memory, if its leading dims merge.
inline std::optional<MatRef> rows_of(const Tensor& x) {
  const TensorImpl& impl = *x.impl();
  const int64_t d = static_cast<int64_t>(impl.shape.size());
  const int64_t k = impl.shape.back(), ks = impl.strides.back();
  const void* owner = impl.storage.get();
  if (d == 1) return MatRef{x.raw_data(), 1, k, k * ks, ks, impl.dtype, owner};
  if (d == 2) {  // the common case, without the general walk below (the same result)
    const int64_t p = impl.shape[0];
    return MatRef{x.raw_data(), p, k, p == 1 ? k * ks : impl.strides[0], ks, impl.dtype, owner};
  }
  // Leading dims merge when each (of size > 1) steps over the next one exactly.
  int64_t p = 1, row_stride = 0, inner = -1;  // inner: the innermost leading dim of size > 1
  for (int64_t i = d - 2; i >= 0; --i) {
    p *= x.size(i);
    if (x.size(i) == 1) continue;
    if (inner >= 0 && x.stride(i) != x.stride(inner) * x.size(inner)) {
      if (x.numel() != 0) return std::nullopt;
    }
    if (inner < 0) row_stride = x.stride(i);
    inner = i;
  }
  if (inner < 0) row_stride = k * ks;  // a single row
  return MatRef{x.raw_data(), p, k, row_stride, ks, x.dtype(), owner};
}

// The [p, k] matrix of a list operand in its compute dtype, with strides oneDNN reads.
MatRef list_operand(const Tensor& t, std::vector<Tensor>& keep);

// A list bias [m] (contiguous, compute dtype) as a bias row; none for an undefined bias.
std::optional<MatRef> list_bias(const Tensor& b, std::vector<Tensor>& keep);

// A packed operand (detached) in its compute dtype, with strides oneDNN reads (copying only
// when it must).
Tensor operand(const Tensor& t);

// Fresh contiguous tensors of the given shapes and dtypes, in one allocation when they share
// a dtype.
std::vector<Tensor> allocate(std::vector<Shape> shapes, const std::vector<Dtype>& dtypes);

}  // namespace gg::gmm
