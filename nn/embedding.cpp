#include "nn/embedding.hpp"

#include "nn/functional.hpp"
#include "nn/init.hpp"

namespace gg::nn {

Embedding::Embedding(int64_t num_embeddings, int64_t embedding_dim)
    : num_embeddings_(num_embeddings), embedding_dim_(embedding_dim) {
  GG_CHECK(num_embeddings > 0 && embedding_dim > 0,
           "[Embedding] num_embeddings and embedding_dim must be > 0, got {} and {}",
           num_embeddings, embedding_dim);
  weight = register_parameter("weight", empty({num_embeddings, embedding_dim}));
  reset_parameters();
}

void Embedding::reset_parameters() { init::normal_(weight, 0.0, 1.0); }

Tensor Embedding::forward(const Tensor& indices) {
  functional::detail::check_embedding_input(indices, weight, "Embedding");
  return functional::embedding(indices, weight);
}

void Embedding::pretty_print(std::ostream& stream) const {
  stream << fmt::format("gg::nn::Embedding(num_embeddings={}, embedding_dim={})", num_embeddings_,
                        embedding_dim_);
}

std::shared_ptr<Module> Embedding::clone() const {
  auto copy = std::make_shared<Embedding>(num_embeddings_, embedding_dim_);
  clone_state_into(*copy);
  return copy;
}

}  // namespace gg::nn
