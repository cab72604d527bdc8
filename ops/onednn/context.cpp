#include "ops/onednn/context.hpp"

#include <vector>

#include "core/error.hpp"

namespace gg::onednn {

namespace {
std::atomic<uint64_t> g_hits{0};
std::atomic<uint64_t> g_misses{0};
}  // namespace

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

bool has_dnnl_type(Dtype dtype) { return dtype != kFloat64 && dtype != kInt64; }

dnnl::memory::data_type to_dnnl(Dtype dtype) {
  using dt = dnnl::memory::data_type;
  switch (dtype) {
    case Dtype::Float32:
      return dt::f32;
    case Dtype::BFloat16:
      return dt::bf16;
    case Dtype::Float16:
      return dt::f16;
    case Dtype::Int8:
      return dt::s8;
    case Dtype::Int32:
      return dt::s32;
    case Dtype::Float64:
    case Dtype::Int64:
      break;
  }
  fail("[onednn] dtype {} has no oneDNN data type", dtype_name(dtype));
}

CacheStats cache_stats() { return {g_hits.load(), g_misses.load()}; }
void record_cache_hit() { g_hits.fetch_add(1, std::memory_order_relaxed); }
void record_cache_miss() { g_misses.fetch_add(1, std::memory_order_relaxed); }

void* scratchpad_buffer(size_t bytes) {
  thread_local std::vector<uint8_t> buffer;
  if (buffer.size() < bytes) buffer.resize(bytes);
  return buffer.data();
}

dnnl::memory scratchpad(const dnnl::memory::desc& desc) {
  const size_t bytes = desc.get_size();
  return dnnl::memory(desc, engine(), bytes ? scratchpad_buffer(bytes) : nullptr);
}

}  // namespace gg::onednn
