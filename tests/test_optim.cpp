// gg::optim (SGD, Adam, AdamW), clip_grad_norm_ and CosineWithWarmup against values PyTorch
// produced (tests/fixtures/make_optim_fixtures.py -> optim.json), plus state save/resume and the
// option checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/copy.hpp"
#include "core/random.hpp"
#include "groupgrad.hpp"
#include "nn/optim/adam_update.hpp"
#include "ops/onednn/context.hpp"
#include "tests/fixture_support.hpp"
#include "tests/optim_support.hpp"

using namespace gg;
using json = nlohmann::json;
using namespace gg::test;  // fixture, from_json, fixture_step, require_close, ...

namespace {

std::unique_ptr<optim::Optimizer> make_optimizer(const json& c, std::vector<Tensor> params) {
  const json& o = c["options"];
  const std::string kind = c["optimizer"];
  auto get = [&](const char* key, double fallback) { return o.value(key, fallback); };
  if (kind == "SGD") {
    return std::make_unique<optim::SGD>(std::move(params),
                                        optim::SGDOptions(o["lr"].get<double>())
                                            .momentum(get("momentum", 0))
                                            .dampening(get("dampening", 0))
                                            .weight_decay(get("weight_decay", 0))
                                            .nesterov(o.value("nesterov", false)));
  }
  std::tuple<double, double> betas{0.9, 0.999};
  if (o.contains("betas")) betas = {o["betas"][0].get<double>(), o["betas"][1].get<double>()};
  if (kind == "Adam") {
    return std::make_unique<optim::Adam>(std::move(params),
                                         optim::AdamOptions(o["lr"].get<double>())
                                             .betas(betas)
                                             .eps(get("eps", 1e-8))
                                             .weight_decay(get("weight_decay", 0))
                                             .amsgrad(o.value("amsgrad", false)));
  }
  REQUIRE(kind == "AdamW");
  optim::AdamWOptions options(o["lr"].get<double>());
  options.betas(betas).eps(get("eps", 1e-8)).amsgrad(o.value("amsgrad", false));
  if (o.contains("weight_decay")) options.weight_decay(o["weight_decay"].get<double>());
  return std::make_unique<optim::AdamW>(std::move(params), options);
}

}  // namespace

TEST_CASE("optim: SGD, Adam and AdamW match PyTorch step by step", "[optim]") {
  const json& cases = fixture("optim.json")["optimizers"];
  REQUIRE(cases.size() >= 14);
  for (const json& c : cases) {
    for (Dtype dtype : {kFloat64, kFloat32}) {
      const std::string name = c["name"];
      INFO("case " << name << " in " << dtype_name(dtype));
      std::vector<Tensor> params = initial_params(c, dtype);
      std::vector<const TensorImpl*> impls;
      for (const Tensor& p : params) impls.push_back(p.impl().get());
      auto opt = make_optimizer(c, params);
      CHECK(opt->name() == c["optimizer"].get<std::string>());
      for (size_t s = 0; s < c["grads"].size(); ++s) {
        INFO("after step " << s + 1);
        fixture_step(c, s, *opt, params);
        for (size_t i = 0; i < params.size(); ++i) {
          INFO("parameter " << i);
          // Float64 follows PyTorch's float64 run to rounding; Float32 to float32 precision.
          require_close(values(params[i]),
                        from_json(c["params"][s][i], kFloat64).to_vector<double>(),
                        dtype == kFloat64 ? 1e-13 : 2e-6, dtype == kFloat64 ? 1e-11 : 2e-5);
        }
      }
      // Updates happened in place: the same handles, still leaves that require grad.
      for (size_t i = 0; i < params.size(); ++i) {
        CHECK(params[i].impl().get() == impls[i]);
        CHECK(params[i].is_leaf());
        CHECK(params[i].requires_grad());
      }
    }
  }
}

TEST_CASE("optim: clip_grad_norm_ matches PyTorch", "[optim]") {
  for (const json& c : fixture("optim.json")["clip_grad_norm"]) {
    INFO("case " << c["name"].get<std::string>());
    std::vector<Tensor> params;
    for (const json& g : c["grads"]) {
      Tensor p = zeros(from_json(g, kFloat64).shape(), kFloat64).requires_grad_();
      p.set_grad(from_json(g, kFloat64));
      params.push_back(p);
    }
    Tensor no_grad_param = zeros({3}, kFloat64).requires_grad_();  // skipped
    params.push_back(no_grad_param);
    const double norm_type = c["norm_type"].is_string() ? std::numeric_limits<double>::infinity()
                                                        : c["norm_type"].get<double>();
    const double total = nn::utils::clip_grad_norm_(params, c["max_norm"].get<double>(), norm_type);
    CHECK(total == Approx(c["total_norm"].get<double>()).epsilon(1e-12));
    for (size_t i = 0; i + 1 < params.size(); ++i)
      require_close(values(params[i].grad()),
                    from_json(c["clipped"][i], kFloat64).to_vector<double>(), 1e-15, 1e-12);
    CHECK_FALSE(no_grad_param.grad().defined());
  }
  Tensor p = zeros({2}).requires_grad_();
  p.set_grad(tensor<float>({INFINITY, 1.0f}, {2}));
  REQUIRE_THROWS_WITH(nn::utils::clip_grad_norm_({p}, 1.0, 2.0, /*error_if_nonfinite=*/true),
                      Catch::Contains("[clip_grad_norm_] the total norm of order 2 of the "
                                      "gradients is non-finite (inf)"));
  CHECK(std::isinf(nn::utils::clip_grad_norm_({p}, 1.0)));
}

TEST_CASE("optim: CosineWithWarmup matches PyTorch's LinearLR + CosineAnnealingLR", "[optim]") {
  for (const json& c : fixture("optim.json")["lr_schedules"]) {
    INFO("case " << c["name"].get<std::string>());
    Tensor p = zeros({1}).requires_grad_();
    optim::AdamW opt({p}, optim::AdamWOptions(c["base_lr"].get<double>()));
    optim::CosineWithWarmup sched(opt, c["warmup_steps"].get<int64_t>(),
                                  c["total_steps"].get<int64_t>(), c["min_lr"].get<double>());
    const auto lrs = c["lrs"].get<std::vector<double>>();
    for (size_t s = 0; s < lrs.size(); ++s) {
      INFO("step " << s);
      CHECK(sched.last_step() == static_cast<int64_t>(s));
      CHECK(opt.lr() == Approx(lrs[s]).epsilon(1e-12).margin(1e-15));
      CHECK(sched.get_lr() == opt.lr());
      opt.step();  // no grad: a no-op, as a training loop would call it
      sched.step();
    }
    // After total_steps the lr stays at min_lr; resuming jumps straight to a step.
    CHECK(opt.lr() == Approx(c["min_lr"].get<double>()).margin(1e-15));
    sched.set_last_step(1);
    CHECK(opt.lr() == Approx(lrs[1]).epsilon(1e-12));
    CHECK(opt.initial_lr() == c["base_lr"].get<double>());
  }
  Tensor p = zeros({1}).requires_grad_();
  optim::SGD sgd({p}, optim::SGDOptions(0.1));
  REQUIRE_THROWS_WITH(optim::CosineWithWarmup(sgd, 10, 10),
                      Catch::Contains("[CosineWithWarmup] needs 0 <= warmup_steps < total_steps, "
                                      "got warmup_steps=10 total_steps=10"));
  REQUIRE_THROWS_WITH(optim::CosineWithWarmup(sgd, 1, 10, 0.5),
                      Catch::Contains("min_lr must be in [0, initial lr 0.1], got 0.5"));
}

TEST_CASE("optim: zero_grad zeroes in place by default, set_to_none drops", "[optim]") {
  Tensor a = ones({3}).requires_grad_(), b = ones({2}).requires_grad_();
  optim::SGD opt({a, b}, optim::SGDOptions(0.1));
  (a * 2.0).sum().backward();
  Tensor g = a.grad();
  opt.zero_grad();
  CHECK(a.grad().impl() == g.impl());
  CHECK(values(g) == std::vector<double>{0, 0, 0});
  CHECK_FALSE(b.grad().defined());
  // A zero gradient still steps (weight decay acts); an undefined one is skipped.
  optim::SGD decay({a, b}, optim::SGDOptions(0.5).weight_decay(1.0));
  decay.step();
  CHECK(values(a) == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(values(b) == std::vector<double>{1, 1});
  opt.zero_grad(/*set_to_none=*/true);
  CHECK_FALSE(a.grad().defined());
}

TEST_CASE("optim: a non-contiguous parameter is updated through its strides", "[optim]") {
  Tensor base = tensor<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor p = base.t().detach().requires_grad_();  // [3, 2] view, non-contiguous
  REQUIRE_FALSE(p.is_contiguous());
  optim::SGD opt({p}, optim::SGDOptions(1.0));
  p.set_grad(ones({3, 2}));
  opt.step();
  CHECK(values(base) == std::vector<double>{0, 1, 2, 3, 4, 5});
}

TEST_CASE("optim: state_dict and a checkpoint file resume exactly", "[optim][serialization]") {
  const json& cases = fixture("optim.json")["optimizers"];
  const auto dir = temp_dir("optim");
  for (const char* which : {"sgd_momentum", "adam_amsgrad_weight_decay", "adamw"}) {
    const json* found = nullptr;
    for (const json& c : cases)
      if (c["name"] == which) found = &c;
    REQUIRE(found != nullptr);
    const json& c = *found;
    INFO("case " << which);
    // Uninterrupted: 5 steps.
    std::vector<Tensor> full = initial_params(c, kFloat32);
    auto opt_full = make_optimizer(c, full);
    for (size_t s = 0; s < 5; ++s) fixture_step(c, s, *opt_full, full);

    // Interrupted after 2 steps: save parameters and optimizer, rebuild both, load, go on.
    std::vector<Tensor> first = initial_params(c, kFloat32);
    auto opt_first = make_optimizer(c, first);
    for (size_t s = 0; s < 2; ++s) fixture_step(c, s, *opt_first, first);
    opt_first->set_lr(opt_first->lr() * 0.5);  // as a scheduler would have
    nn::NamedTensors named;
    for (size_t i = 0; i < first.size(); ++i) named.emplace_back(fmt::format("p{}", i), first[i]);
    const std::string params_path = (dir / "params.safetensors").string();
    const std::string opt_path = (dir / "opt.safetensors").string();
    safetensors::write(params_path, named);
    save_optimizer(*opt_first, opt_path, {{"scheduler_step", "2"}});
    CHECK_FALSE(opt_first->state_dict().empty());

    std::vector<Tensor> resumed = initial_params(c, kFloat32);  // fresh values, overwritten below
    auto opt_resumed = make_optimizer(c, resumed);
    safetensors::File file = safetensors::read(params_path);
    std::map<std::string, Tensor> by_name(file.tensors.begin(), file.tensors.end());
    for (size_t i = 0; i < resumed.size(); ++i)
      copy_(resumed[i], by_name.at(fmt::format("p{}", i)));
    Metadata user = load_optimizer(*opt_resumed, opt_path);
    CHECK(user == Metadata{{"scheduler_step", "2"}});
    CHECK(opt_resumed->lr() == opt_first->lr());
    CHECK(opt_resumed->initial_lr() == opt_first->initial_lr());
    opt_resumed->set_lr(opt_full->lr());
    for (size_t s = 2; s < 5; ++s) fixture_step(c, s, *opt_resumed, resumed);
    for (size_t i = 0; i < full.size(); ++i) CHECK(values(resumed[i]) == values(full[i]));
    // The state itself survives a state_dict round trip unchanged.
    auto state = opt_full->state_dict();
    auto opt_copy = make_optimizer(c, initial_params(c, kFloat32));
    opt_copy->load_state_dict(state);
    auto again = opt_copy->state_dict();
    REQUIRE(again.size() == state.size());
    for (size_t i = 0; i < state.size(); ++i) {
      CHECK(again[i].first == state[i].first);
      CHECK(values(again[i].second) == values(state[i].second));
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("optim: Adam state names and step counts", "[optim]") {
  Tensor a = ones({2}).requires_grad_(), b = ones({3}).requires_grad_();
  optim::Adam opt({a, b}, optim::AdamOptions(0.1).amsgrad(true));
  a.set_grad(ones({2}));
  opt.step();
  opt.step();
  std::vector<std::string> names;
  for (auto& [name, t] : opt.state_dict()) names.push_back(name);
  // b never had a gradient: no state.
  CHECK(names == std::vector<std::string>{"state.0.exp_avg", "state.0.exp_avg_sq",
                                          "state.0.max_exp_avg_sq", "state.0.step"});
  CHECK(opt.state_dict()[3].second.item<int64_t>() == 2);
  CHECK(opt.state_dict()[3].second.dim() == 0);
}

TEST_CASE("optim: bad options and bad state are rejected", "[optim][errors]") {
  Tensor p = ones({2}).requires_grad_();
  REQUIRE_THROWS_WITH(optim::SGD({p}, optim::SGDOptions(0.1).nesterov(true)),
                      Catch::Contains("[SGD] nesterov momentum needs momentum > 0 and dampening = "
                                      "0, got momentum=0 dampening=0"));
  REQUIRE_THROWS_WITH(optim::SGD({p}, optim::SGDOptions(-1)),
                      Catch::Contains("[SGD] learning rate must be >= 0, got -1"));
  REQUIRE_THROWS_WITH(optim::Adam({p}, optim::AdamOptions(0.1).betas({0.9, 1.0})),
                      Catch::Contains("[Adam] betas must be in [0, 1), got (0.9, 1)"));
  REQUIRE_THROWS_WITH(optim::AdamW({p}, optim::AdamWOptions().eps(-1)),
                      Catch::Contains("[AdamW] eps must be >= 0, got -1"));
  REQUIRE_THROWS_WITH(optim::Adam({}, optim::AdamOptions()),
                      Catch::Contains("[Adam] got an empty parameter list"));
  REQUIRE_THROWS_WITH(optim::Adam({p, p}),
                      Catch::Contains("parameter 1 [2] appears more than once"));
  REQUIRE_THROWS_WITH(optim::Adam({p * 2.0}),
                      Catch::Contains("[Adam] parameter 0 [2] is not a leaf"));
  REQUIRE_THROWS_WITH(optim::SGD({zeros({2}, kInt64)}, optim::SGDOptions(0.1)),
                      Catch::Contains("[SGD] parameter 0 is int64 [2]: only floating-point"));
  CHECK(optim::AdamWOptions().weight_decay() == 0.01);
  CHECK(optim::AdamOptions().weight_decay() == 0.0);
  CHECK(optim::AdamOptions().lr() == 1e-3);

  optim::Adam adam({p});
  p.set_grad(ones({2}));
  adam.step();
  auto state = adam.state_dict();
  auto with = [&](std::string name, Tensor t) {
    auto s = state;
    s.emplace_back(std::move(name), std::move(t));
    return s;
  };
  REQUIRE_THROWS_WITH(adam.load_state_dict(with("momentum", zeros({2}))),
                      Catch::Contains("[Adam] unexpected state entry 'momentum' (expected "
                                      "'state.<index>.<key>')"));
  REQUIRE_THROWS_WITH(adam.load_state_dict(with("state.1.exp_avg", zeros({2}))),
                      Catch::Contains("'state.1.exp_avg' is for parameter 1 but the optimizer has "
                                      "1 parameters"));
  REQUIRE_THROWS_WITH(
      adam.load_state_dict(with("state.0.momentum_buffer", zeros({2}))),
      Catch::Contains("has key 'momentum_buffer', which Adam does not use (it uses: "
                      "step, exp_avg, exp_avg_sq)"));
  REQUIRE_THROWS_WITH(
      adam.load_state_dict({{"state.0.exp_avg", zeros({3})}}),
      Catch::Contains("'state.0.exp_avg' has shape [3] but parameter 0 has shape [2]"));
  REQUIRE_THROWS_WITH(adam.load_state_dict({{"state.0.exp_avg", zeros({2})}}),
                      Catch::Contains("[Adam] state of parameter 0 lacks 'state.0.step'"));
  REQUIRE_THROWS_WITH(adam.load_state_dict(with("state.0.exp_avg", zeros({2}))),
                      Catch::Contains("'state.0.exp_avg' appears twice"));
  // A failed load changes nothing.
  CHECK(adam.state_dict().size() == state.size());
  CHECK(adam.state_dict()[2].second.item<int64_t>() == 1);

  const auto dir = temp_dir("optim");
  const std::string path = (dir / "adam.safetensors").string();
  save_optimizer(adam, path);
  optim::SGD sgd({p}, optim::SGDOptions(0.1));
  REQUIRE_THROWS_WITH(load_optimizer(sgd, path),
                      Catch::Contains("[load_optimizer] " + path +
                                      ": the file holds Adam state but the optimizer is SGD"));
  Tensor q = ones({2}).requires_grad_();
  optim::Adam two({p, q});
  REQUIRE_THROWS_WITH(
      load_optimizer(two, path),
      Catch::Contains("the file holds state for 1 parameters but the optimizer has 2"));
  Tensor r = ones({5}).requires_grad_();
  optim::Adam other_shape({r});
  REQUIRE_THROWS_WITH(load_optimizer(other_shape, path),
                      Catch::Contains("[load_optimizer] " + path + ": [Adam] state entry"));
  REQUIRE_THROWS_WITH(save_optimizer(adam, path, {{"gg.lr", "1"}}),
                      Catch::Contains("metadata key 'gg.lr' is reserved"));
  nn::Linear lin(2, 2);
  save(lin, path);
  REQUIRE_THROWS_WITH(load_optimizer(adam, path), Catch::Contains("not an optimizer checkpoint"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("optim: Adam's vectorised Float32 update is the ISA's clone with the scalar loop's bits",
          "[optim]") {
  // The clone follows the CPU capped by ONEDNN_MAX_CPU_ISA, so CI's runs as an AVX2 and an SSE4.1
  // CPU test the avx2 and baseline clones wherever CI runs.
  auto allows = [](dnnl::cpu_isa i) { return onednn::isa_at_least(i); };
  const std::string clone = optim::detail::update_f32_clone();
  INFO("oneDNN ISA " << onednn::isa_name(onednn::effective_isa()) << ", clone " << clone);
  if (!allows(dnnl::cpu_isa::avx2)) CHECK(clone == "baseline");
  if (allows(dnnl::cpu_isa::avx2) && !allows(dnnl::cpu_isa::avx512_core)) CHECK(clone == "avx2");
  if (allows(dnnl::cpu_isa::avx512_core)) CHECK(clone == "avx512f");

  manual_seed(5);
  const int64_t n = 1037;  // a vector body and a tail
  for (int flags = 0; flags < 6; ++flags) {
    const optim::detail::AdamFlags f{flags / 2 == 1, flags / 2 == 2, flags % 2 == 1};
    const optim::detail::AdamUpdate u{0.9, 0.999, 1e-8, 0.01, 1e-3, 0.3, 0.99};
    std::vector<float> p = randn({n}).to_vector<float>(), g = randn({n}).to_vector<float>(),
                       m = randn({n}).to_vector<float>(), v = rand({n}).to_vector<float>(),
                       vmax = rand({n}).to_vector<float>();
    std::vector<float> p2 = p, m2 = m, v2 = v, vmax2 = vmax;
    optim::detail::update_f32(u, f, n, p.data(), g.data(), m.data(), v.data(), vmax.data());
    optim::detail::with_flags(f, [&]<bool D, bool WD, bool A>() {
      optim::detail::update<float, D, WD, A>(u, n, p2.data(), g.data(), m2.data(), v2.data(),
                                             vmax2.data());
    });
    INFO("flags " << flags);
    CHECK(std::memcmp(p.data(), p2.data(), n * sizeof(float)) == 0);
    CHECK(std::memcmp(m.data(), m2.data(), n * sizeof(float)) == 0);
    CHECK(std::memcmp(v.data(), v2.data(), n * sizeof(float)) == 0);
    CHECK(std::memcmp(vmax.data(), vmax2.data(), n * sizeof(float)) == 0);
  }
}
