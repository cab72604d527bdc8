#pragma once
// Which elementwise op: the names the layers of ops share. The ops, their kernels (ops/kernels/)
// and the oneDNN backend (ops/onednn/) all speak these, so they live here, below all of them, and
// depend on core only (tools/check_layers.py keeps it so). Internal: no public header includes it.
#include "../core/dtype.hpp"

namespace gg {

// Remainder: the sign of the divisor (Python's %); Fmod: the sign of the dividend (C's fmod).
enum class BinaryOp { Add, Sub, Mul, Div, Max, Min, Eq, Gt, Lt, Ge, Le, Remainder, Fmod };
// Floor and Trunc serve the backward of remainder and fmod (float dtypes only).
enum class UnaryOp {
  Neg,
  Exp,
  Log,
  Sqrt,
  Pow,
  Tanh,
  Sigmoid,
  Relu,
  Gelu,
  GeluGrad,
  Abs,
  Sign,
  Sin,
  Cos,
  Floor,
  Trunc
};

bool is_comparison(BinaryOp op);
// Result dtype of a binary op: promoted; Div of integers gives Float32; comparisons give Float32;
// Remainder and Fmod of integers stay integers.
Dtype binary_result_dtype(BinaryOp op, Dtype a, Dtype b);

}  // namespace gg
