// The nn ops' gradcheck cases (autograd/gradcheck.hpp): softmax, log_softmax, layer_norm, the
// losses and dropout.
#include <vector>

#include "core/random.hpp"
#include "ops/gradcheck_cases.hpp"
#include "ops/nn_ops.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

}  // namespace

void register_nn_op_cases(Registry& r) {
  const char* fam = "nn";
  add_case(
      r, fam, "softmax", "softmax over dims -1 and 0 of [3, 5]; over dim 1 of a non-contiguous x",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 5}, o.dtype, 2.0)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{softmax(x[0], -1), softmax(x[0], 0), softmax(x[1], 1)};
      });
  add_case(
      r, fam, "log_softmax", "log_softmax over dims 1 and -1 of [2, 3, 4]", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype, 2.0)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{log_softmax(x[0], 1), log_softmax(x[0], -1)};
      });
  add_case(
      r, fam, "layer_norm", "layer_norm of [3, 6] over [6] with weight and bias, and without",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 6}, o.dtype)},
                      {"weight", gen::normal({6}, o.dtype)},
                      {"bias", gen::normal({6}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{layer_norm(x[0], {6}, x[1], x[2]), layer_norm(x[0], {6})};
      });
  add_case(
      r, fam, "layer_norm_2d", "layer_norm of [2, 3, 4] over [3, 4] with a weight only", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)},
                      {"weight", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{layer_norm(x[0], {3, 4}, x[1])};
      });
  add_case(
      r, fam, "cross_entropy",
      "cross_entropy of logits [4, 5]: mean, sum, none, label_smoothing 0.1, an ignored target",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"logits", gen::normal({4, 5}, o.dtype, 2.0)},
                      {"target", tensor<int64_t>({3, 0, 4, 1}), false},
                      {"target_ignored", tensor<int64_t>({2, -100, 0, 4}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{cross_entropy(x[0], x[1]),
                 cross_entropy(x[0], x[1], Reduction::Sum),
                 cross_entropy(x[0], x[1], Reduction::None),
                 cross_entropy(x[0], x[1], Reduction::Mean, -100, 0.1),
                 cross_entropy(x[0], x[2]),
                 cross_entropy(x[0], x[2], Reduction::Sum, -100, 0.2)};
      });
  add_case(
      r, fam, "cross_entropy_spatial", "cross_entropy of logits [2, 3, 4] (N, C, d) and of [5] (C)",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"logits", gen::normal({2, 3, 4}, o.dtype, 2.0)},
                      {"target", tensor<int32_t>({0, 2, 1, 1, 2, 2, 0, 1}, {2, 4}), false},
                      {"single", gen::normal({5}, o.dtype)},
                      {"single_target", tensor<int64_t>({3}, {}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{cross_entropy(x[0], x[1]), cross_entropy(x[0], x[1], Reduction::None),
                 cross_entropy(x[2], x[3])};
      });
  add_case(
      r, fam, "mse_loss", "mse_loss(input, target) with mean, sum and none; both differentiable",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"input", gen::normal({3, 4}, o.dtype)},
                      {"target", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{mse_loss(x[0], x[1]), mse_loss(x[0], x[1], Reduction::Sum),
                 mse_loss(x[0], x[1], Reduction::None)};
      });
  add_case(
      r, fam, "nll_loss",
      "nll_loss of [4, 5] (weights, an ignored target, every reduction), of [2, 3, 4] with int32 "
      "targets and of [5] with a 0-d target",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"log_probs", gen::normal({4, 5}, o.dtype, 2.0)},
                      {"spatial", gen::normal({2, 3, 4}, o.dtype)},
                      {"single", gen::normal({5}, o.dtype)},
                      {"target", tensor<int64_t>({3, -100, 4, 1}), false},
                      {"target_spatial", tensor<int32_t>({0, 2, 1, 1, 2, 2, 0, 1}, {2, 4}), false},
                      {"weight", gen::uniform({5}, o.dtype, 0.5, 2.0), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{nll_loss(x[0], x[3]),
                 nll_loss(x[0], x[3], x[5], Reduction::Mean),
                 nll_loss(x[0], x[3], x[5], Reduction::Sum),
                 nll_loss(x[0], x[3], x[5], Reduction::None),
                 nll_loss(x[1], x[4], {}, Reduction::None),
                 nll_loss(x[1], x[4], x[5].narrow(0, 0, 3), Reduction::Mean, 1),
                 nll_loss(x[2], scalar_tensor(2, kInt64), x[5])};
      });
  add_case(
      r, fam, "cross_entropy_weight",
      "cross_entropy of [4, 5] with class weights, label_smoothing 0 and 0.2, an ignored target",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"logits", gen::normal({4, 5}, o.dtype, 2.0)},
                      {"target", tensor<int64_t>({3, -100, 4, 1}), false},
                      {"weight", gen::uniform({5}, o.dtype, 0.5, 2.0), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{cross_entropy(x[0], x[1], x[2]),
                 cross_entropy(x[0], x[1], x[2], Reduction::Mean, -100, 0.2),
                 cross_entropy(x[0], x[1], x[2], Reduction::None, -100, 0.2)};
      });
  add_case(
      r, fam, "binary_cross_entropy",
      "binary_cross_entropy of probabilities [3, 4] and targets, weight [4]; every reduction",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"input", gen::uniform({3, 4}, o.dtype, 0.1, 0.9)},
                      {"target", gen::uniform({3, 4}, o.dtype, 0.1, 0.9)},
                      {"weight", gen::uniform({4}, o.dtype, 0.5, 2.0), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{binary_cross_entropy(x[0], x[1]),
                 binary_cross_entropy(x[0], x[1], x[2], Reduction::Sum),
                 binary_cross_entropy(x[0], x[1], x[2], Reduction::None)};
      });
  add_case(
      r, fam, "binary_cross_entropy_with_logits",
      "binary_cross_entropy_with_logits of [3, 4] with weight [3, 1] and pos_weight [4]", false,
      [](const CaseOptions& o) {
        return Inputs{{"input", gen::normal({3, 4}, o.dtype, 3.0)},
                      {"target", gen::uniform({3, 4}, o.dtype, 0.0, 1.0)},
                      {"weight", gen::uniform({3, 1}, o.dtype, 0.5, 2.0), false},
                      {"pos_weight", gen::uniform({4}, o.dtype, 0.5, 3.0), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{binary_cross_entropy_with_logits(x[0], x[1]),
                 binary_cross_entropy_with_logits(x[0], x[1], x[2], x[3], Reduction::Sum),
                 binary_cross_entropy_with_logits(x[0], x[1], {}, x[3], Reduction::None)};
      });
  add_case(
      r, fam, "l1_smooth_l1_huber",
      "l1_loss, smooth_l1_loss (beta 1, 0.5) and huber_loss (delta 1, 0.3) of [3, 4] against a "
      "broadcast target [4]",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"input", gen::normal({3, 4}, o.dtype)},
                      {"target", gen::normal({4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{l1_loss(x[0], x[1]),
                 l1_loss(x[0], x[1], Reduction::None),
                 smooth_l1_loss(x[0], x[1]),
                 smooth_l1_loss(x[0], x[1], Reduction::None, 0.5),
                 huber_loss(x[0], x[1], Reduction::Sum),
                 huber_loss(x[0], x[1], Reduction::None, 0.3)};
      });
  // The mask comes from the global generator: reseeding before each forward fixes it.
  add_case(
      r, fam, "dropout", "dropout(x, 0.4) with a fixed mask (reseeded), and in eval mode", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions& o) {
        manual_seed(o.seed + 1000);
        return V{dropout(x[0], 0.4, true), dropout(x[0], 0.4, false)};
      });
}

}  // namespace gg::gradcheck
