#pragma once
// What a gradcheck case is made of (autograd/gradcheck.hpp has the whole picture): its free-form
// parameters, the options and inputs its builder sees, its tolerances, and the case itself. The
// checker (gradcheck_check.hpp) runs a CheckCase, the registry (gradcheck_registry.hpp) names them;
// both build on this file, which knows only core.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../core/error.hpp"
#include "../core/tensor.hpp"

namespace gg::gradcheck {

// Bad usage (unknown case or parameter, unparsable value, unsupported dtype): a CLI exits 2 on it,
// while other gg::Errors thrown by a case are failures of the op under test.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& what) : Error(what) {}
};

// Free-form case parameters, so a tool can pass `--m 3,0,5 --layout 2d3d` through unchanged.
// Getters throw UsageError on unparsable values, naming the parameter.
class Params {
 public:
  Params() = default;
  Params(std::initializer_list<std::pair<const std::string, std::string>> values)
      : values_(values) {}

  void set(const std::string& key, std::string value) { values_[key] = std::move(value); }
  bool has(const std::string& key) const { return values_.count(key) != 0; }
  bool empty() const { return values_.empty(); }
  const std::map<std::string, std::string>& values() const { return values_; }

  std::string get(const std::string& key, const std::string& fallback) const;
  int64_t get_int(const std::string& key, int64_t fallback) const;
  double get_double(const std::string& key, double fallback) const;
  std::vector<int64_t> get_ints(const std::string& key,
                                std::vector<int64_t> fallback) const;  // "3,0,5"
  // One of `choices`, else UsageError listing them.
  std::string get_choice(const std::string& key, const std::string& fallback,
                         const std::vector<std::string>& choices) const;

 private:
  std::map<std::string, std::string> values_;
};

// What build() and forward() see.
struct CaseOptions {
  Dtype dtype = kFloat64;  // the dtype the case's floating inputs are made in
  uint64_t seed = 0;
  Params params = {};
};

struct Input {
  std::string name;
  Tensor tensor;
  bool differentiable = true;  // false for offsets, targets, indices, masks
};
using Inputs = std::vector<Input>;

// Builds the inputs (leaves without requires_grad; the checker sets it).
using BuildFn = std::function<Inputs(const CaseOptions&)>;
// Computes the outputs from the inputs, in build() order. Integer outputs are ignored.
using ForwardFn =
    std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs, const CaseOptions&)>;

struct Tolerance {
  double eps = 1e-6;   // finite-difference step
  double atol = 1e-5;  // pass when |analytic - numeric| <= atol + rtol * |numeric|
  double rtol = 1e-3;
};

struct CheckCase {
  std::string name;
  std::string description;  // one line, shown by `gradcheck --list`
  BuildFn build = {};
  ForwardFn forward = {};
  // Affine in each input separately (matmul, add, mul, views): Float32 mode then steps by 1,
  // which is exact up to rounding. The Catch2 suite runs Float32 mode for these.
  bool linear = false;
  std::optional<Tolerance> f64 = std::nullopt;  // per-op overrides of the defaults below
  std::optional<Tolerance> f32 = std::nullopt;
  std::vector<std::string> params = {};  // names of the Params the case reads
  std::string family = {};               // "elementwise", "reduce", "grouped_mm", "nn", ...
  bool hidden = false;                   // left out of list() (self-tests of the checker itself)
};

// Defaults when a case gives none: Float64 as PyTorch's gradcheck; Float32 by linearity.
Tolerance default_tolerance(Dtype dtype, bool linear);
Tolerance case_tolerance(const CheckCase& c, Dtype dtype);
// Throws UsageError if `params` holds a key that `c` does not list.
void check_params(const CheckCase& c, const Params& params);

}  // namespace gg::gradcheck
