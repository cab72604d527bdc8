#include "core/dtype.hpp"

#include <cmath>
#include <cstdint>
#include <iterator>

#include "core/error.hpp"

namespace gg {

namespace {
uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
}  // namespace

BFloat16::BFloat16(float f) {
  uint32_t u = float_bits(f);
  if (std::isnan(f)) {
    bits = 0x7FC0;
    return;
  }
  uint32_t rounding_bias = 0x7FFF + ((u >> 16) & 1);  // round to nearest even
  bits = static_cast<uint16_t>((u + rounding_bias) >> 16);
}

BFloat16::operator float() const { return bits_float(static_cast<uint32_t>(bits) << 16); }

// Branch-free forms of the two conversions above, so that the compiler vectorises the loops.
void convert_bf16_to_f32(const BFloat16* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = bits_float(static_cast<uint32_t>(in[i].bits) << 16);
}

void convert_f32_to_bf16(const float* in, BFloat16* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t u = float_bits(in[i]);
    const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    out[i].bits = static_cast<uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC0u : rounded);
  }
}

// IEEE binary16 conversions with round to nearest even, subnormals, infinities and NaN.
Half::Half(float f) {
  uint32_t u = float_bits(f);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t abs = u & 0x7FFFFFFF;
  if (abs >= 0x7F800000) {  // inf or nan
    bits = static_cast<uint16_t>(sign | 0x7C00 | (abs > 0x7F800000 ? 0x200 : 0));
    return;
  }
  if (abs >= 0x477FF000) {  // rounds to >= 65520: overflow to inf
    bits = static_cast<uint16_t>(sign | 0x7C00);
    return;
  }
  if (abs < 0x38800000) {  // below the smallest normal half: subnormal or zero
    float magnitude = bits_float(abs);
    // Scale so that one half-subnormal ulp (2^-24) becomes 1, then round to nearest even.
    float scaled = magnitude * 16777216.0f;
    bits = static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
    return;
  }
  uint32_t mantissa_odd = (abs >> 13) & 1;
  abs += 0xC8000FFF + mantissa_odd;  // rebias exponent (-112 << 23) and round
  bits = static_cast<uint16_t>(sign | (abs >> 13));
}

Half::operator float() const {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000) << 16;
  uint32_t exponent = (bits >> 10) & 0x1F;
  uint32_t mantissa = bits & 0x3FF;
  if (exponent == 0) {
    float magnitude = static_cast<float>(mantissa) / 16777216.0f;  // mantissa * 2^-24
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 0x1F) return bits_float(sign | 0x7F800000 | (mantissa << 13));
  return bits_float(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

size_t element_size(Dtype dtype) {
  return dispatch(dtype, []<class T>() { return sizeof(T); });
}

const DtypeTraits& dtype_traits(Dtype dtype) {
  constexpr int64_t kBits53 = int64_t{1} << 53, kBits24 = int64_t{1} << 24,
                    kBits11 = int64_t{1} << 11, kBits8 = int64_t{1} << 8;
  // In the enum's order (its length is checked below).
  static constexpr DtypeTraits kTable[] = {
      {"float32", true, -kBits24, kBits24, "F32"},   {"float64", true, -kBits53, kBits53, "F64"},
      {"bfloat16", true, -kBits8, kBits8, "BF16"},   {"float16", true, -kBits11, kBits11, "F16"},
      {"int8", false, INT8_MIN, INT8_MAX, "I8"},     {"int32", false, INT32_MIN, INT32_MAX, "I32"},
      {"int64", false, INT64_MIN, INT64_MAX, "I64"},
  };
  static_assert(std::size(kTable) == static_cast<size_t>(Dtype::Int64) + 1);
  static constexpr DtypeTraits kUnknown{"unknown", false, 0, 0, "?"};
  const auto i = static_cast<size_t>(dtype);
  return i < std::size(kTable) ? kTable[i] : kUnknown;
}

std::string_view dtype_name(Dtype dtype) { return dtype_traits(dtype).name; }

bool is_floating(Dtype dtype) { return dtype_traits(dtype).floating; }

Dtype promote_types(Dtype a, Dtype b) {
  if (a == b) return a;
  bool fa = is_floating(a), fb = is_floating(b);
  if (fa != fb) return fa ? a : b;
  if (fa) {
    if (a == kFloat64 || b == kFloat64) return kFloat64;
    return kFloat32;  // f32 with anything, or bf16 with f16
  }
  return element_size(a) >= element_size(b) ? a : b;
}

}  // namespace gg
