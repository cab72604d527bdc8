// grouped_mm against values computed by PyTorch (tests/fixtures/grouped_mm_*.json, made by
// tests/fixtures/make_grouped_mm_fixtures.py; README.md there describes the format). Every case
// runs in Float64 (the reference kernel) and again with Float32 inputs (the oneDNN path), and
// compares the output and the gradients of sum(output * grad_output).
#include <catch2/catch.hpp>
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "autograd/node.hpp"
#include "tests/fixture_support.hpp"

namespace {

namespace F = gg::nn::functional;
using gg::Tensor;
using nlohmann::json;

// {"shape", "dtype", "data"} -> a tensor; null -> undefined.
Tensor tensor_of(const json& j) {
  if (j.is_null()) return Tensor();
  const gg::Shape shape = j.at("shape").get<gg::Shape>();
  const std::string dtype = j.at("dtype");
  if (dtype == "float64") return gg::tensor<double>(j.at("data").get<std::vector<double>>(), shape);
  if (dtype == "float32") return gg::tensor<float>(j.at("data").get<std::vector<float>>(), shape);
  if (dtype == "int64") return gg::tensor<int64_t>(j.at("data").get<std::vector<int64_t>>(), shape);
  if (dtype == "int32") return gg::tensor<int32_t>(j.at("data").get<std::vector<int32_t>>(), shape);
  if (dtype == "int8") {
    std::vector<int8_t> v;
    for (int x : j.at("data").get<std::vector<int>>()) v.push_back(static_cast<int8_t>(x));
    return gg::tensor<int8_t>(v, shape);
  }
  FAIL("unknown fixture dtype " << dtype);
  return Tensor();
}

std::vector<Tensor> tensors_of(const json& j) {
  std::vector<Tensor> out;
  if (j.is_null()) return out;
  for (const json& t : j) out.push_back(tensor_of(t));
  return out;
}

std::optional<gg::Dtype> dtype_of(const json& j) {
  if (j.is_null()) return std::nullopt;
  const std::string d = j;
  if (d == "float32") return gg::kFloat32;
  if (d == "float64") return gg::kFloat64;
  if (d == "int8") return gg::kInt8;
  FAIL("unknown out_dtype " << d);
  return std::nullopt;
}

// A float leaf in the dtype of the run, requiring grad.
Tensor leaf(const Tensor& t, gg::Dtype dtype) {
  if (!t.defined()) return t;
  return t.to(dtype).detach().requires_grad_();
}

void check_equal(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what);
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  if (want.dtype() == gg::kInt8) {
    REQUIRE(got.dtype() == gg::kInt8);
    CHECK(got.to_vector<int8_t>() == want.to_vector<int8_t>());
    return;
  }
  auto g = got.detach().to(gg::kFloat64).to_vector<double>();
  auto w = want.to(gg::kFloat64).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << w[i]);
    REQUIRE(std::fabs(g[i] - w[i]) <= tol * (1 + std::fabs(w[i])));
  }
}

// Runs one case with inputs (and the default output) in `dtype`.
void run_case(const json& c, gg::Dtype dtype) {
  const std::string name = c.at("name");
  const std::string form = c.at("form");
  INFO(name << " (" << form << ") in " << gg::dtype_name(dtype));
  const json& in = c.at("inputs");
  const json& expected = c.at("expected");
  const std::optional<gg::Dtype> out_dtype = dtype_of(c.at("out_dtype"));
  const double tol = dtype == gg::kFloat64 && out_dtype != gg::kFloat32 ? 1e-12 : 2e-5;

  if (form == "list") {
    std::vector<Tensor> xs, ws, bs;
    for (const Tensor& t : tensors_of(in.at("input"))) xs.push_back(leaf(t, dtype));
    for (const Tensor& t : tensors_of(in.at("mat2"))) ws.push_back(leaf(t, dtype));
    for (const Tensor& t : tensors_of(in.at("bias"))) bs.push_back(leaf(t, dtype));
    std::vector<Tensor> out = F::grouped_mm(xs, ws, bs, out_dtype);
    const auto want = tensors_of(expected.at("output"));
    REQUIRE(out.size() == want.size());
    for (size_t i = 0; i < out.size(); ++i) {
      CHECK(out[i].dtype() == out_dtype.value_or(dtype));
      check_equal(out[i], want[i], tol, "output " + std::to_string(i));
    }
    if (in.at("grad_output").is_null()) {
      for (const Tensor& o : out) CHECK_FALSE(o.requires_grad());
      return;
    }
    std::vector<Tensor> grads;
    for (size_t i = 0; i < out.size(); ++i) {
      grads.push_back(tensor_of(in.at("grad_output")[i]).to(out[i].dtype()));
    }
    gg::autograd::run_backward(out, grads, false);
    const auto gx = tensors_of(expected.at("grad_input"));
    const auto gw = tensors_of(expected.at("grad_mat2"));
    const auto gb = tensors_of(expected.at("grad_bias"));
    for (size_t i = 0; i < xs.size(); ++i) {
      check_equal(xs[i].grad(), gx[i], tol, "grad_input " + std::to_string(i));
      check_equal(ws[i].grad(), gw[i], tol, "grad_mat2 " + std::to_string(i));
      if (!bs.empty() && bs[i].defined()) {
        check_equal(bs[i].grad(), gb[i], tol, "grad_bias " + std::to_string(i));
      }
    }
    return;
  }

  Tensor x = leaf(tensor_of(in.at("input")), dtype);
  Tensor w = leaf(tensor_of(in.at("mat2")), dtype);
  Tensor b = leaf(tensor_of(in.at("bias")), dtype);
  Tensor offs = tensor_of(in.at("offs"));
  Tensor out = F::grouped_mm(x, w, {.offs = offs, .bias = b, .out_dtype = out_dtype});
  CHECK(out.dtype() == out_dtype.value_or(dtype));
  check_equal(out, tensor_of(expected.at("output")), tol, "output");
  if (in.at("grad_output").is_null()) {
    CHECK_FALSE(out.requires_grad());
    return;
  }
  out.backward(tensor_of(in.at("grad_output")).to(out.dtype()));
  check_equal(x.grad(), tensor_of(expected.at("grad_input")), tol, "grad_input");
  check_equal(w.grad(), tensor_of(expected.at("grad_mat2")), tol, "grad_mat2");
  if (b.defined()) check_equal(b.grad(), tensor_of(expected.at("grad_bias")), tol, "grad_bias");
}

void run_file(const std::string& file, size_t expected_cases) {
  const json& fixtures = gg::test::fixture(file);
  const json& cases = fixtures.at("cases");
  REQUIRE(cases.size() == expected_cases);
  for (const json& c : cases) {
    run_case(c, gg::kFloat64);
    run_case(c, gg::kFloat32);
  }
}

TEST_CASE("grouped_mm list form matches the PyTorch fixtures", "[grouped_mm][fixtures]") {
  run_file("grouped_mm_list.json", 8);
}

TEST_CASE("grouped_mm packed layouts match the PyTorch fixtures", "[grouped_mm][fixtures]") {
  run_file("grouped_mm_packed.json", 19);
}

}  // namespace
