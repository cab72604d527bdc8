// A few ops and losses as PyTorch spells them: topk for a top-2 accuracy, gather to pick each
// row's entry at its label, where to mask, and two losses that take raw scores or outliers well.
#include <groupgrad/groupgrad.hpp>

struct OpsTour {
  double top2_accuracy;
  gg::Tensor label_scores, positive_part;
  double huber, bce;
};

inline OpsTour ops_and_losses() {
  const gg::Tensor scores = gg::tensor<float>({0.1f, 2.0f, -1.0f, 0.5f,  //
                                               1.5f, 0.2f, 0.3f, -0.4f},
                                              {2, 4});
  const gg::Tensor labels = gg::tensor<int64_t>({3, 1});
  OpsTour r;
  // Top-2 per row, sorted: indices [[1, 3], [0, 2]]; label 3 is among them, label 1 is not.
  auto [values, indices] = gg::topk(scores, /*k=*/2, /*dim=*/1);
  gg::Tensor hit = gg::sum(gg::eq(indices, labels.unsqueeze(1)), 1);  // 1 or 0 per row
  r.top2_accuracy = gg::mean(hit).item<double>();                     // 0.5
  // out[i][0] = scores[i][labels[i]]: [[0.5], [0.2]]
  r.label_scores = gg::gather(scores, 1, labels.unsqueeze(1));
  // The scores where positive, else 0 (where broadcasts a double as a tensor of scores' dtype).
  r.positive_part = gg::where(gg::gt(scores, gg::zeros_like(scores)), scores, 0.0);
  // Huber: quadratic for |error| <= delta, linear beyond (the 4.0 is an outlier).
  const gg::Tensor prediction = gg::tensor<float>({0.5f, 1.0f, 4.0f});
  const gg::Tensor target = gg::tensor<float>({0.0f, 1.0f, 0.0f});
  r.huber = gg::huber_loss(prediction, target, gg::Reduction::Mean, /*delta=*/1.0).item<double>();
  // Binary cross-entropy on raw scores (logits): sigmoid inside, no overflow for large scores.
  const gg::Tensor logits = gg::tensor<float>({3.0f, -2.0f, 100.0f});
  const gg::Tensor targets = gg::tensor<float>({1.0f, 0.0f, 0.0f});
  r.bce = gg::binary_cross_entropy_with_logits(logits, targets).item<double>();
  return r;
}
