// grouped_mm, packed form: the four layouts of PyTorch's F.grouped_mm (2D x 3D, 3D x 2D and
// 2D x 2D split by offs; 3D x 3D by the leading dim). This file validates, lays each group's
// product out as a GemmTask on strided views of the packed tensors, and records ONE tape node per
// call whose backward uses the same group views on the gradients.
// ops/kernels/grouped_mm_kernel.* decides how the tasks run (batched, cached, parallel).
#include <concepts>
#include <string>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "ops/grouped_mm.hpp"
#include "ops/grouped_mm_operands.hpp"

namespace gg {

namespace {

using namespace gmm;

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

// Group sizes come from offs (a router's counts, new every call) except in 3D x 3D, where they
// are the tensors' fixed dims: only the former run in pieces of few sizes (onednn/matmul.cpp),
// which cut the heads workload's 320 rows as 256 + 64 and sent the batched pieces to gemm:jit
// (3D x 3D heads forward 0.138 ms on 2 threads of an AVX-512 EPYC, as the list form 0.101).
void mark_sizes_vary(const PackedPlan& plan, std::vector<GemmTask>& tasks) {
  if (plan.layout == Layout::k3d3d) return;
  for (GemmTask& t : tasks) t.problem.sizes_vary = true;
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
             describe(o.offs, false), ctx());
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
  const Tensor dx = needs[slot(Operand::kInput)] ? empty(input.shape(), input.dtype()) : Tensor();
  const Tensor dw = needs[slot(Operand::kMat2)] ? empty(mat2.shape(), mat2.dtype()) : Tensor();
  const Tensor db =
      needs[slot(Operand::kBias)] ? empty(bias_meta.shape, bias_meta.dtype) : Tensor();
  // Empty gradients need no work, however many groups there are (2^40 empty groups reserved 2^41
  // tasks: std::bad_alloc).
  // (Both returns give the gradients in Operand order: input, mat2, bias.)
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
  mark_sizes_vary(plan, tasks);
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
    mark_sizes_vary(plan, tasks);
    kernels::run_gemm_tasks(tasks);
  }
  if (!is_floating(out_dtype) || !autograd::needs_grad({input, mat2, options.bias})) return out;
  const autograd::TensorMeta bias_meta =
      options.bias.defined() ? autograd::TensorMeta{options.bias.shape(), options.bias.dtype()}
                             : autograd::TensorMeta{};
  // The backward is a task-based kernel: once differentiable.
  return autograd::once_differentiable(autograd::record(
      "GroupedMmBackward", {input, mat2, options.bias}, out,  // in Operand order
      [plan, x = autograd::SavedTensor(input), w = autograd::SavedTensor(mat2), bias_meta](
          const Grads& g, const Needs& needs) {
        return packed_backward(plan, x.unpack(), w.unpack(), bias_meta, g[0], needs);
      }));
}

// The one specialization the header's constraint allows.
template Tensor grouped_mm(const Tensor&, const Tensor&, const PackedGroupedMMOptions&);

}  // namespace gg
