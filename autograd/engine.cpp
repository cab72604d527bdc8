// The tape and the backward walk (micrograd's engine.py, in C++): collect the nodes reachable from
// the roots, process them in reverse creation order, route each input gradient along its edge, and
// free each node's saved tensors once it has run.
#include <algorithm>
#include <array>
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
Tensor conform(Tensor grad, std::span<const int64_t> shape, Dtype dtype,
               const std::string& node_name) {
  Tensor g = std::move(grad);
  if (!std::ranges::equal(g.shape(), shape)) {
    const Shape target(shape.begin(), shape.end());
    try {
      g = sum_to(g, target);
    } catch (const Error&) {
      fail("[backward] {} returned a gradient of shape {} for an input of shape {}", node_name,
           shape_str(g.shape()), shape_str(target));
    }
  }
  if (g.dtype() != dtype) {
    GG_CHECK(is_floating(g.dtype()) && is_floating(dtype),
             "[backward] {} returned a {} gradient for a {} input", node_name,
             dtype_name(g.dtype()), dtype_name(dtype));
    g = g.to(dtype);
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
// With create_graph a gradient that has history keeps it (out of place, recorded).
void accumulate_leaf(const std::shared_ptr<TensorImpl>& leaf_impl, Tensor g) {
  const Tensor leaf(leaf_impl);
  g = conform(std::move(g), leaf_impl->shape, leaf_impl->dtype, "leaf");
  const std::shared_ptr<TensorImpl>& grad = leaf_impl->grad;
  if (!grad) {
    std::shared_ptr<TensorImpl> impl = g.impl();
    g = Tensor();
    leaf.set_grad(sole_owner(impl) ? Tensor(std::move(impl)) : Tensor(impl).clone());
  } else if (sole_owner(grad) && !g.requires_grad()) {
    accumulate_into(Tensor(grad), g);
  } else {
    leaf.set_grad(add(Tensor(grad), g));
  }
}

// Adds the gradient g to the sum of a node's output slot or of a leaf. A sum that nothing else can
// see (sole_owner) is added to in place, so that a tensor read by many ops (a bias, a residual)
// does not make a new tensor per edge. Only for Float32 and Float64, whose in-place add gives the
// bits add gives, and never with create_graph (the sum then records its history).
void add_gradient(Tensor& sum, Tensor g, bool create_graph) {
  if (!sum.defined()) {
    sum = std::move(g);
  } else if (!create_graph && sum.dtype() == g.dtype() &&
             (sum.dtype() == kFloat32 || sum.dtype() == kFloat64) && sum.shape() == g.shape() &&
             !g.requires_grad() && sole_owner(sum.impl())) {
    accumulate_into(sum, g);
  } else {
    sum = add(sum, g);
  }
}

// Runs the tensor hooks of `hooks` that watch output `output_nr` on g, in order.
Tensor run_hooks(const std::vector<HookEntry>& hooks, uint32_t output_nr, Tensor g) {
  for (const HookEntry& h : hooks) {
    if (h.output_nr != output_nr || !g.defined()) continue;
    Tensor r = h.fn(g);
    if (!r.defined()) continue;
    GG_CHECK(r.shape() == g.shape(),
             "[backward] a tensor hook returned a gradient of shape {} for a gradient of shape {}",
             shape_str(r.shape()), shape_str(g.shape()));
    g = std::move(r);
  }
  return g;
}

std::atomic<unsigned> g_next_hook_handle{1};

// The end-of-backward callbacks of the backward running on this thread (null outside one).
thread_local std::vector<std::function<void()>>* t_callbacks = nullptr;
}  // namespace

void queue_callback(std::function<void()> fn) {
  GG_CHECK(t_callbacks != nullptr,
           "[queue_callback] callbacks can only be queued while a backward is running");
  GG_CHECK(fn != nullptr, "[queue_callback] the callback is empty");
  t_callbacks->push_back(std::move(fn));
}

unsigned next_hook_handle() { return g_next_hook_handle.fetch_add(1, std::memory_order_relaxed); }

namespace {}  // namespace

Node::Node(std::string name, BackwardFn backward, std::span<const Tensor* const> inputs,
           std::span<const Tensor> outputs, bool accepts_undefined_grads)
    : name_(std::move(name)),
      sequence_nr_(g_next_sequence_nr.fetch_add(1, std::memory_order_relaxed)),
      backward_(std::move(backward)),
      next_edges_(inputs.size()),
      input_meta_(inputs.size()),
      accepts_undefined_grads_(accepts_undefined_grads) {
  auto set_meta = [](NodeMeta& meta, const TensorImpl& t) {
    meta.shape.assign(t.shape.begin(), t.shape.end());
    meta.dtype = t.dtype;
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]->defined()) continue;
    const TensorImpl& impl = *inputs[i]->impl();
    if (impl.grad_fn) {
      next_edges_[i].node = impl.grad_fn;
      next_edges_[i].output_nr = impl.output_nr;
    } else if (impl.requires_grad) {
      next_edges_[i].leaf = inputs[i]->impl();
      next_edges_[i].is_leaf = true;
    } else {
      continue;  // no edge: the engine never looks at this input's meta
    }
    set_meta(input_meta_[i], impl);
  }
  output_meta_.resize(outputs.size());
  for (size_t i = 0; i < outputs.size(); ++i)
    set_meta(output_meta_[i], outputs[i].checked("shape"));
}

Node::~Node() {
  // PyTorch's deleteNode: the nodes only this one holds are detached onto a heap stack and freed
  // one at a time, each after its own sole-owned inputs were moved onto the stack, so no
  // destructor ever runs inside another one more than a level deep.
  std::vector<std::shared_ptr<Node>> stack;
  auto detach_sole = [&stack](EdgeList& edges) {
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

std::vector<Tensor> Node::apply(const std::vector<Tensor>& grad_outputs, std::vector<bool>& needs) {
  GG_CHECK(backward_ != nullptr,
           "[backward] trying to backward through {} a second time: its saved tensors were freed "
           "after the first backward; pass retain_graph=true to the first call",
           name_);
  needs.resize(next_edges_.size());
  for (size_t i = 0; i < next_edges_.size(); ++i) needs[i] = next_edges_[i].valid();
  return backward_(grad_outputs, needs);
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
void record_node(std::string name, std::span<const Tensor* const> inputs, std::span<Tensor> outputs,
                 BackwardFn backward, bool accepts_undefined_grads) {
  for (const Tensor* input : inputs) {
    const Tensor& in = *input;
    if (!in.defined()) continue;
    const TensorImpl& impl = *in.impl();
    // A view that requires grad, whose storage was modified in place through another tensor
    // after the view got its history: that history no longer describes its values.
    GG_CHECK(!(impl.is_view && impl.grad_fn && impl.storage->version() != impl.view_version),
             "[{}] a view ({}) that requires grad is used after its base was modified by an "
             "in-place operation (storage version {}, the view was made at version {}); gg does "
             "not regenerate the view's history as PyTorch does: take the view again after the "
             "in-place operation",
             name, describe(in), impl.storage->version(), impl.view_version);
  }
  auto node = std::make_shared<Node>(std::move(name), std::move(backward), inputs, outputs,
                                     accepts_undefined_grads);
  for (size_t i = 0; i < outputs.size(); ++i) {
    // Only floating outputs carry gradients (an integer out_dtype ends the graph there).
    if (!outputs[i].defined() || !is_floating(outputs[i].dtype())) continue;
    // The last output takes the node's handle rather than a copy of it.
    outputs[i].set_gradient_edge(i + 1 == outputs.size() ? std::move(node) : node,
                                 static_cast<uint32_t>(i));
  }
}

// The inputs' addresses, for record_node (inline for up to four inputs).
template <class Range>
boost::container::small_vector<const Tensor*, 4> addresses(const Range& inputs) {
  boost::container::small_vector<const Tensor*, 4> out;
  for (const Tensor& in : inputs) out.push_back(&in);
  return out;
}
}  // namespace

void record(std::string name, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
            BackwardFn backward, bool accepts_undefined_grads) {
  if (!needs_grad(inputs)) return;
  const auto in = addresses(inputs);
  record_node(std::move(name), {in.data(), in.size()}, outputs, std::move(backward),
              accepts_undefined_grads);
}

Tensor record(std::string name, const std::vector<Tensor>& inputs, Tensor output,
              BackwardFn backward) {
  if (!needs_grad(inputs)) return output;
  const auto in = addresses(inputs);
  record_node(std::move(name), {in.data(), in.size()}, {&output, 1}, std::move(backward), false);
  return output;
}

Tensor record(std::string name, std::initializer_list<Tensor> inputs, Tensor output,
              BackwardFn backward) {
  if (!needs_grad(inputs)) return output;
  const auto in = addresses(inputs);
  record_node(std::move(name), {in.data(), in.size()}, {&output, 1}, std::move(backward), false);
  return output;
}

Tensor record(std::string name, const Tensor& a, const Tensor& b, Tensor output,
              BackwardFn backward) {
  if (!GradMode::is_enabled() ||
      !((a.defined() && a.requires_grad()) || (b.defined() && b.requires_grad())))
    return output;
  const std::array<const Tensor*, 2> inputs{&a, &b};
  record_node(std::move(name), inputs, {&output, 1}, std::move(backward), false);
  return output;
}

Tensor once_differentiable(Tensor output) {
  if (output.defined() && output.grad_fn()) output.grad_fn()->set_once_differentiable();
  return output;
}

void once_differentiable(const std::vector<Tensor>& outputs) {
  for (const Tensor& out : outputs) once_differentiable(out);
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
// of the engine's time on a chain of small ops). The leaves are indexed the same way (keyed by
// their TensorImpl).
class NodeIndex {
 public:
  static constexpr size_t npos = static_cast<size_t>(-1);
  // Inserts node with `index` unless present; returns whether it was inserted.
  bool insert(const void* node, size_t index) { return emplace(node, index) == index; }
  // The index of node, which gets `index` if it is not present yet.
  size_t emplace(const void* node, size_t index) {
    if (2 * (size_ + 1) > table_.size()) grow();
    Slot& slot = table_[position(node)];
    if (slot.node) return slot.index;
    slot = {node, index};
    ++size_;
    return index;
  }
  size_t find(const void* node) const {
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
    const void* node = nullptr;
    size_t index = 0;
  };
  // Where node is, or the empty slot where it would go (linear probing from a Fibonacci hash).
  size_t position(const void* node) const {
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

std::vector<Tensor> run_backward(const std::vector<Tensor>& roots,
                                 const std::vector<Tensor>& grad_roots, bool retain_graph,
                                 bool create_graph, const std::vector<Tensor>* inputs) {
  // Gradients are computed without recording, unless they must be differentiable themselves.
  const bool previous_mode = GradMode::is_enabled();
  GradMode::set_enabled(create_graph);
  struct Restore {
    bool mode;
    ~Restore() { GradMode::set_enabled(mode); }
  } restore{previous_mode};
  // This backward's end callbacks (a backward run from a hook has its own).
  std::vector<std::function<void()>> callbacks;
  struct RestoreCallbacks {
    std::vector<std::function<void()>>* previous;
    ~RestoreCallbacks() { t_callbacks = previous; }
  } restore_callbacks{t_callbacks};
  t_callbacks = &callbacks;

  // autograd::grad: where each input's gradient is caught, and nothing is accumulated.
  const bool capture = inputs != nullptr;
  std::vector<Tensor> captured(capture ? inputs->size() : 0);
  // The inputs whose gradient flows into output `output_nr` of `node` (non-leaves) ...
  auto capture_node = [&](const Node* node, uint32_t output_nr, const Tensor& g) {
    if (!capture) return;
    for (size_t k = 0; k < inputs->size(); ++k) {
      const TensorImpl& in = *(*inputs)[k].impl();
      if (in.grad_fn.get() == node && in.output_nr == output_nr)
        captured[k] = captured[k].defined() ? add(captured[k], g) : g;
    }
  };
  // ... and the summed gradient for a leaf: run through its hooks, then caught or accumulated.
  auto to_leaf = [&](const std::shared_ptr<TensorImpl>& leaf, Tensor g) {
    if (capture) {  // only the inputs' gradients, after their hooks
      for (size_t k = 0; k < inputs->size(); ++k) {
        if ((*inputs)[k].impl() != leaf) continue;
        if (leaf->hooks) g = run_hooks(leaf->hooks->pre, 0, std::move(g));
        captured[k] = conform(std::move(g), leaf->shape, leaf->dtype, "leaf");
        return;
      }
      return;
    }
    if (leaf->hooks) g = run_hooks(leaf->hooks->pre, 0, std::move(g));
    accumulate_leaf(leaf, std::move(g));
    if (leaf->hooks) {
      // A copy: a hook may register or remove hooks.
      const auto post = leaf->hooks->post;
      for (const auto& [handle, fn] : post) fn(Tensor(leaf));
    }
  };

  // The nodes reachable from the roots, each once.
  std::vector<std::shared_ptr<Node>> order;
  NodeIndex index;
  auto discover = [&](const std::shared_ptr<Node>& node) {
    if (index.insert(node.get(), order.size())) order.push_back(node);
  };
  // Each leaf's gradient is summed over its edges and goes on once, when the last node with an
  // edge to it has run (PyTorch's AccumulateGrad node): its hooks see the whole gradient, and
  // its post-accumulate-grad hooks run once per backward.
  struct LeafState {
    std::shared_ptr<TensorImpl> leaf;
    Tensor grad;
    size_t pending = 0;  // edges from nodes yet to run or be skipped
  };
  std::vector<LeafState> leaves;
  NodeIndex leaf_index;
  auto leaf_state = [&](const std::shared_ptr<TensorImpl>& leaf) -> LeafState& {
    const size_t i = leaf_index.emplace(leaf.get(), leaves.size());
    if (i == leaves.size()) leaves.push_back({leaf, Tensor(), 0});
    return leaves[i];
  };
  auto flush = [&](LeafState& st) {
    if (!st.grad.defined()) return;
    Tensor g = std::move(st.grad);
    st.grad = Tensor();
    to_leaf(st.leaf, std::move(g));
  };
  auto add_to = [create_graph](Tensor& sum, Tensor g) {
    add_gradient(sum, std::move(g), create_graph);
  };
  for (size_t r = 0; r < roots.size(); ++r) {
    const TensorImpl& root = *roots[r].impl();
    if (root.grad_fn) {
      discover(root.grad_fn);
    } else {
      add_to(leaf_state(roots[r].impl()).grad, grad_roots[r]);
    }
  }
  for (size_t next = 0; next < order.size(); ++next) {
    for (const Edge& e : order[next]->next_edges())
      if (e.node) discover(e.node);
  }
  // A node is made after the nodes of its inputs, so reverse creation order is topological (a
  // chain is discovered in that order already).
  const auto later = [](const auto& a, const auto& b) {
    return a->sequence_nr() > b->sequence_nr();
  };
  // `index` maps each node to its place in `order`: as discovered, unless it had to be sorted.
  if (!std::is_sorted(order.begin(), order.end(), later)) {
    std::sort(order.begin(), order.end(), later);
    index.clear();
    for (size_t i = 0; i < order.size(); ++i) index.insert(order[i].get(), i);
  }

  // Gradient buffers: one slot per output of each node, in one vector; `reached` marks the nodes
  // some gradient flowed into.
  std::vector<size_t> first_slot(order.size() + 1, 0);
  for (size_t i = 0; i < order.size(); ++i)
    first_slot[i + 1] = first_slot[i] + order[i]->num_outputs();
  // autograd::grad runs only the nodes that lead to an input (children come later in `order`).
  std::vector<char> wanted(order.size(), 1);
  if (capture) {
    for (size_t n = order.size(); n-- > 0;) {
      const Node* node = order[n].get();
      bool w = false;
      for (const Tensor& in : *inputs) w = w || in.impl()->grad_fn.get() == node;
      for (const Edge& e : node->next_edges()) {
        if (e.node) {
          w = w || wanted[index.find(e.node.get())];
        } else if (e.is_leaf) {
          auto leaf = e.leaf.lock();
          for (const Tensor& in : *inputs) w = w || (leaf && in.impl() == leaf);
        }
      }
      wanted[n] = w;
    }
  }
  // Where each edge leads, looked up once: edge i of node n has targets[first_edge[n] + i], the
  // index in `order` of its node, or of its leaf in `leaves` (npos for a leaf that is gone, and
  // for an edge that leads nowhere).
  std::vector<size_t> first_edge(order.size() + 1, 0);
  std::vector<size_t> targets;
  for (size_t n = 0; n < order.size(); ++n) {
    for (const Edge& e : order[n]->next_edges()) {
      size_t target = NodeIndex::npos;
      if (e.node) {
        target = index.find(e.node.get());
      } else if (e.is_leaf) {
        if (auto leaf = e.leaf.lock()) {
          target = leaf_index.emplace(leaf.get(), leaves.size());
          if (target == leaves.size()) leaves.push_back({std::move(leaf), Tensor(), 0});
          ++leaves[target].pending;
        }
      }
      targets.push_back(target);
    }
    first_edge[n + 1] = targets.size();
  }
  // A leaf edge of a node that ran (with gradient g, or none) or was skipped. (The leaf is alive:
  // its LeafState holds it.)
  auto leaf_edge_done = [&](size_t leaf, Tensor g) {
    if (leaf == NodeIndex::npos) return;
    LeafState& st = leaves[leaf];
    if (g.defined()) add_to(st.grad, std::move(g));
    if (--st.pending == 0) flush(st);
  };
  std::vector<Tensor> slots(first_slot.back());
  std::vector<char> reached(order.size(), 0);
  auto receive = [&](size_t i, uint32_t output_nr, Tensor g) {
    add_gradient(slots[first_slot[i] + output_nr], std::move(g), create_graph);
    reached[i] = 1;
  };
  for (size_t r = 0; r < roots.size(); ++r) {
    const TensorImpl& root = *roots[r].impl();
    if (root.grad_fn) receive(index.find(root.grad_fn.get()), root.output_nr, grad_roots[r]);
  }

  std::vector<Tensor> grads;  // one node's output gradients (reused)
  std::vector<bool> needs;    // which of one node's inputs need a gradient (reused)
  for (size_t n = 0; n < order.size(); ++n) {
    Node* node = order[n].get();
    if (!reached[n] || !wanted[n]) {  // reachable, but no gradient flowed into it (or not needed)
      for (size_t i = 0; i < node->next_edges().size(); ++i)
        if (node->next_edges()[i].is_leaf) leaf_edge_done(targets[first_edge[n] + i], Tensor());
      if (!retain_graph) node->release();
      continue;
    }
    grads.assign(std::make_move_iterator(slots.begin() + static_cast<int64_t>(first_slot[n])),
                 std::make_move_iterator(slots.begin() + static_cast<int64_t>(first_slot[n + 1])));
    // The gradients flowing into the tensors this node made: their hooks (in registration
    // order), then retained grads (PyTorch runs retain_grad's hook last), then autograd::grad.
    if (!node->tensor_hooks().empty() || !node->retained().empty() || capture) {
      const auto hooks = node->tensor_hooks();  // a copy: a hook may register or remove hooks
      for (uint32_t o = 0; o < grads.size(); ++o) {
        grads[o] = run_hooks(hooks, o, std::move(grads[o]));
        if (!grads[o].defined()) continue;
        for (const auto& [output_nr, weak] : node->retained()) {
          auto impl = weak.lock();
          if (output_nr != o || !impl) continue;
          impl->grad =
              impl->grad ? add(Tensor(impl->grad), grads[o]).impl() : grads[o].clone().impl();
        }
        capture_node(node, o, grads[o]);
      }
    }
    if (!node->accepts_undefined_grads()) {
      for (size_t i = 0; i < grads.size(); ++i)
        if (!grads[i].defined())
          grads[i] =
              zeros(Shape(node->output_meta()[i].shape.begin(), node->output_meta()[i].shape.end()),
                    node->output_meta()[i].dtype);
    }
    // With create_graph (grad mode on) the gradients must carry their history: a backward that a
    // kernel computes would silently drop terms of the second derivative.
    GG_CHECK(!(create_graph && node->once_differentiable()),
             "[{}] create_graph: the backward of {} is not differentiable, so second derivatives "
             "through it are not supported (its gradients are computed by a kernel that records "
             "no history); call it without create_graph for first-order gradients",
             inputs != nullptr ? "autograd::grad" : "backward", node->name());
    std::vector<Tensor> input_grads;
    {
      RunningNodeScope running(order[n]);
      input_grads = node->apply(grads, needs);
    }
    grads.clear();  // let go of the output gradients (an input gradient may be one of them)
    if (!retain_graph) node->release();
    const auto& edges = node->next_edges();
    GG_CHECK(input_grads.size() == edges.size(),
             "[backward] {} returned {} gradients for {} inputs", node->name(), input_grads.size(),
             edges.size());
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      const size_t target = targets[first_edge[n] + i];
      if (!input_grads[i].defined()) {
        if (e.is_leaf) leaf_edge_done(target, Tensor());
        continue;
      }
      // Moved out of input_grads: a gradient that nothing else holds can become a leaf's grad.
      const NodeMeta& meta = node->input_meta()[i];
      Tensor g = conform(std::move(input_grads[i]), meta.dims(), meta.dtype, node->name());
      if (e.node) {
        receive(target, e.output_nr, std::move(g));
      } else {
        leaf_edge_done(target, std::move(g));
      }
    }
  }
  for (LeafState& st : leaves) flush(st);          // root leaves (and leaves that lost a node)
  for (size_t i = 0; i < callbacks.size(); ++i) {  // by index: a callback may queue more
    std::function<void()> fn = std::move(callbacks[i]);
    fn();
  }
  return captured;
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

namespace gg {

// ---- hooks and retained gradients --------------------------------------------------------------

void Tensor::retain_grad() const {
  const TensorImpl& t = checked("retain_grad");
  GG_CHECK(requires_grad(),
           "[retain_grad] cannot retain the grad of a tensor ({}) that does not "
           "require grad",
           describe(*this));
  if (!t.grad_fn || t.retains_grad) return;  // a leaf keeps its grad anyway
  impl_->retains_grad = true;
  t.grad_fn->retained().emplace_back(t.output_nr, impl_);
}

bool Tensor::retains_grad() const { return checked("retains_grad").retains_grad; }

unsigned Tensor::add_hook(std::function<Tensor(const Tensor&)> hook) const {
  const TensorImpl& t = checked("register_hook");
  GG_CHECK(requires_grad(),
           "[register_hook] cannot register a hook on a tensor ({}) that does not require grad",
           describe(*this));
  GG_CHECK(hook != nullptr, "[register_hook] the hook is empty");
  const unsigned handle = autograd::next_hook_handle();
  if (t.grad_fn) {
    t.grad_fn->tensor_hooks().push_back({handle, t.output_nr, std::move(hook)});
  } else {
    if (!t.hooks) impl_->hooks = std::make_shared<autograd::TensorHooks>();
    impl_->hooks->pre.push_back({handle, 0, std::move(hook)});
  }
  return handle;
}

unsigned Tensor::register_post_accumulate_grad_hook(std::function<void(const Tensor&)> hook) const {
  const TensorImpl& t = checked("register_post_accumulate_grad_hook");
  GG_CHECK(t.grad_fn == nullptr,
           "[register_post_accumulate_grad_hook] post-accumulate-grad hooks can only be "
           "registered on leaf tensors; this one ({}) has grad_fn {}",
           describe(*this), t.grad_fn ? t.grad_fn->name() : "");
  GG_CHECK(t.requires_grad,
           "[register_post_accumulate_grad_hook] cannot register a hook on a tensor ({}) that "
           "does not require grad",
           describe(*this));
  GG_CHECK(hook != nullptr, "[register_post_accumulate_grad_hook] the hook is empty");
  const unsigned handle = autograd::next_hook_handle();
  if (!t.hooks) impl_->hooks = std::make_shared<autograd::TensorHooks>();
  impl_->hooks->post.emplace_back(handle, std::move(hook));
  return handle;
}

void Tensor::remove_hook(unsigned handle) const {
  const TensorImpl& t = checked("remove_hook");
  auto erase = [handle](auto& entries, auto key) {
    const auto it = std::find_if(entries.begin(), entries.end(),
                                 [&](const auto& e) { return key(e) == handle; });
    if (it == entries.end()) return false;
    entries.erase(it);
    return true;
  };
  const auto by_handle = [](const autograd::HookEntry& e) { return e.handle; };
  const auto first = [](const auto& e) { return e.first; };
  bool removed = false;
  if (t.grad_fn) removed = erase(t.grad_fn->tensor_hooks(), by_handle);
  if (!removed && t.hooks) removed = erase(t.hooks->pre, by_handle) || erase(t.hooks->post, first);
  GG_CHECK(removed, "[remove_hook] the tensor ({}) has no hook with handle {}", describe(*this),
           handle);
}

}  // namespace gg
