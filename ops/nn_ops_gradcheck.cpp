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
