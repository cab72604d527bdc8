// The matmul kernel layer: oneDNN (ops/onednn/matmul) against the plain loop
// (ops/reference/matmul) on random problems in every layout the library produces, plus the
// edge cases, the primitive cache and concurrent use.
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "groupgrad.hpp"
#include "ops/kernels/matmul_kernel.hpp"
#include "ops/onednn/context.hpp"
#include "ops/onednn/matmul.hpp"
#include "ops/reference/matmul.hpp"

namespace {

using gg::Dtype;
using gg::onednn::MatmulProblem;
using Strides = std::array<int64_t, 3>;

// bfloat16 by hand (round to nearest even), independent of core/dtype.cpp.
uint16_t to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  u += 0x7FFF + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}
float from_bf16(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

// A raw buffer of one dtype with element access as double.
class Buffer {
 public:
  Buffer(Dtype dtype, int64_t elements)
      : dtype_(dtype),
        count_(std::max<int64_t>(elements, 1)),
        bytes_(static_cast<size_t>(count_) * gg::element_size(dtype)) {}
  Dtype dtype() const { return dtype_; }
  int64_t size() const { return count_; }
  void* data() { return bytes_.data(); }
  const void* data() const { return bytes_.data(); }

  double get(int64_t i) const {
    const void* p = bytes_.data() + i * static_cast<int64_t>(gg::element_size(dtype_));
    switch (dtype_) {
      case Dtype::Float32:
        return load<float>(p);
      case Dtype::Float64:
        return load<double>(p);
      case Dtype::BFloat16:
        return from_bf16(load<uint16_t>(p));
      case Dtype::Float16:
        return static_cast<float>(load<gg::Half>(p));
      case Dtype::Int8:
        return load<int8_t>(p);
      case Dtype::Int32:
        return load<int32_t>(p);
      case Dtype::Int64:
        return static_cast<double>(load<int64_t>(p));
    }
    return 0;
  }
  // Values are chosen representable in the dtype, so set never rounds.
  void set(int64_t i, double v) {
    void* p = bytes_.data() + i * static_cast<int64_t>(gg::element_size(dtype_));
    switch (dtype_) {
      case Dtype::Float32:
        return store(p, static_cast<float>(v));
      case Dtype::Float64:
        return store(p, v);
      case Dtype::BFloat16:
        return store(p, to_bf16(static_cast<float>(v)));
      case Dtype::Float16:
        return store(p, gg::Half(static_cast<float>(v)));
      case Dtype::Int8:
        return store(p, static_cast<int8_t>(v));
      case Dtype::Int32:
        return store(p, static_cast<int32_t>(v));
      case Dtype::Int64:
        return store(p, static_cast<int64_t>(v));
    }
  }

 private:
  template <class T>
  static T load(const void* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  template <class T>
  static void store(void* p, T v) {
    std::memcpy(p, &v, sizeof v);
  }
  Dtype dtype_;
  int64_t count_;
  std::vector<std::byte> bytes_;
};

// Elements a [batch, rows, cols] operand with these strides spans (at least 1).
int64_t span(int64_t batch, int64_t rows, int64_t cols, const Strides& s) {
  if (batch == 0 || rows == 0 || cols == 0) return 1;
  return 1 + (batch - 1) * s[0] + (rows - 1) * s[1] + (cols - 1) * s[2];
}

enum class Layout {
  kContiguous,
  kTransposed,           // column-major matrices
  kBroadcast,            // batch stride 0
  kBroadcastTransposed,  // batch stride 0, column-major (a shared [N, K] weight used as [K, N])
  kPaddedRows,           // leading dimension larger than the row (a column slice)
  kBatchGap,             // batches not adjacent (slices of a bigger packed tensor)
  kInterleaved,          // [rows, batch, cols] memory seen as [batch, rows, cols] (heads)
  kNoUnitStride,         // every stride > 1 (a strided slice)
  kExpandedRows,         // row stride 0 (an expanded tensor)
};

Strides strides_for(Layout layout, int64_t batch, int64_t rows, int64_t cols) {
  switch (layout) {
    case Layout::kContiguous:
      return {rows * cols, cols, 1};
    case Layout::kTransposed:
      return {rows * cols, 1, rows};
    case Layout::kBroadcast:
      return {0, cols, 1};
    case Layout::kBroadcastTransposed:
      return {0, 1, rows};
    case Layout::kPaddedRows:
      return {rows * (cols + 3), cols + 3, 1};
    case Layout::kBatchGap:
      return {rows * cols + 7, cols, 1};
    case Layout::kInterleaved:
      return {cols, batch * cols, 1};
    case Layout::kNoUnitStride:
      return {2 * rows * cols, 2 * cols, 2};
    case Layout::kExpandedRows:
      return {cols, 0, 1};
  }
  return {};
}

struct Spec {
  int64_t batch = 1, M = 1, K = 1, N = 1;
  Layout src = Layout::kContiguous, wei = Layout::kContiguous, dst = Layout::kContiguous;
  Dtype in = gg::kFloat32, out = gg::kFloat32, bias_dtype = gg::kFloat32;
  enum class Bias { kNone, kShared, kPerBatch, kPerBatchStrided } bias = Bias::kNone;
  bool accumulate = false;
};

MatmulProblem make_problem(const Spec& s) {
  MatmulProblem p;
  p.batch = s.batch;
  p.M = s.M;
  p.K = s.K;
  p.N = s.N;
  p.src_dtype = p.wei_dtype = s.in;
  p.dst_dtype = s.out;
  p.bias_dtype = s.bias_dtype;
  p.src_strides = strides_for(s.src, s.batch, s.M, s.K);
  p.wei_strides = strides_for(s.wei, s.batch, s.K, s.N);
  // dst "transposed" is a column-major dst, which oneDNN runs as dst^T = wei^T @ src^T.
  p.dst_strides = strides_for(s.dst, s.batch, s.M, s.N);
  p.has_bias = s.bias != Spec::Bias::kNone;
  p.bias_batch_stride = s.bias == Spec::Bias::kPerBatch          ? s.N
                        : s.bias == Spec::Bias::kPerBatchStrided ? 2 * s.N + 1
                                                                 : 0;
  p.accumulate = s.accumulate;
  return p;
}

// Random values exactly representable in the dtype: uniform floats (rounded to the dtype) in
// [-1, 1] for floating dtypes, small integers for integer dtypes.
void fill(Buffer& b, std::mt19937& rng, double scale = 1.0) {
  std::uniform_real_distribution<float> real(-1.f, 1.f);
  std::uniform_int_distribution<int> integer(-20, 20);
  for (int64_t i = 0; i < b.size(); ++i) {
    double v = gg::is_floating(b.dtype()) ? real(rng) * scale : integer(rng);
    if (b.dtype() == gg::kBFloat16) v = from_bf16(to_bf16(static_cast<float>(v)));
    if (b.dtype() == gg::kFloat16) v = static_cast<float>(gg::Half(static_cast<float>(v)));
    b.set(i, v);
  }
}

struct Operands {
  Buffer src, wei, bias, dst;
};

Operands make_operands(const MatmulProblem& p, std::mt19937& rng, double scale = 1.0) {
  Operands o{Buffer(p.src_dtype, span(p.batch, p.M, p.K, p.src_strides)),
             Buffer(p.wei_dtype, span(p.batch, p.K, p.N, p.wei_strides)),
             Buffer(p.bias_dtype, p.has_bias ? (p.batch - 1) * p.bias_batch_stride + p.N : 1),
             Buffer(p.dst_dtype, span(p.batch, p.M, p.N, p.dst_strides))};
  fill(o.src, rng, scale);
  fill(o.wei, rng, scale);
  fill(o.bias, rng, scale);
  // dst starts random: accumulate reads it, and elements outside dst (gaps) must stay as they are.
  fill(o.dst, rng, scale);
  return o;
}

// Largest |oneDNN - reference| allowed for one dst element whose reference value is `ref`.
double tolerance(const MatmulProblem& p, double ref) {
  // f32 accumulation of K products of values in [-1, 1] (summation orders differ).
  double f32 = 1e-6 * static_cast<double>(p.K + 4) * (1.0 + std::abs(ref));
  switch (p.dst_dtype) {
    case Dtype::BFloat16:
      return f32 + std::abs(ref) * 0x1p-8 * 2;  // one bf16 ulp
    case Dtype::Float16:
      return f32 + std::abs(ref) * 0x1p-11 * 2;
    case Dtype::Int8:
    case Dtype::Int32:
      return 1.0;  // f32 vs double may round a near-tie differently
    default:
      return f32;
  }
}

// Runs p through both kernels from the same random operands and compares every element of the
// dst buffers, including the gaps between dst elements (which neither may touch).
void check_against_reference(const MatmulProblem& p, uint32_t seed, double scale = 1.0) {
  INFO(gg::onednn::to_string(p));
  std::mt19937 rng(seed);
  Operands o = make_operands(p, rng, scale);
  Buffer expected = o.dst;
  gg::reference::matmul(p, o.src.data(), o.wei.data(), o.bias.data(), expected.data());
  gg::kernels::matmul(p, o.src.data(), o.wei.data(), o.bias.data(), o.dst.data());
  int64_t bad = 0;
  std::string first;
  for (int64_t i = 0; i < expected.size(); ++i) {
    double want = expected.get(i), got = o.dst.get(i);
    if (!(std::abs(want - got) <= tolerance(p, want))) {
      if (bad++ == 0) first = fmt::format("element {}: onednn {} reference {}", i, got, want);
    }
  }
  INFO(first);
  CHECK(bad == 0);
}

bool is_reference_impl(const MatmulProblem& p) {
  return gg::onednn::matmul_implementation(p).starts_with("ref");
}

}  // namespace

TEST_CASE("matmul kernel: contiguous f32 matches the reference", "[matmul_kernel]") {
  const int64_t shapes[][4] = {{1, 1, 1, 1},     {1, 1, 7, 1},    {1, 17, 33, 29}, {1, 64, 64, 64},
                               {1, 100, 75, 64}, {1, 3, 1, 5},    {3, 5, 9, 2},    {2, 1, 16, 31},
                               {4, 31, 1, 1},    {1, 200, 130, 3}};
  uint32_t seed = 1;
  for (const auto& s : shapes) {
    check_against_reference(make_problem({.batch = s[0], .M = s[1], .K = s[2], .N = s[3]}), seed++);
  }
}

TEST_CASE("matmul kernel: transposed operands are strides, not copies", "[matmul_kernel]") {
  using L = Layout;
  uint32_t seed = 100;
  for (int64_t batch : {1, 3}) {
    for (auto [src, wei, dst] : {std::tuple{L::kTransposed, L::kContiguous, L::kContiguous},
                                 std::tuple{L::kContiguous, L::kTransposed, L::kContiguous},
                                 std::tuple{L::kTransposed, L::kTransposed, L::kContiguous},
                                 std::tuple{L::kContiguous, L::kContiguous, L::kTransposed},
                                 std::tuple{L::kTransposed, L::kTransposed, L::kTransposed}}) {
      Spec s{.batch = batch, .M = 37, .K = 21, .N = 45, .src = src, .wei = wei, .dst = dst};
      check_against_reference(make_problem(s), seed++);
      s.bias = Spec::Bias::kShared;
      check_against_reference(make_problem(s), seed++);
      s.bias = Spec::Bias::kPerBatch;
      s.accumulate = true;
      check_against_reference(make_problem(s), seed++);
      // The fast kernels take all of these (a column-major dst by swapping the operands) where
      // oneDNN has brg (AVX512_CORE up). Below it gemm:jit runs them, except a column-major dst
      // with a bias: the swapped problem needs the bias as a per-row post-op, which gemm:jit
      // applies wrongly (see matmul.cpp), so reference::matmul runs it. (The library's own dsts
      // are row-major.)
      s.bias = Spec::Bias::kShared;
      s.accumulate = false;
      const bool brg = gg::onednn::isa_at_least(dnnl::cpu_isa::avx512_core);
      CHECK(is_reference_impl(make_problem(s)) == (!brg && dst == L::kTransposed));
      s.bias = Spec::Bias::kNone;
      CHECK_FALSE(is_reference_impl(make_problem(s)));
    }
  }
}

TEST_CASE("matmul kernel: batched and broadcast operands", "[matmul_kernel]") {
  using L = Layout;
  uint32_t seed = 200;
  for (auto [src, wei] :
       {std::pair{L::kContiguous, L::kContiguous}, std::pair{L::kContiguous, L::kBroadcast},
        std::pair{L::kContiguous, L::kBroadcastTransposed},
        std::pair{L::kBroadcast, L::kContiguous}, std::pair{L::kBroadcast, L::kTransposed},
        std::pair{L::kBroadcast, L::kBroadcast},
        std::pair{L::kBroadcast, L::kBroadcastTransposed}}) {
    for (auto bias : {Spec::Bias::kNone, Spec::Bias::kShared, Spec::Bias::kPerBatch,
                      Spec::Bias::kPerBatchStrided}) {
      Spec s{.batch = 5, .M = 19, .K = 24, .N = 40, .src = src, .wei = wei, .bias = bias};
      check_against_reference(make_problem(s), seed++);
      s.accumulate = true;
      check_against_reference(make_problem(s), seed++);
      // Broadcast batches and per-batch biases must not send oneDNN to its reference kernel.
      CHECK_FALSE(is_reference_impl(make_problem(s)));
    }
  }
}

TEST_CASE("matmul kernel: bias per batch and shared, f32 and bf16", "[matmul_kernel]") {
  uint32_t seed = 300;
  for (Dtype in : {gg::kFloat32, gg::kBFloat16}) {
    for (Dtype bias_dtype : {gg::kFloat32, gg::kBFloat16}) {
      for (auto bias : {Spec::Bias::kShared, Spec::Bias::kPerBatch, Spec::Bias::kPerBatchStrided}) {
        for (int64_t batch : {1, 4}) {
          Spec s{.batch = batch,
                 .M = 23,
                 .K = 48,
                 .N = 33,
                 .in = in,
                 .out = in,
                 .bias_dtype = bias_dtype,
                 .bias = bias};
          check_against_reference(make_problem(s), seed++);
          CHECK_FALSE(is_reference_impl(make_problem(s)));
        }
      }
    }
  }
}

TEST_CASE("matmul kernel: bf16 inputs and outputs", "[matmul_kernel]") {
  uint32_t seed = 400;
  for (auto [in, out] :
       {std::pair{gg::kBFloat16, gg::kBFloat16}, std::pair{gg::kBFloat16, gg::kFloat32},
        std::pair{gg::kFloat32, gg::kBFloat16}}) {
    for (bool accumulate : {false, true}) {
      for (auto bias : {Spec::Bias::kNone, Spec::Bias::kPerBatch}) {
        Spec s{.batch = 3,
               .M = 50,
               .K = 64,
               .N = 70,
               .wei = Layout::kTransposed,
               .in = in,
               .out = out,
               .bias = bias,
               .accumulate = accumulate};
        check_against_reference(make_problem(s), seed++);
        s.dst = Layout::kTransposed;
        check_against_reference(make_problem(s), seed++);
      }
    }
  }
  // Rounding to bf16 happens once, after the f32 accumulation: 1 + 2^-9 * 3 products sum to
  // 1 + 3 * 2^-9, which rounds to 1 + 2^-7 (two roundings of the partial sums would give 1).
  MatmulProblem p = make_problem({.K = 4, .in = gg::kBFloat16, .out = gg::kBFloat16});
  uint16_t src[4] = {to_bf16(1.f), to_bf16(0x1p-9f), to_bf16(0x1p-9f), to_bf16(0x1p-9f)};
  uint16_t wei[4] = {to_bf16(1.f), to_bf16(1.f), to_bf16(1.f), to_bf16(1.f)};
  uint16_t dst = 0;
  gg::kernels::matmul(p, src, wei, nullptr, &dst);
  CHECK(from_bf16(dst) == 1.f + 0x1p-7f);
}

TEST_CASE("matmul kernel: f32 to f16, int8 and int32 outputs", "[matmul_kernel]") {
  uint32_t seed = 500;
  for (Dtype out : {gg::kFloat16, gg::kInt8, gg::kInt32}) {
    for (bool accumulate : {false, true}) {
      Spec s{.batch = 2,
             .M = 30,
             .K = 40,
             .N = 20,
             .out = out,
             .bias = Spec::Bias::kShared,
             .accumulate = accumulate};
      // Scaled so that int8 saturates in places.
      check_against_reference(make_problem(s), seed++, out == gg::kInt8 ? 4.0 : 1.0);
    }
  }
  // Round to nearest even and saturate, like Tensor::to.
  MatmulProblem p = make_problem({.batch = 5, .out = gg::kInt8});
  p.wei_strides = {0, 1, 1};
  float src[5] = {2.5f, -2.5f, 3.5f, 300.f, -300.f}, wei = 1.f;
  int8_t dst[5] = {};
  gg::kernels::matmul(p, src, &wei, nullptr, dst);
  CHECK(std::vector<int>(dst, dst + 5) == std::vector<int>{2, -2, 4, 127, -128});
}

TEST_CASE("matmul kernel: layouts oneDNN runs more slowly are still right", "[matmul_kernel]") {
  // These go to gemm:jit, whose bias and post-op handling differs from brg's, or (where oneDNN
  // has only ref:any) to reference::matmul.
  using L = Layout;
  using B = Spec::Bias;
  uint32_t seed = 600;
  for (L layout :
       {L::kPaddedRows, L::kBatchGap, L::kInterleaved, L::kNoUnitStride, L::kExpandedRows}) {
    for (int operand = 0; operand < 3; ++operand) {
      if (layout == L::kExpandedRows && operand == 2) continue;  // dst may not alias itself
      for (B bias : {B::kNone, B::kShared, B::kPerBatch, B::kPerBatchStrided}) {
        for (bool accumulate : {false, true}) {
          Spec s{.batch = 3, .M = 17, .K = 26, .N = 12, .bias = bias, .accumulate = accumulate};
          (operand == 0 ? s.src : operand == 1 ? s.wei : s.dst) = layout;
          check_against_reference(make_problem(s), seed++);
          if (layout == L::kNoUnitStride) {
            CHECK(gg::onednn::matmul_implementation(make_problem(s)).starts_with("reference"));
          }
          s.bias_dtype = gg::kBFloat16;  // needs the post-op even when shared (f32 matmul)
          check_against_reference(make_problem(s), seed++);
        }
      }
    }
  }
}

TEST_CASE("matmul kernel: weights whose rows lie 1 KiB apart are padded on gemm:jit, right",
          "[matmul_kernel]") {
  // Below AVX512_CORE, a product with few rows whose weights' rows lie a multiple of 256 floats
  // apart runs on a padded copy of the weights (onednn/matmul.cpp, pads_weights); the results
  // are what the same product gives on any layout, and what a plain loop gives.
  const bool gemm_jit = !gg::onednn::isa_at_least(dnnl::cpu_isa::avx512_core);
  struct Case {
    int64_t M, K, N, row_step;
    Dtype in, out;
    bool padded;  // where gemm:jit runs
  };
  const Case cases[] = {
      {128, 40, 512, 512, gg::kFloat32, gg::kFloat32, true},     // dense [40, 512] weights
      {33, 17, 256, 1024, gg::kFloat32, gg::kFloat32, true},     // a column slice of [17, 1024]
      {64, 24, 1024, 1024, gg::kBFloat16, gg::kBFloat16, true},  // through f32 on gemm:jit
      {31, 16, 512, 512, gg::kFloat32, gg::kFloat32, false},     // too few rows to pay
      {400, 8, 1024, 1024, gg::kFloat32, gg::kFloat32, false},   // copy-based kernels
      {128, 16, 500, 500, gg::kFloat32, gg::kFloat32, false},    // rows not 256 floats apart
  };
  uint32_t seed = 900;
  for (const Case& c : cases) {
    MatmulProblem p = make_problem({.M = c.M, .K = c.K, .N = c.N, .in = c.in, .out = c.out});
    p.wei_strides = {c.K * c.row_step, c.row_step, 1};
    const std::string impl = gg::onednn::matmul_implementation(p);
    INFO(gg::onednn::to_string(p) << ": " << impl);
    const bool padded = impl.find("weights padded") != std::string::npos;
    CHECK(padded == (gemm_jit && c.padded));
    check_against_reference(p, seed++);

    // The same operands with the weights stored densely give the same bits.
    std::mt19937 rng(seed++);
    Operands o = make_operands(p, rng);
    MatmulProblem dense = p;
    dense.wei_strides = {c.K * c.N + 7, c.N + 7, 1};  // rows not 256 apart: never padded
    Buffer wei(p.wei_dtype, span(1, c.K, c.N, dense.wei_strides));
    for (int64_t k = 0; k < c.K; ++k)
      for (int64_t n = 0; n < c.N; ++n)
        wei.set(k * dense.wei_strides[1] + n, o.wei.get(k * c.row_step + n));
    Buffer a = o.dst, b = o.dst;
    gg::kernels::matmul(p, o.src.data(), o.wei.data(), nullptr, a.data());
    gg::kernels::matmul(dense, o.src.data(), wei.data(), nullptr, b.data());
    int64_t differ = 0;
    for (int64_t i = 0; i < a.size(); ++i) differ += a.get(i) != b.get(i);
    CHECK(differ == 0);
  }
}

TEST_CASE("matmul of expanded operands (sum()'s gradient) runs on a dense copy, right",
          "[matmul_kernel]") {
  // oneDNN has only ref:any for a stride-0 row or column; the tensor-level kernel copies such an
  // operand rather than run the slow loop. Values against a naive loop in double, and the
  // gradients of matmul(a, b).sum(), whose backward multiplies by the expanded ones.
  gg::manual_seed(9);
  const gg::Tensor a = gg::randn({1, 7}).expand({5, 7}), b = gg::randn({7, 1}).expand({7, 3});
  const gg::Tensor y = gg::matmul(a, b);
  const auto av = a.contiguous().to_vector<float>(), bv = b.contiguous().to_vector<float>();
  const auto yv = y.to_vector<float>();
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 3; ++j) {
      double want = 0;
      for (int64_t k = 0; k < 7; ++k) want += double(av[i * 7 + k]) * bv[k * 3 + j];
      CHECK(yv[i * 3 + j] == Approx(want).epsilon(1e-5).margin(1e-5));
    }
  const gg::Tensor x = gg::randn({6, 4}).requires_grad_(), w = gg::randn({4, 5}).requires_grad_();
  gg::matmul(x, w).sum().backward();
  const auto xv = x.to_vector<float>(), wv = w.to_vector<float>();
  const auto gx = x.grad().to_vector<float>(), gw = w.grad().to_vector<float>();
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t k = 0; k < 4; ++k) {
      double want = 0;  // d sum(x w) / dx[i][k] = sum_j w[k][j]
      for (int64_t j = 0; j < 5; ++j) want += wv[k * 5 + j];
      CHECK(gx[i * 4 + k] == Approx(want).epsilon(1e-5).margin(1e-5));
    }
  for (int64_t k = 0; k < 4; ++k)
    for (int64_t j = 0; j < 5; ++j) {
      double want = 0;  // d sum(x w) / dw[k][j] = sum_i x[i][k]
      for (int64_t i = 0; i < 6; ++i) want += xv[i * 4 + k];
      CHECK(gw[k * 5 + j] == Approx(want).epsilon(1e-5).margin(1e-5));
    }
}

TEST_CASE("matmul kernel: empty problems and K == 0", "[matmul_kernel]") {
  std::mt19937 rng(700);
  for (Spec s : {Spec{.batch = 0, .M = 4, .K = 3, .N = 5}, Spec{.batch = 2, .M = 0, .K = 3, .N = 5},
                 Spec{.batch = 2, .M = 4, .K = 3, .N = 0}}) {
    s.bias = Spec::Bias::kPerBatch;
    MatmulProblem p = make_problem(s);
    Operands o = make_operands(p, rng);
    Buffer before = o.dst;
    gg::kernels::matmul(p, o.src.data(), o.wei.data(), o.bias.data(), o.dst.data());
    for (int64_t i = 0; i < o.dst.size(); ++i) CHECK(o.dst.get(i) == before.get(i));
    CHECK(gg::onednn::matmul_implementation(p) == "none");
  }
  for (Dtype out : {gg::kFloat32, gg::kBFloat16}) {
    for (auto bias : {Spec::Bias::kNone, Spec::Bias::kPerBatch}) {
      for (bool accumulate : {false, true}) {
        INFO("out " << gg::dtype_name(out) << " bias " << (bias != Spec::Bias::kNone)
                    << " accumulate " << accumulate);
        MatmulProblem p = make_problem({.batch = 2,
                                        .M = 3,
                                        .K = 0,
                                        .N = 4,
                                        .out = out,
                                        .bias = bias,
                                        .accumulate = accumulate});
        Operands o = make_operands(p, rng);
        Buffer before = o.dst;
        // Nothing may be read from src or wei: K == 0 means they have no elements.
        gg::kernels::matmul(p, nullptr, nullptr, o.bias.data(), o.dst.data());
        for (int64_t b = 0; b < 2; ++b) {
          for (int64_t i = 0; i < 3 * 4; ++i) {
            double want = (accumulate ? before.get(b * 12 + i) : 0.0) +
                          (p.has_bias ? o.bias.get(b * 4 + i % 4) : 0.0);
            CHECK(o.dst.get(b * 12 + i) == Approx(want).margin(0.01));
          }
        }
        CHECK(gg::onednn::matmul_implementation(p) == "reference");
      }
    }
  }
}

TEST_CASE("matmul kernel: a repeated problem is a cache hit", "[matmul_kernel]") {
  MatmulProblem p = make_problem({.batch = 2,
                                  .M = 13,
                                  .K = 11,
                                  .N = 9,
                                  .wei = Layout::kTransposed,
                                  .bias = Spec::Bias::kPerBatch,
                                  .accumulate = true});
  std::mt19937 rng(800);
  Operands a = make_operands(p, rng), b = make_operands(p, rng);
  gg::kernels::matmul(p, a.src.data(), a.wei.data(), a.bias.data(), a.dst.data());
  auto before = gg::onednn::cache_stats();
  // Other pointers, same problem: no primitive descriptor is built.
  gg::kernels::matmul(p, b.src.data(), b.wei.data(), b.bias.data(), b.dst.data());
  auto after = gg::onednn::cache_stats();
  CHECK(after.misses == before.misses);
  CHECK(after.hits == before.hits + 1);
  // A different problem is a miss.
  p.accumulate = false;
  gg::kernels::matmul(p, b.src.data(), b.wei.data(), b.bias.data(), b.dst.data());
  CHECK(gg::onednn::cache_stats().misses == after.misses + 1);
}

TEST_CASE("matmul kernel: f32 problems of varying M and K share a bounded set of primitives",
          "[matmul_kernel]") {
  // As grouped_mm's expert groups (packed form), whose sizes the router picks, marked
  // sizes_vary: 128 sizes of M (then of K) run as pieces (powers of two and tails under 32), not as
  // 128 primitives. Layouts as there (strides that do not depend on the varying size, which would
  // make every size a new problem), with a transposed operand, bias (added once) and accumulate
  // (kept on every K piece) to check the pieces' offsets.
  uint32_t seed = 900;
  for (bool vary_m : {true, false}) {
    const auto before = gg::onednn::cache_stats();
    for (int64_t size = 33; size <= 160; ++size) {
      MatmulProblem p = make_problem({.M = vary_m ? size : 19,
                                      .K = vary_m ? 21 : size,
                                      .N = 23,
                                      .src = vary_m ? Layout::kContiguous : Layout::kTransposed,
                                      .wei = vary_m ? Layout::kTransposed : Layout::kContiguous,
                                      .bias = Spec::Bias::kShared,
                                      .accumulate = size % 2 == 0});
      p.sizes_vary = true;
      check_against_reference(p, seed++);
    }
    // Pieces 32, 64, 128 and tails 1..31, each with and without accumulate (and for K, the
    // pieces after the first accumulate whatever the problem says) where a new size costs a
    // kernel build (brg, AVX512_CORE up). Below it (gemm:jit, a new size ~20 us) every size
    // runs whole: one primitive each.
    INFO((vary_m ? "varying M" : "varying K"));
    const uint64_t misses = gg::onednn::cache_stats().misses - before.misses;
    if (gg::onednn::isa_at_least(dnnl::cpu_isa::avx512_core)) {
      CHECK(misses <= 2 * (3 + 31));
    } else {
      CHECK(misses == 128);
    }
  }
  // Without sizes_vary a size runs whole: one primitive for a new shape (none below
  // AVX512_CORE, where a plain f32 product without bias runs dnnl_sgemm).
  MatmulProblem fixed = make_problem({.M = 101, .K = 21, .N = 23});
  const auto before = gg::onednn::cache_stats();
  check_against_reference(fixed, seed++);
  CHECK(gg::onednn::cache_stats().misses - before.misses == (gg::onednn::brgemm_isa() ? 1u : 0u));
}

TEST_CASE("matmul kernel: plain f32 products run dnnl_sgemm below AVX512_CORE, in every layout",
          "[matmul_kernel]") {
  // The rule (onednn/matmul.cpp, sgemm_layouts): a batch-1 f32 product without bias whose operands
  // each have a unit stride skips the primitive where f32 runs gemm:jit; with brg (AVX512_CORE
  // up) it stays a primitive. Every orientation of src, wei and dst, a leading dimension larger
  // than the row, accumulate (beta = 1) and 1-wide dims, against the reference loop; the dst
  // gaps must stay untouched.
  const bool sgemm_here = !gg::onednn::brgemm_isa();
  uint32_t seed = 4100;
  const std::array<Layout, 3> layouts{Layout::kContiguous, Layout::kTransposed,
                                      Layout::kPaddedRows};
  for (Layout src : layouts) {
    for (Layout wei : layouts) {
      for (Layout dst : layouts) {
        for (bool accumulate : {false, true}) {
          for (auto [M, K, N] :
               {std::array<int64_t, 3>{37, 19, 29}, {1, 7, 5}, {6, 1, 9}, {8, 5, 1}}) {
            MatmulProblem p = make_problem({.M = M,
                                            .K = K,
                                            .N = N,
                                            .src = src,
                                            .wei = wei,
                                            .dst = dst,
                                            .accumulate = accumulate});
            INFO(gg::onednn::to_string(p));
            CHECK(gg::onednn::matmul_implementation(p).ends_with("(dnnl_sgemm)") == sgemm_here);
            check_against_reference(p, seed++);
          }
        }
      }
    }
  }
  // Not taken: a bias, a batch, a non-f32 dtype, no unit stride.
  const Spec others[] = {{.M = 9, .K = 5, .N = 7, .bias = Spec::Bias::kShared},
                         {.batch = 3, .M = 9, .K = 5, .N = 7},
                         {.M = 9, .K = 5, .N = 7, .out = gg::kBFloat16},
                         {.M = 9, .K = 5, .N = 7, .src = Layout::kNoUnitStride}};
  for (const Spec& spec : others) {
    const MatmulProblem p = make_problem(spec);
    INFO(gg::onednn::to_string(p));
    CHECK_FALSE(gg::onednn::matmul_implementation(p).ends_with("(dnnl_sgemm)"));
    check_against_reference(p, seed++);
  }
}

TEST_CASE("matmul kernel: the same primitive runs concurrently", "[matmul_kernel]") {
  // A plain problem, and one that uses the per-thread buffers (f32 result converted to bf16, a
  // strided per-batch bias copied dense).
  for (Spec spec : {Spec{.batch = 2,
                   .M = 96,
                   .K = 64,
                   .N = 80,
                   .wei = Layout::kTransposed,
                   .bias = Spec::Bias::kPerBatch},
                    Spec{.batch = 3,
                    .M = 40,
                    .K = 72,
                    .N = 56,
                    .out = gg::kBFloat16,
                    .bias = Spec::Bias::kPerBatchStrided}}) {
    MatmulProblem p = make_problem(spec);
    INFO(gg::onednn::to_string(p));
    std::mt19937 rng(900);
    Operands o = make_operands(p, rng);
    Buffer expected = o.dst;
    gg::reference::matmul(p, o.src.data(), o.wei.data(), o.bias.data(), expected.data());
    auto matches = [&](const Buffer& dst) {
      for (int64_t i = 0; i < dst.size(); ++i) {
        if (!(std::abs(dst.get(i) - expected.get(i)) <= tolerance(p, expected.get(i)))) {
          return false;
        }
      }
      return true;
    };
    constexpr int kWorkers = 8, kRepeats = 20;
    std::vector<Buffer> dsts(kWorkers, o.dst);
    auto work = [&](int w) {
      for (int r = 0; r < kRepeats; ++r) {
        gg::kernels::matmul(p, o.src.data(), o.wei.data(), o.bias.data(), dsts[w].data());
      }
    };

    // From std::threads (each running oneDNN on its own OpenMP team).
    std::vector<std::thread> threads;
    for (int w = 0; w < 4; ++w) threads.emplace_back(work, w);
    for (auto& t : threads) t.join();
    for (int w = 0; w < 4; ++w) CHECK(matches(dsts[w]));

#ifdef _OPENMP
    // From an OpenMP parallel loop: each matmul runs single-threaded inside the region.
    std::fill(dsts.begin(), dsts.end(), o.dst);
#pragma omp parallel for schedule(static, 1)
    for (int w = 0; w < kWorkers; ++w) work(w);
    for (int w = 0; w < kWorkers; ++w) CHECK(matches(dsts[w]));
#else
    WARN("tests built without OpenMP: the parallel-region case did not run");
#endif
  }
}

TEST_CASE("matmul kernel: a plan still runs right after per-thread buffers grew",
          "[matmul_kernel]") {
  // The scratchpad and result buffers are per thread and grow; cached plans must follow them.
  Spec small{.batch = 2,
             .M = 20,
             .K = 30,
             .N = 40,
             .out = gg::kBFloat16,
             .bias = Spec::Bias::kPerBatchStrided};
  Spec large{.batch = 4,
             .M = 300,
             .K = 200,
             .N = 250,
             .out = gg::kBFloat16,
             .bias = Spec::Bias::kPerBatchStrided};
  check_against_reference(make_problem(small), 1000);
  check_against_reference(make_problem(large), 1001);
  check_against_reference(make_problem(small), 1002);
}

TEST_CASE("matmul kernel: what oneDNN cannot run is reported", "[matmul_kernel]") {
  MatmulProblem p = make_problem({.M = 2, .K = 3, .N = 4});
  CHECK(gg::onednn::matmul_supported(p));
  auto with = [&](auto change) {
    MatmulProblem q = p;
    change(q);
    return q;
  };
  CHECK(gg::onednn::matmul_supported(
      with([](auto& q) { q.src_dtype = q.wei_dtype = gg::kBFloat16; })));
  CHECK(gg::onednn::matmul_supported(with([](auto& q) { q.dst_dtype = gg::kBFloat16; })));
  CHECK(gg::onednn::matmul_supported(with([](auto& q) { q.dst_dtype = gg::kInt8; })));
  CHECK_FALSE(gg::onednn::matmul_supported(
      with([](auto& q) { q.src_dtype = q.wei_dtype = q.dst_dtype = gg::kFloat64; })));
  CHECK_FALSE(gg::onednn::matmul_supported(
      with([](auto& q) { q.src_dtype = q.wei_dtype = gg::kFloat16; })));
  CHECK_FALSE(
      gg::onednn::matmul_supported(with([](auto& q) { q.src_dtype = q.wei_dtype = gg::kInt8; })));
  CHECK_FALSE(gg::onednn::matmul_supported(with([](auto& q) { q.wei_dtype = gg::kBFloat16; })));
  CHECK_FALSE(gg::onednn::matmul_supported(with([](auto& q) { q.dst_dtype = gg::kInt64; })));
  CHECK_FALSE(gg::onednn::matmul_supported(with([](auto& q) {
    q.has_bias = true;
    q.bias_dtype = gg::kFloat64;
  })));
  CHECK_FALSE(gg::onednn::matmul_supported(with([](auto& q) { q.src_strides = {6, -3, 1}; })));
  // Overlapping rows: oneDNN refuses to describe them.
  CHECK_FALSE(gg::onednn::matmul_supported(with([](auto& q) { q.src_strides = {6, 2, 1}; })));

  MatmulProblem f64 = with([](auto& q) { q.src_dtype = q.wei_dtype = q.dst_dtype = gg::kFloat64; });
  double x[12] = {}, y[12] = {};
  REQUIRE_THROWS_WITH(gg::kernels::matmul(f64, x, x, nullptr, y),
                      Catch::StartsWith("[matmul] oneDNN has no matmul for src float64"));
  MatmulProblem overlapping = with([](auto& q) { q.src_strides = {6, 2, 1}; });
  float f[12] = {}, g[12] = {};
  REQUIRE_THROWS_WITH(gg::kernels::matmul(overlapping, f, f, nullptr, g),
                      Catch::StartsWith("[matmul] oneDNN rejected"));
  MatmulProblem shared_dst = with([](auto& q) {
    q.batch = 2;
    q.dst_strides = {0, 4, 1};
  });
  REQUIRE_THROWS_WITH(gg::reference::matmul(shared_dst, f, f, nullptr, g),
                      "[matmul] dst batch stride is 0 with batch 2: every batch would write the "
                      "same matrix");
  CHECK_THROWS_AS(gg::kernels::matmul(with([](auto& q) { q.M = -1; }), f, f, nullptr, g),
                  gg::Error);
}

TEST_CASE("reference matmul: exact values, any dtype", "[matmul_kernel]") {
  // [[1, 2, 3], [4, 5, 6]] @ [[1, 0], [0, 1], [1, 1]] + [10, 20] = [[14, 25], [20, 31]]
  MatmulProblem p;
  p.M = 2;
  p.K = 3;
  p.N = 2;
  p.src_strides = {6, 3, 1};
  p.wei_strides = {6, 2, 1};
  p.dst_strides = {4, 2, 1};
  p.has_bias = true;
  const double src[6] = {1, 2, 3, 4, 5, 6}, wei[6] = {1, 0, 0, 1, 1, 1}, bias[2] = {10, 20};
  for (Dtype in : {gg::kFloat64, gg::kFloat32, gg::kBFloat16, gg::kFloat16, gg::kInt8, gg::kInt32,
                   gg::kInt64}) {
    for (Dtype out : {gg::kFloat64, gg::kInt64, gg::kFloat16}) {
      INFO(gg::dtype_name(in) << " -> " << gg::dtype_name(out));
      p.src_dtype = p.wei_dtype = p.bias_dtype = in;
      p.dst_dtype = out;
      Buffer s(in, 6), w(in, 6), b(in, 2), d(out, 4);
      for (int i = 0; i < 6; ++i) {
        s.set(i, src[i]);
        w.set(i, wei[i]);
      }
      b.set(0, bias[0]);
      b.set(1, bias[1]);
      gg::reference::matmul(p, s.data(), w.data(), b.data(), d.data());
      CHECK(std::vector<double>{d.get(0), d.get(1), d.get(2), d.get(3)} ==
            std::vector<double>{14, 25, 20, 31});
      p.accumulate = true;  // adds the same again
      gg::reference::matmul(p, s.data(), w.data(), b.data(), d.data());
      p.accumulate = false;
      CHECK(std::vector<double>{d.get(0), d.get(1), d.get(2), d.get(3)} ==
            std::vector<double>{28, 50, 40, 62});
    }
  }
  // Integer dst rounds to nearest even and saturates; NaN becomes 0.
  MatmulProblem q;
  q.batch = 5;
  q.src_dtype = q.wei_dtype = gg::kFloat64;
  q.dst_dtype = gg::kInt8;
  q.M = q.K = q.N = 1;
  q.src_strides = {1, 1, 1};
  q.wei_strides = {0, 1, 1};
  q.dst_strides = {1, 1, 1};
  const double values[5] = {2.5, -3.5, 1000, -1000, std::nan("")}, one = 1;
  int8_t out[5];
  gg::reference::matmul(q, values, &one, nullptr, out);
  CHECK(std::vector<int>(out, out + 5) == std::vector<int>{2, -4, 127, -128, 0});
}

TEST_CASE("matmul: a stride-0 gradient (backward of sum) stays on oneDNN", "[matmul_kernel]") {
  // y.sum().backward() hands matmul's backward a broadcast view of ones (strides 0, 0), which
  // oneDNN cannot describe; the operand is copied once instead of running the reference loop.
  gg::manual_seed(3);
  gg::Tensor x = gg::randn({48, 32}).requires_grad_();
  gg::Tensor w = gg::randn({32, 40}).requires_grad_();
  const int64_t before = gg::reference::matmul_call_count();
  gg::matmul(x, w).sum().backward();
  CHECK(gg::reference::matmul_call_count() == before);
  // dX = ones @ W^T: every row is the row sums of W; dW = X^T @ ones: every column is X's column
  // sums.
  gg::Tensor wsum = w.detach().sum(1), xsum = x.detach().sum(0);
  for (int64_t i : {0, 17, 47})
    for (int64_t k : {0, 9, 31})
      CHECK(x.grad().select(0, i).select(0, k).item<float>() ==
            Approx(wsum.select(0, k).item<float>()).epsilon(1e-5));
  for (int64_t k : {0, 31})
    for (int64_t j : {0, 39})
      CHECK(w.grad().select(0, k).select(0, j).item<float>() ==
            Approx(xsum.select(0, k).item<float>()).epsilon(1e-5));
}
