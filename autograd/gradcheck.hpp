#pragma once
// gradcheck: compares the gradient our backward computes with central finite differences, per
// differentiable input of a registered case. Both the Catch2 suite (tests/test_gradcheck.cpp) and
// the CLI (tools/gradcheck) run the same Registry.
//
// How a check works (run_case):
//   1. manual_seed(seed), then case.build(options) makes the named inputs in the requested dtype.
//   2. The outputs are reduced to one scalar with a fixed random projection L = sum_i <out_i, r_i>,
//      so a single backward (grad_output = r_i) gives the whole gradient of every input.
//   3. Each element x_j of each differentiable input is stepped in place (x_j +- eps, through its
//      strides, so non-contiguous inputs stay non-contiguous) and L is re-evaluated with grad mode
//      off: numeric_j = (L+ - L-) / (x+ - x-), using the values actually stored after rounding.
//   4. Pass when |analytic - numeric| <= atol + rtol * |numeric| for every element.
// Float32 mode runs the same case in Float32 (the oneDNN path). Cases marked `linear` (affine in
// each input: matmul, add, views...) use a large step there, which is exact up to rounding; in
// addition the Float32 analytic gradient must match the Float64 analytic gradient computed from
// the same (rounded) input values.
//
// Registering a case (explicitly; there are no static initializers, the static linker drops them):
//   void register_my_cases(gradcheck::Registry& r) {
//     r.register_case({.name = "softmax", .description = "softmax over the last dim",
//                      .build = [](const CaseOptions& o) {
//                        return Inputs{{"x", gen::normal({3, 5}, o.dtype)}};
//                      },
//                      .forward = [](const std::vector<Tensor>& x, const CaseOptions&) {
//                        return std::vector<Tensor>{softmax(x[0], -1)};
//                      }});
//   }
// and call it from the family's registration (ops/gradcheck_cases.hpp, nn/gradcheck_cases.hpp),
// which the aggregator at the top (gradcheck_cases.cpp, next to groupgrad.hpp) calls from
// register_builtin_cases(); add_case() (gradcheck_registry.hpp) shortens the usual case. Case
// builders must keep inputs away from points where the op is not differentiable (relu at 0, ties in
// max, abs at 0) by at least 10 * eps; the gen:: helpers (gradcheck_registry.hpp) do that. Inputs
// must be leaves that do not share storage with each other and are not expanded (stride 0), since
// elements are stepped in place.
//
// The pieces, each knowing only core and autograd: gradcheck_params.hpp (what a case is made of),
// gradcheck_check.hpp (the checker), gradcheck_registry.hpp (named cases, the gen:: helpers).
#include "gradcheck_check.hpp"
#include "gradcheck_params.hpp"
#include "gradcheck_registry.hpp"
