#pragma once
// The gradient checker (autograd/gradcheck.hpp explains how a check works): runs one CheckCase and
// reports, per differentiable input, how far the analytic gradient lies from central differences.
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "gradcheck_params.hpp"

namespace gg::gradcheck {

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
// A table, one row per input: name, shape, max abs err, max rel err, tolerance, PASS/FAIL; with
// `verbose`, the worst Jacobian entries of each input below its row.
std::string format_report(const CaseReport& report, bool verbose = false);

}  // namespace gg::gradcheck
