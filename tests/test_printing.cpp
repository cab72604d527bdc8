// Printing in PyTorch's layout. The expected strings were produced by PyTorch 2.x itself
// (torch._tensor_str._tensor_str for the body and _add_suffixes for the suffixes, with our suffix
// list: size=... for empty tensors, then an explicit dtype=..., then grad_fn/requires_grad), on
// tensors built the same way. Our one deliberate difference: float values always have 4 decimals
// ("1.0000" where PyTorch prints "1." for an all-integer tensor), so fixtures avoid those except
// in scientific notation, where PyTorch prints the same either way.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "groupgrad.hpp"

using gg::Tensor;

namespace {

// start + step * i for i < n, as float64 (computed like torch.arange(n, dtype=float64) * step +
// start).
Tensor affine(int64_t n, double step, double start) {
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = static_cast<double>(i) * step + start;
  return gg::tensor<double>(v);
}

struct Case {
  const char* what;
  Tensor tensor;
  const char* expected;
};

}  // namespace

TEST_CASE("print: the issue's example", "[print]") {
  Tensor t = gg::tensor<float>({1, 2, 3, 4}, {2, 2});
  CHECK(t.to_string() == "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], dtype=float32)");
  std::ostringstream os;
  os << t;
  CHECK(os.str() == t.to_string());
  CHECK(gg::zeros({2}).to_string() == "tensor([0.0000, 0.0000], dtype=float32)");
  CHECK(gg::tensor<double>({-1, 2}).to_string() == "tensor([-1.0000,  2.0000], dtype=float64)");
}

TEST_CASE("print: matches PyTorch's layout", "[print]") {
  const std::vector<Case> cases = {
      {"fixed-point values are padded to a common width",
       affine(12, 0.37, -3).to(gg::kFloat32).reshape({3, 4}),
       R"(tensor([[-3.0000, -2.6300, -2.2600, -1.8900],
        [-1.5200, -1.1500, -0.7800, -0.4100],
        [-0.0400,  0.3300,  0.7000,  1.0700]], dtype=float32))"},
      {"a transposed view prints in logical order",
       affine(12, 0.37, -3).to(gg::kFloat32).reshape({3, 4}).t(),
       R"(tensor([[-3.0000, -1.5200, -0.0400],
        [-2.6300, -1.1500,  0.3300],
        [-2.2600, -0.7800,  0.7000],
        [-1.8900, -0.4100,  1.0700]], dtype=float32))"},
      {"long rows wrap at 80 columns", affine(25, 1.37, -10).to(gg::kFloat32),
       R"(tensor([-10.0000,  -8.6300,  -7.2600,  -5.8900,  -4.5200,  -3.1500,  -1.7800,
         -0.4100,   0.9600,   2.3300,   3.7000,   5.0700,   6.4400,   7.8100,
          9.1800,  10.5500,  11.9200,  13.2900,  14.6600,  16.0300,  17.4000,
         18.7700,  20.1400,  21.5100,  22.8800], dtype=float32))"},
      {"3-d blocks are separated by a blank line", affine(24, 1, 0.5).reshape({2, 3, 4}),
       R"(tensor([[[ 0.5000,  1.5000,  2.5000,  3.5000],
         [ 4.5000,  5.5000,  6.5000,  7.5000],
         [ 8.5000,  9.5000, 10.5000, 11.5000]],

        [[12.5000, 13.5000, 14.5000, 15.5000],
         [16.5000, 17.5000, 18.5000, 19.5000],
         [20.5000, 21.5000, 22.5000, 23.5000]]], dtype=float64))"},
      {"int32 matrix", gg::tensor<int32_t>({1, 2, 30, -4}, {2, 2}),
       R"(tensor([[ 1,  2],
        [30, -4]], dtype=int32))"},
      {"int8", gg::tensor<int8_t>({-128, 127, 0}), R"(tensor([-128,  127,    0], dtype=int8))"},
      {"int64 past 2^53 prints exactly", gg::tensor<int64_t>({(int64_t{1} << 53) + 1, -5}),
       R"(tensor([9007199254740993,               -5], dtype=int64))"},
      {"small values switch to scientific", gg::tensor<float>({1e-5f, 1.0f}),
       R"(tensor([1.0000e-05, 1.0000e+00], dtype=float32))"},
      {"a range over 1000x switches to scientific", gg::tensor<float>({0.001f, 2.5f}),
       R"(tensor([1.0000e-03, 2.5000e+00], dtype=float32))"},
      {"large values switch to scientific", gg::tensor<double>({1e9, 1.5}),
       R"(tensor([1.0000e+09, 1.5000e+00], dtype=float64))"},
      {"nan and inf", gg::tensor<float>({NAN, INFINITY, -INFINITY, 1.5f}),
       R"(tensor([   nan,    inf,   -inf, 1.5000], dtype=float32))"},
      {"bfloat16 prints its rounded values",
       gg::tensor<float>({0.1f, 0.2f, 0.3f}).to(gg::kBFloat16),
       R"(tensor([0.1001, 0.2002, 0.3008], dtype=bfloat16))"},
      {"float16", gg::tensor<float>({1.0f / 3, 65504.0f, -2.5f}).to(gg::kFloat16),
       R"(tensor([ 3.3325e-01,  6.5504e+04, -2.5000e+00], dtype=float16))"},
      {"0-d float", gg::scalar_tensor(3.25), R"(tensor(3.2500, dtype=float32))"},
      {"0-d scientific", gg::scalar_tensor(1e-6), R"(tensor(1.0000e-06, dtype=float32))"},
      {"0-d int", gg::scalar_tensor(3, gg::kInt64), R"(tensor(3, dtype=int64))"},
      {"empty 2-d int32", gg::zeros({2, 0}, gg::kInt32), R"(tensor([], size=(2, 0), dtype=int32))"},
      {"empty 1-d", gg::zeros({0}), R"(tensor([], dtype=float32))"},
      {"empty 2-d float64", gg::zeros({0, 3}, gg::kFloat64),
       R"(tensor([], size=(0, 3), dtype=float64))"},
      {"summarized 1-d float", gg::arange(0, 2000, 1, gg::kFloat32),
       R"(tensor([0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 1.9970e+03, 1.9980e+03,
        1.9990e+03], dtype=float32))"},
      {"summarized 1-d int64", gg::arange(2000),
       R"(tensor([   0,    1,    2,  ..., 1997, 1998, 1999], dtype=int64))"},
      {"summarized 2-d, long rows", gg::arange(0, 2000, 1, gg::kFloat32).reshape({2, 1000}),
       R"(tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 9.9700e+02, 9.9800e+02,
         9.9900e+02],
        [1.0000e+03, 1.0010e+03, 1.0020e+03,  ..., 1.9970e+03, 1.9980e+03,
         1.9990e+03]], dtype=float32))"},
      {"summarized 2-d, rows and columns",
       affine(1400, 0.25, 0.125).to(gg::kFloat32).reshape({7, 200}),
       R"(tensor([[1.2500e-01, 3.7500e-01, 6.2500e-01,  ..., 4.9375e+01, 4.9625e+01,
         4.9875e+01],
        [5.0125e+01, 5.0375e+01, 5.0625e+01,  ..., 9.9375e+01, 9.9625e+01,
         9.9875e+01],
        [1.0012e+02, 1.0038e+02, 1.0062e+02,  ..., 1.4938e+02, 1.4962e+02,
         1.4988e+02],
        ...,
        [2.0012e+02, 2.0038e+02, 2.0062e+02,  ..., 2.4938e+02, 2.4962e+02,
         2.4988e+02],
        [2.5012e+02, 2.5038e+02, 2.5062e+02,  ..., 2.9938e+02, 2.9962e+02,
         2.9988e+02],
        [3.0012e+02, 3.0038e+02, 3.0062e+02,  ..., 3.4938e+02, 3.4962e+02,
         3.4988e+02]], dtype=float32))"},
      {"summarized 3-d", gg::arange(0, 3000, 1, gg::kFloat32).reshape({10, 10, 30}),
       R"(tensor([[[0.0000e+00, 1.0000e+00, 2.0000e+00,  ..., 2.7000e+01,
          2.8000e+01, 2.9000e+01],
         [3.0000e+01, 3.1000e+01, 3.2000e+01,  ..., 5.7000e+01,
          5.8000e+01, 5.9000e+01],
         [6.0000e+01, 6.1000e+01, 6.2000e+01,  ..., 8.7000e+01,
          8.8000e+01, 8.9000e+01],
         ...,
         [2.1000e+02, 2.1100e+02, 2.1200e+02,  ..., 2.3700e+02,
          2.3800e+02, 2.3900e+02],
         [2.4000e+02, 2.4100e+02, 2.4200e+02,  ..., 2.6700e+02,
          2.6800e+02, 2.6900e+02],
         [2.7000e+02, 2.7100e+02, 2.7200e+02,  ..., 2.9700e+02,
          2.9800e+02, 2.9900e+02]],

        [[3.0000e+02, 3.0100e+02, 3.0200e+02,  ..., 3.2700e+02,
          3.2800e+02, 3.2900e+02],
         [3.3000e+02, 3.3100e+02, 3.3200e+02,  ..., 3.5700e+02,
          3.5800e+02, 3.5900e+02],
         [3.6000e+02, 3.6100e+02, 3.6200e+02,  ..., 3.8700e+02,
          3.8800e+02, 3.8900e+02],
         ...,
         [5.1000e+02, 5.1100e+02, 5.1200e+02,  ..., 5.3700e+02,
          5.3800e+02, 5.3900e+02],
         [5.4000e+02, 5.4100e+02, 5.4200e+02,  ..., 5.6700e+02,
          5.6800e+02, 5.6900e+02],
         [5.7000e+02, 5.7100e+02, 5.7200e+02,  ..., 5.9700e+02,
          5.9800e+02, 5.9900e+02]],

        [[6.0000e+02, 6.0100e+02, 6.0200e+02,  ..., 6.2700e+02,
          6.2800e+02, 6.2900e+02],
         [6.3000e+02, 6.3100e+02, 6.3200e+02,  ..., 6.5700e+02,
          6.5800e+02, 6.5900e+02],
         [6.6000e+02, 6.6100e+02, 6.6200e+02,  ..., 6.8700e+02,
          6.8800e+02, 6.8900e+02],
         ...,
         [8.1000e+02, 8.1100e+02, 8.1200e+02,  ..., 8.3700e+02,
          8.3800e+02, 8.3900e+02],
         [8.4000e+02, 8.4100e+02, 8.4200e+02,  ..., 8.6700e+02,
          8.6800e+02, 8.6900e+02],
         [8.7000e+02, 8.7100e+02, 8.7200e+02,  ..., 8.9700e+02,
          8.9800e+02, 8.9900e+02]],

        ...,

        [[2.1000e+03, 2.1010e+03, 2.1020e+03,  ..., 2.1270e+03,
          2.1280e+03, 2.1290e+03],
         [2.1300e+03, 2.1310e+03, 2.1320e+03,  ..., 2.1570e+03,
          2.1580e+03, 2.1590e+03],
         [2.1600e+03, 2.1610e+03, 2.1620e+03,  ..., 2.1870e+03,
          2.1880e+03, 2.1890e+03],
         ...,
         [2.3100e+03, 2.3110e+03, 2.3120e+03,  ..., 2.3370e+03,
          2.3380e+03, 2.3390e+03],
         [2.3400e+03, 2.3410e+03, 2.3420e+03,  ..., 2.3670e+03,
          2.3680e+03, 2.3690e+03],
         [2.3700e+03, 2.3710e+03, 2.3720e+03,  ..., 2.3970e+03,
          2.3980e+03, 2.3990e+03]],

        [[2.4000e+03, 2.4010e+03, 2.4020e+03,  ..., 2.4270e+03,
          2.4280e+03, 2.4290e+03],
         [2.4300e+03, 2.4310e+03, 2.4320e+03,  ..., 2.4570e+03,
          2.4580e+03, 2.4590e+03],
         [2.4600e+03, 2.4610e+03, 2.4620e+03,  ..., 2.4870e+03,
          2.4880e+03, 2.4890e+03],
         ...,
         [2.6100e+03, 2.6110e+03, 2.6120e+03,  ..., 2.6370e+03,
          2.6380e+03, 2.6390e+03],
         [2.6400e+03, 2.6410e+03, 2.6420e+03,  ..., 2.6670e+03,
          2.6680e+03, 2.6690e+03],
         [2.6700e+03, 2.6710e+03, 2.6720e+03,  ..., 2.6970e+03,
          2.6980e+03, 2.6990e+03]],

        [[2.7000e+03, 2.7010e+03, 2.7020e+03,  ..., 2.7270e+03,
          2.7280e+03, 2.7290e+03],
         [2.7300e+03, 2.7310e+03, 2.7320e+03,  ..., 2.7570e+03,
          2.7580e+03, 2.7590e+03],
         [2.7600e+03, 2.7610e+03, 2.7620e+03,  ..., 2.7870e+03,
          2.7880e+03, 2.7890e+03],
         ...,
         [2.9100e+03, 2.9110e+03, 2.9120e+03,  ..., 2.9370e+03,
          2.9380e+03, 2.9390e+03],
         [2.9400e+03, 2.9410e+03, 2.9420e+03,  ..., 2.9670e+03,
          2.9680e+03, 2.9690e+03],
         [2.9700e+03, 2.9710e+03, 2.9720e+03,  ..., 2.9970e+03,
          2.9980e+03, 2.9990e+03]]], dtype=float32))"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    CHECK(c.tensor.to_string() == c.expected);
  }
}

TEST_CASE("print: summarizes only past 1000 elements", "[print]") {
  CHECK(gg::arange(1000).to_string().find("...") == std::string::npos);
  CHECK(gg::arange(1001).to_string().find(" ...") != std::string::npos);
  // The formatter looks only at the printed elements: a huge value hidden by "..." does not force
  // scientific notation.
  Tensor t = affine(2000, 0.5, 1000).to(gg::kFloat32);
  t.narrow(0, 1000, 1).data_ptr<float>()[0] = 1e20f;
  CHECK(t.to_string() ==
        "tensor([1000.0000, 1000.5000, 1001.0000,  ..., 1998.5000, 1999.0000,\n"
        "        1999.5000], dtype=float32)");
}

TEST_CASE("print: autograd suffixes", "[print]") {
  Tensor x = affine(6, 1e3, 1e-2).to(gg::kFloat32);
  x.requires_grad_();
  // The suffixes move to a new line when they would pass column 80, as in PyTorch.
  CHECK(x.to_string() ==
        "tensor([1.0000e-02, 1.0000e+03, 2.0000e+03, 3.0000e+03, 4.0000e+03, 5.0000e+03],\n"
        "       dtype=float32, requires_grad=True)");
  Tensor leaf = gg::tensor<float>({1.5f, 2.5f});
  leaf.requires_grad_();
  CHECK(leaf.to_string() == "tensor([1.5000, 2.5000], dtype=float32, requires_grad=True)");
  CHECK(leaf.narrow(0, 1, 1).to_string() ==
        "tensor([2.5000], dtype=float32, grad_fn=<NarrowBackward>)");
  CHECK(leaf.detach().to_string() == "tensor([1.5000, 2.5000], dtype=float32)");
  {
    gg::NoGradGuard no_grad;
    CHECK(leaf.narrow(0, 1, 1).to_string() == "tensor([2.5000], dtype=float32)");
  }
}
