// tools/gradcheck: checks the gradients of any registered op or module from the command line, as
// torch.autograd.gradcheck does in Python. Exit status: 0 all passed, 1 a check failed or any
// other error, 2 bad usage (unknown options or cases, sizes or tolerances out of range).
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <groupgrad/autograd/gradcheck.hpp>
#include <groupgrad/groupgrad.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "tools/common/cli_parse.hpp"

namespace gc = gg::gradcheck;

namespace {

// A deliberately wrong op, hidden from --list: y = 3x whose backward claims dy/dx = 2. The test
// suite runs `gradcheck selftest.wrong_backward` and expects FAIL and exit status 1, proving that
// the tool can fail. A custom function, as a user would define one.
struct WrongBackward : gg::autograd::Function<WrongBackward> {
  static constexpr const char* name = "WrongBackward";
  static gg::Tensor forward(gg::autograd::AutogradContext*, const gg::Tensor& x) { return x * 3.0; }
  static std::vector<gg::Tensor> backward(gg::autograd::AutogradContext*,
                                          const std::vector<gg::Tensor>& grads) {
    return {grads[0] * 2.0};
  }
};

void register_selftest(gc::Registry& registry) {
  registry.register_case({.name = "selftest.wrong_backward",
                          .description = "y = 3x with a backward that returns 2 * grad (must FAIL)",
                          .build =
                              [](const gc::CaseOptions& o) {
                                return gc::Inputs{{"x", gc::gen::normal({4}, o.dtype)}};
                              },
                          .forward =
                              [](const std::vector<gg::Tensor>& x, const gc::CaseOptions&) {
                                return std::vector<gg::Tensor>{WrongBackward::apply(x[0])};
                              },
                          .linear = true,
                          .family = "selftest",
                          .hidden = true});
}

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

// The cases a name selects: every case of the family of that name (so `gradcheck grouped_mm` checks
// every layout), or the case of that name when it is no family or case parameters were given
// (`gradcheck grouped_mm --layout 2d3d` checks that one configurable case), else every case whose
// name starts with "<name>.".
std::vector<const gc::CheckCase*> select(const gc::Registry& registry, const std::string& name,
                                         bool have_params) {
  const gc::CheckCase* exact = registry.find(name);
  std::vector<const gc::CheckCase*> family;
  for (const gc::CheckCase* c : registry.list())
    if (c->family == name || c->name.rfind(name + ".", 0) == 0) family.push_back(c);
  if (exact && (have_params || family.empty())) return {exact};
  if (family.empty())
    throw gc::UsageError(
        fmt::format("[gradcheck] no case or family named '{}' (see --list)", name));
  return family;
}

// The parameters a case accepts, out of those given on the command line.
gc::Params params_for(const gc::CheckCase& c, const gc::Params& given) {
  gc::Params p;
  for (const auto& [key, value] : given.values())
    if (std::find(c.params.begin(), c.params.end(), key) != c.params.end()) p.set(key, value);
  return p;
}

nlohmann::json to_json(const gc::CaseReport& r) {
  nlohmann::json inputs = nlohmann::json::array();
  for (const gc::InputReport& in : r.inputs) {
    nlohmann::json worst = nlohmann::json::array();
    for (const gc::Entry& e : in.worst)
      worst.push_back({{"index", e.index},
                       {"analytic", e.analytic},
                       {"numeric", e.numeric},
                       {"abs_err", e.abs_err}});
    inputs.push_back({{"name", in.name},
                      {"shape", in.shape},
                      {"dtype", gg::dtype_name(in.dtype)},
                      {"max_abs_err", in.max_abs_err},
                      {"max_rel_err", in.max_rel_err},
                      {"eps", in.tolerance.eps},
                      {"atol", in.tolerance.atol},
                      {"rtol", in.tolerance.rtol},
                      {"mismatches", in.mismatches},
                      {"passed", in.passed},
                      {"worst", worst}});
  }
  return {{"case", r.name},       {"dtype", gg::dtype_name(r.dtype)},
          {"seed", r.seed},       {"passed", r.passed},
          {"seconds", r.seconds}, {"inputs", inputs}};
}

// --eps must be a positive finite step, --atol and --rtol finite and not negative.
void check_tolerances(std::optional<double> eps, std::optional<double> atol,
                      std::optional<double> rtol) {
  if (eps && !(std::isfinite(*eps) && *eps > 0))
    throw gc::UsageError(
        fmt::format("[gradcheck] --eps must be positive and finite, got {}", *eps));
  for (auto [flag, value] : {std::pair{"--atol", atol}, {"--rtol", rtol}})
    if (value && !(std::isfinite(*value) && *value >= 0))
      throw gc::UsageError(
          fmt::format("[gradcheck] {} must be finite and not negative, got {}", flag, *value));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Checks gradients of groupgrad ops and modules against central finite differences.\n"
      "Examples:\n"
      "  gradcheck --list\n"
      "  gradcheck grouped_mm --layout 2d3d --m 3,0,5 --k 4 --n 6 --bias all\n"
      "  gradcheck --all --dtype f32 --linear-only\n"
      "Exit status: 0 when every check passed, 1 when one failed, 2 on bad usage."};
  std::vector<std::string> names;
  bool list = false, all = false, linear_only = false, json = false, verbose = false;
  std::string dtype = "f64";
  uint64_t seed = 0;
  std::optional<double> eps, atol, rtol;
  std::string groups, layout, m, k, n, bias, out_dtype;
  app.add_option("cases", names, "Case or family names (see --list)");
  app.add_flag("--list", list, "List every registered case with a one-line description");
  app.add_flag("--all", all, "Check every registered case");
  app.add_flag("--linear-only", linear_only,
               "Only the cases that are affine in each input (the Float32 oneDNN path is exact)");
  app.add_option("--dtype", dtype, "f64 (reference kernels) or f32 (the oneDNN path)")
      ->check(CLI::IsMember({"f64", "f32"}));
  app.add_option("--seed", seed, "Seed for the case's inputs and the output projection");
  app.add_option("--eps", eps, "Finite-difference step (default: per case)");
  app.add_option("--atol", atol, "Absolute tolerance (default: per case)");
  app.add_option("--rtol", rtol, "Relative tolerance (default: per case)");
  app.add_option("--groups", groups, "grouped_mm: number of groups");
  app.add_option("--layout", layout, "grouped_mm: list, 2d3d, 3d2d, 2d2d or 3d3d")
      ->check(CLI::IsMember({"list", "2d3d", "3d2d", "2d2d", "3d3d"}));
  app.add_option("--m", m, "grouped_mm: rows per group, e.g. 3,0,5");
  app.add_option("--k", k, "grouped_mm: inner size per group, e.g. 4,2,7");
  app.add_option("--n", n, "grouped_mm: columns per group, e.g. 6,1,2");
  app.add_option("--bias", bias, "grouped_mm: none, all or sparse (every other group)")
      ->check(CLI::IsMember({"none", "all", "sparse"}));
  app.add_option("--out-dtype", out_dtype, "grouped_mm: float32, float64, bfloat16 or float16");
  app.add_flag("--json", json, "Print the reports as JSON instead of tables");
  app.add_flag("--verbose,-v", verbose,
               "Log (spdlog debug) the Jacobian entries where analytic and numeric differ most");
  if (const std::optional<int> status = gg::cli::parse(app, argc, argv)) return *status;
  if (verbose) spdlog::set_level(spdlog::level::debug);

  try {
    gc::Registry& registry = gc::Registry::instance();
    register_selftest(registry);
    if (list) {
      for (const gc::CheckCase* c : registry.list())
        fmt::print("{:<28} {:<12} {}{}\n", c->name, c->family, c->description,
                   c->linear ? " [linear]" : "");
      return 0;
    }
    check_tolerances(eps, atol, rtol);
    if (!all && names.empty())
      throw gc::UsageError("[gradcheck] name a case or family, or pass --all or --list");
    gc::Params given;
    for (auto [key, value] : {std::pair{"groups", groups},
                              {"layout", layout},
                              {"m", m},
                              {"k", k},
                              {"n", n},
                              {"bias", bias},
                              {"out_dtype", out_dtype}})
      if (!value.empty()) given.set(key, value);
    std::vector<const gc::CheckCase*> cases;
    if (all) cases = registry.list();
    for (const std::string& name : names)
      for (const gc::CheckCase* c : select(registry, name, !given.empty())) cases.push_back(c);
    if (linear_only) std::erase_if(cases, [](const gc::CheckCase* c) { return !c->linear; });
    if (cases.empty()) throw gc::UsageError("[gradcheck] the selection has no cases");
    for (const auto& entry : given.values()) {
      const auto& key = entry.first;  // not a structured binding: clang < 16 cannot capture one
      bool used = std::any_of(cases.begin(), cases.end(), [&](const gc::CheckCase* c) {
        return std::find(c->params.begin(), c->params.end(), key) != c->params.end();
      });
      if (!used) throw gc::UsageError(fmt::format("[gradcheck] no selected case takes --{}", key));
    }

    bool all_passed = true;
    nlohmann::json reports = nlohmann::json::array();
    int failed = 0;
    for (const gc::CheckCase* c : cases) {
      gc::CheckOptions options{.dtype = dtype == "f32" ? gg::kFloat32 : gg::kFloat64,
                               .seed = seed,
                               .eps = eps,
                               .atol = atol,
                               .rtol = rtol,
                               .params = params_for(*c, given)};
      gc::CaseReport report;
      try {
        report = gc::run_case(*c, options);
      } catch (const gc::UsageError&) {
        throw;
      } catch (const gg::Error& e) {  // the op under test threw: a failure, not bad usage
        report.name = c->name;
        report.dtype = options.dtype;
        report.passed = false;
        spdlog::error("{}: {}", c->name, e.what());
      }
      all_passed &= report.passed;
      failed += report.passed ? 0 : 1;
      if (json) {
        reports.push_back(to_json(report));
      } else {
        fmt::print("{}\n", gc::format_report(report, false));
      }
      for (const gc::InputReport& in : report.inputs)
        for (const gc::Entry& e : in.worst)
          spdlog::debug("{} {}{}: analytic {:.10g} numeric {:.10g} |diff| {:.3e}", report.name,
                        in.name, gg::shape_str(e.index), e.analytic, e.numeric, e.abs_err);
    }
    if (json) {
      std::cout << reports.dump(2) << "\n";
    } else {
      fmt::print("{} case(s) checked in {}: {} passed, {} failed\n", cases.size(), dtype,
                 cases.size() - failed, failed);
    }
    return all_passed ? 0 : kExitFailed;
  } catch (const gc::UsageError& e) {
    fmt::print(stderr, "{}\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {  // anything else is a failure, never a crash
    fmt::print(stderr, "[gradcheck] error: {}\n", e.what());
    return kExitFailed;
  }
}
