#include "core/storage.hpp"

#include <atomic>
#include <cstring>
#include <new>

#include "core/error.hpp"

namespace gg {

namespace {
constexpr std::align_val_t kAlignment{64};
std::atomic<int64_t> g_live_count{0};
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};
}  // namespace

void Storage::Free::operator()(void* p) const { ::operator delete(p, kAlignment); }

Storage::Storage(size_t nbytes, bool zero) : nbytes_(nbytes) {
  // Always allocate at least one byte so data() is a valid, unique pointer.
  // The nothrow form: under AddressSanitizer a failing throwing new aborts the process, while
  // this one returns null (allocator_may_return_null=1), so the error path is testable there too.
  data_.reset(::operator new(nbytes ? nbytes : 1, kAlignment, std::nothrow));
  GG_CHECK(data_ != nullptr, "[storage] cannot allocate {} bytes", nbytes);
  if (zero) std::memset(data_.get(), 0, nbytes);
  g_live_count.fetch_add(1, std::memory_order_relaxed);
  int64_t live = g_live_bytes.fetch_add(static_cast<int64_t>(nbytes), std::memory_order_relaxed) +
                 static_cast<int64_t>(nbytes);
  int64_t peak = g_peak_bytes.load(std::memory_order_relaxed);
  while (live > peak &&
         !g_peak_bytes.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
}

Storage::~Storage() {
  g_live_count.fetch_sub(1, std::memory_order_relaxed);
  g_live_bytes.fetch_sub(static_cast<int64_t>(nbytes_), std::memory_order_relaxed);
}

int64_t Storage::live_count() { return g_live_count.load(); }
int64_t Storage::live_bytes() { return g_live_bytes.load(); }
int64_t Storage::peak_bytes() { return g_peak_bytes.load(); }
void Storage::reset_peak_bytes() { g_peak_bytes.store(g_live_bytes.load()); }

}  // namespace gg
