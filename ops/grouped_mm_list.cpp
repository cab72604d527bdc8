// grouped_mm, list form: output[i] = input[i] @ mat2[i] + bias[i], each group with its own shapes.
// This file validates, lays each group's product out as a GemmTask on the operands' own memory,
// and records ONE tape node per call whose backward uses the same tasks (dX = dY W^T,
// dW = X^T dY as transposed views, dbias = column sums of dY).
// ops/kernels/grouped_mm_kernel.* decides how the tasks run (batched, cached, parallel).
#include <algorithm>
#include <memory>
#include <string>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "autograd/saved_tensor_check.hpp"
#include "ops/grouped_mm.hpp"
#include "ops/grouped_mm_operands.hpp"

namespace gg {

namespace {

using namespace gmm;

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

// A list operand as backward needs it, saved without a Tensor per group (a detached tensor costs
// three allocations, and freeing them as much again: most of what recording the tiny workload
// cost): the matrix forward read in place, kept alive through its storage, the storage's version
// (checked as SavedTensor checks it), and the operand's shape and dtype. An operand forward had to
// convert or copy (Float16, a layout oneDNN cannot read) is saved detached instead, and backward
// converts it again.
struct SavedOperand {
  std::shared_ptr<Storage> storage;  // owns `mat`'s memory, and t's version counter
  uint64_t version = 0;              // of t's storage when saved
  MatRef mat;
  Shape full_shape;  // t's shape, unless t is the 2-D `mat` itself (a copy is an allocation)
  Dtype dtype = kFloat32;
  autograd::SavedTensor detached;  // instead of `mat`, when forward did not read t in place

  SavedOperand(const Tensor& t, const MatRef& read)
      : storage(t.impl()->storage), version(storage->version()), dtype(t.dtype()) {
    if (read.owner == storage.get()) {
      mat = read;
      if (t.dim() != 2) full_shape = t.shape();
    } else {
      detached = autograd::SavedTensor(t);
      storage = nullptr;
      full_shape = t.shape();
    }
  }
  Shape shape() const { return full_shape.empty() ? Shape{mat.rows, mat.cols} : full_shape; }
  // The [p, k] matrix in the compute dtype (a converted copy goes to `keep`); throws once the
  // operand was modified in place.
  MatRef matrix(std::vector<Tensor>& keep) const {
    if (detached.defined()) return list_operand(detached.unpack(), keep);
    if (storage->version() != version)
      autograd::check_saved_version(*storage, version, shape(), dtype);
    return mat;
  }
};

// Backward of the list form. Saved: the inputs and mat2s, which biases exist.
Grads list_backward(const std::vector<SavedOperand>& xs, const std::vector<SavedOperand>& ws,
                    const std::vector<autograd::TensorMeta>& bias_meta, const Grads& grad_outputs,
                    const Needs& needs) {
  const size_t G = xs.size();
  Grads grads(kOperandKinds * G);
  // The gradients of each kind share one allocation (like the outputs), so that equal groups
  // write one evenly spaced batch.
  std::vector<Shape> shapes[kOperandKinds];
  std::vector<Dtype> dtypes[kOperandKinds];
  std::vector<size_t> slots[kOperandKinds];
  for (size_t i = 0; i < G; ++i) {
    for (const Operand kind : kOperands) {
      const size_t at = slot(kind, i, G), k = index(kind);
      if (!needs[at]) continue;
      Shape shape = kind == Operand::kInput  ? xs[i].shape()
                    : kind == Operand::kMat2 ? ws[i].shape()
                                             : bias_meta[i].shape;
      const Dtype dtype = kind == Operand::kInput  ? xs[i].dtype
                          : kind == Operand::kMat2 ? ws[i].dtype
                                                   : bias_meta[i].dtype;
      if (!grad_outputs[i].defined()) {  // an output that no loss used: zero gradients
        grads[at] = zeros(shape, dtype);
        continue;
      }
      shapes[k].push_back(std::move(shape));
      dtypes[k].push_back(dtype);
      slots[k].push_back(at);
    }
  }
  for (size_t k = 0; k < kOperandKinds; ++k) {
    std::vector<Tensor> made = allocate(std::move(shapes[k]), dtypes[k]);
    for (size_t j = 0; j < made.size(); ++j) grads[slots[k][j]] = std::move(made[j]);
  }

  std::vector<Tensor> keep;  // converted operands, alive until the tasks ran
  std::vector<GemmTask> tasks;
  tasks.reserve(2 * G);
  std::vector<ColumnSumTask> sums;
  for (size_t i = 0; i < G; ++i) {
    const Tensor& dx = grads[slot(Operand::kInput, i, G)];
    const Tensor& dw = grads[slot(Operand::kMat2, i, G)];
    const Tensor& db = grads[slot(Operand::kBias, i, G)];
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

  std::vector<Tensor> inputs;  // the node's inputs: the G inputs, G mat2s, G biases (see slot)
  inputs.reserve(kOperandKinds * G);
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
  autograd::once_differentiable(outputs);  // the backward is a task-based kernel
  return outputs;
}

}  // namespace gg
