// The everyday reductions and indexing ops (max/min/argmax/argmin over all elements and over a
// dim, sum/mean over several dims, topk, gather, scatter_add, unbind, flip, tril, triu) against
// values and gradients PyTorch computed (tests/fixtures/indexing.json, made by
// make_indexing_fixtures.py), in Float64 and again in Float32; then overload resolution, empty and
// non-contiguous inputs, and the error messages.
#include <catch2/catch.hpp>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/reduce.hpp"
#include "ops/shape_ops.hpp"
#include "tests/fixture_support.hpp"

using namespace gg;
using nlohmann::json;

namespace {

// {"shape", "dtype", "data"} -> a tensor; "nan" entries are NaN.
Tensor tensor_of(const json& j) {
  const Shape shape = j.at("shape").get<Shape>();
  const std::string dtype = j.at("dtype");
  if (dtype == "int64") return tensor<int64_t>(j.at("data").get<std::vector<int64_t>>(), shape);
  if (dtype == "int32") return tensor<int32_t>(j.at("data").get<std::vector<int32_t>>(), shape);
  REQUIRE(dtype == "float64");
  std::vector<double> v;
  for (const json& e : j.at("data")) v.push_back(test::number(e));
  return tensor<double>(v, shape);
}

void check_equal(const Tensor& got, const Tensor& want, double tol, const std::string& what) {
  INFO(what << ": got " << describe(got) << ", want " << describe(want));
  REQUIRE(got.defined());
  REQUIRE(got.shape() == want.shape());
  if (!is_floating(want.dtype())) {
    REQUIRE(got.dtype() == want.dtype());
    CHECK(got.to(kInt64).to_vector<int64_t>() == want.to(kInt64).to_vector<int64_t>());
    return;
  }
  const auto g = got.detach().to(kFloat64).to_vector<double>();
  const auto w = want.to(kFloat64).to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << w[i]);
    if (std::isnan(w[i]))
      CHECK(std::isnan(g[i]));
    else
      CHECK(std::fabs(g[i] - w[i]) <= tol * (1 + std::fabs(w[i])));
  }
}

// The same values with the last two dims transposed in memory: a non-contiguous tensor.
Tensor noncontiguous(const Tensor& t) {
  Tensor nc = t.transpose(-1, -2).contiguous().transpose(-1, -2).detach();
  REQUIRE_FALSE(nc.is_contiguous());
  return nc;
}

struct Outputs {
  std::vector<Tensor> values;  // the differentiable results (the fixture's "values")
  Tensor indices;
};

Outputs run_op(const std::string& op, const json& a, const Tensor& x, const Tensor& index,
               const Tensor& src) {
  if (op == "max_all") return {{x.max()}, {}};
  if (op == "min_all") return {{min(x)}, {}};
  if (op == "argmax_all") return {{}, x.argmax()};
  if (op == "argmin_all") return {{}, argmin(x)};
  if (op == "max_dim" || op == "min_dim") {
    auto [v, i] = op == "max_dim" ? max_with_indices(x, a.at("dim"), a.at("keepdim"))
                                  : min_with_indices(x, a.at("dim"), a.at("keepdim"));
    // The value-only spellings agree with the pair.
    check_equal(
        op == "max_dim" ? x.max(a.at("dim"), a.at("keepdim")) : x.min(a.at("dim"), a.at("keepdim")),
        v.detach(), 0, "values-only spelling");
    return {{v}, i};
  }
  if (op == "argmax_dim") return {{}, x.argmax(a.at("dim"), a.at("keepdim"))};
  if (op == "argmin_dim") return {{}, argmin(x, a.at("dim"), a.at("keepdim"))};
  if (op == "sum_dims") return {{x.sum(a.at("dims").get<Shape>(), a.at("keepdim"))}, {}};
  if (op == "mean_dims") return {{mean(x, a.at("dims").get<Shape>(), a.at("keepdim"))}, {}};
  if (op == "topk") {
    auto [v, i] = x.topk(a.at("k"), a.at("dim"), a.at("largest"));
    return {{v}, i};
  }
  if (op == "gather") return {{gather(x, a.at("dim"), index)}, {}};
  if (op == "scatter_add") return {{x.scatter_add(a.at("dim"), index, src)}, {}};
  if (op == "unbind") return {x.unbind(a.at("dim")), {}};
  if (op == "flip") return {{x.flip(a.at("dims").get<Shape>())}, {}};
  if (op == "tril") return {{tril(x, a.at("diagonal"))}, {}};
  if (op == "triu") return {{x.triu(a.at("diagonal"))}, {}};
  FAIL("unknown op " << op);
  return {};
}

// Runs one case with its float inputs in `dtype` (integer inputs stay as they are).
void run_case(const json& c, Dtype dtype) {
  const std::string name = c.at("name"), op = c.at("op");
  INFO(name << " in " << dtype_name(dtype));
  const json& in = c.at("inputs");
  const json& expected = c.at("expected");
  const double tol = dtype == kFloat64 ? 1e-12 : 2e-5;
  const bool nc = c.value("noncontiguous", false);
  auto input = [&](const std::string& key) -> Tensor {
    if (!in.contains(key)) return Tensor();
    Tensor t = tensor_of(in.at(key));
    if (!is_floating(t.dtype())) return t;
    t = t.to(dtype);
    if (nc && key == "x") t = noncontiguous(t);
    return t.detach().requires_grad_();
  };
  Tensor x = input("x"), index = input("index"), src = input("src");
  Outputs out = run_op(op, c.at("args"), x, index, src);
  if (expected.contains("indices")) {
    REQUIRE(out.indices.dtype() == kInt64);
    check_equal(out.indices, tensor_of(expected.at("indices")), 0, "indices");
  }
  if (!expected.contains("values")) return;
  std::vector<Tensor> want;
  if (expected.at("values").is_array()) {
    for (const json& t : expected.at("values")) want.push_back(tensor_of(t));
  } else {
    want.push_back(tensor_of(expected.at("values")));
  }
  REQUIRE(out.values.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    if (is_floating(want[i].dtype())) CHECK(out.values[i].dtype() == dtype);
    check_equal(out.values[i], want[i], tol, "values " + std::to_string(i));
  }
  if (!c.contains("grad_output")) return;
  Tensor loss = scalar_tensor(0.0, dtype);
  for (size_t i = 0; i < want.size(); ++i)
    loss = loss + (out.values[i] * tensor_of(c.at("grad_output")[i]).to(dtype)).sum();
  loss.backward();
  check_equal(x.grad(), tensor_of(expected.at("grad_x")), tol, "grad_x");
  if (expected.contains("grad_src"))
    check_equal(src.grad(), tensor_of(expected.at("grad_src")), tol, "grad_src");
}

}  // namespace

TEST_CASE("everyday indexing ops match PyTorch: values, indices and gradients",
          "[everyday_indexing]") {
  const json& fixtures = test::fixture("indexing.json");
  const json& cases = fixtures.at("cases");
  REQUIRE(cases.size() >= 80);
  for (const json& c : cases) {
    const bool has_float = c.at("inputs").at("x").at("dtype") == "float64";
    run_case(c, kFloat64);
    if (has_float) run_case(c, kFloat32);
  }
}

TEST_CASE("everyday indexing: the max/min gradient is shared among ties", "[everyday_indexing]") {
  Tensor x = tensor<double>({1, 3, 3, 0, 3, -2}, {2, 3}).requires_grad_();
  x.max().backward();
  CHECK(x.grad().to_vector<double>() == std::vector<double>{0, 1.0 / 3, 1.0 / 3, 0, 1.0 / 3, 0});
  Tensor y = tensor<double>({2, -1, 5, -1}).requires_grad_();
  (y.min() * 4.0).backward();
  CHECK(y.grad().to_vector<double>() == std::vector<double>{0, 2, 0, 2});
}

TEST_CASE("everyday indexing: sum/mean over dims resolve as libtorch users expect",
          "[everyday_indexing]") {
  Tensor x = arange(24, kFloat64).reshape({2, 3, 4});
  // A braced list names dims; a bare integer is the one-dim overload.
  CHECK(x.sum({0, 1}).shape() == Shape{4});
  CHECK(x.sum(1).shape() == Shape{2, 4});
  CHECK(x.sum({1}).shape() == Shape{2, 4});
  CHECK(x.sum({}).shape() == Shape{});  // an empty list: every dim, as torch.sum(x, dim=[])
  CHECK(x.sum({}).item<double>() == 276.0);
  CHECK(sum(x, {0, 1}).to_vector<double>() == x.sum(0).sum(0).to_vector<double>());
  CHECK(sum(x, {-1, 0}, true).shape() == Shape{1, 3, 1});
  CHECK(x.mean({0, 2}).to_vector<double>() == std::vector<double>{7.5, 11.5, 15.5});
  CHECK(mean(x, Shape{}, true).shape() == Shape{1, 1, 1});
  // Integers sum to Int64, as in PyTorch.
  CHECK(arange(6, kInt32).reshape({2, 3}).sum({0, 1}).dtype() == kInt64);
  // Empty inputs: zeros for sum, NaN for mean, at once.
  Tensor e = zeros({0, 3});
  CHECK(e.sum({0}).to_vector<float>() == std::vector<float>{0, 0, 0});
  CHECK(std::isnan(e.mean({0, 1}).item<float>()));
}

TEST_CASE("everyday indexing: non-contiguous and empty inputs", "[everyday_indexing]") {
  Tensor base = arange(12, kFloat64).reshape({3, 4});
  Tensor t = base.t();  // [4, 3], non-contiguous
  Tensor idx = tensor<int64_t>({2, 0, 1, 1, 0, 2}, {2, 3});
  CHECK(gather(t, 1, idx).to_vector<double>() ==
        gather(t.contiguous(), 1, idx).to_vector<double>());
  Tensor s = ones({2, 3}, kFloat64);
  CHECK(scatter_add(t, 0, idx, s).to_vector<double>() ==
        scatter_add(t.contiguous(), 0, idx, s).to_vector<double>());
  CHECK(flip(t, {0}).to_vector<double>() == flip(t.contiguous(), {0}).to_vector<double>());
  CHECK(t.tril().to_vector<double>() == t.contiguous().tril().to_vector<double>());
  CHECK(t.max().item<double>() == 11.0);
  CHECK(t.argmin().item<int64_t>() == 0);
  CHECK(t.argmax().item<int64_t>() == 11);  // flattened in t's own (row-major) order
  CHECK(t.sum({0}).to_vector<double>() == std::vector<double>{6, 22, 38});
  // Empty tensors return at once.
  CHECK(gather(zeros({2, 0}), 1, zeros({2, 0}, kInt64)).shape() == Shape{2, 0});
  CHECK(flip(zeros({0, 3}), {0, 1}).shape() == Shape{0, 3});
  CHECK(tril(zeros({0, 3})).shape() == Shape{0, 3});
  CHECK(unbind(zeros({0, 3})).empty());
  CHECK(topk(zeros({2, 0}), 0).first.shape() == Shape{2, 0});
  CHECK(scatter_add(zeros({2}), 0, zeros({0}, kInt64), zeros({0})).to_vector<float>() ==
        std::vector<float>{0, 0});
  // 0-d operands count as [1]: a 0-d src under an empty index gets a zero gradient of its shape,
  // and a 0-d index scatters one element of a larger src.
  Tensor s0 = scalar_tensor(2.0, kFloat64).requires_grad_();
  Tensor x5 = zeros({5}, kFloat64).requires_grad_();
  scatter_add(x5, 0, zeros({0}, kInt32), s0).sum().backward();
  REQUIRE(s0.grad().shape() == Shape{});
  CHECK(s0.grad().item<double>() == 0.0);
  Tensor s3 = tensor<double>({1, 2, 3}).requires_grad_();
  Tensor y = scatter_add(zeros({5}, kFloat64), 0, tensor<int64_t>({4}, {}), s3);
  CHECK(y.to_vector<double>() == std::vector<double>{0, 0, 0, 0, 1});
  (y * arange(1, 6, 1, kFloat64)).sum().backward();
  CHECK(s3.grad().to_vector<double>() == std::vector<double>{5, 0, 0});
  // unbind gives views of x's storage.
  std::vector<Tensor> rows = base.unbind();
  REQUIRE(rows.size() == 3);
  CHECK(rows[1].impl()->storage == base.impl()->storage);
  CHECK(rows[1].to_vector<double>() == std::vector<double>{4, 5, 6, 7});
}

TEST_CASE("everyday indexing: bad input throws with the op, the rule and the shapes",
          "[everyday_indexing]") {
  Tensor x = zeros({2, 3});
  REQUIRE_THROWS_WITH(max(zeros({0, 3})), Catch::Contains("[max] cannot reduce an empty tensor") &&
                                              Catch::Contains("[0, 3]"));
  REQUIRE_THROWS_WITH(zeros({0}).min(), Catch::Contains("[min] cannot reduce an empty tensor"));
  REQUIRE_THROWS_WITH(argmax(zeros({4, 0})), Catch::Contains("[argmax] cannot reduce an empty"));
  REQUIRE_THROWS_WITH(argmin(zeros({4, 0}), 1),
                      Catch::Contains("[argmin] cannot reduce over dimension 1 of size 0"));
  REQUIRE_THROWS_WITH(x.min(2), Catch::Contains("[min] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(x.sum({0, -2}), Catch::Contains("[sum] dimension 0 appears more than once") &&
                                          Catch::Contains("[0, -2]"));
  REQUIRE_THROWS_WITH(x.mean({1, 1}), Catch::Contains("[mean] dimension 1 appears more than once"));
  REQUIRE_THROWS_WITH(sum(x, {2}), Catch::Contains("[sum] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(zeros({2, 3}, kInt32).mean({0}), Catch::Contains("[mean] needs a floating"));
  REQUIRE_THROWS_WITH(topk(x, 4), Catch::Contains("[topk] k = 4 is out of range for dimension 1 "
                                                  "of size 3 (shape [2, 3])"));
  REQUIRE_THROWS_WITH(x.topk(-1), Catch::Contains("[topk] k = -1 is out of range"));
  REQUIRE_THROWS_WITH(gather(x, 1, zeros({2, 3, 4}, kInt64)),
                      Catch::Contains("[gather] index has 3 dims but input has 2 (index [2, 3, 4], "
                                      "input [2, 3])"));
  REQUIRE_THROWS_WITH(gather(x, 1, tensor<int64_t>({0, 5}, {1, 2})),
                      Catch::Contains("[gather] index 5 at position [0, 1] is out of range for "
                                      "dimension 1 of size 3"));
  REQUIRE_THROWS_WITH(gather(x, 1, tensor<int32_t>({-1}, {1, 1})),
                      Catch::Contains("[gather] index -1 at position [0, 0] is out of range"));
  REQUIRE_THROWS_WITH(gather(x, 1, zeros({3, 2}, kInt64)),
                      Catch::Contains("[gather] index is larger than input in dimension 0: 3 > 2"));
  REQUIRE_THROWS_WITH(gather(x, 0, zeros({1, 1})),
                      Catch::Contains("[gather] index must be int64 or int32, got float32"));
  REQUIRE_THROWS_WITH(scatter_add(x, 0, zeros({1, 3}, kInt64), zeros({1, 3}, kFloat64)),
                      Catch::Contains("[scatter_add] src has dtype float64 but input has float32"));
  REQUIRE_THROWS_WITH(scatter_add(x, 0, zeros({1, 3}, kInt64), zeros({1, 2})),
                      Catch::Contains("[scatter_add] index is larger than src in dimension 1: 3 > "
                                      "2 (index [1, 3], src [1, 2])"));
  REQUIRE_THROWS_WITH(scatter_add(x, 0, tensor<int64_t>({2}, {1, 1}), zeros({1, 1})),
                      Catch::Contains("[scatter_add] index 2 at position [0, 0] is out of range "
                                      "for dimension 0 of size 2"));
  REQUIRE_THROWS_WITH(scatter_add(x, 0, zeros({1, 1}, kInt64), zeros({1})),
                      Catch::Contains("[scatter_add] src has 1 dims but input has 2"));
  REQUIRE_THROWS_WITH(
      scatter_add(zeros({3}), 0, zeros({2}, kInt64), scalar_tensor(1.0)),
      Catch::Contains("[scatter_add] index is larger than src in dimension 0: 2 > 1 "
                      "(index [2], src [])"));
  REQUIRE_THROWS_WITH(
      scatter_add(zeros({3}), 0, zeros({}, kInt64), zeros({0})),
      Catch::Contains("[scatter_add] index is larger than src in dimension 0: 1 > 0"));
  REQUIRE_THROWS_WITH(unbind(scalar_tensor(1.0)), Catch::Contains("[unbind] cannot unbind a 0-d"));
  REQUIRE_THROWS_WITH(x.unbind(2), Catch::Contains("[unbind] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(flip(x, {1, -1}),
                      Catch::Contains("[flip] dimension 1 appears more than once"));
  REQUIRE_THROWS_WITH(tril(zeros({3})),
                      Catch::Contains("[tril] needs a tensor of at least 2 dims, got shape [3]"));
  REQUIRE_THROWS_WITH(triu(scalar_tensor(1.0)),
                      Catch::Contains("[triu] needs a tensor of at least"));
  REQUIRE_THROWS_WITH(gather(Tensor(), 0, zeros({1}, kInt64)), Catch::Contains("[gather]"));
}

TEST_CASE("everyday indexing: 16-bit floats and integers", "[everyday_indexing]") {
  for (Dtype d : {kBFloat16, kFloat16}) {
    INFO(dtype_name(d));
    Tensor x = arange(12, kFloat32).reshape({3, 4}).to(d);
    CHECK(x.max().dtype() == d);
    CHECK(x.max().to(kFloat32).item<float>() == 11.0f);
    CHECK(x.min(1).to(kFloat32).to_vector<float>() == std::vector<float>{0, 4, 8});
    CHECK(x.sum({0, 1}).dtype() == d);
    CHECK(x.sum({0, 1}).to(kFloat32).item<float>() == 66.0f);
    CHECK(x.mean({1}).to(kFloat32).to_vector<float>() == std::vector<float>{1.5f, 5.5f, 9.5f});
    auto [v, i] = x.topk(2, 0);
    CHECK(v.to(kFloat32).to_vector<float>() == std::vector<float>{8, 9, 10, 11, 4, 5, 6, 7});
    CHECK(i.to_vector<int64_t>() == std::vector<int64_t>{2, 2, 2, 2, 1, 1, 1, 1});
    Tensor idx = tensor<int64_t>({3, 0}, {1, 2});
    CHECK(x.gather(1, idx).to(kFloat32).to_vector<float>() == std::vector<float>{3, 0});
    CHECK(x.scatter_add(1, idx, ones({1, 2}, d)).to(kFloat32).to_vector<float>()[0] == 1.0f);
  }
  // Int64 beyond double's 53 bits: compared exactly.
  Tensor big = tensor<int64_t>({(int64_t{1} << 60) + 1, (int64_t{1} << 60) + 3, int64_t{1} << 60});
  CHECK(big.max().item<int64_t>() == (int64_t{1} << 60) + 3);
  CHECK(big.argmin().item<int64_t>() == 2);
  CHECK(big.topk(1).second.to_vector<int64_t>() == std::vector<int64_t>{1});
}
