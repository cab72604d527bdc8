#pragma once
#include "module.hpp"

namespace gg::nn {

// y = x @ weight^T + bias, x [*, in_features] -> [*, out_features]. weight [out, in], bias [out].
// PyTorch's default init: kaiming_uniform_(a = sqrt(5)) on weight, i.e. U(-1/sqrt(in), 1/sqrt(in)),
// and the same bound for bias.
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true);
  // Checks the input against the layer (rank, last dim, dtype) and names Linear in the error.
  Tensor forward(const Tensor& x);
  void reset_parameters();
  // "gg::nn::Linear(in_features=4, out_features=3, bias=true)", as libtorch prints it.
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<Module> clone() const override;

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  Tensor weight;
  Tensor bias;  // undefined when made with bias = false

 private:
  int64_t in_features_;
  int64_t out_features_;
};

}  // namespace gg::nn
