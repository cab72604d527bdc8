// The reductions' gradcheck cases (autograd/gradcheck.hpp): sum, mean, max and min, whole and over
// one or several dims; topk.
#include <vector>

#include "ops/gradcheck_cases.hpp"
#include "ops/reduce.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

}  // namespace

void register_reduce_cases(Registry& r) {
  const char* fam = "reduce";
  add_case(
      r, fam, "sum", "x.sum() of [3, 4], and of a non-contiguous [4, 3]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].sum(), sum(x[1])};
      });
  add_case(
      r, fam, "sum_dim", "sum over dims 0, 1 and -1 (keepdim) of [2, 3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].sum(0), x[0].sum(1), x[0].sum(-1, true)};
      });
  add_case(
      r, fam, "mean", "x.mean() of [3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].mean(), mean(x[0])};
      });
  add_case(
      r, fam, "mean_dim", "mean over dims 0 (keepdim) and 2 of [2, 3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].mean(0, true), x[0].mean(2)};
      });
  add_case(
      r, fam, "max_dim", "max over dim 1 and dim 0 (keepdim) of [3, 5], no ties", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::distinct({3, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].max(1), max(x[0], 0, true), max_with_indices(x[0], -1).first};
      });
  add_case(
      r, fam, "min_dim", "min over dim 1 and dim 0 (keepdim) of [3, 5], no ties", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::distinct({3, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].min(1), min(x[0], 0, true), min_with_indices(x[0], -1).first};
      });
  add_case(
      r, fam, "max_min_all", "max() and min() of [3, 4] and of a non-contiguous [4, 3], no ties",
      false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::distinct({3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::distinct({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].max(), min(x[0]), max(x[1]), x[1].min()};
      });
  add_case(
      r, fam, "sum_dims",
      "sum over dims {0, 2}, {-1, 0} (keepdim), {} (all) of [2, 3, 4]; {1, 0} of a non-contiguous "
      "[4, 3]",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].sum({0, 2}), sum(x[0], {-1, 0}, true), x[0].sum({}), sum(x[1], Shape{1, 0}),
                 x[1].sum({1})};
      });
  add_case(
      r, fam, "mean_dims", "mean over dims {1, 2}, {0} (keepdim), {} of [2, 3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].mean({1, 2}), mean(x[0], {0}, true), mean(x[0], Shape{})};
      });
  add_case(
      r, fam, "topk", "top 2 along the last dim and bottom 3 along dim 0 of [4, 5], no ties", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::distinct({4, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{topk(x[0], 2).first, x[0].topk(3, 0, false).first};
      });
}

}  // namespace gg::gradcheck
