#pragma once
// Gradcheck cases for the nn layers (Linear, LayerNorm, Embedding, Sequential and the grouped
// layers: GroupedLinear, MultiheadAttention, MoEFeedForward),
// defined in nn/modules_gradcheck.cpp and registered into the shared registry by
// register_builtin_cases() (the aggregator at the top, gradcheck_cases.cpp).
#include "../autograd/gradcheck_registry.hpp"

namespace gg::gradcheck {

void register_nn_module_cases(Registry& r);

}  // namespace gg::gradcheck
