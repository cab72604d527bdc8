#include "ops/op_kinds.hpp"

namespace gg {

bool is_comparison(BinaryOp op) {
  return op == BinaryOp::Eq || op == BinaryOp::Gt || op == BinaryOp::Lt || op == BinaryOp::Ge ||
         op == BinaryOp::Le;
}

Dtype binary_result_dtype(BinaryOp op, Dtype a, Dtype b) {
  if (is_comparison(op)) return kFloat32;
  Dtype t = promote_types(a, b);
  if (op == BinaryOp::Div && !is_floating(t)) return kFloat32;
  return t;
}

}  // namespace gg
