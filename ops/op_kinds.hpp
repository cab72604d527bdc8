#pragma once
// Which elementwise op: the names the layers of ops share. The ops, their kernels (ops/kernels/)
// and the oneDNN backend (ops/onednn/) all speak these, so they live here, below all of them, and
// depend on core only (tools/check_layers.py keeps it so). Internal: no public header includes it.
#include "../core/dtype.hpp"

namespace gg {

enum class BinaryOp { Add, Sub, Mul, Div, Max, Min, Eq, Gt, Lt, Ge, Le };
enum class UnaryOp { Neg, Exp, Log, Sqrt, Pow, Tanh, Sigmoid, Relu, Gelu, GeluGrad, Abs, Sign };

bool is_comparison(BinaryOp op);
// Result dtype of a binary op: promoted; Div of integers gives Float32; comparisons give Float32.
Dtype binary_result_dtype(BinaryOp op, Dtype a, Dtype b);

}  // namespace gg
