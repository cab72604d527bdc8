#pragma once
// The global generator behind randn/rand/randint and dropout: a 64-bit Mersenne Twister with our
// own normal and uniform transforms, so a seed gives the same numbers on every standard library.
#include <cstdint>
#include <mutex>
#include <random>

namespace gg {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0x5eed) { manual_seed(seed); }
  void manual_seed(uint64_t seed);
  double uniform();  // [0, 1), 53 random bits
  double normal();   // standard normal (Box-Muller, caching the second value)
  uint64_t next_u64();
  std::mutex& mutex() { return mutex_; }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
  std::mutex mutex_;
};

Generator& global_generator();
void manual_seed(uint64_t seed);

}  // namespace gg
