#pragma once
// A Node is one recorded op call: edges to where its inputs' gradients go, and a backward closure
// holding what it saved. Nodes are numbered as they are made; that order is the tape.
#include <boost/container/small_vector.hpp>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "../core/tensor.hpp"
#include "saved_tensor.hpp"

namespace gg::autograd {

class Node;

// Where the gradient of one input goes: into another node's output slot, or into a leaf's grad.
// Leaves are held weakly (a graph never keeps a parameter alive); nodes strongly.
struct Edge {
  std::shared_ptr<Node> node;
  uint32_t output_nr = 0;
  std::weak_ptr<TensorImpl> leaf;
  bool is_leaf = false;
  bool valid() const { return node != nullptr || is_leaf; }
};

struct TensorMeta {
  Shape shape;
  Dtype dtype = kFloat32;
};

// A node's edges and the shapes and dtypes it keeps, held inside the node for the usual one or
// two inputs of up to four dims: a Node is then one allocation, not one per vector and Shape (a
// chain of small ops spent a quarter of its time in malloc and free).
using EdgeList = boost::container::small_vector<Edge, 2>;
struct NodeMeta {
  boost::container::small_vector<int64_t, 4> shape;
  Dtype dtype = kFloat32;
  std::span<const int64_t> dims() const { return {shape.data(), shape.size()}; }
};
using MetaList = boost::container::small_vector<NodeMeta, 2>;

// Backward closure: receives one gradient per output (all defined unless the node accepts
// undefined ones) and needs_input_grad per input; returns one gradient per input (undefined
// where none is needed). It runs with grad mode off (on with create_graph, where its ops record).
// Closures capture every input or output they read as an autograd::SavedTensor
// (saved_tensor.hpp), never as a Tensor: it checks that the tensor was not modified in place
// since, does not make the graph own itself through an output's grad_fn, and gives the tensor
// back with its history for double backward. Tensors the op made for itself (masks, statistics)
// may be captured as they are.
using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs,
                                                     const std::vector<bool>& needs_input_grad)>;

// A tensor hook (Tensor::register_hook): maps the gradient flowing into a tensor to the one that
// goes on (an undefined result keeps it).
using TensorHook = std::function<Tensor(const Tensor&)>;
struct HookEntry {
  unsigned handle = 0;
  uint32_t output_nr = 0;  // on a node: which output's gradient it sees
  TensorHook fn;
};
// A leaf's hooks (TensorImpl::hooks): tensor hooks, run before its gradient is accumulated, and
// post-accumulate-grad hooks, run after.
struct TensorHooks {
  std::vector<HookEntry> pre;
  std::vector<std::pair<unsigned, std::function<void(const Tensor&)>>> post;
};
unsigned next_hook_handle();

class Node {
 public:
  // Edges to the inputs' histories (none for undefined inputs and those that need no grad), with
  // the shapes and dtypes of those inputs, and of the outputs.
  Node(std::string name, BackwardFn backward, std::span<const Tensor* const> inputs,
       std::span<const Tensor> outputs, bool accepts_undefined_grads);
  // Frees the graph behind this node iteratively: a chain of a million ops would overflow the
  // stack if each node's destructor destroyed the next one (as shared_ptr does by itself).
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  uint64_t sequence_nr() const { return sequence_nr_; }
  const EdgeList& next_edges() const { return next_edges_; }
  // Input i's shape and dtype when it has an edge (valid()); empty otherwise.
  const MetaList& input_meta() const { return input_meta_; }
  const MetaList& output_meta() const { return output_meta_; }
  size_t num_outputs() const { return output_meta_.size(); }
  bool accepts_undefined_grads() const { return accepts_undefined_grads_; }
  bool released() const { return !backward_; }
  // Whether the backward computes its gradients with a kernel that records nothing (PyTorch's
  // @once_differentiable): a backward with create_graph through it throws gg::Error instead of
  // giving gradients without history (a wrong second derivative).
  bool once_differentiable() const { return once_differentiable_; }
  void set_once_differentiable() { once_differentiable_ = true; }

  // Runs the backward closure, with which inputs need a gradient (the edges that lead somewhere)
  // in `needs` (the caller's buffer, reused across nodes); throws gg::Error once the node was
  // released.
  std::vector<Tensor> apply(const std::vector<Tensor>& grad_outputs, std::vector<bool>& needs);
  // Frees the saved tensors (the closure); later apply() calls fail.
  void release() { backward_ = nullptr; }

  // Hooks of the non-leaf tensors this node made (Tensor::register_hook), in registration order,
  // and the tensors that retain their gradient (Tensor::retain_grad), per output.
  std::vector<HookEntry>& tensor_hooks() { return tensor_hooks_; }
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>>& retained() { return retained_; }

 private:
  std::string name_;
  uint64_t sequence_nr_;
  BackwardFn backward_;
  EdgeList next_edges_;
  MetaList input_meta_;
  MetaList output_meta_;
  bool accepts_undefined_grads_;
  bool once_differentiable_ = false;
  std::vector<HookEntry> tensor_hooks_;
  std::vector<std::pair<uint32_t, std::weak_ptr<TensorImpl>>> retained_;
};

// True when grad mode is on and some defined input requires grad: only then ops record.
bool needs_grad(const std::vector<Tensor>& inputs);
bool needs_grad(std::initializer_list<Tensor> inputs);  // needs_grad({a, b}) without a vector

// Records one node for an op call if needs_grad(inputs), and makes it the grad_fn of `outputs`.
// Undefined inputs are allowed (no edge). Outputs must be freshly made by the op.
void record(std::string name, const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs,
            BackwardFn backward, bool accepts_undefined_grads = false);
// Single-output convenience: returns `output` with its grad_fn set.
Tensor record(std::string name, const std::vector<Tensor>& inputs, Tensor output,
              BackwardFn backward);
// The same for record("XBackward", {a, b}, ...): nothing is allocated when nothing is recorded.
Tensor record(std::string name, std::initializer_list<Tensor> inputs, Tensor output,
              BackwardFn backward);

// The same for a binary op's operands, without copying their handles into a list as {a, b} does.
Tensor record(std::string name, const Tensor& a, const Tensor& b, Tensor output,
              BackwardFn backward);

// Marks the node that made `output` (if one was recorded) as once differentiable (see
// Node::once_differentiable); for ops whose backward is a kernel. Returns `output`.
Tensor once_differentiable(Tensor output);
// The same for the outputs of a multi-output record().
void once_differentiable(const std::vector<Tensor>& outputs);

// Sums a broadcast gradient back to `shape` (over leading dims and dims of size 1).
Tensor sum_to(const Tensor& grad, const Shape& shape);

// Runs backward from `roots` with their gradients. create_graph records the backward's own ops
// (for double backward). With `inputs` (autograd::grad), the gradients flowing into those tensors
// are returned, one per input (undefined where none flowed), instead of being accumulated into
// leaves' grad, and only the part of the graph that leads to them runs.
std::vector<Tensor> run_backward(const std::vector<Tensor>& roots,
                                 const std::vector<Tensor>& grad_roots, bool retain_graph,
                                 bool create_graph = false,
                                 const std::vector<Tensor>* inputs = nullptr);

// Queues fn to run once when the backward that is running on this thread has finished (after
// every leaf's gradient and post-accumulate-grad hook), in queueing order; a callback may queue
// more. torch's Variable._execution_engine.queue_callback. Throws outside a backward.
void queue_callback(std::function<void()> fn);

}  // namespace gg::autograd
