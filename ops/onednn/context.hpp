#pragma once
// The one place that owns oneDNN's engine and streams, and a thread-safe primitive cache that every
// backend file (matmul, eltwise, ...) keys by problem shape. Creating a primitive descriptor costs
// microseconds even when oneDNN's own cache hits, so we never build one for a key we have seen.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "../../core/dtype.hpp"

namespace gg::onednn {

dnnl::engine& engine();
// One stream per thread: CPU streams are cheap, and this keeps concurrent callers apart.
dnnl::stream& stream();

// oneDNN data type for a dtype that oneDNN computes with (f32, bf16, f16, s8, s32); throws
// gg::Error for Float64 and Int64, which oneDNN does not have.
dnnl::memory::data_type to_dnnl(Dtype dtype);
bool has_dnnl_type(Dtype dtype);

// Counts every primitive (descriptor) built and every cache hit, across all caches.
struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;  // == primitive descriptors created
};
CacheStats cache_stats();
void record_cache_hit();
void record_cache_miss();

// A cache of built primitives keyed by a string that encodes every field of the problem.
// Lookups take a shared lock; a miss builds outside the lock and inserts under an exclusive one.
template <class Value>
class PrimitiveCache {
 public:
  const Value& get(const std::string& key, const std::function<Value()>& build) {
    {
      std::shared_lock lock(mutex_);
      if (auto it = map_.find(key); it != map_.end()) {
        record_cache_hit();
        return *it->second;
      }
    }
    auto value = std::make_unique<Value>(build());
    std::unique_lock lock(mutex_);
    auto [it, inserted] = map_.try_emplace(key, std::move(value));
    if (inserted) record_cache_miss();
    return *it->second;
  }
  size_t size() const {
    std::shared_lock lock(mutex_);
    return map_.size();
  }

 private:
  mutable std::shared_mutex mutex_;
  std::unordered_map<std::string, std::unique_ptr<Value>> map_;
};

// Scratchpad memory for one primitive execution, reused per thread (primitives are built with
// scratchpad_mode::user so that concurrent executions never share oneDNN's global scratchpad).
// scratchpad_buffer is the thread's buffer itself (at least `bytes`; it moves when it grows), for
// callers that keep their own memory object bound to it.
dnnl::memory scratchpad(const dnnl::memory::desc& desc);
void* scratchpad_buffer(size_t bytes);

}  // namespace gg::onednn
