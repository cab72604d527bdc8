#pragma once
// The one place that owns oneDNN's engine and streams, and a thread-safe, bounded primitive cache
// that every backend file (matmul, eltwise, ...) keys by problem shape. Creating a primitive
// descriptor costs microseconds even when oneDNN's own cache hits, so we never build one for a key
// we have seen.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../../core/dtype.hpp"

namespace gg::onednn {

dnnl::engine& engine();
// One stream per thread: CPU streams are cheap, and this keeps concurrent callers apart.
dnnl::stream& stream();

// oneDNN data type for a dtype that oneDNN computes with (f32, bf16, f16, s8, s32); throws
// gg::Error for Float64 and Int64, which oneDNN does not have.
dnnl::memory::data_type to_dnnl(Dtype dtype);

// The instruction set oneDNN dispatches to in this process: what the CPU has, capped by the
// ONEDNN_MAX_CPU_ISA environment variable (read by oneDNN once, before its first primitive).
// Read once and cached.
dnnl::cpu_isa effective_isa();
// Whether oneDNN dispatches to `isa` or better here (the ISA values are bit sets, each including
// the ones below it, dnnl_types.h), so that ONEDNN_MAX_CPU_ISA caps our own choices too.
bool isa_at_least(dnnl::cpu_isa isa);
// Whether f32 matmul runs oneDNN's brgemm kernels (from AVX512_CORE up); below, it runs gemm:jit,
// whose speed depends on other things (see onednn/matmul.cpp and kernels/grouped_mm_kernel.cpp).
inline bool brgemm_isa() { return isa_at_least(dnnl::cpu_isa::avx512_core); }
// Its name as ONEDNN_MAX_CPU_ISA spells it: "SSE41", "AVX2", "AVX512_CORE_BF16", ...
std::string isa_name(dnnl::cpu_isa isa);
// Whether oneDNN 2.6 has BFloat16 kernels (matmul, softmax, layer_norm, binary, eltwise,
// reduction, the f32 -> bf16 reorder) on this ISA: from AVX512_CORE up. Below it, every op on
// BFloat16 computes in Float32 and rounds its result to BFloat16 once, so it gives exactly what
// the Float32 op gives on the converted inputs, converted back. Decided once per process.
bool native_bf16();
// True for a BFloat16 dtype when !native_bf16(): the op computes through Float32.
inline bool bf16_through_f32(Dtype dtype) { return dtype == kBFloat16 && !native_bf16(); }

// Counts every primitive (descriptor) built and every cache hit, across all caches.
struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;  // == primitive descriptors created
};
CacheStats cache_stats();
// Entries evicted so far, and entries held now, across all caches.
uint64_t cache_evictions();
int64_t cache_entries();
// Both return hits + misses so far, which the caches use as their clock.
uint64_t record_cache_hit();
uint64_t record_cache_miss();
void record_cache_entries(int64_t added, uint64_t evicted);

// How many primitives EACH cache keeps (default 1024, like oneDNN's own primitive cache). A long
// job that meets many shapes (a mixture of experts routes a new row count to some expert at almost
// every step) would otherwise keep every primitive it ever built. When a cache is full, a new entry
// evicts the least recently used one; lowering the capacity takes effect at the next insertion.
// 0 keeps nothing (every call builds its primitive). Setting it also sets oneDNN's own primitive
// cache (dnnl::set_primitive_cache_capacity, which ours fronts) to the same capacity: that one
// holds up to 1024 primitives by default, so memory is bounded only if both are. Thread-safe.
size_t primitive_cache_capacity();
void set_primitive_cache_capacity(size_t capacity);

// A cache of built primitives keyed by a string that encodes every field of the problem, bounded
// by primitive_cache_capacity(). Lookups take a shared lock and stamp the entry's last use; a
// miss builds outside the lock and inserts under an exclusive one, evicting the entry with the
// oldest stamp when full (a scan, only on misses, which cost far more: a primitive build). get()
// returns shared ownership, so an entry evicted while another thread runs it stays alive until
// that thread is done.
template <class Value>
class PrimitiveCache {
 public:
  PrimitiveCache() = default;
  PrimitiveCache(const PrimitiveCache&) = delete;
  PrimitiveCache& operator=(const PrimitiveCache&) = delete;
  ~PrimitiveCache() { record_cache_entries(-static_cast<int64_t>(map_.size()), 0); }

  // build: a callable returning Value, taken as it is (a std::function would allocate on every
  // call, hits included, for lambdas capturing more than two references).
  template <class Build>
  std::shared_ptr<const Value> get(const std::string& key, Build&& build) {
    {
      std::shared_lock lock(mutex_);
      if (auto it = map_.find(key); it != map_.end()) {
        it->second.last_use.store(record_cache_hit(), std::memory_order_relaxed);
        return it->second.value;
      }
    }
    // The key is copied before building: keys live in a buffer per thread (KeyBuilder), which a
    // build that makes keys of its own would overwrite.
    std::string owned_key = key;
    auto value = std::make_shared<const Value>(build());
    const size_t capacity = primitive_cache_capacity();
    std::unique_lock lock(mutex_);
    if (auto it = map_.find(owned_key); it != map_.end())
      return it->second.value;  // built meanwhile
    const uint64_t now = record_cache_miss();
    uint64_t evicted = 0;
    for (; !map_.empty() && map_.size() >= capacity; ++evicted) evict_least_recently_used();
    if (capacity > 0) map_.try_emplace(std::move(owned_key), value, now);
    record_cache_entries(static_cast<int64_t>(capacity > 0) - static_cast<int64_t>(evicted),
                         evicted);
    return value;
  }
  size_t size() const {
    std::shared_lock lock(mutex_);
    return map_.size();
  }

 private:
  struct Entry {
    Entry(std::shared_ptr<const Value> v, uint64_t now) : value(std::move(v)), last_use(now) {}
    std::shared_ptr<const Value> value;
    std::atomic<uint64_t> last_use;  // the clock at the last use
  };
  void evict_least_recently_used() {
    auto oldest = map_.begin();
    for (auto it = map_.begin(); it != map_.end(); ++it)
      if (it->second.last_use.load(std::memory_order_relaxed) <
          oldest->second.last_use.load(std::memory_order_relaxed))
        oldest = it;
    map_.erase(oldest);
  }

  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, Entry> map_;
};

// The one cache of plans of type Value (each backend file has its own plan types, so its own
// caches), created after the engine so that the engine outlives the cached primitives at exit.
template <class Value>
PrimitiveCache<Value>& cache_of() {
  engine();
  static PrimitiveCache<Value> cache;
  return cache;
}

// The plan cached under `key`, built by build() (which returns the plan by value) on the first
// call for that key. Returns shared ownership: hold it while running the plan, so that an
// eviction meanwhile cannot free it.
template <class Build>
auto cached(const std::string& key, Build&& build) {
  using Value = std::invoke_result_t<Build&>;
  return cache_of<Value>().get(key, std::forward<Build>(build));
}

// Builds cache keys from raw integer fields (no formatting on the hot path), in a buffer per
// thread (no allocation once it has grown): a key is valid until the thread starts the next one.
// The tag tells the primitive kinds apart; the thread count is always part of the key, because
// oneDNN's kernels are partitioned for the threads they will use.
class KeyBuilder {
 public:
  explicit KeyBuilder(int64_t tag);
  KeyBuilder& add(int64_t v) {
    key_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  // A fixed number of fields.
  template <size_t N>
  KeyBuilder& add(const std::array<int64_t, N>& v) {
    key_.append(reinterpret_cast<const char*>(v.data()), sizeof v);
    return *this;
  }
  // A list of fields, its length first (so that two lists cannot run into each other).
  KeyBuilder& add(const std::vector<int64_t>& v) {
    add(static_cast<int64_t>(v.size()));
    key_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(int64_t));
    return *this;
  }
  const std::string& str() const { return key_; }

 private:
  std::string& key_;
};

// A primitive and the descriptor it was built from (for its scratchpad size and name).
template <class Primitive>
struct Implementation {
  typename Primitive::primitive_desc pd;
  Primitive primitive;
};

// The primitive for the descriptor that make() returns, or none when oneDNN rejects the problem
// (dnnl::error) or, unless `accept_ref`, offers only its reference kernel (ref:any), which is
// hundreds of times slower than our own loops: the caller then declines and its loop runs.
template <class Primitive, class Make>
std::optional<Implementation<Primitive>> fast_implementation(Make&& make, bool accept_ref = false) {
  try {
    typename Primitive::primitive_desc pd = make();
    if (!accept_ref && std::string_view(pd.impl_info_str()).starts_with("ref")) return std::nullopt;
    return Implementation<Primitive>{pd, Primitive(pd)};
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

// Scratchpad memory for one primitive execution, reused per thread (primitives are built with
// scratchpad_mode::user so that concurrent executions never share oneDNN's global scratchpad).
// scratchpad_buffer is the thread's buffer itself (at least `bytes`; it moves when it grows), for
// callers that keep their own memory object bound to it.
dnnl::memory scratchpad(const dnnl::memory::desc& desc);
void* scratchpad_buffer(size_t bytes);

}  // namespace gg::onednn
