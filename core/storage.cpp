#include "core/storage.hpp"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/error.hpp"

namespace gg {

namespace {
constexpr size_t kAlignment = 64;
// Bytes in front of the aligned data: at least one pointer (malloc's own address, for free).
constexpr size_t kSlack = kAlignment + sizeof(void*);
std::atomic<int64_t> g_live_count{0};
std::atomic<int64_t> g_live_bytes{0};
std::atomic<int64_t> g_peak_bytes{0};

// Plain malloc, aligned by hand, rather than an aligned operator new: glibc serves aligned
// requests by carving the block out of a bigger free chunk, and the pieces it leaves fragment
// the heap -- a train step of examples/train_multihead touched ~10 MiB of fresh pages for a
// ~6 MiB tensor peak this way, 6.6 MiB with malloc. Under AddressSanitizer a failing malloc
// returns null (allocator_may_return_null=1), so the error path is testable there too.
void* allocate(size_t nbytes) {
  void* raw = nbytes <= SIZE_MAX - kSlack ? std::malloc(nbytes + kSlack) : nullptr;
  if (raw == nullptr) return nullptr;
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw) + sizeof(void*);
  void* data = reinterpret_cast<void*>((start + kAlignment - 1) & ~(kAlignment - 1));
  static_cast<void**>(data)[-1] = raw;
  return data;
}

void release(void* p) { std::free(static_cast<void**>(p)[-1]); }

// Blocks this small stay with malloc, which reuses them without the kernel's help.
constexpr size_t kMinCachedBytes = size_t{64} << 10;
constexpr size_t kMaxCachedBytes = size_t{32} << 20;
constexpr size_t kMaxCachedBlocks = 16;

thread_local bool t_cache_destroyed = false;

// Big blocks this thread freed, for its next storage of the same size. A training step frees and
// makes the same big buffers every iteration (outputs, gradients), and glibc hands such blocks
// back to the kernel (heap trim, munmap) only to fault their pages in again on the next step: a
// third of the heads workload's backward was the kernel zeroing pages. Bounded per thread (16
// blocks, 32 MiB, the oldest go first); freed when the thread ends. Blocks are plain aligned
// allocations, so any thread may cache or free any of them.
class BlockCache {
 public:
  BlockCache() { blocks_.reserve(kMaxCachedBlocks); }  // keep() never allocates
  ~BlockCache() {
    for (const Block& b : blocks_) release(b.data);
    t_cache_destroyed = true;
  }
  BlockCache(const BlockCache&) = delete;
  BlockCache& operator=(const BlockCache&) = delete;

  // A cached block of exactly `bytes` (the newest), or null.
  void* take(size_t bytes) {
    for (size_t i = blocks_.size(); i-- > 0;) {
      if (blocks_[i].bytes != bytes) continue;
      void* data = blocks_[i].data;
      total_ -= bytes;
      blocks_.erase(blocks_.begin() + static_cast<std::ptrdiff_t>(i));
      return data;
    }
    return nullptr;
  }
  void keep(void* data, size_t bytes) {
    if (bytes > kMaxCachedBytes) {
      release(data);
      return;
    }
    while (!blocks_.empty() &&
           (blocks_.size() == kMaxCachedBlocks || total_ + bytes > kMaxCachedBytes)) {
      release(blocks_.front().data);
      total_ -= blocks_.front().bytes;
      blocks_.erase(blocks_.begin());
    }
    blocks_.push_back({data, bytes});
    total_ += bytes;
  }

 private:
  struct Block {
    void* data;
    size_t bytes;
  };
  std::vector<Block> blocks_;  // oldest first
  size_t total_ = 0;
};

// This thread's cache; null once it is gone (storages freed during thread exit free directly).
BlockCache* thread_cache() {
  if (t_cache_destroyed) return nullptr;
  thread_local BlockCache cache;
  return &cache;
}
}  // namespace

void Storage::Free::operator()(void* p) const { release(p); }

Storage::Storage(size_t nbytes, bool zero) : nbytes_(nbytes) {
  void* data = nullptr;
  if (nbytes >= kMinCachedBytes) {
    if (BlockCache* cache = thread_cache()) data = cache->take(nbytes);
  }
  if (data == nullptr) data = allocate(nbytes);
  data_.reset(data);
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
  if (nbytes_ >= kMinCachedBytes) {
    if (BlockCache* cache = thread_cache()) cache->keep(data_.release(), nbytes_);
  }
}

int64_t Storage::live_count() { return g_live_count.load(); }
int64_t Storage::live_bytes() { return g_live_bytes.load(); }
int64_t Storage::peak_bytes() { return g_peak_bytes.load(); }
void Storage::reset_peak_bytes() { g_peak_bytes.store(g_live_bytes.load()); }

}  // namespace gg
