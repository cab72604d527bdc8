// The reductions' gradcheck cases (autograd/gradcheck.hpp): sum, mean and max, whole and over dims.
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
}

}  // namespace gg::gradcheck
