// grouped_mm: output[i] = input[i] @ mat2[i] + bias[i], in the list form and the four packed
// layouts of PyTorch's F.grouped_mm. This file validates, lays each group's product out as a
// GemmTask on strided memory, and records ONE tape node per call whose backward uses the same
// tasks (dX = dY W^T, dW = X^T dY as transposed views, dbias = column sums of dY).
// ops/kernels/grouped_mm_kernel.* decides how the tasks run (batched, cached, parallel).
#include "ops/grouped_mm.hpp"

#include <algorithm>
#include <concepts>
#include <memory>
#include <string>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "ops/kernels/grouped_mm_kernel.hpp"

namespace gg {

namespace {

using kernels::ColumnSumTask;
using kernels::GemmTask;
using kernels::MatRef;
using Grads = std::vector<Tensor>;
using Needs = std::vector<bool>;

// ==== validation =================================================================================

std::string desc(const Tensor& t) { return t.defined() ? shape_str(t.shape()) : "undefined"; }

// "(input [100, 75], mat2 [50, 64])", with the bias when there is one.
std::string shapes(const Tensor& input, const Tensor& mat2, const Tensor& bias = {}) {
  std::string s = fmt::format("(input {}, mat2 {}", desc(input), desc(mat2));
  if (bias.defined()) s += fmt::format(", bias {}", desc(bias));
  return s + ")";
}

std::string group_prefix(int64_t group) {
  return group < 0 ? std::string("[grouped_mm]") : fmt::format("[grouped_mm] group {}:", group);
}

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

void validate_list(const std::vector<Tensor>& input, const std::vector<Tensor>& mat2,
                   const std::vector<Tensor>& bias) {
  GG_CHECK(input.size() == mat2.size(),
           "[grouped_mm] list lengths differ: {} input tensors but {} mat2 tensors", input.size(),
           mat2.size());
  GG_CHECK(bias.empty() || bias.size() == input.size(),
           "[grouped_mm] bias list length differs: {} bias entries for {} groups (give none, or "
           "one per group with undefined tensors for groups without bias)",
           bias.size(), input.size());
  const Tensor none;
  for (size_t i = 0; i < input.size(); ++i) {
    const auto g = static_cast<int64_t>(i);
    const Tensor& x = input[i];
    const Tensor& w = mat2[i];
    const Tensor& b = bias.empty() ? none : bias[i];
    const auto ctx = [&] { return shapes(x, w, b); };
    GG_CHECK(x.defined(), "{} input is an undefined tensor {}", group_prefix(g), ctx());
    GG_CHECK(w.defined(), "{} mat2 is an undefined tensor {}", group_prefix(g), ctx());
    GG_CHECK(x.dim() >= 1, "{} input must have at least 1 dimension ([k], [p, k] or [*, k]) {}",
             group_prefix(g), ctx());
    GG_CHECK(w.dim() == 2, "{} mat2 must be 2-D [k, m], got {}-D {}", group_prefix(g), w.dim(),
             ctx());
    GG_CHECK(x.size(-1) == w.size(0), "{} input has k={} but mat2 has k={} {}", group_prefix(g),
             x.size(-1), w.size(0), ctx());
    check_same_dtype(x, "input", w, "mat2", g, ctx);
    if (b.defined()) {
      GG_CHECK(b.dim() == 1 && b.size(0) == w.size(1),
               "{} bias must have shape [{}] (mat2's m), got {} {}", group_prefix(g), w.size(1),
               shape_str(b.shape()), ctx());
      check_same_dtype(x, "input", b, "bias", g, ctx);
    }
    check_grad_dtype(x, "input", g, ctx);
    check_grad_dtype(w, "mat2", g, ctx);
    if (b.defined()) check_grad_dtype(b, "bias", g, ctx);
  }
}

enum class Layout { k2d3d, k3d2d, k2d2d, k3d3d };

const char* layout_name(Layout l) {
  switch (l) {
    case Layout::k2d3d:
      return "2D x 3D";
    case Layout::k3d2d:
      return "3D x 2D";
    case Layout::k2d2d:
      return "2D x 2D";
    case Layout::k3d3d:
      return "3D x 3D";
  }
  return "?";
}

// A validated packed call: its layout, G, and where each group ends along the split dimension
// (group g covers [begin(g), ends[g])).
struct PackedPlan {
  Layout layout;
  int64_t groups;
  std::vector<int64_t> ends;
  int64_t extent = 0;  // size of the dimension offs splits
  int64_t begin(int64_t g) const { return g == 0 ? 0 : ends[g - 1]; }
  int64_t end() const { return ends.empty() ? 0 : ends.back(); }
};

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

PackedPlan validate_packed(const Tensor& input, const Tensor& mat2,
                           const PackedGroupedMMOptions& o) {
  const auto ctx = [&] { return shapes(input, mat2, o.bias); };
  GG_CHECK(input.defined(), "[grouped_mm] input is an undefined tensor {}", ctx());
  GG_CHECK(mat2.defined(), "[grouped_mm] mat2 is an undefined tensor {}", ctx());
  GG_CHECK(input.dim() == 2 || input.dim() == 3,
           "[grouped_mm] input must be 2-D or 3-D for the packed form, got {}-D {}", input.dim(),
           ctx());
  GG_CHECK(mat2.dim() == 2 || mat2.dim() == 3,
           "[grouped_mm] mat2 must be 2-D or 3-D for the packed form, got {}-D {}", mat2.dim(),
           ctx());
  check_same_dtype(input, "input", mat2, "mat2", -1, ctx);
  const Layout layout = input.dim() == 2 ? (mat2.dim() == 3 ? Layout::k2d3d : Layout::k2d2d)
                                         : (mat2.dim() == 3 ? Layout::k3d3d : Layout::k3d2d);
  const char* name = layout_name(layout);

  // Inner dimensions: input's last against mat2's rows.
  const int64_t k_in = input.size(-1), k_w = mat2.size(-2);
  GG_CHECK(k_in == k_w, "[grouped_mm] {}: input has k={} but mat2 has k={} {}", name, k_in, k_w,
           ctx());

  PackedPlan plan{layout, 0, {}, 0};
  if (layout == Layout::k3d3d) {
    GG_CHECK(!o.offs.defined(),
             "[grouped_mm] 3D x 3D takes no offs (the groups are the leading dim), got offs {} {}",
             desc(o.offs), ctx());
    GG_CHECK(input.size(0) == mat2.size(0),
             "[grouped_mm] 3D x 3D: group count mismatch, input has G={} but mat2 has G={} {}",
             input.size(0), mat2.size(0), ctx());
    plan.groups = input.size(0);
  } else {
    const char* split = layout == Layout::k2d3d   ? "M_total (input rows)"
                        : layout == Layout::k3d2d ? "N_total (mat2 columns)"
                                                  : "K_total (input columns)";
    GG_CHECK(o.offs.defined(),
             "[grouped_mm] {} needs offs (cumulative end offsets splitting {}) {}", name, split,
             ctx());
    GG_CHECK(o.offs.dim() == 1 && (o.offs.dtype() == kInt32 || o.offs.dtype() == kInt64),
             "[grouped_mm] offs must be a 1-D Int32 or Int64 tensor, got {} {} {}",
             dtype_name(o.offs.dtype()), shape_str(o.offs.shape()), ctx());
    plan.groups = o.offs.size(0);
    // The group counts before any offs value is read: offs's length sizes the plan.
    if (layout == Layout::k2d3d) {
      GG_CHECK(mat2.size(0) == plan.groups,
               "[grouped_mm] 2D x 3D: group count mismatch, offs has G={} but mat2 has G={} {}",
               plan.groups, mat2.size(0), ctx());
    } else if (layout == Layout::k3d2d) {
      GG_CHECK(input.size(0) == plan.groups,
               "[grouped_mm] 3D x 2D: group count mismatch, offs has G={} but input has G={} {}",
               plan.groups, input.size(0), ctx());
    }
    plan.extent = layout == Layout::k2d3d   ? input.size(0)
                  : layout == Layout::k3d2d ? mat2.size(1)
                                            : input.size(1);
    plan.ends = read_offs(o.offs, plan.extent, split, ctx);
  }
  if (o.bias.defined()) {
    const Shape expected =
        layout == Layout::k3d2d ? Shape{mat2.size(1)} : Shape{plan.groups, mat2.size(-1)};
    if (o.bias.dim() == 2 && layout != Layout::k3d2d && o.bias.size(1) == mat2.size(-1)) {
      GG_CHECK(o.bias.size(0) == plan.groups,
               "[grouped_mm] {}: group count mismatch, bias has G={} but there are {} groups {}",
               name, o.bias.size(0), plan.groups, ctx());
    }
    GG_CHECK(o.bias.shape() == expected, "[grouped_mm] {}: bias must have shape {}, got {} {}",
             name, shape_str(expected), shape_str(o.bias.shape()), ctx());
    check_same_dtype(input, "input", o.bias, "bias", -1, ctx);
  }
  check_grad_dtype(input, "input", -1, ctx);
  check_grad_dtype(mat2, "mat2", -1, ctx);
  if (o.bias.defined()) check_grad_dtype(o.bias, "bias", -1, ctx);
  return plan;
}

// ==== operands ===================================================================================

// Float16 has no matmul on this CPU: it computes in Float32 (and the output is written as f16).
Dtype compute_dtype(Dtype d) { return d == kFloat16 ? kFloat32 : d; }

MatRef mat(const Tensor& t) {
  return {t.raw_data(),           t.size(0), t.size(1), t.stride(0), t.stride(1), t.dtype(),
          t.impl()->storage.get()};
}
// Matrix `index` of a 3-D tensor.
MatRef mat(const Tensor& t, int64_t index) {
  char* data = static_cast<char*>(t.raw_data()) +
               index * t.stride(0) * static_cast<int64_t>(t.element_size());
  return {data, t.size(1), t.size(2), t.stride(1), t.stride(2), t.dtype(), t.impl()->storage.get()};
}
// `length` elements of a contiguous 1-D or 2-D bias from element `offset`, as a bias row (none
// for an undefined bias).
std::optional<MatRef> bias_row(const Tensor& b, int64_t offset, int64_t length) {
  if (!b.defined()) return std::nullopt;
  char* data = static_cast<char*>(b.raw_data()) + offset * static_cast<int64_t>(b.element_size());
  return MatRef{data, 1, length, length, 1, b.dtype(), b.impl()->storage.get()};
}

// Operands are read in place when oneDNN can (no Tensor objects made per group: the list form
// with many tiny groups is bound by such overheads); a copy is made, and kept alive in `keep`,
// only for Float16 (computed in Float32) or a layout no kernel reads.

// x [k], [p, k] or [*, k] as the matrix [p, k] on x's own memory, if its leading dims merge.
std::optional<MatRef> rows_of(const Tensor& x) {
  const int64_t d = x.dim();
  const int64_t k = x.size(-1), ks = x.stride(-1);
  const void* owner = x.impl()->storage.get();
  if (d == 1) return MatRef{x.raw_data(), 1, k, k * ks, ks, x.dtype(), owner};
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
MatRef list_operand(const Tensor& t, std::vector<Tensor>& keep) {
  const Dtype c = compute_dtype(t.dtype());
  if (c == t.dtype()) {
    std::optional<MatRef> m = rows_of(t);
    if (m && (t.numel() == 0 || kernels::gemm_ready(*m))) return *m;
  }
  const Tensor& copy = keep.emplace_back(t.detach().to(c).contiguous());
  return *rows_of(copy);
}

// A list bias [m] (contiguous, compute dtype) as a bias row; none for an undefined bias.
std::optional<MatRef> list_bias(const Tensor& b, std::vector<Tensor>& keep) {
  if (!b.defined()) return std::nullopt;
  const Dtype c = compute_dtype(b.dtype());
  if (c == b.dtype() && b.stride(0) == 1) return bias_row(b, 0, b.size(0));
  const Tensor& copy = keep.emplace_back(b.detach().to(c).contiguous());
  return bias_row(copy, 0, copy.size(0));
}

// A packed operand (detached) in its compute dtype, with strides oneDNN reads (copying only
// when it must).
Tensor operand(const Tensor& t) {
  if (!t.defined()) return t;
  Tensor c = t.detach();
  if (c.dtype() != compute_dtype(c.dtype())) c = c.to(compute_dtype(c.dtype()));
  if (c.dim() == 1) return c.stride(0) == 1 ? c : c.contiguous();
  const MatRef m = c.dim() == 2 ? mat(c) : mat(c, 0);
  if (c.numel() > 0 && !kernels::gemm_ready(m)) c = c.contiguous();
  return c;
}

// A tensor over existing storage (the outputs of one call share one allocation).
Tensor view_of(const Tensor& buffer, int64_t offset, Shape shape) {
  Shape strides = contiguous_strides(shape);
  return as_strided_view(buffer, std::move(shape), std::move(strides), offset, "grouped_mm");
}

// Fresh contiguous tensors of the given shapes and dtypes, in one allocation when they share
// a dtype.
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

// ==== list form ==================================================================================

// A list operand as backward needs it, saved without a Tensor per group (detaching one costs
// three allocations, most of what recording the tiny workload cost): the matrix forward read in
// place, kept alive through its storage, and the operand's shape and dtype. An operand forward
// had to convert or copy (Float16, a layout oneDNN cannot read) is saved detached instead, and
// backward converts it again.
struct SavedOperand {
  std::shared_ptr<Storage> storage;  // owns `mat`'s memory
  MatRef mat;
  Shape shape;
  Dtype dtype = kFloat32;
  Tensor detached;  // instead of storage and mat, when forward did not read it in place

  SavedOperand(const Tensor& t, const MatRef& read) : shape(t.shape()), dtype(t.dtype()) {
    if (read.owner == t.impl()->storage.get()) {
      storage = t.impl()->storage;
      mat = read;
    } else {
      detached = t.detach();
    }
  }
  // The [p, k] matrix in the compute dtype (a converted copy goes to `keep`).
  MatRef matrix(std::vector<Tensor>& keep) const {
    return detached.defined() ? list_operand(detached, keep) : mat;
  }
};

// Backward of the list form. Saved: the inputs and mat2s, which biases exist.
Grads list_backward(const std::vector<SavedOperand>& xs, const std::vector<SavedOperand>& ws,
                    const std::vector<autograd::TensorMeta>& bias_meta, const Grads& grad_outputs,
                    const Needs& needs) {
  const size_t G = xs.size();
  Grads grads(3 * G);
  // The gradients of each kind share one allocation (like the outputs), so that equal groups
  // write one evenly spaced batch.
  std::vector<Shape> shapes[3];
  std::vector<Dtype> dtypes[3];
  std::vector<size_t> slots[3];
  for (size_t i = 0; i < G; ++i) {
    for (size_t kind = 0; kind < 3; ++kind) {
      const size_t slot = kind * G + i;
      if (!needs[slot]) continue;
      const Shape& shape = kind == 0 ? xs[i].shape : kind == 1 ? ws[i].shape : bias_meta[i].shape;
      const Dtype dtype = kind == 0 ? xs[i].dtype : kind == 1 ? ws[i].dtype : bias_meta[i].dtype;
      if (!grad_outputs[i].defined()) {  // an output that no loss used: zero gradients
        grads[slot] = zeros(shape, dtype);
        continue;
      }
      shapes[kind].push_back(shape);
      dtypes[kind].push_back(dtype);
      slots[kind].push_back(slot);
    }
  }
  for (size_t kind = 0; kind < 3; ++kind) {
    std::vector<Tensor> made = allocate(std::move(shapes[kind]), dtypes[kind]);
    for (size_t j = 0; j < made.size(); ++j) grads[slots[kind][j]] = std::move(made[j]);
  }

  std::vector<Tensor> keep;  // converted operands, alive until the tasks ran
  std::vector<GemmTask> tasks;
  tasks.reserve(2 * G);
  std::vector<ColumnSumTask> sums;
  for (size_t i = 0; i < G; ++i) {
    const Tensor& dx = grads[i];
    const Tensor& dw = grads[G + i];
    const Tensor& db = grads[2 * G + i];
    if (!grad_outputs[i].defined() || (!dx.defined() && !dw.defined() && !db.defined())) continue;
    Tensor g = grad_outputs[i];
    if (g.dtype() != compute_dtype(xs[i].dtype))
      g = keep.emplace_back(g.to(compute_dtype(xs[i].dtype)));
    const MatRef dy = list_operand(g, keep);
    if (dx.defined()) {  // dX = dY @ W^T
      kernels::add_gemm(tasks, dy, ws[i].matrix(keep).t(), *rows_of(dx));
    }
    if (dw.defined()) {  // dW = X^T @ dY (no rows: K = 0, zeros)
      kernels::add_gemm(tasks, xs[i].matrix(keep).t(), dy, *rows_of(dw));
    }
    if (db.defined()) sums.push_back({dy, db.raw_data(), 1, db.dtype()});  // column sums
  }
  kernels::run_gemm_tasks(tasks);
  kernels::run_column_sums(sums);
  return grads;
}

}  // namespace

std::vector<Tensor> grouped_mm(const std::vector<Tensor>& input, const std::vector<Tensor>& mat2,
                               const GroupedMMOptions& options) {
  validate_list(input, mat2, options.bias);
  const size_t G = input.size();
  auto bias = [&](size_t i) { return options.bias.empty() ? Tensor() : options.bias[i]; };

  std::vector<Shape> out_shapes(G);
  std::vector<Dtype> out_dtypes(G);
  for (size_t i = 0; i < G; ++i) {
    out_shapes[i] = input[i].shape();
    out_shapes[i].back() = mat2[i].size(1);
    out_dtypes[i] = options.out_dtype.value_or(input[i].dtype());
  }
  std::vector<Tensor> outputs = allocate(std::move(out_shapes), out_dtypes);

  const bool float_out = std::all_of(out_dtypes.begin(), out_dtypes.end(), is_floating);
  auto wants_grad = [](const Tensor& t) { return t.defined() && t.requires_grad(); };
  const bool record = float_out && GradMode::is_enabled() &&
                      (std::any_of(input.begin(), input.end(), wants_grad) ||
                       std::any_of(mat2.begin(), mat2.end(), wants_grad) ||
                       std::any_of(options.bias.begin(), options.bias.end(), wants_grad));
  std::vector<SavedOperand> xs, ws;  // for backward, from the matrices forward reads
  {
    std::vector<Tensor> keep;  // converted operands, alive until the tasks ran
    std::vector<GemmTask> tasks;
    tasks.reserve(G);
    if (record) {
      xs.reserve(G);
      ws.reserve(G);
    }
    for (size_t i = 0; i < G; ++i) {
      const MatRef x = list_operand(input[i], keep), w = list_operand(mat2[i], keep);
      kernels::add_gemm(tasks, x, w, *rows_of(outputs[i]), list_bias(bias(i), keep));
      if (record) {
        xs.emplace_back(input[i], x);
        ws.emplace_back(mat2[i], w);
      }
    }
    kernels::run_gemm_tasks(tasks);
  }
  if (!record) return outputs;

  std::vector<Tensor> inputs;  // the node's inputs: the G inputs, G mat2s, G biases
  inputs.reserve(3 * G);
  inputs.insert(inputs.end(), input.begin(), input.end());
  inputs.insert(inputs.end(), mat2.begin(), mat2.end());
  std::vector<autograd::TensorMeta> bias_meta(G);
  for (size_t i = 0; i < G; ++i) {
    const Tensor b = bias(i);
    inputs.push_back(b);
    if (b.defined()) bias_meta[i] = {b.shape(), b.dtype()};
  }
  autograd::record(
      "GroupedMmBackward", inputs, outputs,
      [xs = std::move(xs), ws = std::move(ws), bias_meta = std::move(bias_meta)](
          const Grads& g, const Needs& needs) {
        return list_backward(xs, ws, bias_meta, g, needs);
      },
      /*accepts_undefined_grads=*/true);
  return outputs;
}

// ==== packed form ================================================================================

namespace {

// Group g's matrices inside tensors laid out like (input, mat2, output) -- or, in backward, like
// (grad_input, grad_mat2, grad_output) -- and where its bias row starts (in elements).
struct GroupMats {
  MatRef x, w, y;
  int64_t bias_offset;
};

GroupMats group_mats(const PackedPlan& plan, int64_t g, const Tensor& x, const Tensor& w,
                     const Tensor& y) {
  const bool split = plan.layout != Layout::k3d3d;
  const int64_t s = split ? plan.begin(g) : 0, e = split ? plan.ends[g] : 0;
  const int64_t n = w.size(-1);
  switch (plan.layout) {
    case Layout::k2d3d:  // offs splits the rows of input and output
      return {mat(x).row_range(s, e), mat(w, g), mat(y).row_range(s, e), g * n};
    case Layout::k3d2d:  // offs splits the columns of mat2 and output
      return {mat(x, g), mat(w).col_range(s, e), mat(y).col_range(s, e), s};
    case Layout::k2d2d:  // offs splits K: input columns and mat2 rows
      return {mat(x).col_range(s, e), mat(w).row_range(s, e), mat(y, g), g * n};
    case Layout::k3d3d:
      return {mat(x, g), mat(w, g), mat(y, g), g * n};
  }
  return {};
}

// The parts of (x, w, y)-shaped tensors past offs[-1], which no group covers: their outputs and
// gradients are zero. Also the bias tail (3D x 2D) as [begin, end) of bias elements.
struct Tails {
  std::vector<MatRef> x, w, y;
  int64_t bias_begin = 0, bias_end = 0;
};

Tails tails(const PackedPlan& plan, const Tensor& x, const Tensor& w, const Tensor& y) {
  Tails t;
  const int64_t end = plan.end();
  switch (plan.layout) {
    case Layout::k2d3d:
      if (x.defined()) t.x.push_back(mat(x).row_range(end, plan.extent));
      if (y.defined()) t.y.push_back(mat(y).row_range(end, plan.extent));
      break;
    case Layout::k3d2d:
      if (w.defined()) t.w.push_back(mat(w).col_range(end, plan.extent));
      if (y.defined()) t.y.push_back(mat(y).col_range(end, plan.extent));
      t.bias_begin = end;
      t.bias_end = plan.extent;
      break;
    case Layout::k2d2d:
      if (x.defined()) t.x.push_back(mat(x).col_range(end, plan.extent));
      if (w.defined()) t.w.push_back(mat(w).row_range(end, plan.extent));
      break;
    case Layout::k3d3d:
      break;
  }
  return t;
}

Shape packed_out_shape(const PackedPlan& plan, const Tensor& input, const Tensor& mat2) {
  switch (plan.layout) {
    case Layout::k2d3d:
      return {input.size(0), mat2.size(2)};
    case Layout::k3d2d:
      return {input.size(1), mat2.size(1)};
    case Layout::k2d2d:
      return {plan.groups, input.size(0), mat2.size(1)};
    case Layout::k3d3d:
      return {plan.groups, input.size(1), mat2.size(2)};
  }
  return {};
}

// Backward of the packed form: the forward's group views, applied to the gradients.
Grads packed_backward(const PackedPlan& plan, const Tensor& input, const Tensor& mat2,
                      const autograd::TensorMeta& bias_meta, const Tensor& grad_output,
                      const Needs& needs) {
  const Tensor x = operand(input), w = operand(mat2);
  const Tensor dy = operand(grad_output.to(compute_dtype(input.dtype())));
  const Tensor dx = needs[0] ? empty(input.shape(), input.dtype()) : Tensor();
  const Tensor dw = needs[1] ? empty(mat2.shape(), mat2.dtype()) : Tensor();
  const Tensor db = needs[2] ? empty(bias_meta.shape, bias_meta.dtype) : Tensor();
  // Empty gradients need no work, however many groups there are (2^40 empty groups reserved 2^41
  // tasks: std::bad_alloc).
  auto empty_or_none = [](const Tensor& t) { return !t.defined() || t.numel() == 0; };
  if (empty_or_none(dx) && empty_or_none(dw) && empty_or_none(db)) return {dx, dw, db};
  std::vector<GemmTask> tasks;
  reserve_checked(tasks, 2 * static_cast<uint64_t>(plan.groups), "grouped_mm",
                  "the backward's two products per group");
  std::vector<ColumnSumTask> sums;
  for (int64_t g = 0; g < plan.groups; ++g) {
    const GroupMats fwd = group_mats(plan, g, x, w, dy);  // fwd.y is dY's group
    if (dx.defined()) {                                   // dX = dY @ W^T
      kernels::add_gemm(tasks, fwd.y, fwd.w.t(), group_mats(plan, g, dx, w, dy).x);
    }
    if (dw.defined()) {  // dW = X^T @ dY (an empty group has K = 0: zeros)
      kernels::add_gemm(tasks, fwd.x.t(), fwd.y, group_mats(plan, g, x, dw, dy).w);
    }
    if (db.defined()) {  // dbias = column sums of dY
      sums.push_back({fwd.y,
                      static_cast<char*>(db.raw_data()) +
                          fwd.bias_offset * static_cast<int64_t>(db.element_size()),
                      1, db.dtype()});
    }
  }
  const Tails zero = tails(plan, dx, dw, Tensor());
  for (const MatRef& m : zero.x) kernels::fill_zero(m);
  for (const MatRef& m : zero.w) kernels::fill_zero(m);
  if (db.defined() && zero.bias_end > zero.bias_begin) {
    kernels::fill_zero(bias_row(db, 0, db.numel())->col_range(zero.bias_begin, zero.bias_end));
  }
  for (GemmTask& t : tasks) t.problem.sizes_vary = true;  // group sizes come from offs
  kernels::run_gemm_tasks(tasks);
  kernels::run_column_sums(sums);
  return {dx, dw, db};
}

}  // namespace

template <std::same_as<Tensor> Input, std::same_as<Tensor> Mat2>
Tensor grouped_mm(const Input& input, const Mat2& mat2, const PackedGroupedMMOptions& options) {
  const PackedPlan plan = validate_packed(input, mat2, options);
  const Dtype out_dtype = options.out_dtype.value_or(input.dtype());
  Tensor out = empty(packed_out_shape(plan, input, mat2), out_dtype);
  if (out.numel() > 0) {  // an empty output needs no work, however many (empty) groups
    // The bias rows are addressed as bias + g * N below: make them contiguous (a strided bias,
    // e.g. a narrowed view, was read at the wrong addresses; found by tests/fuzz).
    const Tensor x = operand(input), w = operand(mat2),
                 b = options.bias.defined() ? operand(options.bias).contiguous() : Tensor();
    std::vector<GemmTask> tasks;
    reserve_checked(tasks, static_cast<uint64_t>(plan.groups), "grouped_mm",
                    "one product per group");
    for (int64_t g = 0; g < plan.groups; ++g) {
      const GroupMats m = group_mats(plan, g, x, w, out);
      kernels::add_gemm(tasks, m.x, m.w, m.y, bias_row(b, m.bias_offset, m.y.cols));
    }
    for (const MatRef& m : tails(plan, Tensor(), Tensor(), out).y) kernels::fill_zero(m);
    for (GemmTask& t : tasks) t.problem.sizes_vary = true;  // group sizes come from offs
    kernels::run_gemm_tasks(tasks);
  }
  if (!is_floating(out_dtype) || !autograd::needs_grad({input, mat2, options.bias})) return out;
  const autograd::TensorMeta bias_meta =
      options.bias.defined() ? autograd::TensorMeta{options.bias.shape(), options.bias.dtype()}
                             : autograd::TensorMeta{};
  return autograd::record(
      "GroupedMmBackward", {input, mat2, options.bias}, out,
      [plan, x = input.detach(), w = mat2.detach(), bias_meta](const Grads& g, const Needs& needs) {
        return packed_backward(plan, x, w, bias_meta, g[0], needs);
      });
}

// The one specialization the header's constraint allows.
template Tensor grouped_mm(const Tensor&, const Tensor&, const PackedGroupedMMOptions&);

}  // namespace gg
