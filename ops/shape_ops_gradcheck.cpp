// The shape ops' gradcheck cases (autograd/gradcheck.hpp): cat, stack, split and chunk,
// index_select, gather, scatter_add, unbind, flip, tril/triu; and the views (reshape, transpose,
// narrow, select, expand...), family "views".
#include <vector>

#include "ops/elementwise.hpp"
#include "ops/gradcheck_cases.hpp"
#include "ops/shape_ops.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

void register_view_cases(Registry& r) {
  const char* fam = "views";
  add_case(
      r, fam, "reshape", "reshape and view of [3, 4]; reshape of a non-contiguous [4, 3] (copies)",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].reshape({2, 6}), x[0].reshape({-1}), x[0].view({4, 3}), x[1].reshape({12}),
                 x[0].flatten()};
      });
  add_case(
      r, fam, "transpose", "transpose(0, 2) and transpose(-1, -2) of [2, 3, 4]; t() of [3, 4]",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}, {"y", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].transpose(0, 2), x[0].transpose(-1, -2), x[1].t()};
      });
  add_case(
      r, fam, "permute", "permute({1, 2, 0}) of [2, 3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].permute({1, 2, 0})};
      });
  add_case(
      r, fam, "narrow", "narrow(1, 1, 3) and narrow(0, -2, 2) of [4, 5]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 5}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].narrow(1, 1, 3), x[0].narrow(0, -2, 2)};
      });
  add_case(
      r, fam, "select", "select(0, 1) and select(1, -1) of [3, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].select(0, 1), x[0].select(1, -1)};
      });
  add_case(
      r, fam, "expand", "[3, 1] expanded to [2, 3, 4]; a 0-d tensor expanded to [2, 2]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 1}, o.dtype)}, {"s", gen::normal({}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].expand({2, 3, 4}), x[1].expand({2, 2}), x[0].expand({-1, 5})};
      });
  add_case(
      r, fam, "squeeze_unsqueeze",
      "squeeze(1), squeeze(), unsqueeze(0), unsqueeze(-1) of [3, 1, 4]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 1, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{x[0].squeeze(1), x[0].squeeze(), x[0].unsqueeze(0), x[0].unsqueeze(-1)};
      });
  add_case(
      r, fam, "view_chain", "views of views: transpose, narrow, reshape, select, then * 2", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({4, 6}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        Tensor v = x[0].transpose(0, 1).narrow(0, 1, 4).reshape({2, 2, 4}).select(2, 1);
        return V{v * 2.0, x[0].t().contiguous(), x[0].clone()};
      });
}

}  // namespace

void register_shape_op_cases(Registry& r) {
  const char* fam = "shape";
  add_case(
      r, fam, "cat", "cat along dims 0 and 1, with a non-contiguous and an empty piece", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3}, o.dtype)},
                      {"b", gen::normal({1, 3}, o.dtype)},
                      {"c", gen::noncontiguous(gen::normal({2, 3}, o.dtype))},
                      {"e", gen::normal({0, 3}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        return V{cat({x[0], x[1], x[3], x[2]}, 0), cat({x[0], x[2]}, -1)};
      });
  add_case(
      r, fam, "stack", "stack along dims 0 and -1", true,
      [](const CaseOptions& o) {
        return Inputs{{"a", gen::normal({2, 3}, o.dtype)},
                      {"b", gen::noncontiguous(gen::normal({2, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{stack({x[0], x[1]}), stack({x[1], x[0]}, -1)};
      });
  add_case(
      r, fam, "split", "split [5, 4] by size 2, by sizes {1, 3} on dim 1 (one piece unused), chunk",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({5, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        V out = split(x[0], 2);
        out.push_back(split(x[0], std::vector<int64_t>{1, 3}, 1)[1]);
        for (const Tensor& t : chunk(x[0], 2, 1)) out.push_back(t * 3.0);
        return out;
      });
  add_case(
      r, fam, "index_select", "rows {0, 3, 3, 1} (repeats) of [5, 3]; columns {2, 0} (int32)", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({5, 3}, o.dtype)},
                      {"rows", tensor<int64_t>({0, 3, 3, 1}), false},
                      {"cols", tensor<int32_t>({2, 0}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{index_select(x[0], 0, x[1]), index_select(x[0], 1, x[2])};
      });
  add_case(
      r, fam, "gather",
      "gather of [3, 4] along dim 0 (repeats), along dim 1 (int32, index smaller than x), and of a "
      "non-contiguous [4, 3]",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))},
                      {"rows", tensor<int64_t>({2, 0, 2, 1, 1, 1, 0, 2}, {2, 4}), false},
                      {"cols", tensor<int32_t>({3, 3, 0, 1}, {2, 2}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{gather(x[0], 0, x[2]), x[0].gather(1, x[3]), gather(x[1], -1, x[2])};
      });
  add_case(
      r, fam, "scatter_add",
      "scatter_add into [3, 4] along dim 0 (repeats) from a src [2, 5] larger than its index "
      "[2, 3], and along dim -1 (int32)",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)},
                      {"src", gen::normal({2, 5}, o.dtype)},
                      {"rows", tensor<int64_t>({2, 0, 2, 2, 1, 0}, {2, 3}), false},
                      {"cols", tensor<int32_t>({3, 3, 0, 1, 2, 1}, {2, 3}), false}};
      },
      [](const V& x, const CaseOptions&) {
        return V{scatter_add(x[0], 0, x[2], x[1]), x[0].scatter_add(-1, x[3], x[1])};
      });
  add_case(
      r, fam, "unbind", "unbind of [3, 4] along dims 0 and -1 (views, each scaled)", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({3, 4}, o.dtype)}};
      },
      [](const V& x, const CaseOptions&) {
        V out;
        double k = 1.0;
        for (const Tensor& t : unbind(x[0])) out.push_back(t * (k += 1.0));
        for (const Tensor& t : x[0].unbind(-1)) out.push_back(t * (k += 1.0));
        return out;
      });
  add_case(
      r, fam, "flip", "flip of [2, 3, 4] along {0, -1} and {1}; of a non-contiguous [4, 3]", true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{flip(x[0], {0, -1}), x[0].flip({1}), flip(x[1], {0})};
      });
  add_case(
      r, fam, "tril_triu",
      "tril and triu(-1) of a batched [2, 3, 4]; tril(1) and triu(2) of a non-contiguous [4, 3]",
      true,
      [](const CaseOptions& o) {
        return Inputs{{"x", gen::normal({2, 3, 4}, o.dtype)},
                      {"y", gen::noncontiguous(gen::normal({4, 3}, o.dtype))}};
      },
      [](const V& x, const CaseOptions&) {
        return V{tril(x[0]), x[0].triu(-1), x[1].tril(1), triu(x[1], 2)};
      });
  register_view_cases(r);
}

}  // namespace gg::gradcheck
