#pragma once
// gradcheck: compares the gradient our backward computes with central finite differences, per
// differentiable input of a registered case. Both the Catch2 suite (tests/test_gradcheck.cpp) and
// the CLI (tools/gradcheck) run the same Registry.
//
// How a check works (run_case):
//   1. manual_seed(seed), then case.build(options) makes the named inputs in the requested dtype.
//   2. The outputs are reduced to one scalar with a fixed random projection L = sum_i <out_i, r_i>,
//      so a single backward (grad_output = r_i) gives the whole gradient of every input.
//   3. Each element x_j of each differentiable input is stepped in place (x_j +- eps, through its
//      strides, so non-contiguous inputs stay non-contiguous) and L is re-evaluated with grad mode
//      off: numeric_j = (L+ - L-) / (x+ - x-), using the values actually stored after rounding.
//   4. Pass when |analytic - numeric| <= atol + rtol * |numeric| for every element.
// Float32 mode runs the same case in Float32 (the oneDNN path). Cases marked `linear` (affine in
// each input: matmul, add, views...) use a large step there, which is exact up to rounding; in
// addition the Float32 analytic gradient must match the Float64 analytic gradient computed from
// the same (rounded) input values.
//
// Registering a case (explicitly; there are no static initializers, the static linker drops them):
//   void register_my_cases(gradcheck::Registry& r) {
//     r.register_case({.name = "softmax", .description = "softmax over the last dim",
//                      .build = [](const CaseOptions& o) {
//                        return Inputs{{"x", gen::normal({3, 5}, o.dtype)}};
//                      },
//                      .forward = [](const std::vector<Tensor>& x, const CaseOptions&) {
//                        return std::vector<Tensor>{softmax(x[0], -1)};
//                      }});
//   }
// and call it from register_builtin_cases() in autograd/gradcheck_cases.cpp. Case builders must
// keep inputs away from points where the op is not differentiable (relu at 0, ties in max, abs at
// 0) by at least 10 * eps; the gen:: helpers below do that. Inputs must be leaves that do not share
// storage with each other and are not expanded (stride 0), since elements are stepped in place.
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
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

struct CheckOptions {
  Dtype dtype = kFloat64;  // kFloat64 or kFloat32
  uint64_t seed = 0;
  std::optional<double> eps = std::nullopt;  // override the case's tolerances
  std::optional<double> atol = std::nullopt;
  std::optional<double> rtol = std::nullopt;
  Params params = {};
  bool strict_params = true;  // reject params the case does not list in CheckCase::params
  size_t worst_entries = 5;   // Jacobian entries kept per input, largest violation first
};

// One Jacobian entry (for the gradient of the projected scalar: one row of the Jacobian).
struct Entry {
  Shape index;  // multi-index into the input
  double analytic = 0;
  double numeric = 0;
  double reference = std::numeric_limits<double>::quiet_NaN();  // Float64 analytic (Float32 mode)
  double abs_err = 0;
};

struct InputReport {
  std::string name;
  Shape shape;
  Dtype dtype = kFloat64;
  double max_abs_err = 0;
  // |analytic - numeric| / max(|numeric|, atol): relative where the gradient is not tiny.
  double max_rel_err = 0;
  Tolerance tolerance;
  int64_t mismatches = 0;  // elements outside the tolerance
  bool passed = true;
  std::vector<Entry> worst;  // the entries that differ most (for --verbose)
};

struct CaseReport {
  std::string name;
  Dtype dtype = kFloat64;
  uint64_t seed = 0;
  Tolerance tolerance;
  std::vector<InputReport> inputs;  // the differentiable ones, in build() order
  bool passed = false;
  double seconds = 0;
};

// Checks every differentiable input of `c`. Throws UsageError for bad options; other gg::Errors
// raised by the case itself (a broken op) propagate unchanged.
CaseReport run_case(const CheckCase& c, const CheckOptions& options = {});
// Throws UsageError if `params` holds a key that `c` does not list.
void check_params(const CheckCase& c, const Params& params);

// A table, one row per input: name, shape, max abs err, max rel err, tolerance, PASS/FAIL; with
// `verbose`, the worst Jacobian entries of each input below its row.
std::string format_report(const CaseReport& report, bool verbose = false);

// Named cases. Registry::instance() is the process-wide one, with the built-in cases registered
// on first use; a local Registry starts empty.
class Registry {
 public:
  static Registry& instance();

  // Throws gg::Error for an empty or duplicate name or a missing build/forward.
  void register_case(CheckCase c);
  std::vector<const CheckCase*> list(bool include_hidden = false) const;  // sorted by name
  const CheckCase* find(std::string_view name) const;                     // nullptr if absent
  const CheckCase& get(std::string_view name) const;  // throws UsageError if absent

 private:
  std::map<std::string, CheckCase, std::less<>> cases_;  // nodes are stable: pointers stay valid
  mutable std::mutex mutex_;
};

// All cases of the library (autograd/gradcheck_cases.cpp): core ops, nn ops, shape ops.
void register_builtin_cases(Registry& registry);

// Value generators for case builders. They draw from the global generator (run_case seeds it) in
// Float64 and convert, so a seed gives the same values in every dtype up to rounding.
namespace gen {
Tensor normal(Shape shape, Dtype dtype, double scale = 1.0);
Tensor uniform(Shape shape, Dtype dtype, double lo, double hi);
// |x| >= min_abs with a random sign: keeps relu, abs and divisors away from 0.
Tensor away_from_zero(Shape shape, Dtype dtype, double min_abs = 0.25);
// Distinct values at least `gap` apart in random order: no ties for max.
Tensor distinct(Shape shape, Dtype dtype, double gap = 0.25);
// The same values laid out transposed in memory (last two dims): a non-contiguous leaf.
Tensor noncontiguous(const Tensor& t);
}  // namespace gen

}  // namespace gg::gradcheck
