#pragma once
// The gradcheck registry: named cases and their lookup, plus the value generators that case
// builders use. It knows only core and autograd. The cases themselves live beside their families
// (ops/<family>_gradcheck.cpp, nn/modules_gradcheck.cpp), and one aggregator at the top of the
// library (gradcheck_cases.cpp, next to groupgrad.hpp) is the only file that knows them all.
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gradcheck_params.hpp"

namespace gg::gradcheck {

// Named cases. Registry::instance() is the process-wide one, with the built-in cases registered
// on first use; a local Registry starts empty. instance() is defined by the aggregator at the top
// (gradcheck_cases.cpp), not here: the registry names no family, so autograd includes nothing above
// it, and a program that uses instance() gets every family by linking the library.
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

// The usual case in one call, for the families' registration files: `family`, `name`, a one-line
// `description`, whether it is `linear`, its builder and forward, optional tolerance overrides.
void add_case(Registry& r, const char* family, const char* name, const char* description,
              bool linear, BuildFn build, ForwardFn forward,
              std::optional<Tolerance> f64 = std::nullopt,
              std::optional<Tolerance> f32 = std::nullopt);

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
