#pragma once
// SavedTensor: a tensor that a backward closure reads, saved together with the version of its
// storage (PyTorch's SavedVariable). unpack() checks that nothing wrote the tensor in place since
// it was saved -- a changed version throws gg::Error naming the node, never a wrong gradient --
// and, when the backward runs with create_graph (grad mode on), gives the tensor back with its
// history so that the gradient it computes is itself differentiable (double backward).
// Every tensor a closure recorded by an op reads (an input or an output of that op) is captured
// through one: [x = SavedTensor(x), y = SavedTensor::output(out)](...) { ... x.unpack() ... }.
#include <cstdint>
#include <memory>

#include "../core/tensor.hpp"

namespace gg::autograd {

class Node;

class SavedTensor {
 public:
  SavedTensor() = default;  // nothing saved: unpack() gives an undefined tensor
  // Saves an input of the op (or an undefined tensor); keeps its data, not its graph.
  explicit SavedTensor(const Tensor& t);
  // Saves output `output_nr` of the op being recorded, before record() made it so: its history
  // (for double backward) is the node that reads it, which unpack() finds while that node runs.
  static SavedTensor output(const Tensor& t, uint32_t output_nr = 0);

  bool defined() const { return data_ != nullptr; }
  // The saved tensor, or gg::Error when it was modified in place after it was saved.
  Tensor unpack() const;
  // Only the check of unpack(), for a backward that reads the saved data another way.
  void check() const;

 private:
  std::shared_ptr<TensorImpl> data_;  // detached: no graph, the storage the tensor had
  uint64_t version_ = 0;              // of that storage, when saved
  std::weak_ptr<Node> grad_fn_;       // an input's history (the node holds it strongly)
  uint32_t output_nr_ = 0;
  std::weak_ptr<TensorImpl> leaf_;  // an input that is a leaf requiring grad
  bool is_output_ = false;
};

// Makes `node` the node that is running backward on this thread for its scope (the engine sets
// it around each Node::apply), so that SavedTensor::unpack can name it and link outputs to it.
class RunningNodeScope {
 public:
  explicit RunningNodeScope(const std::shared_ptr<Node>& node);
  ~RunningNodeScope();
  RunningNodeScope(const RunningNodeScope&) = delete;
  RunningNodeScope& operator=(const RunningNodeScope&) = delete;

 private:
  const std::shared_ptr<Node>* previous_;
};

}  // namespace gg::autograd
