#pragma once
// GroupedLinear: G independent linear maps, group i taking in_features[i] -> out_features[i],
// run as ONE grouped_mm call (one tape node) instead of G matmuls.
//
// Parameters, named like PyTorch's nn.ParameterList attributes (so a loop of nn.Linear copies
// over one to one, and checkpoints use these names):
//   weight.<i>  [out_features[i], in_features[i]]   (nn.Linear's layout)
//   bias.<i>    [out_features[i]]                   (absent with bias = false)
// "weight" and "bias" are ParameterList submodules holding parameters "0", "1", ...
//
// Storage: the weights keep PyTorch's [out, in] layout and grouped_mm gets the transposed view
// [in, out] (strides (1, in)): oneDNN reads a transposed weight at no cost (measured in the
// tests: same speed as a [in, out] copy), and keeping nn.Linear's layout means weights, fans for
// the initialisation and checkpoints match PyTorch without any conversion. All weights live
// back to back in one allocation (likewise the biases), so when the groups are uniform the
// [G, out, in] stack the packed form needs is a VIEW of the parameters (stack_groups), not a
// copy; Module::to() gives each parameter its own storage, and the packed forward then packs
// them together again (in place, the handles stay the same).
//
// Initialisation: nn.Linear's, per group: weight and bias ~ U(-1/sqrt(in_i), 1/sqrt(in_i)).
#include <concepts>
#include <memory>
#include <mutex>
#include <vector>

#include "module.hpp"

namespace gg::nn {

// Parameters named "0", "1", ... (PyTorch's nn.ParameterList): a layer registers one as a
// submodule to get dotted per-index names such as "weight.3".
class ParameterList : public Module {
 public:
  // Registers t as parameter "<size()>" (requires grad) and returns its handle.
  Tensor& append(Tensor t);
  size_t size() const { return tensors_.size(); }
  const Tensor& operator[](size_t i) const { return tensors_.at(i); }
  const std::vector<Tensor>& tensors() const { return tensors_; }
  // One line: "gg::nn::ParameterList(2 x float32 [3, 4])" (runs of equal kinds counted).
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<Module> clone() const override;

 private:
  std::vector<Tensor> tensors_;  // the same handles as the registered parameters
};

class GroupedLinear : public Module {
 public:
  GroupedLinear(std::vector<int64_t> in_features, std::vector<int64_t> out_features,
                bool bias = true);

  // List form: inputs[i] is [*, in_features[i]] (any leading dims, may be empty) and gives
  // [*, out_features[i]].
  std::vector<Tensor> forward(const std::vector<Tensor>& inputs);
  // Batched (ensemble) form: x [G, N, in] -> [G, N, out], group g's rows through group g's
  // weights: one 3D x 3D grouped_mm. Needs equal in and out features across groups. (A template
  // only so that forward({x}) keeps meaning the list form; T is Tensor.)
  template <std::same_as<Tensor> T>
  Tensor forward(const T& x) {
    return forward_batched(x);
  }
  // Packed (MoE) form: packed_input [M_total, in] with rows grouped by `offs` (1-D Int32/Int64,
  // G cumulative end offsets, no leading 0) gives [M_total, out]; rows past offs[-1] are zero.
  // Needs equal in and out features across groups.
  Tensor forward(const Tensor& packed_input, const Tensor& offs);

  void reset_parameters();

  int64_t num_groups() const { return static_cast<int64_t>(in_features_.size()); }
  const std::vector<int64_t>& in_features() const { return in_features_; }
  const std::vector<int64_t>& out_features() const { return out_features_; }
  bool has_bias() const { return bias != nullptr; }
  // Equal in and equal out features across groups: the packed form is available.
  bool uniform() const { return uniform_; }

  // The weights as one [G, out, in] tensor and the biases as [G, out] (undefined without bias),
  // for the packed form; views of the parameters when they are packed together (see above).
  // Gradients flow back to the per-group parameters. Need uniform().
  Tensor stacked_weight();
  Tensor stacked_bias();

  // "gg::nn::GroupedLinear(in_features=[4, 4], out_features=[3, 3], bias=true)": one line, the
  // per-group parameter lists are not listed under it.
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<Module> clone() const override;

  std::shared_ptr<ParameterList> weight;
  std::shared_ptr<ParameterList> bias;  // null when made with bias = false

 protected:
  bool pretty_print_children() const override { return false; }

 private:
  Tensor forward_batched(const Tensor& x);
  void check_uniform(const char* what) const;
  // Back to back in one allocation again, if Module::to() split them. The only write a forward
  // makes to the module: under pack_mutex_, and every forward of a uniform module passes through
  // it before reading the parameters, so concurrent forwards never see a half-swapped storage.
  void pack_parameters();

  std::vector<int64_t> in_features_;
  std::vector<int64_t> out_features_;
  bool uniform_ = false;
  std::mutex pack_mutex_;
};

namespace functional {

// GroupedLinear's forwards with explicit parameters (as F::linear is Linear's).
// List form: outputs[i] = inputs[i] @ weights[i]^T + biases[i]; weights[i] [out_i, in_i], biases
// empty or one per group (undefined = none for that group). One grouped_mm call.
std::vector<Tensor> grouped_linear(const std::vector<Tensor>& inputs,
                                   const std::vector<Tensor>& weights,
                                   const std::vector<Tensor>& biases = {});
// Packed form: packed_input [M_total, in], offs [G], weight [G, out, in], bias [G, out] or
// undefined -> [M_total, out]. One 2D x 3D grouped_mm call on weight's transposed view.
Tensor grouped_linear(const Tensor& packed_input, const Tensor& offs, const Tensor& weight,
                      const Tensor& bias = {});

// Tensors of one shape and dtype as one tensor [G, *shape] whose gradient flows back to each
// of them. A view (no copy) when they sit back to back in one storage, contiguous and in order
// (as GroupedLinear allocates its parameters); otherwise gg::stack (a copy).
Tensor stack_groups(const std::vector<Tensor>& tensors);

}  // namespace functional

}  // namespace gg::nn
