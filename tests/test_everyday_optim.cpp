// Parameter groups and the StepLR / MultiStepLR / ExponentialLR / LambdaLR schedulers against
// values PyTorch produced (tests/fixtures/make_param_group_fixtures.py -> param_groups.json):
// two groups that differ in lr, weight decay and more, several steps, the lr of every group and
// the parameters after every step, and the final state numbered through the groups. Plus the
// group API (param_groups(), add_param_group, lr()/set_lr with several groups), per-group
// checkpoints and the errors.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "groupgrad.hpp"
#include "tests/fixture_support.hpp"
#include "tests/optim_support.hpp"

using namespace gg;
using json = nlohmann::json;
using namespace gg::test;  // fixture, from_json, fixture_step, require_close, ...

namespace {

// The fixture's LambdaLR functions, as make_param_group_fixtures.py writes them.
std::function<double(int64_t)> fixture_lambda(const std::string& name) {
  if (name == "inverse") return [](int64_t s) { return 1.0 / (1.0 + static_cast<double>(s)); };
  if (name == "warmup_decay")
    return [](int64_t s) {
      return std::min(1.0, static_cast<double>(s + 1) / 3.0) * std::pow(0.9, s);
    };
  REQUIRE(name == "half_then_double");
  return [](int64_t s) { return s < 3 ? 0.5 : 2.0; };
}

std::tuple<double, double> betas_of(const json& o) {
  return {o["betas"][0].get<double>(), o["betas"][1].get<double>()};
}

optim::SGDGroupOptions sgd_overrides(const json& o) {
  optim::SGDGroupOptions g;
  if (o.contains("lr")) g.lr = o["lr"].get<double>();
  if (o.contains("momentum")) g.momentum = o["momentum"].get<double>();
  if (o.contains("dampening")) g.dampening = o["dampening"].get<double>();
  if (o.contains("weight_decay")) g.weight_decay = o["weight_decay"].get<double>();
  if (o.contains("nesterov")) g.nesterov = o["nesterov"].get<bool>();
  return g;
}

optim::AdamGroupOptions adam_overrides(const json& o) {
  optim::AdamGroupOptions g;
  if (o.contains("lr")) g.lr = o["lr"].get<double>();
  if (o.contains("betas")) g.betas = betas_of(o);
  if (o.contains("eps")) g.eps = o["eps"].get<double>();
  if (o.contains("weight_decay")) g.weight_decay = o["weight_decay"].get<double>();
  if (o.contains("amsgrad")) g.amsgrad = o["amsgrad"].get<bool>();
  return g;
}

template <class Options>
void apply_adam_defaults(Options& options, const json& d) {
  if (d.contains("betas")) options.betas(betas_of(d));
  if (d.contains("eps")) options.eps(d["eps"].get<double>());
  if (d.contains("weight_decay")) options.weight_decay(d["weight_decay"].get<double>());
  if (d.contains("amsgrad")) options.amsgrad(d["amsgrad"].get<bool>());
}

// The fixture case's optimizer, built from groups as a user would.
std::unique_ptr<optim::Optimizer> make_optimizer(const json& c, const std::vector<Tensor>& params) {
  const json& d = c["defaults"];
  const std::string kind = c["optimizer"];
  auto group_params = [&](const json& g) {
    std::vector<Tensor> out;
    for (size_t i : g["params"].get<std::vector<size_t>>()) out.push_back(params[i]);
    return out;
  };
  if (kind == "SGD") {
    optim::SGDOptions defaults(d["lr"].get<double>());
    defaults.momentum(d.value("momentum", 0.0))
        .dampening(d.value("dampening", 0.0))
        .weight_decay(d.value("weight_decay", 0.0))
        .nesterov(d.value("nesterov", false));
    std::vector<optim::SGDParamGroup> groups;
    for (const json& g : c["groups"])
      groups.push_back({group_params(g), sgd_overrides(g["options"])});
    return std::make_unique<optim::SGD>(groups, defaults);
  }
  std::vector<optim::AdamParamGroup> groups;
  for (const json& g : c["groups"])
    groups.push_back({group_params(g), adam_overrides(g["options"])});
  if (kind == "Adam") {
    optim::AdamOptions defaults(d["lr"].get<double>());
    apply_adam_defaults(defaults, d);
    return std::make_unique<optim::Adam>(groups, defaults);
  }
  REQUIRE(kind == "AdamW");
  optim::AdamWOptions defaults(d["lr"].get<double>());
  apply_adam_defaults(defaults, d);
  return std::make_unique<optim::AdamW>(groups, defaults);
}

std::unique_ptr<optim::LRScheduler> make_scheduler(const json& s, optim::Optimizer& opt) {
  const std::string kind = s["kind"];
  if (kind == "StepLR")
    return std::make_unique<optim::StepLR>(opt, s["step_size"].get<int64_t>(),
                                           s["gamma"].get<double>());
  if (kind == "LambdaLR")
    return std::make_unique<optim::LambdaLR>(opt, fixture_lambda(s["lambda"]));
  if (kind == "ExponentialLR")
    return std::make_unique<optim::ExponentialLR>(opt, s["gamma"].get<double>());
  REQUIRE(kind == "MultiStepLR");
  return std::make_unique<optim::MultiStepLR>(opt, s["milestones"].get<std::vector<int64_t>>(),
                                              s["gamma"].get<double>());
}

}  // namespace

TEST_CASE("everyday optim: two parameter groups under a scheduler match PyTorch step by step",
          "[everyday_optim]") {
  const json& cases = fixture("param_groups.json")["cases"];
  REQUIRE(cases.size() >= 7);
  for (const json& c : cases) {
    for (Dtype dtype : {kFloat64, kFloat32}) {
      INFO("case " << c["name"].get<std::string>() << " in " << dtype_name(dtype));
      std::vector<Tensor> params = initial_params(c, dtype);
      auto opt = make_optimizer(c, params);
      REQUIRE(opt->num_param_groups() == 2);
      REQUIRE(opt->parameters().size() == params.size());
      auto sched = make_scheduler(c["scheduler"], *opt);
      const size_t steps = c["grads"].size();
      for (size_t s = 0; s <= steps; ++s) {
        INFO("before step " << s + 1);
        const auto want_lrs = c["lrs"][s].get<std::vector<double>>();
        require_close(sched->get_last_lr(), want_lrs, 1e-15, 1e-12);
        for (size_t g = 0; g < want_lrs.size(); ++g)
          CHECK(opt->group_lr(g) == Approx(want_lrs[g]).epsilon(1e-12));
        CHECK(opt->lr() == opt->group_lr(0));
        CHECK(sched->get_lr() == opt->group_lr(0));
        if (s == steps) break;
        fixture_step(c, s, *opt, params);
        sched->step();
        for (size_t i = 0; i < params.size(); ++i) {
          INFO("parameter " << i);
          require_close(values(params[i]),
                        from_json(c["params"][s][i], kFloat64).to_vector<double>(),
                        dtype == kFloat64 ? 1e-13 : 2e-6, dtype == kFloat64 ? 1e-11 : 2e-5);
        }
      }
      // The state is numbered through the groups in order, as PyTorch's state_dict numbers it.
      const nn::NamedTensors state = opt->state_dict();
      std::map<std::string, Tensor> ours(state.begin(), state.end());
      const json& want = c["state"];
      CHECK(ours.size() == want.size());
      for (const auto& [name, t] : want.items()) {
        INFO("state entry " << name);
        REQUIRE(ours.count(name) == 1);
        require_close(values(ours.at(name)), from_json(t, kFloat64).to_vector<double>(),
                      dtype == kFloat64 ? 1e-13 : 2e-6, dtype == kFloat64 ? 1e-11 : 2e-5);
      }
    }
  }
}

TEST_CASE("everyday optim: the documented AdamW groups, param_groups() and add_param_group",
          "[everyday_optim]") {
  Tensor w = ones({2, 2}).requires_grad_(), b = ones({2}).requires_grad_();
  Tensor norm = ones({2}).requires_grad_();
  std::vector<Tensor> decay{w}, no_decay{b, norm};
  optim::AdamW opt({{decay}, {no_decay, {.weight_decay = 0.0}}},
                   optim::AdamWOptions(1e-3).weight_decay(0.01));
  REQUIRE(opt.param_groups().size() == 2);
  CHECK(opt.param_groups()[0].options().weight_decay() == 0.01);
  CHECK(opt.param_groups()[1].options().weight_decay() == 0.0);
  CHECK(opt.param_groups()[1].options().lr() == 1e-3);  // unset: the optimizer's
  CHECK(opt.param_groups()[1].params().size() == 2);
  CHECK(opt.parameters().size() == 3);

  // A zero gradient isolates the weight decay: AdamW shrinks w by lr * wd, leaves b and norm.
  for (Tensor t : {w, b, norm}) t.set_grad(zeros(t.shape()));
  opt.step();
  CHECK(values(w) == std::vector<double>(4, static_cast<double>(1.0f * (1.0f - 1e-3f * 0.01f))));
  CHECK(values(b) == std::vector<double>{1, 1});

  // Changing one group's options in place, as PyTorch's opt.param_groups[1]["lr"] = ...
  opt.param_groups()[1].options().lr(0.5).weight_decay(1.0);
  CHECK(opt.group_lr(1) == 0.5);
  opt.step();
  CHECK(values(b) == std::vector<double>{0.5, 0.5});  // p *= 1 - lr * wd
  CHECK(opt.lr() == 1e-3);                            // group 0

  // set_lr sets every group; initial lrs are kept per group.
  opt.set_lr(0.25);
  CHECK(opt.group_lr(0) == 0.25);
  CHECK(opt.group_lr(1) == 0.25);
  CHECK(opt.group_initial_lr(1) == 1e-3);

  // add_param_group: unset options take the optimizer's defaults; new state index continues.
  Tensor extra = ones({3}).requires_grad_();
  opt.add_param_group({{extra}, {.lr = 0.1}});
  REQUIRE(opt.num_param_groups() == 3);
  CHECK(opt.param_groups()[2].options().weight_decay() == 0.01);
  CHECK(opt.group_initial_lr(2) == 0.1);
  extra.set_grad(ones({3}));
  opt.step();
  CHECK(opt.state_dict().back().first == "state.3.step");

  // SGD and Adam take groups the same way; a vector of groups built at run time works too.
  Tensor p = ones({2}).requires_grad_(), q = ones({2}).requires_grad_();
  optim::SGD sgd({{{p}}, {{q}, {.lr = 0.5, .momentum = 0.9}}}, optim::SGDOptions(0.1));
  CHECK(sgd.param_groups()[1].options().momentum() == 0.9);
  CHECK(sgd.param_groups()[0].options().momentum() == 0.0);
  std::vector<optim::AdamParamGroup> groups{{{p}, {.betas = std::tuple{0.5, 0.6}}}};
  optim::Adam adam(groups);
  CHECK(std::get<0>(adam.param_groups()[0].options().betas()) == 0.5);
  CHECK(adam.options().lr() == 1e-3);
}

TEST_CASE("everyday optim: schedulers scale each group from its own initial lr",
          "[everyday_optim]") {
  Tensor a = ones({1}).requires_grad_(), b = ones({1}).requires_grad_();
  optim::SGD opt({{{a}}, {{b}, {.lr = 0.01}}}, optim::SGDOptions(0.1));
  optim::CosineWithWarmup cosine(opt, 2, 10);
  CHECK(opt.group_lr(0) == Approx(0.05));
  CHECK(opt.group_lr(1) == Approx(0.005));
  cosine.set_last_step(2);
  CHECK(opt.group_lr(0) == Approx(0.1));
  CHECK(opt.group_lr(1) == Approx(0.01));

  // A LambdaLR with one function per group.
  optim::LambdaLR per_group(
      opt, {[](int64_t s) { return 1.0 + static_cast<double>(s); }, [](int64_t) { return 0.5; }});
  per_group.step();
  CHECK(opt.group_lr(0) == Approx(0.2));
  CHECK(opt.group_lr(1) == Approx(0.005));
  CHECK(per_group.get_last_lr() == std::vector<double>{opt.group_lr(0), opt.group_lr(1)});

  // Resuming at a step sets every group.
  optim::StepLR step(opt, 3, 0.5);
  step.set_last_step(7);
  CHECK(opt.group_lr(0) == Approx(0.025));
  CHECK(opt.group_lr(1) == Approx(0.0025));
  optim::ExponentialLR exp(opt, 0.5);
  exp.set_last_step(3);
  CHECK(opt.group_lr(1) == Approx(0.00125));
  optim::MultiStepLR multi(opt, {5, 1}, 0.1);
  CHECK(opt.group_lr(0) == Approx(0.1));
  multi.set_last_step(5);
  CHECK(opt.group_lr(0) == Approx(0.001));
  CHECK(multi.lr_at(4) == Approx(0.01));
}

TEST_CASE("everyday optim: a checkpoint keeps every group's lr; old ones set all groups",
          "[everyday_optim][serialization]") {
  const auto dir = temp_dir("everyday_optim");
  const std::string path = (dir / "opt.safetensors").string();
  Tensor a = ones({2}).requires_grad_(), b = ones({3}).requires_grad_();
  optim::AdamW opt({{{a}}, {{b}, {.lr = 0.02, .weight_decay = 0.0}}}, optim::AdamWOptions(0.1));
  optim::StepLR sched(opt, 1, 0.5);
  a.set_grad(ones({2}));
  b.set_grad(ones({3}));
  opt.step();
  sched.step();
  save_optimizer(opt, path);

  Tensor a2 = ones({2}).requires_grad_(), b2 = ones({3}).requires_grad_();
  optim::AdamW resumed({{{a2}}, {{b2}, {.lr = 0.02, .weight_decay = 0.0}}},
                       optim::AdamWOptions(0.1));
  load_optimizer(resumed, path);
  CHECK(resumed.group_lr(0) == 0.05);
  CHECK(resumed.group_lr(1) == 0.01);
  CHECK(resumed.group_initial_lr(1) == 0.02);
  CHECK(resumed.state_dict().size() == opt.state_dict().size());

  // The same file into a one-group optimizer: the group counts differ.
  Tensor c = ones({2}).requires_grad_(), d = ones({3}).requires_grad_();
  optim::AdamW one_group({c, d}, optim::AdamWOptions(0.1));
  REQUIRE_THROWS_WITH(load_optimizer(one_group, path),
                      Catch::Contains("'gg.group_lrs' holds 2 learning rates but the optimizer "
                                      "has 1 parameter groups"));

  // A checkpoint without per-group entries (written before groups existed) sets every group.
  Metadata meta = safetensors::read_metadata(path);
  meta.erase("gg.group_lrs");
  meta.erase("gg.group_initial_lrs");
  safetensors::write(path, opt.state_dict(), meta);
  load_optimizer(resumed, path);
  CHECK(resumed.group_lr(0) == 0.05);
  CHECK(resumed.group_lr(1) == 0.05);
  CHECK(resumed.group_initial_lr(1) == 0.1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("everyday optim: bad groups and bad scheduler arguments are rejected",
          "[everyday_optim][errors]") {
  Tensor p = ones({2}).requires_grad_(), q = ones({3}).requires_grad_();
  REQUIRE_THROWS_WITH(optim::AdamW({{{p}}, {{q, p}, {.weight_decay = 0.0}}}),
                      Catch::Contains("[AdamW] parameter 1 [2] of parameter group 1 is already in "
                                      "parameter group 0"));
  REQUIRE_THROWS_WITH(optim::SGD(std::vector<optim::SGDParamGroup>{}, optim::SGDOptions(0.1)),
                      Catch::Contains("[SGD] got an empty parameter list (no parameter groups)"));
  REQUIRE_THROWS_WITH(optim::Adam({{{p}}, {{q}, {.lr = -1.0}}}),
                      Catch::Contains("[Adam] learning rate must be >= 0, got -1 (parameter group "
                                      "1)"));
  REQUIRE_THROWS_WITH(
      optim::SGD({{{p}}, {{q}, {.nesterov = true}}}, optim::SGDOptions(0.1)),
      Catch::Contains("[SGD] nesterov momentum needs momentum > 0 and dampening = 0, got "
                      "momentum=0 dampening=0 (parameter group 1)"));
  optim::Adam adam({{{p}}, {{q}, {.lr = 0.5}}});
  REQUIRE_THROWS_WITH(adam.add_param_group({{q}}),
                      Catch::Contains("[Adam] parameter 0 [3] of parameter group 2 is already in "
                                      "parameter group 1"));
  CHECK(adam.num_param_groups() == 2);  // the failed add changed nothing
  REQUIRE_THROWS_WITH(adam.group_lr(2),
                      Catch::Contains("[Adam] parameter group 2 is out of range (the optimizer "
                                      "has 2)"));
  REQUIRE_THROWS_WITH(adam.set_group_lr(1, -0.5),
                      Catch::Contains("[Adam] learning rate must be >= 0, got -0.5 (parameter "
                                      "group 1)"));
  // Options changed in place are checked when stepping.
  adam.param_groups()[1].options().betas({0.9, 2.0});
  q.set_grad(ones({3}));
  REQUIRE_THROWS_WITH(adam.step(), Catch::Contains("[Adam] betas must be in [0, 1), got (0.9, 2) "
                                                   "(parameter group 1)"));
  adam.param_groups()[1].options().betas({0.9, 0.999});

  REQUIRE_THROWS_WITH(optim::StepLR(adam, 0), Catch::Contains("[StepLR] step_size must be > 0, "
                                                              "got 0"));
  REQUIRE_THROWS_WITH(optim::StepLR(adam, 2, -0.5),
                      Catch::Contains("[StepLR] gamma must be finite and >= 0, got -0.5"));
  REQUIRE_THROWS_WITH(optim::ExponentialLR(adam, NAN),
                      Catch::Contains("[ExponentialLR] gamma must be finite and >= 0, got nan"));
  REQUIRE_THROWS_WITH(optim::MultiStepLR(adam, {3, -1}),
                      Catch::Contains("[MultiStepLR] milestones must be >= 0, got [-1, 3]"));
  REQUIRE_THROWS_WITH(optim::LambdaLR(adam, std::function<double(int64_t)>()),
                      Catch::Contains("[LambdaLR] lr_lambda 0 is an empty function"));
  REQUIRE_THROWS_WITH(
      optim::LambdaLR(adam,
                      std::vector<std::function<double(int64_t)>>{[](int64_t) { return 1.0; }}),
      Catch::Contains("[LambdaLR] got 1 lr_lambdas but the optimizer has 2 parameter groups"));
  REQUIRE_THROWS_WITH(
      optim::LambdaLR(adam, [](int64_t s) { return 1.0 - static_cast<double>(s); })
          .set_last_step(3),
      Catch::Contains("[LambdaLR] the learning rate of parameter group 0 at step 3 is -"));
  optim::StepLR ok(adam, 1);
  REQUIRE_THROWS_WITH(ok.set_last_step(-1), Catch::Contains("[StepLR] step must be >= 0, got -1"));
  optim::SGD sgd({{{p}}, {{q}, {.lr = 0.1}}}, optim::SGDOptions(1.0));
  REQUIRE_THROWS_WITH(optim::CosineWithWarmup(sgd, 1, 10, 0.5),
                      Catch::Contains("[CosineWithWarmup] min_lr must be in [0, initial lr 0.1 of "
                                      "parameter group 1], got 0.5"));
}
