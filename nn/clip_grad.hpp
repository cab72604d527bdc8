#pragma once
#include <limits>
#include <vector>

#include "../core/tensor.hpp"

namespace gg::nn::utils {

// Scales the gradients of `parameters` in place so that their total norm (the norm_type-norm of
// all gradient elements together; infinity gives the max-abs norm) is at most max_norm, and
// returns the total norm before clipping. As PyTorch: the scale is max_norm / (norm + 1e-6),
// applied only when below 1; parameters without a gradient are skipped. With error_if_nonfinite,
// a NaN or infinite total norm throws instead of scaling.
double clip_grad_norm_(const std::vector<Tensor>& parameters, double max_norm,
                       double norm_type = 2.0, bool error_if_nonfinite = false);

}  // namespace gg::nn::utils
