#include "ops/reference/matmul.hpp"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/strided.hpp"

namespace gg::reference {

namespace {

// out[i] = element (offset + i * stride) of a buffer of `dtype`, as double, for i < n.
void load(Dtype dtype, const void* base, int64_t offset, int64_t stride, int64_t n, double* out) {
  if (n == 0) return;  // base may be null (K == 0)
  dispatch(dtype, [&]<class T>() {
    const T* p = static_cast<const T*>(base) + offset;
    for (int64_t i = 0; i < n; ++i) out[i] = convert<double>(p[i * stride]);
  });
}

void store(Dtype dtype, void* base, int64_t offset, int64_t stride, int64_t n, const double* in) {
  dispatch(dtype, [&]<class T>() {
    T* p = static_cast<T*>(base) + offset;
    for (int64_t i = 0; i < n; ++i) p[i * stride] = convert<T>(in[i]);
  });
}

std::atomic<int64_t> g_calls{0};
}  // namespace

int64_t matmul_call_count() { return g_calls.load(std::memory_order_relaxed); }

void matmul(const MatmulProblem& p, const void* src, const void* wei, const void* bias, void* dst) {
  check_matmul_problem(p);
  if (p.batch == 0 || p.M == 0 || p.N == 0) return;
  g_calls.fetch_add(1, std::memory_order_relaxed);
  const int64_t M = p.M, K = p.K, N = p.N;
  const auto& ss = p.src_strides;
  const auto& ws = p.wei_strides;
  const auto& ds = p.dst_strides;
  // wei[b] is converted once into a dense K x N matrix so that the inner loop is a contiguous
  // axpy over a row of it; a broadcast weight (batch stride 0) is converted only once.
  std::vector<double> w(static_cast<size_t>(K * N)), a(K), acc(N), b(N, 0.0), d(N);
  for (int64_t bi = 0; bi < p.batch; ++bi) {
    if (bi == 0 || ws[0] != 0) {
      for (int64_t k = 0; k < K; ++k)
        load(p.wei_dtype, wei, bi * ws[0] + k * ws[1], ws[2], N, &w[k * N]);
    }
    if (p.has_bias && (bi == 0 || p.bias_batch_stride != 0)) {
      load(p.bias_dtype, bias, bi * p.bias_batch_stride, 1, N, b.data());
    }
    for (int64_t i = 0; i < M; ++i) {
      load(p.src_dtype, src, bi * ss[0] + i * ss[1], ss[2], K, a.data());
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t k = 0; k < K; ++k) {
        const double x = a[k];
        const double* row = &w[k * N];
        for (int64_t j = 0; j < N; ++j) acc[j] += x * row[j];
      }
      const int64_t dst_offset = bi * ds[0] + i * ds[1];
      if (p.has_bias) {
        for (int64_t j = 0; j < N; ++j) acc[j] += b[j];
      }
      if (p.accumulate) {
        load(p.dst_dtype, dst, dst_offset, ds[2], N, d.data());
        for (int64_t j = 0; j < N; ++j) acc[j] += d[j];
      }
      store(p.dst_dtype, dst, dst_offset, ds[2], N, acc.data());
    }
  }
}

}  // namespace gg::reference
