// sin, cos, clamp, remainder, fmod, masked_fill, isclose/allclose/equal, where with scalars and the
// Tensor methods that forward to them: values and gradients against PyTorch
// (tests/fixtures/make_elementwise_fixtures.py -> elementwise.json), the oneDNN and threaded paths
// against plain loops, and the error messages.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "fixture_support.hpp"
#include "groupgrad.hpp"
#include "test_support.hpp"

using namespace gg;
using json = nlohmann::json;
using test::fixture;
using test::number;

namespace {

Dtype dtype_named(const std::string& name) {
  for (Dtype d : {kFloat32, kFloat64, kBFloat16, kFloat16, kInt8, kInt32, kInt64})
    if (dtype_name(d) == name) return d;
  FAIL("unknown dtype " << name);
  return kFloat32;
}

Tensor from_json(const json& t) {
  if (t.is_null()) return Tensor();
  const Dtype dtype = dtype_named(t["dtype"]);
  const Shape shape = t["shape"].get<Shape>();
  if (!is_floating(dtype))
    return tensor<int64_t>(t["data"].get<std::vector<int64_t>>(), shape).to(dtype);
  std::vector<double> data;
  for (const json& v : t["data"]) data.push_back(number(v));
  return tensor<double>(data, shape).to(dtype);
}

std::optional<double> optional_arg(const json& args, const char* key) {
  if (!args.contains(key)) return std::nullopt;
  return number(args[key]);
}

// Tolerances by dtype: PyTorch's vectorised sin/cos may differ from std:: by an ulp or two.
void require_matches(const Tensor& got, const json& want_json, const std::string& what) {
  const Tensor want = from_json(want_json);
  INFO(what << ": got " << describe(got) << ", want " << describe(want));
  REQUIRE(got.dtype() == want.dtype());
  REQUIRE(got.shape() == want.shape());
  if (!is_floating(want.dtype())) {
    CHECK(got.to(kInt64).to_vector<int64_t>() == want.to(kInt64).to_vector<int64_t>());
    return;
  }
  const double tol = want.dtype() == kFloat64 ? 1e-12 : want.dtype() == kFloat32 ? 2e-6 : 1e-2;
  const std::vector<double> g = test::values(got), w = test::values(want);
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i << ": got " << g[i] << ", want " << w[i]);
    if (std::isnan(w[i])) {
      CHECK(std::isnan(g[i]));
    } else if (std::isinf(w[i]) || w[i] == 0) {
      CHECK(g[i] == w[i]);
      // The sign of a zero output is checked (remainder and fmod keep it); of a zero gradient
      // (g * 0 with a negative g) it means nothing.
      if (w[i] == 0 && what == "output") CHECK(std::signbit(g[i]) == std::signbit(w[i]));
    } else {
      CHECK(std::abs(g[i] - w[i]) <= tol * (1 + std::abs(w[i])));
    }
  }
}

// Element-for-element equality, NaN equal to NaN.
bool same_values(const Tensor& a, const Tensor& b) {
  const std::vector<double> va = test::values(a), vb = test::values(b);
  if (a.shape() != b.shape()) return false;
  for (size_t i = 0; i < va.size(); ++i)
    if (!(va[i] == vb[i] || (std::isnan(va[i]) && std::isnan(vb[i])))) return false;
  return true;
}

struct Result {
  Tensor tensor;
  std::optional<bool> boolean = std::nullopt;
};

Result run(const std::string& op, const std::vector<Tensor>& in, const json& args) {
  if (op == "sin") return {sin(in[0])};
  if (op == "cos") return {in[0].cos()};
  if (op == "clamp") return {clamp(in[0], optional_arg(args, "min"), optional_arg(args, "max"))};
  if (op == "clamp_tensor") return {clamp(in[0], in[1], in[2])};
  if (op == "remainder") return {remainder(in[0], in[1])};
  if (op == "fmod") return {fmod(in[0], in[1])};
  if (op == "remainder_scalar") return {in[0].remainder(number(args["other"]))};
  if (op == "fmod_scalar") return {fmod(in[0], number(args["other"]))};
  if (op == "masked_fill") return {masked_fill(in[0], in[1], number(args["value"]))};
  if (op == "masked_fill_tensor") return {in[0].masked_fill(in[1], in[2])};
  const double rtol = args.value("rtol", 1e-5), atol = args.value("atol", 1e-8);
  const bool equal_nan = args.value("equal_nan", false);
  if (op == "isclose") return {isclose(in[0], in[1], rtol, atol, equal_nan)};
  if (op == "allclose") return {Tensor(), allclose(in[0], in[1], rtol, atol, equal_nan)};
  if (op == "equal") return {Tensor(), equal(in[0], in[1])};
  if (op == "where") return {where(in[0], in[1], in[2])};
  if (op == "where_scalar_b") return {where(in[0], in[1], number(args["scalar"]))};
  if (op == "where_scalar_a") return {where(in[0], number(args["scalar"]), in[1])};
  if (op == "maximum") return {maximum(in[0], in[1])};
  if (op == "minimum") return {minimum(in[0], in[1])};
  FAIL("no op " << op);
  return {};
}

}  // namespace

TEST_CASE("everyday elementwise ops match PyTorch's values and gradients",
          "[everyday_elementwise]") {
  const json& cases = fixture("elementwise.json")["cases"];
  REQUIRE(cases.size() >= 90);
  for (const json& c : cases) {
    const std::string name = c["name"];
    INFO("case " << name);
    std::vector<Tensor> in;
    for (size_t i = 0; i < c["inputs"].size(); ++i) {
      Tensor t = from_json(c["inputs"][i]);
      if (c.contains("grads") && !c["grads"][i].is_null()) t.requires_grad_();
      in.push_back(t);
    }
    const Result r = run(c["op"], in, c["args"]);
    if (c.contains("out_bool")) {
      REQUIRE(r.boolean.has_value());
      CHECK(*r.boolean == c["out_bool"].get<bool>());
      continue;
    }
    require_matches(r.tensor, c["out"], "output");
    if (!c.contains("grads")) {
      CHECK(!r.tensor.requires_grad());
      continue;
    }
    REQUIRE(r.tensor.requires_grad());
    (r.tensor * from_json(c["weight"])).sum().backward();
    for (size_t i = 0; i < in.size(); ++i) {
      if (c["grads"][i].is_null()) continue;
      REQUIRE(in[i].grad().defined());
      require_matches(in[i].grad(), c["grads"][i], "gradient of input " + std::to_string(i));
    }
  }
}

TEST_CASE("sin, cos and clamp on large and strided tensors equal plain loops",
          "[everyday_elementwise]") {
  manual_seed(5);
  // 100000 elements: the threaded loop (sin, cos) and oneDNN's clip (clamp), on a contiguous and a
  // transposed input, with NaNs and infinities planted.
  Tensor x = (randn({250, 400}) * 4.0).contiguous();
  float* p = x.data_ptr<float>();
  p[3] = std::numeric_limits<float>::quiet_NaN();
  p[777] = std::numeric_limits<float>::infinity();
  p[90001] = -std::numeric_limits<float>::infinity();
  for (const Tensor& input : {x, x.t()}) {
    const std::vector<float> v = input.contiguous().to_vector<float>();
    const std::vector<float> s = sin(input).to_vector<float>(), c = cos(input).to_vector<float>();
    const std::vector<float> k = clamp(input, -1.5, 2.0).to_vector<float>();
    const std::vector<float> kmin = input.clamp_min(0.5).to_vector<float>();
    REQUIRE(s.size() == v.size());
    for (size_t i = 0; i < v.size(); ++i) {
      INFO("element " << i << " x = " << v[i]);
      const float ws = std::sin(v[i]), wc = std::cos(v[i]);
      CHECK(((std::isnan(ws) && std::isnan(s[i])) || s[i] == ws));
      CHECK(((std::isnan(wc) && std::isnan(c[i])) || c[i] == wc));
      if (std::isnan(v[i])) {
        CHECK(std::isnan(k[i]));
        CHECK(std::isnan(kmin[i]));
      } else {
        CHECK(k[i] == std::min(std::max(v[i], -1.5f), 2.0f));
        CHECK(kmin[i] == std::max(v[i], 0.5f));
      }
    }
  }
  // bfloat16: clip in float, rounded once, is exact.
  const Tensor b = x.to(kBFloat16);
  CHECK(same_values(clamp(b, -1.0, 1.0), clamp(x, -1.0, 1.0).to(kBFloat16)));
  CHECK(same_values(clamp(b.t(), -1.0, 1.0), clamp(x.t(), -1.0, 1.0).to(kBFloat16)));
  // A bound between two floats of the dtype is rounded to the dtype first, on both paths.
  const Tensor small = x.narrow(0, 0, 1).narrow(1, 0, 100).contiguous();
  CHECK(test::values(clamp(x, 0.1, std::nullopt).narrow(0, 0, 1).narrow(1, 4, 96)) ==
        test::values(clamp(small, 0.1, std::nullopt).narrow(1, 4, 96)));  // (NaN at 3)
}

TEST_CASE("remainder and fmod follow the sign rules on every integer dtype",
          "[everyday_elementwise]") {
  const std::vector<int64_t> a = {-7, 7, -7, 7, 0, -1, 5};
  const std::vector<int64_t> b = {2, 2, -2, -2, 3, 4, -3};
  for (Dtype d : {kInt8, kInt32, kInt64}) {
    INFO(dtype_name(d));
    const Tensor ta = tensor<int64_t>(a).to(d), tb = tensor<int64_t>(b).to(d);
    const Tensor r = remainder(ta, tb), f = fmod(ta, tb);
    CHECK(r.dtype() == d);
    CHECK(f.dtype() == d);
    for (size_t i = 0; i < a.size(); ++i) {
      // Oracles: Python's % (floor division) and C's % (truncation).
      const int64_t c_rem = a[i] % b[i];
      const int64_t py_rem = (c_rem != 0 && ((c_rem < 0) != (b[i] < 0))) ? c_rem + b[i] : c_rem;
      CHECK(r.to(kInt64).to_vector<int64_t>()[i] == py_rem);
      CHECK(f.to(kInt64).to_vector<int64_t>()[i] == c_rem);
    }
  }
  // The float rule on the same values: remainder has the divisor's sign, fmod the dividend's.
  const Tensor fa = tensor<int64_t>(a).to(kFloat64), fb = tensor<int64_t>(b).to(kFloat64);
  CHECK(test::values(remainder(fa, fb)) ==
        test::values(remainder(tensor<int64_t>(a), tensor<int64_t>(b))));
  CHECK(test::values(fmod(fa, fb)) == test::values(fmod(tensor<int64_t>(a), tensor<int64_t>(b))));
}

TEST_CASE("the new Tensor methods equal the free functions", "[everyday_elementwise]") {
  manual_seed(9);
  const Tensor x = randn({3, 4}), y = randn({4}) + 3.0, m = gt(x, scalar_tensor(0.0));
  CHECK(test::values(x.abs()) == test::values(abs(x)));
  CHECK(test::values(x.sin()) == test::values(sin(x)));
  CHECK(test::values(x.cos()) == test::values(cos(x)));
  CHECK(test::values(x.clamp(-0.5, 0.5)) == test::values(clamp(x, -0.5, 0.5)));
  CHECK(test::values(x.clamp(Tensor(), y)) == test::values(clamp(x, Tensor(), y)));
  CHECK(test::values(x.clamp_max(0.1)) == test::values(clamp(x, std::nullopt, 0.1)));
  CHECK(test::values(x.softmax(-1)) == test::values(softmax(x, -1)));
  CHECK(test::values(x.log_softmax(0)) == test::values(log_softmax(x, 0)));
  CHECK(test::values(x.remainder(y)) == test::values(remainder(x, y)));
  CHECK(test::values(x.fmod(0.3)) == test::values(fmod(x, 0.3)));
  CHECK(test::values(x.masked_fill(m, 2.0)) == test::values(masked_fill(x, m, 2.0)));
  CHECK(test::values(x.isclose(x + 1e-6)) == test::values(isclose(x, x + 1e-6)));
  CHECK(x.allclose(x * (1 + 1e-6)));
  CHECK_FALSE(x.allclose(x * (1 + 1e-3)));
  CHECK(x.equal(x.clone()));
  CHECK_FALSE(x.equal(x.t()));
  // softmax rows sum to one: the method is softmax, not a stand-in.
  for (double s : test::values(x.softmax(1).sum(1))) CHECK(s == Approx(1.0));
}

TEST_CASE("everyday elementwise ops on empty and non-contiguous inputs", "[everyday_elementwise]") {
  manual_seed(3);
  const Tensor e = zeros({0, 5}).requires_grad_();
  for (const Tensor& y :
       {sin(e), cos(e), clamp(e, 0.0, 1.0), clamp(e, Tensor(), zeros({5})), remainder(e, 2.0),
        fmod(e, zeros({5}) + 1.0), masked_fill(e, ones({5}), 1.0)}) {
    CHECK(y.shape() == (Shape{0, 5}));
    y.backward(zeros(y.shape()));
  }
  CHECK(isclose(e, e).shape() == (Shape{0, 5}));
  CHECK(allclose(e, e));
  CHECK(equal(e, e));
  // Integer division by zero is not an error when there is nothing to divide.
  CHECK(remainder(zeros({0}, kInt64), zeros({1}, kInt64)).numel() == 0);
  // Non-contiguous operands: the same values as contiguous copies.
  const Tensor a = randn({4, 3}).t(), b = randn({3, 4}) + 2.0;
  CHECK(test::values(remainder(a, b)) == test::values(remainder(a.contiguous(), b)));
  CHECK(test::values(masked_fill(a, gt(b, a), -1.0)) ==
        test::values(masked_fill(a.contiguous(), gt(b, a), -1.0)));
  CHECK(test::values(isclose(a, a.contiguous())) == std::vector<double>(12, 1.0));
}

TEST_CASE("everyday elementwise ops reject bad input with the op, the rule and the shapes",
          "[everyday_elementwise]") {
  const Tensor x = randn({2, 3}), i = tensor<int64_t>({4, 5, 6}), undef;
  using Catch::Contains;
  REQUIRE_THROWS_WITH(
      clamp(x, std::nullopt, std::nullopt),
      Contains("[clamp] at least one of min and max") && Contains("float32 [2, 3]"));
  REQUIRE_THROWS_WITH(clamp(x, Tensor(), Tensor()),
                      Contains("[clamp] at least one of min and max must be a defined tensor"));
  REQUIRE_THROWS_WITH(clamp(i.to(kInt8), -1000.0, std::nullopt),
                      Contains("[clamp] min = -1000 is out of the range of int8"));
  REQUIRE_THROWS_WITH(clamp(x, zeros({4}), Tensor()),
                      Contains("[clamp] shapes [2, 3] and [4] cannot be broadcast"));
  REQUIRE_THROWS_WITH(sin(undef), Contains("[sin]") && Contains("undefined"));
  REQUIRE_THROWS_WITH(
      remainder(i, tensor<int64_t>({1, 0, 2})),
      Contains("[remainder] integer division by zero") && Contains("(a int64 [3], b int64 [3])"));
  REQUIRE_THROWS_WITH(fmod(i, 0.0), Contains("[fmod] integer division by zero"));
  REQUIRE_THROWS_WITH(remainder(x, zeros({4})),
                      Contains("[remainder] shapes [2, 3] and [4] cannot be broadcast"));
  REQUIRE_THROWS_WITH(masked_fill(x, ones({2, 1, 3}), 1.0),
                      Contains("[masked_fill] the mask must broadcast to the input's shape") &&
                          Contains("(input float32 [2, 3], mask float32 [2, 1, 3])"));
  REQUIRE_THROWS_WITH(masked_fill(x, ones({3, 1}), 1.0),
                      Contains("[masked_fill] the mask must broadcast"));
  REQUIRE_THROWS_WITH(masked_fill(x, ones({3}), ones({1})),
                      Contains("[masked_fill] value must be a 0-d tensor, got 1 dimension(s)"));
  REQUIRE_THROWS_WITH(masked_fill(i.to(kInt8), ones({3}), 300.0),
                      Contains("[masked_fill] value 300 cannot be converted to int8"));
  REQUIRE_THROWS_WITH(masked_fill(i, ones({3}), std::nan("")),
                      Contains("[masked_fill] value nan cannot be converted to int64"));
  REQUIRE_THROWS_WITH(isclose(i, i.to(kFloat32)),
                      Contains("[isclose] a and b must have one dtype") &&
                          Contains("a int64 [3] and b float32 [3]"));
  REQUIRE_THROWS_WITH(allclose(x, x, -1.0),
                      Contains("[isclose] rtol and atol must be non-negative"));
  REQUIRE_THROWS_WITH(isclose(x, zeros({4})), Contains("[isclose] shapes [2, 3] and [4]"));
  REQUIRE_THROWS_WITH(equal(x, undef), Contains("[equal]") && Contains("undefined"));
  REQUIRE_THROWS_WITH(where(undef, x, 0.0), Contains("[where]") && Contains("undefined"));
  REQUIRE_THROWS_WITH(where(ones({4}), x, 0.0),
                      Contains("[where] shapes [4] and [2, 3] cannot be broadcast"));
}
