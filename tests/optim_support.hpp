#pragma once
// Helpers shared by the optimiser tests (test_optim.cpp, test_everyday_optim.cpp): fixture
// tensors, the step-by-step replay of a fixture's gradients, and a per-process scratch directory.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "groupgrad.hpp"
#include "tests/test_support.hpp"

namespace gg::test {

// A fixture tensor {"shape", "data"} (Float64 values) made in `dtype`.
inline Tensor from_json(const nlohmann::json& t, Dtype dtype) {
  return tensor<double>(t["data"].get<std::vector<double>>(), t["shape"].get<Shape>()).to(dtype);
}

inline void require_close(const std::vector<double>& got, const std::vector<double>& want,
                          double atol, double rtol) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    REQUIRE(std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]));
  }
}

// The case's "params0" as leaves requiring grad, in `dtype`.
inline std::vector<Tensor> initial_params(const nlohmann::json& c, Dtype dtype) {
  std::vector<Tensor> params;
  for (const nlohmann::json& p : c["params0"])
    params.push_back(from_json(p, dtype).requires_grad_());
  return params;
}

// Sets step `s`'s fixture gradients (null: no gradient) and steps.
inline void fixture_step(const nlohmann::json& c, size_t s, optim::Optimizer& opt,
                         const std::vector<Tensor>& params) {
  opt.zero_grad(/*set_to_none=*/true);
  for (size_t i = 0; i < params.size(); ++i) {
    const nlohmann::json& g = c["grads"][s][i];
    if (!g.is_null()) params[i].set_grad(from_json(g, params[i].dtype()));
  }
  opt.step();
}

// <temp>/gg_test_<name>_<pid>, created.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() /
             fmt::format("gg_test_{}_{}", name, static_cast<long>(::getpid()));
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace gg::test
