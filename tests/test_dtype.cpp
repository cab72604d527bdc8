// Dtypes: names and sizes, round trips between all 7 dtypes, bf16/f16 rounding (round to nearest
// even, subnormals, overflow, NaN) against an independent oracle in double, float -> int rounding
// with saturation, Int64 <-> Float64, and type promotion.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/copy.hpp"
#include "groupgrad.hpp"

using Catch::Contains;
using gg::Tensor;

namespace {

const gg::Dtype kAllDtypes[] = {gg::kFloat32, gg::kFloat64, gg::kBFloat16, gg::kFloat16,
                                gg::kInt8,    gg::kInt32,   gg::kInt64};

// x rounded to a binary format with `precision` significand bits (leading bit included), minimum
// normal exponent `emin` and largest finite value `max_finite`: round to nearest, ties to even,
// gradual underflow, overflow to infinity. Computed in double, where every step is exact.
double oracle_round(double x, int precision, int emin, double max_finite) {
  if (std::isnan(x) || std::isinf(x) || x == 0) return x;
  int e;
  std::frexp(std::fabs(x), &e);  // |x| = m 2^e with m in [0.5, 1): the leading bit is 2^(e-1)
  double ulp = std::ldexp(1.0, std::max(e - 1, emin) - (precision - 1));
  double r = std::nearbyint(x / ulp) * ulp;
  if (std::fabs(r) > max_finite) return std::copysign(INFINITY, x);
  return r;
}
const double kBf16Max = std::ldexp(2.0 - std::ldexp(1.0, -7), 127);
double bf16_oracle(float x) { return oracle_round(x, 8, -126, kBf16Max); }
double f16_oracle(float x) { return oracle_round(x, 11, -14, 65504.0); }

float bits_to_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Decodes a 16-bit pattern with `mant_bits` mantissa bits and exponent bias `bias` (oracle).
double decode16(uint16_t bits, int mant_bits, int bias) {
  const int exp_bits = 15 - mant_bits;
  const uint32_t exp_max = (1u << exp_bits) - 1;
  double sign = (bits & 0x8000) ? -1.0 : 1.0;
  uint32_t exponent = (bits >> mant_bits) & exp_max;
  uint32_t mantissa = bits & ((1u << mant_bits) - 1);
  if (exponent == exp_max) return mantissa ? NAN : sign * INFINITY;
  if (exponent == 0) return sign * std::ldexp(mantissa, 1 - bias - mant_bits);
  return sign *
         std::ldexp(1.0 + std::ldexp(mantissa, -mant_bits), static_cast<int>(exponent) - bias);
}

// Converts float32 values to `dtype` through Tensor::to and reads them back as double.
std::vector<double> through(const std::vector<float>& values, gg::Dtype dtype) {
  return gg::tensor<float>(values).to(dtype).to(gg::kFloat64).to_vector<double>();
}

void check_same(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": got " << got[i] << ", want " << want[i]);
    if (std::isnan(want[i])) {
      CHECK(std::isnan(got[i]));
    } else {
      CHECK(got[i] == want[i]);
      CHECK(std::signbit(got[i]) == std::signbit(want[i]));
    }
  }
}

}  // namespace

TEST_CASE("dtype: names, sizes and kinds", "[dtype]") {
  const char* names[] = {"float32", "float64", "bfloat16", "float16", "int8", "int32", "int64"};
  const size_t sizes[] = {4, 8, 2, 2, 1, 4, 8};
  const bool floating[] = {true, true, true, true, false, false, false};
  for (int i = 0; i < 7; ++i) {
    CHECK(gg::dtype_name(kAllDtypes[i]) == names[i]);
    CHECK(gg::element_size(kAllDtypes[i]) == sizes[i]);
    CHECK(gg::is_floating(kAllDtypes[i]) == floating[i]);
    CHECK(gg::zeros({3}, kAllDtypes[i]).element_size() == sizes[i]);
  }
  CHECK(gg::dtype_of<float>() == gg::kFloat32);
  CHECK(gg::dtype_of<gg::BFloat16>() == gg::kBFloat16);
  CHECK(gg::dtype_of<gg::Half>() == gg::kFloat16);
  CHECK(gg::dtype_of<int8_t>() == gg::kInt8);
}

TEST_CASE("dtype: values survive round trips between all 7 dtypes", "[dtype]") {
  // Exactly representable in every dtype (int8 included).
  const std::vector<double> values = {-100, -3, -1, 0, 1, 2, 7, 64, 100, 127};
  for (gg::Dtype a : kAllDtypes) {
    Tensor ta = gg::tensor<double>(values, {2, 5}).to(a);
    REQUIRE(ta.dtype() == a);
    for (gg::Dtype b : kAllDtypes) {
      INFO(gg::dtype_name(a) << " -> " << gg::dtype_name(b) << " -> " << gg::dtype_name(a));
      Tensor tb = ta.to(b);
      CHECK(tb.dtype() == b);
      CHECK(tb.shape() == gg::Shape{2, 5});
      CHECK(tb.to(gg::kFloat64).to_vector<double>() == values);
      CHECK(tb.to(a).to(gg::kFloat64).to_vector<double>() == values);
    }
  }
  // to() of the same dtype is the tensor itself; of a strided view, a row-major copy.
  Tensor x = gg::arange(0, 6, 1, gg::kFloat32).reshape({2, 3});
  CHECK(x.to(gg::kFloat32).impl()->storage == x.impl()->storage);
  CHECK(x.transpose(0, 1).to(gg::kInt32).to_vector<int32_t>() ==
        std::vector<int32_t>{0, 3, 1, 4, 2, 5});
  CHECK(x.to(gg::kBFloat16).to_vector<gg::BFloat16>()[5].bits == 0x40A0);  // 5.0
  CHECK(static_cast<float>(x.to(gg::kFloat16).select(1, 2).select(0, 1).item<gg::Half>()) == 5.0f);
}

TEST_CASE("dtype: bfloat16 rounds to nearest even", "[dtype][bf16]") {
  const float tie_down = 1.0f + 0x1p-8f;    // halfway between 1 and 1 + 2^-7: even is 1
  const float tie_up = 1.0f + 3 * 0x1p-8f;  // halfway between 1 + 2^-7 and 1 + 2^-6: even is up
  const float above_tie = 1.0f + 0x1p-8f + 0x1p-16f;
  const float flt_max = std::numeric_limits<float>::max();
  check_same(
      through({tie_down, tie_up, -tie_down, -tie_up, above_tie, 1.0f + 0x1p-9f}, gg::kBFloat16),
      {1.0, 1.0 + 0x1p-6, -1.0, -(1.0 + 0x1p-6), 1.0 + 0x1p-7, 1.0});
  CHECK(gg::BFloat16(tie_down).bits == 0x3F80);
  CHECK(gg::BFloat16(tie_up).bits == 0x3F82);
  CHECK(gg::BFloat16(above_tie).bits == 0x3F81);

  check_same(through({NAN, -NAN, INFINITY, -INFINITY, flt_max, -flt_max,
                      static_cast<float>(kBf16Max), 0.0f, -0.0f},
                     gg::kBFloat16),
             {NAN, NAN, INFINITY, -INFINITY, INFINITY, -INFINITY, kBf16Max, 0.0, -0.0});
  // float32 subnormals stay subnormal (bf16 has float32's exponent range).
  const float sub = std::numeric_limits<float>::denorm_min() * 3;
  check_same(through({sub, 1e-40f}, gg::kBFloat16), {bf16_oracle(sub), bf16_oracle(1e-40f)});
  CHECK(gg::BFloat16(0.1f).bits == 0x3DCD);  // 0.1 -> 0.10009765625 as in PyTorch

  // From float64 the value is rounded to float32 first, exactly as PyTorch does
  // (torch.tensor([1 + 2**-8 + 2**-40], dtype=torch.float64).bfloat16() == 1.0).
  CHECK(gg::tensor<double>({1.0 + 0x1p-8 + 0x1p-40})
            .to(gg::kBFloat16)
            .to(gg::kFloat64)
            .item<double>() == 1.0);
  // An integer through float32: 257 is a tie between 256 and 258.
  CHECK(gg::tensor<int32_t>({257, 259}).to(gg::kBFloat16).to(gg::kInt32).to_vector<int32_t>() ==
        std::vector<int32_t>{256, 260});
}

TEST_CASE("dtype: bfloat16 and float16 agree with a rounding oracle", "[dtype][bf16][f16]") {
  // Every 16-bit pattern decodes as the format says, and re-encodes to itself.
  for (uint32_t b = 0; b < 0x10000; ++b) {
    gg::BFloat16 bf;
    bf.bits = static_cast<uint16_t>(b);
    gg::Half h;
    h.bits = static_cast<uint16_t>(b);
    double bf_want = decode16(bf.bits, 7, 127), h_want = decode16(h.bits, 10, 15);
    float bf_got = bf, h_got = h;
    if (std::isnan(bf_want)) {
      REQUIRE(std::isnan(bf_got));
      REQUIRE(std::isnan(gg::BFloat16(bf_got)));
    } else {
      REQUIRE(bf_got == bf_want);
      REQUIRE(gg::BFloat16(bf_got).bits == bf.bits);
    }
    if (std::isnan(h_want)) {
      REQUIRE(std::isnan(h_got));
      REQUIRE(std::isnan(gg::Half(h_got)));
    } else {
      REQUIRE(h_got == h_want);
      REQUIRE(gg::Half(h_got).bits == h.bits);
    }
  }

  // Random float32 bit patterns (all exponents), and floats in and around float16's range.
  std::mt19937 rng(2024);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::uniform_int_distribution<int> exponent(-30, 17);
  std::uniform_int_distribution<uint32_t> mantissa(0, (1u << 23) - 1);
  for (int i = 0; i < 1000000; ++i) {
    float x = bits_to_float(any_bits(rng));
    float y = std::ldexp(1.0f + std::ldexp(static_cast<float>(mantissa(rng)), -23), exponent(rng));
    if (i & 1) y = -y;
    for (float v : {x, y}) {
      double want_bf = bf16_oracle(v), want_h = f16_oracle(v);
      float got_bf = gg::BFloat16(v), got_h = gg::Half(v);
      if (std::isnan(v)) {
        REQUIRE(std::isnan(got_bf));
        REQUIRE(std::isnan(got_h));
        continue;
      }
      if (got_bf != want_bf || got_h != want_h) {
        FAIL("x = " << v << " (bits " << std::hex << gg::BFloat16(v).bits << "): bf16 " << got_bf
                    << " vs " << want_bf << ", f16 " << got_h << " vs " << want_h);
      }
    }
  }
}

TEST_CASE("dtype: float16 rounds subnormals and overflows to inf", "[dtype][f16]") {
  check_same(through({65504.0f, 65519.0f, 65520.0f, 1e5f, -1e5f, -65520.0f}, gg::kFloat16),
             {65504.0, 65504.0, INFINITY, INFINITY, -INFINITY, -INFINITY});
  check_same(through({0x1p-24f, 0x1p-25f, 3 * 0x1p-25f, 0x1p-26f, -0x1p-26f, 1023 * 0x1p-24f,
                      0x1p-14f - 0x1p-25f, 0x1p-14f, 1e-8f},
                     gg::kFloat16),
             {0x1p-24, 0.0, 0x1p-23, 0.0, -0.0, 1023 * 0x1p-24, 0x1p-14, 0x1p-14, 0.0});
  check_same(through({1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 1.0f / 3, NAN, INFINITY, -INFINITY},
                     gg::kFloat16),
             {1.0, 1.0 + 0x1p-9, 0.333251953125, NAN, INFINITY, -INFINITY});
  CHECK(gg::Half(1.0f).bits == 0x3C00);
  CHECK(gg::Half(-2.0f).bits == 0xC000);
  CHECK(gg::Half(65504.0f).bits == 0x7BFF);
  CHECK(gg::Half(0x1p-24f).bits == 0x0001);
  CHECK(gg::Half(INFINITY).bits == 0x7C00);
  CHECK(gg::tensor<double>({70000.0, -1e-9}).to(gg::kFloat16).to(gg::kFloat32).to_vector<float>() ==
        std::vector<float>{INFINITY, -0.0f});
}

TEST_CASE("dtype: float to int rounds to nearest even and saturates", "[dtype][int]") {
  const std::vector<float> in = {300.0f,  -300.0f, 2.5f, 3.5f, NAN,      -2.5f,     127.4f, 127.5f,
                                 -128.5f, -0.5f,   0.5f, 1.5f, INFINITY, -INFINITY, -0.4f,  126.8f};
  const std::vector<int8_t> want = {127,  -128, 2, 4, 0,   -2,   127, 127,
                                    -128, 0,    0, 2, 127, -128, 0,   127};
  Tensor f = gg::tensor<float>(in);
  CHECK(f.to(gg::kInt8).dtype() == gg::kInt8);
  CHECK(f.to(gg::kInt8).to_vector<int8_t>() == want);
  // The same from every float dtype (these values are exact in bf16 and f16 too, except 127.4,
  // 126.8 and -0.4, which round to values that convert the same way).
  for (gg::Dtype src : {gg::kFloat64, gg::kBFloat16, gg::kFloat16}) {
    INFO(gg::dtype_name(src));
    CHECK(f.to(src).to(gg::kInt8).to_vector<int8_t>() == want);
  }
  CHECK(gg::tensor<float>({300, -300, 2.5f, 3.5f}).to(gg::kInt8).to_vector<int8_t>() ==
        std::vector<int8_t>{127, -128, 2, 4});

  const int32_t i32max = std::numeric_limits<int32_t>::max(),
                i32min = std::numeric_limits<int32_t>::min();
  CHECK(gg::tensor<double>({3e9, -3e9, NAN, 2147483646.5, 2147483647.5, -2147483648.5, -7.5})
            .to(gg::kInt32)
            .to_vector<int32_t>() ==
        std::vector<int32_t>{i32max, i32min, 0, 2147483646, i32max, i32min, -8});
  // Integer narrowing saturates as well.
  CHECK(gg::tensor<int32_t>({300, -300, 5}).to(gg::kInt8).to_vector<int8_t>() ==
        std::vector<int8_t>{127, -128, 5});
  CHECK(gg::tensor<int64_t>({int64_t{1} << 40, -(int64_t{1} << 40), -9})
            .to(gg::kInt32)
            .to_vector<int32_t>() == std::vector<int32_t>{i32max, i32min, -9});

  // copy_ converts the same way, and broadcasts.
  Tensor dst = gg::zeros({2, 3}, gg::kInt8);
  gg::copy_(dst, gg::tensor<float>({1.5f, 300, -2.5f}));
  CHECK(dst.to_vector<int8_t>() == std::vector<int8_t>{2, 127, -2, 2, 127, -2});
}

TEST_CASE("dtype: Int64 <-> Float64", "[dtype][int]") {
  const int64_t max = std::numeric_limits<int64_t>::max(),
                min = std::numeric_limits<int64_t>::min();
  const int64_t two53 = int64_t{1} << 53;
  Tensor i = gg::tensor<int64_t>({0, -1, 123456789012345, two53, two53 + 1, two53 + 3, max, min});
  std::vector<double> d = i.to(gg::kFloat64).to_vector<double>();
  // 2^53 + 1 is a tie between 2^53 and 2^53 + 2: even wins; 2^53 + 3 goes up to 2^53 + 4.
  CHECK(d ==
        std::vector<double>{0, -1, 123456789012345.0, 0x1p53, 0x1p53, 0x1p53 + 4, 0x1p63, -0x1p63});
  // Back: 2^63 does not fit and saturates; -2^63 is exact.
  CHECK(i.to(gg::kFloat64).to(gg::kInt64).to_vector<int64_t>() ==
        std::vector<int64_t>{0, -1, 123456789012345, two53, two53, two53 + 4, max, min});

  Tensor f = gg::tensor<double>(
      {1e19, -1e19, NAN, INFINITY, -INFINITY, 2.5, -3.5, 0x1p63 - 1024, -0.5, 1e15 + 0.5});
  CHECK(f.to(gg::kInt64).to_vector<int64_t>() == std::vector<int64_t>{max, min, 0, max, min, 2, -4,
                                                                      9223372036854774784, 0,
                                                                      1000000000000000});
  CHECK(gg::tensor<int64_t>({(int64_t{1} << 24) + 1}).to(gg::kFloat32).item<float>() == 0x1p24f);
  CHECK(gg::tensor<int64_t>({max}).to(gg::kInt32).item<int32_t>() ==
        std::numeric_limits<int32_t>::max());
}

TEST_CASE("dtype: to_vector and item reject a mismatched element type", "[dtype][errors]") {
  Tensor f = gg::tensor<float>({1.5f});
  REQUIRE_THROWS_AS(f.to_vector<double>(), gg::Error);
  REQUIRE_THROWS_WITH(f.to_vector<double>(),
                      Contains("[to_vector] requested float64 but the tensor is float32"));
  // item<T> converts as libtorch does (issue 18): any element type, truncating floats to integers.
  CHECK(f.item<int32_t>() == 1);
  CHECK(f.to(gg::kBFloat16).item<float>() == 1.5f);
  REQUIRE_THROWS_WITH(gg::tensor<int64_t>({1}).to_vector<int32_t>(),
                      Contains("[to_vector] requested int32 but the tensor is int64"));
  REQUIRE_THROWS_WITH(gg::zeros({2}, gg::kInt8).to_vector<int64_t>(),
                      Contains("requested int64 but the tensor is int8"));
  REQUIRE_THROWS_WITH(gg::zeros({2}, gg::kFloat16).data_ptr<gg::BFloat16>(),
                      Contains("[data_ptr] requested bfloat16 but the tensor is float16"));
  CHECK(f.item<float>() == 1.5f);
  CHECK(f.to(gg::kFloat64).item<double>() == 1.5);
  CHECK(f.to(gg::kInt8).item<int8_t>() == 2);
  CHECK(f.to(gg::kInt64).to_vector<int64_t>() == std::vector<int64_t>{2});
}

TEST_CASE("dtype: promotion of binary operands", "[dtype]") {
  using gg::promote_types;
  CHECK(promote_types(gg::kFloat32, gg::kFloat32) == gg::kFloat32);
  CHECK(promote_types(gg::kFloat32, gg::kInt64) == gg::kFloat32);
  CHECK(promote_types(gg::kInt64, gg::kFloat16) == gg::kFloat16);
  CHECK(promote_types(gg::kBFloat16, gg::kFloat16) == gg::kFloat32);
  CHECK(promote_types(gg::kFloat64, gg::kBFloat16) == gg::kFloat64);
  CHECK(promote_types(gg::kFloat32, gg::kFloat64) == gg::kFloat64);
  CHECK(promote_types(gg::kInt8, gg::kInt32) == gg::kInt32);
  CHECK(promote_types(gg::kInt64, gg::kInt32) == gg::kInt64);
  CHECK(promote_types(gg::kBFloat16, gg::kInt32) == gg::kBFloat16);
}

TEST_CASE("dtype: large conversions agree with the element rules", "[dtype][bf16][f16][int]") {
  // Big enough for copy_ to take its oneDNN reorder path; every result must still equal the
  // element-by-element conversion (checked against the scalar BFloat16/Half constructors and the
  // saturating integer rule).
  const int64_t n = 3 * 8192 + 5;
  std::mt19937 rng(77);
  std::uniform_int_distribution<uint32_t> any_bits;
  std::uniform_int_distribution<int32_t> ints(-70000, 70000);
  std::vector<float> f(n);
  std::vector<int32_t> i32(n);
  for (int64_t k = 0; k < n; ++k) {
    f[k] = bits_to_float(any_bits(rng));
    if (k % 3 == 0) f[k] = std::ldexp(static_cast<float>(ints(rng)), -(k % 40));  // float16 range
    i32[k] = ints(rng);
  }
  const float specials[] = {NAN,
                            -NAN,
                            INFINITY,
                            -INFINITY,
                            0.0f,
                            -0.0f,
                            65520,
                            65519,
                            0x1p-25f,
                            3 * 0x1p-25f,
                            1.0f + 0x1p-8f,
                            1.0f + 3 * 0x1p-8f,
                            std::numeric_limits<float>::max()};
  for (size_t k = 0; k < std::size(specials); ++k) f[k * 7] = specials[k];
  const int32_t int_specials[] = {65520, -65520, 65504, 300, -300, 127, -128, 128, -129, 257};
  for (size_t k = 0; k < std::size(int_specials); ++k) i32[k * 5] = int_specials[k];

  Tensor tf = gg::tensor<float>(f);
  Tensor ti = gg::tensor<int32_t>(i32);
  std::vector<gg::BFloat16> bf = tf.to(gg::kBFloat16).to_vector<gg::BFloat16>();
  std::vector<gg::Half> h = tf.to(gg::kFloat16).to_vector<gg::Half>();
  std::vector<float> bf_back = tf.to(gg::kBFloat16).to(gg::kFloat32).to_vector<float>();
  std::vector<float> h_back = tf.to(gg::kFloat16).to(gg::kFloat32).to_vector<float>();
  std::vector<int8_t> i8 = ti.to(gg::kInt8).to_vector<int8_t>();
  std::vector<gg::Half> ih = ti.to(gg::kFloat16).to_vector<gg::Half>();
  std::vector<gg::BFloat16> ibf = ti.to(gg::kBFloat16).to_vector<gg::BFloat16>();
  std::vector<float> i8f = ti.to(gg::kInt8).to(gg::kFloat32).to_vector<float>();
  int64_t bad = 0;
  for (int64_t k = 0; k < n && bad < 10; ++k) {
    const gg::BFloat16 want_bf(f[k]);
    const gg::Half want_h(f[k]);
    const bool nan = std::isnan(f[k]);
    const bool ok_bf =
        nan ? std::isnan(static_cast<float>(bf[k])) && std::isnan(bf_back[k])
            : bf[k].bits == want_bf.bits && bf_back[k] == static_cast<float>(want_bf);
    const bool ok_h = nan ? std::isnan(static_cast<float>(h[k])) && std::isnan(h_back[k])
                          : h[k].bits == want_h.bits && h_back[k] == static_cast<float>(want_h);
    const int8_t want_i8 = static_cast<int8_t>(std::clamp(i32[k], -128, 127));
    const bool ok_int = i8[k] == want_i8 && i8f[k] == want_i8 &&
                        ih[k].bits == gg::Half(static_cast<float>(i32[k])).bits &&
                        ibf[k].bits == gg::BFloat16(static_cast<float>(i32[k])).bits;
    if (!ok_bf || !ok_h || !ok_int) {
      ++bad;
      UNSCOPED_INFO(
          "element " << k << ": float " << f[k] << " -> bf16 " << static_cast<float>(bf[k])
                     << " (want " << static_cast<float>(want_bf) << "), f16 "
                     << static_cast<float>(h[k]) << " (want " << static_cast<float>(want_h)
                     << "); int32 " << i32[k] << " -> int8 " << int(i8[k]) << ", f16 "
                     << static_cast<float>(ih[k]) << ", bf16 " << static_cast<float>(ibf[k]));
    }
  }
  CHECK(bad == 0);
}
