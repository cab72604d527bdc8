#include "core/random.hpp"

#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>

#include "core/strided.hpp"
#include "core/tensor.hpp"

namespace gg {

void Generator::manual_seed(uint64_t seed) {
  engine_.seed(seed);
  has_spare_ = false;
}

uint64_t Generator::next_u64() { return engine_(); }

double Generator::uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }

double Generator::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1 = 1.0 - uniform();  // (0, 1]: log is finite
  double u2 = uniform();
  double r = std::sqrt(-2.0 * std::log(u1));
  spare_ = r * std::sin(2 * std::numbers::pi * u2);
  has_spare_ = true;
  return r * std::cos(2 * std::numbers::pi * u2);
}

Generator& global_generator() {
  static Generator g;
  return g;
}

void manual_seed(uint64_t seed) {
  Generator& g = global_generator();
  std::lock_guard lock(g.mutex());
  g.manual_seed(seed);
}

namespace {
template <class Draw>
Tensor fill_random(Shape shape, Dtype dtype, const char* op, Draw draw) {
  GG_CHECK(is_floating(dtype), "[{}] needs a floating dtype, got {}", op, dtype_name(dtype));
  Tensor t = empty(std::move(shape), dtype);
  Generator& g = global_generator();
  std::lock_guard lock(g.mutex());
  dispatch(dtype, [&]<class T>() {
    T* p = t.data_ptr<T>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) p[i] = convert<T>(draw(g));
  });
  return t;
}
}  // namespace

Tensor randn(Shape shape, Dtype dtype) {
  return fill_random(std::move(shape), dtype, "randn", [](Generator& g) { return g.normal(); });
}

Tensor rand(Shape shape, Dtype dtype) {
  // As many random bits as the dtype has mantissa bits, so that rounding to the dtype can never
  // give 1.0 (a 53-bit uniform rounds up to 1.0f about once in 2^25 draws).
  const int bits = dtype == kFloat64 ? 53 : dtype == kFloat32 ? 24 : dtype == kFloat16 ? 11 : 8;
  return fill_random(std::move(shape), dtype, "rand", [bits](Generator& g) {
    return std::ldexp(static_cast<double>(g.next_u64() >> (64 - bits)), -bits);
  });
}

Tensor randint(int64_t low, int64_t high, Shape shape, Dtype dtype) {
  GG_CHECK(low < high, "[randint] low {} must be below high {}", low, high);
  const DtypeTraits& traits = dtype_traits(dtype);
  const int64_t lo = traits.exact_min, hi = traits.exact_max;
  GG_CHECK(low >= lo && high - 1 <= hi,
           "[randint] the range [{}, {}) does not fit {}: it holds the integers {} to {} exactly",
           low, high, dtype_name(dtype), lo, hi);
  Tensor t = empty(std::move(shape), dtype);
  Generator& g = global_generator();
  std::lock_guard lock(g.mutex());
  // Integer arithmetic only (a double cannot hold every int64), and unbiased: draws below
  // 2^64 mod range are rejected, so every residue is equally likely.
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  const uint64_t reject_below = (0 - range) % range;
  dispatch(dtype, [&]<class T>() {
    T* p = t.data_ptr<T>();
    for (int64_t i = 0, n = t.numel(); i < n; ++i) {
      uint64_t x = g.next_u64();
      while (x < reject_below) x = g.next_u64();
      p[i] = convert<T>(static_cast<int64_t>(static_cast<uint64_t>(low) + x % range));
    }
  });
  return t;
}

}  // namespace gg
