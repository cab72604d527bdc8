#pragma once
#include "module.hpp"

namespace gg::nn {

// A lookup table: indices (Int32/Int64, any shape) -> rows of weight [num_embeddings, dim], giving
// [*, dim]. weight is initialised N(0, 1), as in PyTorch.
class Embedding : public Module {
 public:
  Embedding(int64_t num_embeddings, int64_t embedding_dim);
  // Checks the indices (dtype, every value in [0, num_embeddings)) and names Embedding in the
  // error.
  Tensor forward(const Tensor& indices);
  void reset_parameters();
  // "gg::nn::Embedding(num_embeddings=10, embedding_dim=2)", as libtorch prints it.
  void pretty_print(std::ostream& stream) const override;
  std::shared_ptr<Module> clone() const override;

  int64_t num_embeddings() const { return num_embeddings_; }
  int64_t embedding_dim() const { return embedding_dim_; }

  Tensor weight;

 private:
  int64_t num_embeddings_;
  int64_t embedding_dim_;
};

}  // namespace gg::nn
