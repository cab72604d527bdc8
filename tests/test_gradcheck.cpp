// gradcheck: every registered case passes in Float64 (and the linear ones in Float32, the oneDNN
// path); a deliberately wrong backward is caught and named.
#include <catch2/catch.hpp>
#include <cmath>

#include "autograd/gradcheck.hpp"
#include "autograd/node.hpp"
#include "core/random.hpp"
#include "core/storage.hpp"
#include "groupgrad.hpp"

using namespace gg;
namespace gc = gg::gradcheck;

TEST_CASE("gradcheck: every registered case passes", "[gradcheck]") {
  const auto cases = gc::Registry::instance().list();
  REQUIRE(cases.size() >= 40);
  int checked = 0;
  for (const gc::CheckCase* c : cases) {
    for (uint64_t seed : {0u, 1u}) {
      // Every storage a check makes is gone afterwards (nothing is kept or cached per call).
      const int64_t live = Storage::live_count();
      gc::CaseReport report = gc::run_case(*c, {.dtype = kFloat64, .seed = seed});
      INFO(gc::format_report(report, /*verbose=*/true));
      CHECK(report.passed);
      CHECK(!report.inputs.empty());
      CHECK(Storage::live_count() == live);
      ++checked;
      if (!c->linear) continue;
      gc::CaseReport f32 = gc::run_case(*c, {.dtype = kFloat32, .seed = seed});
      INFO(gc::format_report(f32, /*verbose=*/true));
      CHECK(f32.passed);
      CHECK(Storage::live_count() == live);
      ++checked;
    }
  }
  // A graph dropped without backward frees everything too: no op's backward closure owns its own
  // output (a shared_ptr cycle that only backward's release would break).
  for (const gc::CheckCase* c : cases) {
    INFO(c->name);
    const int64_t live = Storage::live_count();
    {
      manual_seed(0);
      const gc::CaseOptions options;
      std::vector<Tensor> xs;
      for (const gc::Input& in : c->build(options)) {
        Tensor x = in.tensor.detach();
        if (in.differentiable) x.requires_grad_();
        xs.push_back(x);
      }
      std::vector<Tensor> outs = c->forward(xs, options);
      bool recorded = false;
      for (const Tensor& out : outs) recorded = recorded || (out.defined() && out.grad_fn());
      CHECK(recorded);
    }
    CHECK(Storage::live_count() == live);
  }
  WARN(checked << " checks of " << cases.size() << " cases");
}

namespace {
// mul with a backward that is right for a and 1.5x too large for b.
Tensor wrong_mul(const Tensor& a, const Tensor& b) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = a * b;
  }
  return autograd::record(
      "WrongMulBackward", {a, b}, out,
      [a = a.detach(), b = b.detach()](const std::vector<Tensor>& g, const std::vector<bool>&) {
        return std::vector<Tensor>{g[0] * b, g[0] * a * 1.5};
      });
}

// A backward that forgets its second input entirely.
Tensor forgetful_add(const Tensor& a, const Tensor& b) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = a + b;
  }
  return autograd::record("ForgetfulAddBackward", {a, b}, out,
                          [](const std::vector<Tensor>& g, const std::vector<bool>&) {
                            return std::vector<Tensor>{g[0], Tensor()};
                          });
}

// A backward that produces NaN.
Tensor nan_scale(const Tensor& a) {
  Tensor out;
  {
    NoGradGuard no_grad;
    out = a * 2.0;
  }
  return autograd::record("NanBackward", {a}, out,
                          [](const std::vector<Tensor>& g, const std::vector<bool>&) {
                            return std::vector<Tensor>{g[0] * std::nan("")};
                          });
}

gc::Inputs two_inputs(const gc::CaseOptions& o) {
  return {{"a", gc::gen::normal({3, 4}, o.dtype)},
          {"b", gc::gen::normal({3, 4}, o.dtype)},
          {"idx", tensor<int64_t>({0, 1}), false}};
}

void register_wrong_cases() {
  gc::Registry& r = gc::Registry::instance();
  if (r.find("test_wrong_mul")) return;
  r.register_case(
      {.name = "test_wrong_mul",
       .description = "test only: mul with a wrong gradient for b",
       .build = two_inputs,
       .forward = [](const std::vector<Tensor>& x,
                     const gc::CaseOptions&) { return std::vector<Tensor>{wrong_mul(x[0], x[1])}; },
       .linear = true,
       .hidden = true});
  r.register_case({.name = "test_forgetful_add",
                   .description = "test only: add whose backward drops b",
                   .build = two_inputs,
                   .forward =
                       [](const std::vector<Tensor>& x, const gc::CaseOptions&) {
                         return std::vector<Tensor>{forgetful_add(x[0], x[1])};
                       },
                   .linear = true,
                   .hidden = true});
  r.register_case({.name = "test_nan_backward",
                   .description = "test only: a backward that returns NaN",
                   .build = two_inputs,
                   .forward =
                       [](const std::vector<Tensor>& x, const gc::CaseOptions&) {
                         return std::vector<Tensor>{nan_scale(x[0]), x[1] * 1.0};
                       },
                   .hidden = true});
}
}  // namespace

TEST_CASE("gradcheck: a wrong backward is reported as FAIL with the input named", "[gradcheck]") {
  register_wrong_cases();
  gc::Registry& r = gc::Registry::instance();
  // Hidden cases stay out of list() (and so out of the suite above and `gradcheck --all`).
  for (const gc::CheckCase* c : r.list()) CHECK(c->name.rfind("test_", 0) != 0);
  REQUIRE(r.list(true).size() == r.list().size() + 3);

  for (Dtype dtype : {kFloat64, kFloat32}) {
    gc::CaseReport report = gc::run_case(r.get("test_wrong_mul"), {.dtype = dtype});
    std::string table = gc::format_report(report, /*verbose=*/true);
    INFO(table);
    CHECK_FALSE(report.passed);
    REQUIRE(report.inputs.size() == 2);  // idx is not differentiable
    CHECK(report.inputs[0].name == "a");
    CHECK(report.inputs[0].passed);
    CHECK(report.inputs[1].name == "b");
    CHECK_FALSE(report.inputs[1].passed);
    CHECK(report.inputs[1].mismatches == 12);
    CHECK(report.inputs[1].max_rel_err > 0.2);
    // The worst entries say where: analytic is 1.5x the numeric value.
    REQUIRE(report.inputs[1].worst.size() == 5);
    const gc::Entry& e = report.inputs[1].worst[0];
    CHECK(e.index.size() == 2);
    CHECK(e.analytic == Approx(1.5 * e.numeric).epsilon(1e-3));
    CHECK_THAT(table, Catch::Contains("FAIL") && Catch::Contains("test_wrong_mul") &&
                          Catch::Contains("analytic"));
    CHECK_THAT(table, Catch::Contains(" b ") && Catch::Contains("FAIL (12 of 12)"));
  }

  gc::CaseReport forgot = gc::run_case(r.get("test_forgetful_add"));
  CHECK_FALSE(forgot.passed);
  CHECK(forgot.inputs[0].passed);
  CHECK_FALSE(forgot.inputs[1].passed);
  CHECK(forgot.inputs[1].max_abs_err > 0.1);  // |numeric| is |r| there, analytic 0

  // NaN never passes, whatever the tolerance.
  gc::CaseReport nan = gc::run_case(r.get("test_nan_backward"), {.atol = 1e9});
  CHECK_FALSE(nan.passed);
  CHECK_FALSE(nan.inputs[0].passed);
  CHECK(nan.inputs[1].passed);
  CHECK_THAT(gc::format_report(nan), Catch::Contains("inf"));

  // Tolerance overrides apply: a loose enough rtol lets the 1.5x error through.
  CHECK(gc::run_case(r.get("test_wrong_mul"), {.rtol = 1.0}).passed);
}

TEST_CASE("gradcheck: report contents and options", "[gradcheck]") {
  gc::Registry& r = gc::Registry::instance();
  const gc::CheckCase& mm = r.get("matmul_2d");
  gc::CaseReport report = gc::run_case(mm, {.seed = 3});
  REQUIRE(report.passed);
  REQUIRE(report.inputs.size() == 2);
  CHECK(report.inputs[0].name == "a");
  CHECK(report.inputs[0].shape == Shape{3, 4});
  CHECK(report.inputs[1].shape == Shape{4, 5});
  CHECK(report.inputs[0].max_abs_err < 1e-8);
  CHECK(report.tolerance.eps == 1e-6);
  std::string table = gc::format_report(report);
  CHECK_THAT(table, Catch::Contains("matmul_2d (float64, seed 3): PASS") &&
                        Catch::Contains("max abs err") && Catch::Contains("[4, 5]"));

  // Float32 on a linear case steps by 1 and also compares with the Float64 gradient.
  gc::CaseReport f32 = gc::run_case(mm, {.dtype = kFloat32, .worst_entries = 1});
  CHECK(f32.passed);
  CHECK(f32.tolerance.eps == 1.0);
  REQUIRE(f32.inputs[0].worst.size() == 1);
  CHECK_FALSE(std::isnan(f32.inputs[0].worst[0].reference));

  // The seed makes inputs and projection reproducible.
  gc::CaseReport again = gc::run_case(mm, {.seed = 3});
  CHECK(again.inputs[0].max_abs_err == report.inputs[0].max_abs_err);

  // Per-op tolerances: the float round trip uses a larger step.
  CHECK(gc::case_tolerance(r.get("to_float_chain"), kFloat64).eps == 1e-2);

  // Bad usage is a UsageError naming the problem.
  CHECK_THROWS_AS(r.get("no_such_op"), gc::UsageError);
  CHECK_THROWS_WITH(r.get("no_such_op"), Catch::Contains("unknown case 'no_such_op'"));
  CHECK_THROWS_WITH(gc::run_case(mm, {.params = {{"layout", "2d3d"}}}),
                    Catch::Contains("does not take parameter 'layout'") ||
                        Catch::Contains("takes no parameters"));
  CHECK_NOTHROW(gc::run_case(mm, {.params = {{"layout", "2d3d"}}, .strict_params = false}));
  CHECK_THROWS_AS(gc::run_case(mm, {.dtype = kInt32}), gc::UsageError);
  CHECK_THROWS_WITH(gc::run_case(mm, {.eps = 0.0}), Catch::Contains("eps > 0"));
  CHECK_THROWS_WITH(gc::run_case(mm, {.dtype = kFloat32, .eps = 1e-12}),
                    Catch::Contains("below the resolution of float32"));

  gc::Params p{{"m", "3, 0,5"}, {"layout", "2d3d"}, {"bad", "3,x"}, {"eps", "1e-3"}};
  CHECK(p.get_ints("m", {}) == std::vector<int64_t>{3, 0, 5});
  CHECK(p.get_ints("k", {7}) == std::vector<int64_t>{7});
  CHECK(p.get_double("eps", 0) == 1e-3);
  CHECK(p.get_choice("layout", "list", {"list", "2d3d"}) == "2d3d");
  CHECK_THROWS_WITH(p.get_choice("layout", "list", {"list", "3d3d"}),
                    Catch::Contains("'layout' must be one of list|3d3d, got '2d3d'"));
  CHECK_THROWS_WITH(p.get_ints("bad", {}), Catch::Contains("parameter 'bad'"));
  CHECK_THROWS_AS(p.get_int("layout", 0), gc::UsageError);

  // Registry rules.
  gc::Registry local;
  CHECK(local.list().empty());
  gc::CheckCase c = mm;
  local.register_case(c);
  CHECK(local.find("matmul_2d") != nullptr);
  CHECK_THROWS_WITH(local.register_case(c), Catch::Contains("already registered"));
  c.name = "no_forward";
  c.forward = {};
  CHECK_THROWS_WITH(local.register_case(c), Catch::Contains("needs both build and forward"));
}

TEST_CASE("gradcheck: inputs stay non-contiguous and the graph is released", "[gradcheck]") {
  // The checker steps elements through strides: a non-contiguous input keeps its layout, and its
  // values are restored exactly afterwards.
  manual_seed(5);
  Tensor x = gc::gen::noncontiguous(gc::gen::normal({3, 4}, kFloat64));
  REQUIRE_FALSE(x.is_contiguous());
  std::vector<double> before = x.to_vector<double>();
  gc::Registry local;
  local.register_case({.name = "tanh_of_given",
                       .description = "tanh of a captured non-contiguous tensor",
                       .build =
                           [x](const gc::CaseOptions&) {
                             return gc::Inputs{{"x", x}};
                           },
                       .forward =
                           [](const std::vector<Tensor>& in, const gc::CaseOptions&) {
                             REQUIRE_FALSE(in[0].is_contiguous());
                             return std::vector<Tensor>{tanh(in[0])};
                           }});
  int64_t live = Storage::live_count();
  CHECK(gc::run_case(*local.find("tanh_of_given")).passed);
  CHECK(x.to_vector<double>() == before);
  CHECK_FALSE(x.requires_grad());
  CHECK(Storage::live_count() == live);
  // A case under an outer NoGradGuard still records (the checker turns grad mode on locally).
  NoGradGuard no_grad;
  CHECK(gc::run_case(*local.find("tanh_of_given")).passed);
  CHECK_FALSE(GradMode::is_enabled());
}
