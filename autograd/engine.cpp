// The tape and the backward walk (micrograd's engine.py, in C++): collect the nodes reachable from
// the roots, process them in reverse creation order, route each input gradient along its edge, and
// free each node's saved tensors once it has run.
#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <iterator>
#include <span>

#include "autograd/grad_mode.hpp"
#include "autograd/node.hpp"
#include "core/accumulate.hpp"
#include "core/error.hpp"

namespace gg::autograd {

namespace {
std::atomic<uint64_t> g_next_sequence_nr{0};

// Brings the gradient for an input to that input's shape and dtype, or says why it cannot.
// (By value: a gradient that arrives as the only handle on its tensor leaves as one.)
Tensor conform(Tensor grad, const TensorMeta& meta, const std::string& node_name) {
  Tensor g = std::move(grad);
  if (g.shape() != meta.shape) {
    try {
      g = sum_to(g, meta.shape);
    } catch (const Error&) {
      fail("[backward] {} returned a gradient of shape {} for an input of shape {}", node_name,
           shape_str(g.shape()), shape_str(meta.shape));
    }
  }
  if (g.dtype() != meta.dtype) {
    GG_CHECK(is_floating(g.dtype()) && is_floating(meta.dtype),
             "[backward] {} returned a {} gradient for a {} input", node_name,
             dtype_name(g.dtype()), dtype_name(meta.dtype));
    g = g.to(meta.dtype);
  }
  return g;
}

// Whether nothing but this handle can see t's values: no other Tensor shares its TensorImpl or
// its storage, it spans its storage exactly, and it has no autograd history of its own. Such a
// tensor may be kept or written in place without anyone noticing.
bool sole_owner(const std::shared_ptr<TensorImpl>& t) {
  return t.use_count() == 1 && t->storage.use_count() == 1 && !t->requires_grad && !t->grad_fn &&
         !t->grad && Tensor(t).is_contiguous() &&
         numel_of(t->shape) * static_cast<int64_t>(element_size(t->dtype)) ==
             static_cast<int64_t>(t->storage->nbytes());
}

// Adds g to a leaf's grad, as PyTorch's AccumulateGrad does (and never aliasing another tensor):
// the first gradient is adopted when it is a fresh tensor that nothing else holds, else copied;
// later ones are added in place when nothing but the leaf holds its grad, else out of place (so
// that a user's handle on grad() keeps its values).
void accumulate_leaf(const std::shared_ptr<TensorImpl>& leaf_impl, Tensor g) {
  const Tensor leaf(leaf_impl);
  g = conform(std::move(g), {leaf_impl->shape, leaf_impl->dtype}, "leaf");
  const std::shared_ptr<TensorImpl>& grad = leaf_impl->grad;
  if (!grad) {
    std::shared_ptr<TensorImpl> impl = g.impl();
    g = Tensor();
    leaf.set_grad(sole_owner(impl) ? Tensor(std::move(impl)) : Tensor(impl).clone());
  } else if (sole_owner(grad)) {
    accumulate_into(Tensor(grad), g);
  } else {
    leaf.set_grad(add(Tensor(grad), g));
  }
}
}  // namespace

Node::Node(std::string name, BackwardFn backward, std::vector<Edge> next_edges,
           std::vector<TensorMeta> input_meta, std::vector<TensorMeta> output_meta,
           bool accepts_undefined_grads)
    : name_(std::move(name)),
      sequence_nr_(g_next_sequence_nr.fetch_add(1, std::memory_order_relaxed)),
      backward_(std::move(backward)),
      next_edges_(std::move(next_edges)),
      input_meta_(std::move(input_meta)),
      output_meta_(std::move(output_meta)),
      accepts_undefined_grads_(accepts_undefined_grads) {
  needs_input_grad_.resize(next_edges_.size());
  for (size_t i = 0; i < next_edges_.size(); ++i) needs_input_grad_[i] = next_edges_[i].valid();
}

Node::~Node() {
  // PyTorch's deleteNode: the nodes only this one holds are detached onto a heap stack and freed
  // one at a time, each after its own sole-owned inputs were moved onto the stack, so no
  // destructor ever runs inside another one more than a level deep.
  std::vector<std::shared_ptr<Node>> stack;
  auto detach_sole = [&stack](std::vector<Edge>& edges) {
    for (Edge& e : edges)
      if (e.node && e.node.use_count() == 1) stack.push_back(std::move(e.node));
  };
  detach_sole(next_edges_);
  while (!stack.empty()) {
    std::shared_ptr<Node> node = std::move(stack.back());
    stack.pop_back();
    detach_sole(node->next_edges_);
    // The saved tensors go first too: a closure holds detached tensors, whose graph is empty.
    node->backward_ = nullptr;
  }  // `node` is freed here with no sole-owned inputs left, so its destructor does not recurse
}

const std::string& node_name(const Node& node) { return node.name(); }

std::vector<Tensor> Node::apply(const std::vector<Tensor>& grad_outputs) {
  GG_CHECK(backward_ != nullptr,
           "[backward] trying to backward through {} a second time: its saved tensors were freed "
           "after the first backward; pass retain_graph=true to the first call",
           name_);
  return backward_(grad_outputs, needs_input_grad_);
}

namespace {
template <class Range>
bool any_needs_grad(const Range& inputs) {
  if (!GradMode::is_enabled()) return false;
  return std::any_of(inputs.begin(), inputs.end(),
                     [](const Tensor& t) { return t.defined() && t.requires_grad(); });
}
}  // namespace

bool needs_grad(const std::vector<Tensor>& inputs) { return any_needs_grad(inputs); }
bool needs_grad(std::initializer_list<Tensor> inputs) { return any_needs_grad(inputs); }

namespace {
// Makes the node (the callers checked needs_grad) and sets it as the outputs' grad_fn.
void record_node(std::string name, std::span<const Tensor> inputs, std::span<Tensor> outputs,
                 BackwardFn backward, bool accepts_undefined_grads) {
  std::vector<Edge> edges(inputs.size());
  std::vector<TensorMeta> input_meta(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& in = inputs[i];
    if (!in.defined()) continue;
    input_meta[i] = {in.shape(), in.dtype()};
    const TensorImpl& impl = *in.impl();
    if (impl.grad_fn) {
      edges[i].node = impl.grad_fn;
      edges[i].output_nr = impl.output_nr;
    } else if (impl.requires_grad) {
      edges[i].leaf = in.impl();
      edges[i].is_leaf = true;
    }
  }
  std::vector<TensorMeta> output_meta;
  output_meta.reserve(outputs.size());
  for (const Tensor& out : outputs) output_meta.push_back({out.shape(), out.dtype()});
  auto node = std::make_shared<Node>(std::move(name), std::move(backward), std::move(edges),
                                     std::move(input_meta), std::move(output_meta),
                                     accepts_undefined_grads);
  for (size_t i = 0; i < outputs.size(); ++i) {
    // Only floating outputs carry gradients (an integer out_dtype ends the graph there).
    if (!outputs[i].defined() || !is_floating(outputs[i].dtype())) continue;
    outputs[i].set_gradient_edge(node, static_cast<uint32_t>(i));
  }
}
}  // namespace

void record(std::string name, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
            BackwardFn backward, bool accepts_undefined_grads) {
  if (!needs_grad(inputs)) return;
  record_node(std::move(name), inputs, outputs, std::move(backward), accepts_undefined_grads);
}

Tensor record(std::string name, const std::vector<Tensor>& inputs, Tensor output,
              BackwardFn backward) {
  if (!needs_grad(inputs)) return output;
  record_node(std::move(name), inputs, {&output, 1}, std::move(backward), false);
  return output;
}

Tensor record(std::string name, std::initializer_list<Tensor> inputs, Tensor output,
              BackwardFn backward) {
  if (!needs_grad(inputs)) return output;
  record_node(std::move(name), {inputs.begin(), inputs.size()}, {&output, 1}, std::move(backward),
              false);
  return output;
}

Tensor sum_to(const Tensor& grad, const Shape& shape) {
  if (grad.shape() == shape) return grad;
  const Shape& gs = grad.shape();
  GG_CHECK(gs.size() >= shape.size(), "[sum_to] cannot reduce {} to {}", shape_str(gs),
           shape_str(shape));
  Tensor g = grad;
  size_t lead = gs.size() - shape.size();
  for (size_t i = 0; i < lead; ++i) g = g.sum(0);
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == g.size(static_cast<int64_t>(i))) continue;
    GG_CHECK(shape[i] == 1, "[sum_to] cannot reduce {} to {}", shape_str(gs), shape_str(shape));
    g = g.sum(static_cast<int64_t>(i), /*keepdim=*/true);
  }
  return g;
}

namespace {

// The nodes of one backward walk, each with an index, in a flat open-addressing table: the walk
// looks a node up once per edge, and std::unordered_map/set allocated an entry per node (a third
// of the engine's time on a chain of small ops).
class NodeIndex {
 public:
  static constexpr size_t npos = static_cast<size_t>(-1);
  // Inserts node with `index` unless present; returns whether it was inserted.
  bool insert(const Node* node, size_t index) {
    if (2 * (size_ + 1) > table_.size()) grow();
    Slot& slot = table_[position(node)];
    if (slot.node) return false;
    slot = {node, index};
    ++size_;
    return true;
  }
  size_t find(const Node* node) const {
    if (table_.empty()) return npos;
    const Slot& slot = table_[position(node)];
    return slot.node ? slot.index : npos;
  }
  void clear() {
    std::fill(table_.begin(), table_.end(), Slot{});
    size_ = 0;
  }

 private:
  struct Slot {
    const Node* node = nullptr;
    size_t index = 0;
  };
  // Where node is, or the empty slot where it would go (linear probing from a Fibonacci hash).
  size_t position(const Node* node) const {
    const size_t mask = table_.size() - 1;
    size_t i = (reinterpret_cast<uintptr_t>(node) * 0x9E3779B97F4A7C15ull) >> shift_;
    while (table_[i].node && table_[i].node != node) i = (i + 1) & mask;
    return i;
  }
  void grow() {
    std::vector<Slot> old = std::move(table_);
    table_.assign(std::max<size_t>(64, 2 * old.size()), Slot{});
    shift_ = 64 - std::countr_zero(table_.size());
    for (const Slot& s : old)
      if (s.node) table_[position(s.node)] = s;
  }
  std::vector<Slot> table_;  // a power of two long, at most half full
  size_t size_ = 0;
  int shift_ = 64;
};

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grad_roots,
                  bool retain_graph) {
  NoGradGuard no_grad;  // gradients are computed without recording (no double backward)

  // The nodes reachable from the roots, each once.
  std::vector<std::shared_ptr<Node>> order;
  NodeIndex index;
  auto discover = [&](const std::shared_ptr<Node>& node) {
    if (index.insert(node.get(), order.size())) order.push_back(node);
  };
  for (size_t r = 0; r < roots.size(); ++r) {
    const TensorImpl& root = *roots[r].impl();
    if (root.grad_fn) {
      discover(root.grad_fn);
    } else {
      accumulate_leaf(roots[r].impl(), grad_roots[r]);
    }
  }
  for (size_t next = 0; next < order.size(); ++next) {
    for (const Edge& e : order[next]->next_edges())
      if (e.node) discover(e.node);
  }
  // A node is made after the nodes of its inputs, so reverse creation order is topological.
  std::sort(order.begin(), order.end(),
            [](const auto& a, const auto& b) { return a->sequence_nr() > b->sequence_nr(); });

  // Gradient buffers: one slot per output of each node, in one vector; `reached` marks the nodes
  // some gradient flowed into.
  index.clear();
  std::vector<size_t> first_slot(order.size() + 1, 0);
  for (size_t i = 0; i < order.size(); ++i) {
    index.insert(order[i].get(), i);
    first_slot[i + 1] = first_slot[i] + order[i]->num_outputs();
  }
  std::vector<Tensor> slots(first_slot.back());
  std::vector<char> reached(order.size(), 0);
  auto receive = [&](const Node* node, uint32_t output_nr, Tensor g) {
    const size_t i = index.find(node);
    Tensor& slot = slots[first_slot[i] + output_nr];
    slot = slot.defined() ? add(slot, g) : std::move(g);
    reached[i] = 1;
  };
  for (size_t r = 0; r < roots.size(); ++r) {
    const TensorImpl& root = *roots[r].impl();
    if (root.grad_fn) receive(root.grad_fn.get(), root.output_nr, grad_roots[r]);
  }

  std::vector<Tensor> grads;  // one node's output gradients (reused)
  for (size_t n = 0; n < order.size(); ++n) {
    Node* node = order[n].get();
    if (!reached[n]) {  // reachable, but no gradient flowed into it
      if (!retain_graph) node->release();
      continue;
    }
    grads.assign(std::make_move_iterator(slots.begin() + static_cast<int64_t>(first_slot[n])),
                 std::make_move_iterator(slots.begin() + static_cast<int64_t>(first_slot[n + 1])));
    if (!node->accepts_undefined_grads()) {
      for (size_t i = 0; i < grads.size(); ++i)
        if (!grads[i].defined())
          grads[i] = zeros(node->output_meta()[i].shape, node->output_meta()[i].dtype);
    }
    std::vector<Tensor> input_grads = node->apply(grads);
    grads.clear();  // let go of the output gradients (an input gradient may be one of them)
    if (!retain_graph) node->release();
    const auto& edges = node->next_edges();
    GG_CHECK(input_grads.size() == edges.size(),
             "[backward] {} returned {} gradients for {} inputs", node->name(), input_grads.size(),
             edges.size());
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid() || !input_grads[i].defined()) continue;
      // Moved out of input_grads: a gradient that nothing else holds can become a leaf's grad.
      Tensor g = conform(std::move(input_grads[i]), node->input_meta()[i], node->name());
      if (e.node) {
        receive(e.node.get(), e.output_nr, std::move(g));
      } else if (auto leaf = e.leaf.lock()) {
        accumulate_leaf(leaf, std::move(g));
      }
    }
  }
}

}  // namespace gg::autograd

namespace gg {

void Tensor::backward() const {
  const TensorImpl& t = checked("backward");
  GG_CHECK(t.shape.empty() || numel() == 1,
           "[backward] grad can be implicitly created only for one-element outputs; this tensor "
           "has shape {}: pass a grad_output",
           shape_str(t.shape));
  backward(ones(t.shape, t.dtype));
}

void Tensor::backward(const Tensor& grad_output, bool retain_graph) const {
  const TensorImpl& t = checked("backward");
  GG_CHECK(requires_grad(),
           "[backward] the tensor ({} {}) does not require grad and has no grad_fn",
           dtype_name(t.dtype), shape_str(t.shape));
  GG_CHECK(grad_output.defined(), "[backward] grad_output is an undefined tensor");
  GG_CHECK(grad_output.shape() == t.shape && grad_output.dtype() == t.dtype,
           "[backward] grad_output must match the tensor: expected {}, got {}", describe(*this),
           describe(grad_output));
  autograd::run_backward({*this}, {grad_output}, retain_graph);
}

}  // namespace gg
