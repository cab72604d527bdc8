#pragma once
// How a loss combines its per-element values: public (cross_entropy, mse_loss take it), and
// shared with the loss kernels (ops/kernels/loss_kernels.hpp). Kept apart from ops/op_kinds.hpp so
// that the public headers do not bring the internal op kinds along. Depends on nothing.
namespace gg {

enum class Reduction { None, Mean, Sum };

}  // namespace gg
