#pragma once
// Gradcheck cases for the nn layers (nn.Linear, nn.LayerNorm, nn.Embedding, nn.Sequential),
// registered into the shared registry by register_builtin_cases() (autograd/gradcheck_cases.cpp).
#include "../autograd/gradcheck.hpp"

namespace gg::gradcheck {

void register_nn_module_cases(Registry& r);

}  // namespace gg::gradcheck
