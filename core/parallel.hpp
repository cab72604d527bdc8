#pragma once
// Splitting a flat loop of n independent elements over the OpenMP threads.
#include <algorithm>
#include <cstdint>

namespace gg {

// Calls body(begin, end) on consecutive chunks of `chunk` elements covering [0, n), on all
// threads when there are at least two chunks, else once on the calling thread (an OpenMP region
// costs even when its `if` is false). body must not throw.
template <class Body>
void for_chunks(int64_t n, int64_t chunk, Body body) {
  if (n < 2 * chunk) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
  const int64_t chunks = (n + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < chunks; ++c) body(c * chunk, std::min(n, (c + 1) * chunk));
}

}  // namespace gg
