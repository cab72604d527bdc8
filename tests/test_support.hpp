#pragma once
// Helpers shared by test files: Float64 views of values and a local central-difference check
// (independent of the gradcheck library, so the library itself is not its own oracle).
#include <fmt/format.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "autograd/grad_mode.hpp"
#include "core/error.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/reduce.hpp"

namespace gg::test {

// A fresh directory under the system's temp directory, named after `prefix`, the process and a
// counter (several tests and ctest's parallel processes never share one), removed with its
// contents at the end of the scope.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           fmt::format("{}_{}_{}", prefix, static_cast<long>(::getpid()), counter++);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;  // never throw from a destructor
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
};

inline std::vector<double> values(const Tensor& t) { return t.to(kFloat64).to_vector<double>(); }

// The gg::Error message of call(), or a description of what happened instead (any thread).
inline std::string outcome(const std::function<void()>& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<an exception that is not gg::Error: ") + e.what() + ">";
  }
  return "<no error>";
}

// Central differences in Float64 over tensors whose .grad() a backward of the scalar loss() has
// already filled: compares each element's gradient with (loss(x + eps) - loss(x - eps)) / (2 eps),
// stepping the tensors' own (contiguous Float64) storage in place and restoring it.
inline void check_central_differences(const std::vector<Tensor>& checked,
                                      const std::function<double()>& loss, double atol = 1e-7,
                                      double rtol = 1e-6) {
  const double eps = 1e-6;
  for (size_t i = 0; i < checked.size(); ++i) {
    REQUIRE(checked[i].grad().defined());
    REQUIRE(checked[i].grad().shape() == checked[i].shape());
    REQUIRE(checked[i].is_contiguous());
    std::vector<double> analytic = values(checked[i].grad());
    double* p = checked[i].data_ptr<double>();
    for (int64_t j = 0; j < checked[i].numel(); ++j) {
      const double v = p[j];
      p[j] = v + eps;
      const double plus = loss();
      p[j] = v - eps;
      const double minus = loss();
      p[j] = v;
      const double numeric = (plus - minus) / (2 * eps);
      INFO("input " << i << " element " << j << ": analytic " << analytic[j] << " numeric "
                    << numeric);
      REQUIRE(std::abs(analytic[j] - numeric) <= atol + rtol * std::abs(numeric));
    }
  }
}

// Central differences in Float64: for L = sum(f(inputs) * r) with a fixed random r, compares the
// backward's dL/dinput with (L(x + eps) - L(x - eps)) / (2 eps), element by element.
inline void check_gradients(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            std::vector<Tensor> inputs, double atol = 1e-7, double rtol = 1e-6) {
  for (Tensor& t : inputs) {
    t = t.detach().to(kFloat64).clone();
    t.requires_grad_();
  }
  Tensor out = f(inputs);
  Tensor r = randn(out.shape(), kFloat64);
  (out * r).sum().backward();
  check_central_differences(
      inputs,
      [&] {
        NoGradGuard no_grad;
        return (f(inputs) * r).sum().item<double>();
      },
      atol, rtol);
}

}  // namespace gg::test
