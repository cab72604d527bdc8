// matmul's gradcheck cases (autograd/gradcheck.hpp): 2-d, batched, broadcast and 1-d operands,
// and a small MLP through matmul, add and tanh (family "composite").
#include <vector>

#include "ops/elementwise.hpp"
#include "ops/gradcheck_cases.hpp"
#include "ops/matmul.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

}  // namespace

void register_matmul_cases(Registry& r) {
  const char* fam = "matmul";
  add_case(
      r, fam, "matmul_2d", "a [3, 4] @ b [4, 5], b non-contiguous (transposed)", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({3, 4}, o.dtype)},
                      {"b", gen::noncontiguous(gen::normal({4, 5}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) { return V{matmul(x[0], x[1])}; });
  add_case(
      r, fam, "matmul_batched", "a [2, 3, 4] @ b [2, 4, 5]", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3, 4}, o.dtype)},
                      {"b", gen::normal({2, 4, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) { return V{x[0].matmul(x[1])}; });
  add_case(
      r, fam, "matmul_broadcast",
      "batch broadcasting: a [2, 1, 3, 4] @ b [3, 4, 2], and c [3, 4] @ b", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 1, 3, 4}, o.dtype)},
                      {"b", gen::normal({3, 4, 2}, o.dtype)},
                      {"c", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{matmul(x[0], x[1]), matmul(x[2], x[1])};
      });
  add_case(
      r, fam, "matmul_1d",
      "1-d operands: u [4] . v [4], u @ m [4, 3], n [3, 4] @ v, t [2, 3, 4] @ v", true,
      [](const CaseOptions& o) {
        return Inputs{{"u", gen::normal({4}, o.dtype)},
                      {"v", gen::noncontiguous(gen::normal({4}, o.dtype))},
                      {"m", gen::normal({4, 3}, o.dtype)},
                      {"n", gen::normal({3, 4}, o.dtype)},
                      {"t", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{matmul(x[0], x[1]), matmul(x[0], x[2]), matmul(x[3], x[1]), matmul(x[4], x[1])};
      });
  add_case(
      r, "composite", "mlp", "sum(tanh(x @ w1 + b1) @ w2): a small MLP", false,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 3}, o.dtype)},
                      {"w1", gen::normal({3, 5}, o.dtype, 0.5)},
                      {"b1", gen::normal({5}, o.dtype)},
                      {"w2", gen::normal({5, 2}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{matmul(tanh(matmul(x[0], x[1]) + x[2]), x[3]).sum()};
      });
}

}  // namespace gg::gradcheck
