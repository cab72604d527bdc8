#include "ops/onednn/context.hpp"

#include <omp.h>

#include <algorithm>
#include <iterator>
#include <limits>
#include <vector>

#include "core/error.hpp"

namespace gg::onednn {

namespace {
std::atomic<uint64_t> g_hits{0};
std::atomic<uint64_t> g_misses{0};
std::atomic<uint64_t> g_evictions{0};
std::atomic<int64_t> g_entries{0};
std::atomic<size_t> g_capacity{1024};
}  // namespace

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

dnnl::memory::data_type to_dnnl(Dtype dtype) {
  using dt = dnnl::memory::data_type;
  // In the enum's order (Dtype, core/dtype.hpp); undef where oneDNN has no such type.
  static constexpr dt kTypes[] = {dt::f32, dt::undef, dt::bf16, dt::f16,
                                  dt::s8,  dt::s32,   dt::undef};
  static_assert(std::size(kTypes) == static_cast<size_t>(Dtype::Int64) + 1);
  const auto i = static_cast<size_t>(dtype);
  if (i < std::size(kTypes) && kTypes[i] != dt::undef) return kTypes[i];
  fail("[onednn] dtype {} has no oneDNN data type", dtype_name(dtype));
}

dnnl::cpu_isa effective_isa() {
  static const dnnl::cpu_isa isa = dnnl::get_effective_cpu_isa();
  return isa;
}

std::string isa_name(dnnl::cpu_isa isa) {
  using i = dnnl::cpu_isa;
  switch (isa) {
    case i::sse41:
      return "SSE41";
    case i::avx:
      return "AVX";
    case i::avx2:
      return "AVX2";
    case i::avx2_vnni:
      return "AVX2_VNNI";
    case i::avx512_mic:
      return "AVX512_MIC";
    case i::avx512_mic_4ops:
      return "AVX512_MIC_4OPS";
    case i::avx512_core:
      return "AVX512_CORE";
    case i::avx512_core_vnni:
      return "AVX512_CORE_VNNI";
    case i::avx512_core_bf16:
      return "AVX512_CORE_BF16";
    case i::avx512_core_amx:
      return "AVX512_CORE_AMX";
    case i::all:
      return "ALL";
  }
  return fmt::format("ISA 0x{:x}", static_cast<unsigned>(isa));
}

bool isa_at_least(dnnl::cpu_isa isa) {
  const auto want = static_cast<unsigned>(isa);
  return (static_cast<unsigned>(effective_isa()) & want) == want;
}

bool native_bf16() {
  static const bool native = isa_at_least(dnnl::cpu_isa::avx512_core);
  return native;
}

CacheStats cache_stats() { return {g_hits.load(), g_misses.load()}; }
uint64_t cache_evictions() { return g_evictions.load(); }
int64_t cache_entries() { return g_entries.load(); }
uint64_t record_cache_hit() {
  return g_hits.fetch_add(1, std::memory_order_relaxed) + 1 +
         g_misses.load(std::memory_order_relaxed);
}
uint64_t record_cache_miss() {
  return g_misses.fetch_add(1, std::memory_order_relaxed) + 1 +
         g_hits.load(std::memory_order_relaxed);
}
void record_cache_entries(int64_t added, uint64_t evicted) {
  g_entries.fetch_add(added, std::memory_order_relaxed);
  g_evictions.fetch_add(evicted, std::memory_order_relaxed);
}

size_t primitive_cache_capacity() { return g_capacity.load(std::memory_order_relaxed); }
void set_primitive_cache_capacity(size_t capacity) {
  g_capacity.store(capacity, std::memory_order_relaxed);
  dnnl::set_primitive_cache_capacity(
      static_cast<int>(std::min<size_t>(capacity, std::numeric_limits<int>::max())));
}

namespace {
std::string& key_buffer() {
  thread_local std::string buffer;
  return buffer;
}
}  // namespace

KeyBuilder::KeyBuilder(int64_t tag) : key_(key_buffer()) {
  key_.clear();
  add(tag).add(omp_get_max_threads());
}

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
