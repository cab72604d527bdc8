#pragma once
// The op families' gradcheck cases (autograd/gradcheck.hpp), each registered from a file beside its
// family (ops/<family>_gradcheck.cpp). The aggregator at the top of the library
// (gradcheck_cases.cpp, next to groupgrad.hpp) calls every one from register_builtin_cases().
//
// Adding cases for another op family: write `void register_<family>_cases(Registry&)` in
// ops/<family>_gradcheck.cpp, declare it below, and call it from register_builtin_cases(). Builders
// make small inputs (every element costs two forward calls) and keep them away from points where
// the op is not differentiable; mark `linear` what is affine in each input separately.
#include "../autograd/gradcheck_registry.hpp"

namespace gg::gradcheck {

void register_elementwise_cases(Registry& r);  // with the dtype conversions
void register_reduce_cases(Registry& r);
void register_matmul_cases(Registry& r);    // with the "composite" MLP
void register_shape_op_cases(Registry& r);  // with the views
void register_nn_op_cases(Registry& r);
void register_grouped_mm_cases(Registry& r);

}  // namespace gg::gradcheck
