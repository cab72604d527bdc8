#pragma once
// groupgrad: a C++20 tensor library with tape-based autograd and grouped matmul on oneDNN.
// The one header users include: #include <groupgrad/groupgrad.hpp>
#include "autograd/grad_mode.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/grouped_mm.hpp"
#include "ops/matmul.hpp"
#include "ops/nn_ops.hpp"
#include "ops/reduce.hpp"
#include "ops/shape_ops.hpp"
