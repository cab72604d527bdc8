#pragma once
// The gradcheck registry: named cases and their lookup, plus the value generators that case
// builders use.
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
