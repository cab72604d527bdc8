#include "ops/matmul_problem.hpp"

#include "core/error.hpp"

namespace gg {

void check_matmul_problem(const MatmulProblem& p) {
  GG_CHECK(p.batch >= 0 && p.M >= 0 && p.K >= 0 && p.N >= 0,
           "[matmul] sizes must not be negative ({})", to_string(p));
  GG_CHECK(p.batch <= 1 || p.M == 0 || p.N == 0 || p.dst_strides[0] != 0,
           "[matmul] dst batch stride is 0 with batch {}: every batch would write the same matrix",
           p.batch);
}

std::string to_string(const MatmulProblem& p) {
  auto strides = [](const std::array<int64_t, 3>& s) {
    return fmt::format("[{}, {}, {}]", s[0], s[1], s[2]);
  };
  std::string bias = p.has_bias ? fmt::format(", {} bias (batch stride {})",
                                              dtype_name(p.bias_dtype), p.bias_batch_stride)
                                : "";
  return fmt::format("batch={} M={} K={} N={} {} x {} -> {}, strides src {} wei {} dst {}{}{}",
                     p.batch, p.M, p.K, p.N, dtype_name(p.src_dtype), dtype_name(p.wei_dtype),
                     dtype_name(p.dst_dtype), strides(p.src_strides), strides(p.wei_strides),
                     strides(p.dst_strides), bias, p.accumulate ? ", accumulate" : "");
}

}  // namespace gg
