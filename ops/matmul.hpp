#pragma once
#include "../core/tensor.hpp"

namespace gg {

// torch.matmul semantics: 1-D x 1-D dot, 2-D x 2-D, and batched with broadcast batch dims.
// Float32 and BFloat16 run oneDNN matmul; Float64 the reference kernel.
Tensor matmul(const Tensor& a, const Tensor& b);

}  // namespace gg
