#pragma once
// The one way the library runs a loop on the OpenMP threads: parallel_for, which forwards the
// first exception a body throws to the caller (an exception must not leave an OpenMP region: it
// would terminate the process), and for_chunks on top of it. Callers keep deciding when a loop
// is worth a region (each has a measured threshold below which it runs serially).
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <exception>
#include <mutex>

namespace gg {

// How parallel_for hands out iterations: kStatic, equal contiguous blocks per thread (for equal
// iterations); kDynamic, one iteration at a time to whichever thread is free (for unequal ones).
enum class Schedule { kStatic, kDynamic };

// Calls body(i) for every i in [0, n) on the OpenMP threads (`threads` of them, or the default
// team when 0), and rethrows the first exception any call threw once all threads are done; the
// other calls still run. body may call omp_get_thread_num() to find per-thread state.
template <class Body>
void parallel_for(int64_t n, Schedule schedule, Body&& body, int threads = 0) {
  std::exception_ptr error;
  std::mutex error_mutex;
  auto guarded = [&](int64_t i) {
    try {
      body(i);
    } catch (...) {
      std::lock_guard lock(error_mutex);
      if (!error) error = std::current_exception();
    }
  };
  const int team = threads > 0 ? threads : omp_get_max_threads();
  if (schedule == Schedule::kStatic) {
#pragma omp parallel for schedule(static) num_threads(team)
    for (int64_t i = 0; i < n; ++i) guarded(i);
  } else {
#pragma omp parallel for schedule(dynamic, 1) num_threads(team)
    for (int64_t i = 0; i < n; ++i) guarded(i);
  }
  if (error) std::rethrow_exception(error);
}

// Calls body(begin, end) on consecutive chunks of `chunk` elements covering [0, n), on all
// threads when there are at least two chunks, else once on the calling thread (an OpenMP region
// costs even when its `if` is false).
template <class Body>
void for_chunks(int64_t n, int64_t chunk, Body body) {
  if (n < 2 * chunk) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
  const int64_t chunks = (n + chunk - 1) / chunk;
  parallel_for(chunks, Schedule::kStatic,
               [&](int64_t c) { body(c * chunk, std::min(n, (c + 1) * chunk)); });
}

// For its lifetime, OpenMP regions the calling thread opens -- its own and oneDNN's, whose
// primitives also read the thread count when they are built and looked up -- run on this thread
// alone (when `alone`; outside a region only). For work so small that a fork/join costs more than
// it saves, and under load a parallel region waits a whole time slice for a descheduled thread.
class OneThread {
 public:
  explicit OneThread(bool alone)
      : previous_(alone && !omp_in_parallel() ? omp_get_max_threads() : 0) {
    if (previous_ > 1) omp_set_num_threads(1);
  }
  ~OneThread() {
    if (previous_ > 1) omp_set_num_threads(previous_);
  }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int previous_;
};

}  // namespace gg
