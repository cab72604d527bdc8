#pragma once
// Helpers of gg_dist_tests, which ctest runs under mpirun with 2 and 4 ranks (every rank runs every
// test case in the same order, so the collectives inside them line up).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "distributed/data_parallel.hpp"
#include "distributed/distributed.hpp"
#include "groupgrad.hpp"

namespace gg::test {

using Catch::Contains;

// Joins the job (idempotent) and returns the number of ranks.
inline int joined_world() {
  distributed::init();
  return distributed::world_size();
}

inline std::vector<double> as_doubles(const Tensor& t) {
  return t.to(kFloat64).contiguous().to_vector<double>();
}

// The gg::Error message of call() ("<no error>" if it returned).
template <class F>
std::string error_of(F&& call) {
  try {
    call();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace gg::test
