#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace gg {

enum class Dtype { Float32, Float64, BFloat16, Float16, Int8, Int32, Int64 };
inline constexpr Dtype kFloat32 = Dtype::Float32, kFloat64 = Dtype::Float64,
                       kBFloat16 = Dtype::BFloat16, kFloat16 = Dtype::Float16, kInt8 = Dtype::Int8,
                       kInt32 = Dtype::Int32, kInt64 = Dtype::Int64;

using Shape = std::vector<int64_t>;

// Storage types of the two 16-bit float dtypes. Conversions round to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float f);  // NOLINT(google-explicit-constructor): behaves like a float
  operator float() const;
};
struct Half {
  uint16_t bits = 0;
  Half() = default;
  Half(float f);  // NOLINT(google-explicit-constructor)
  operator float() const;
};

// n contiguous elements at once, vectorised, with exactly the results of the conversions above
// (round to nearest even; every NaN becomes bf16's quiet NaN 0x7FC0).
void convert_bf16_to_f32(const BFloat16* in, float* out, int64_t n);
void convert_f32_to_bf16(const float* in, BFloat16* out, int64_t n);

// What the library knows about a dtype beyond its C++ element type (dispatch below), in one
// table (dtype.cpp) rather than a switch per property.
struct DtypeTraits {
  std::string_view name;  // as PyTorch prints it
  bool floating;
  // The integers the dtype holds exactly: its limits, or +-2^digits for floating dtypes (as
  // PyTorch's randint checks them).
  int64_t exact_min, exact_max;
  std::string_view safetensors;  // its code in safetensors headers ("F32", "BF16", ...)
};
// Throws nothing: a value outside the enum gets {"unknown", false, 0, 0, "?"}.
const DtypeTraits& dtype_traits(Dtype dtype);

size_t element_size(Dtype dtype);
std::string_view dtype_name(Dtype dtype);  // "float32", "bfloat16", ... as PyTorch prints them
bool is_floating(Dtype dtype);
// The dtype two operands of a binary op compute in (PyTorch's type promotion, simplified:
// float beats int, wider beats narrower, bf16 with f16 gives f32).
Dtype promote_types(Dtype a, Dtype b);

// Maps a C++ element type to its Dtype (compile error for other types).
template <class T>
constexpr Dtype dtype_of();
template <>
constexpr Dtype dtype_of<float>() {
  return kFloat32;
}
template <>
constexpr Dtype dtype_of<double>() {
  return kFloat64;
}
template <>
constexpr Dtype dtype_of<BFloat16>() {
  return kBFloat16;
}
template <>
constexpr Dtype dtype_of<Half>() {
  return kFloat16;
}
template <>
constexpr Dtype dtype_of<int8_t>() {
  return kInt8;
}
template <>
constexpr Dtype dtype_of<int32_t>() {
  return kInt32;
}
template <>
constexpr Dtype dtype_of<int64_t>() {
  return kInt64;
}

// Calls f.template operator()<T>() with T the element type of dtype; returns what f returns.
// Use: dispatch(dtype, [&]<class T>() { ... });
template <class F>
decltype(auto) dispatch(Dtype dtype, F&& f) {
  switch (dtype) {
    case Dtype::Float32:
      return f.template operator()<float>();
    case Dtype::Float64:
      return f.template operator()<double>();
    case Dtype::BFloat16:
      return f.template operator()<BFloat16>();
    case Dtype::Float16:
      return f.template operator()<Half>();
    case Dtype::Int8:
      return f.template operator()<int8_t>();
    case Dtype::Int32:
      return f.template operator()<int32_t>();
    case Dtype::Int64:
      return f.template operator()<int64_t>();
  }
  return f.template operator()<float>();  // unreachable: every enumerator is handled above
}

}  // namespace gg
