// The seed's multi-head example: 8 heads, each queries [batch*seq, 64] @ key weights [64, 64],
// as one grouped_mm call; checked against a naive loop.
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <vector>

namespace F = gg::nn::functional;

int main() {
  const int64_t head_size = 64, num_heads = 8, seq_len = 10, batch_size = 32;
  gg::manual_seed(0);
  std::vector<gg::Tensor> queries, key_weights;  // 8 heads, each [batch*seq, 64] and [64, 64]
  for (int64_t h = 0; h < num_heads; ++h) {
    queries.push_back(gg::randn({batch_size * seq_len, head_size}));
    key_weights.push_back(gg::randn({head_size, head_size}));
  }
  std::vector<gg::Tensor> head_outputs = F::grouped_mm(queries, key_weights);

  double worst = 0;
  for (int64_t h = 0; h < num_heads; ++h) {
    const auto q = queries[h].to_vector<float>(), w = key_weights[h].to_vector<float>();
    const auto out = head_outputs[h].to_vector<float>();
    for (int64_t i = 0; i < batch_size * seq_len; ++i)
      for (int64_t j = 0; j < head_size; ++j) {
        double want = 0;
        for (int64_t k = 0; k < head_size; ++k)
          want += double(q[i * head_size + k]) * w[k * head_size + j];
        worst = std::max(worst, std::fabs(out[i * head_size + j] - want) / (1 + std::fabs(want)));
      }
    std::cout << "head " << h << ": " << gg::shape_str(queries[h].shape()) << " @ "
              << gg::shape_str(key_weights[h].shape()) << " -> "
              << gg::shape_str(head_outputs[h].shape()) << "\n";
  }
  std::cout << "head 0, first row, first 4 values: "
            << head_outputs[0].narrow(0, 0, 1).narrow(1, 0, 4) << "\n";
  std::cout << "largest relative difference from a naive loop: " << worst << "\n";
  return worst < 1e-4 ? 0 : 1;
}
