#include "core/checked.hpp"

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <new>

namespace gg {

namespace detail {
void throw_size_overflow(const char* op, std::string_view what, int64_t a, char sign, int64_t b) {
  fail("[{}] {} overflows int64 ({} {} {})", op, what, a, sign, b);
}
}  // namespace detail

size_t max_allocation_bytes() {
  static const size_t limit = [] {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    size_t bytes = pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page)
                                         : std::numeric_limits<size_t>::max() / 2;
    if (const char* env = std::getenv("GG_MAX_ALLOC_BYTES")) {
      char* end = nullptr;
      const unsigned long long v = std::strtoull(env, &end, 10);
      if (end != env && v > 0 && v < bytes) bytes = static_cast<size_t>(v);
    }
    return bytes;
  }();
  return limit;
}

void check_allocation(uint64_t count, size_t bytes_each, const char* op, std::string_view what,
                      std::string_view context) {
  const size_t limit = max_allocation_bytes();
  GG_CHECK(bytes_each == 0 || count <= limit / bytes_each,
           "[{}] {}: cannot allocate {} x {} bytes, more than the {} bytes one allocation may take "
           "(the machine's physical memory){}{}",
           op, what, count, bytes_each, limit, context.empty() ? "" : " ", context);
  // Big blocks: ask the allocator first, without throwing (a throwing new would escape as
  // std::bad_alloc, or abort under AddressSanitizer).
  const size_t bytes = static_cast<size_t>(count) * bytes_each;
  if (bytes < (size_t{64} << 20)) return;
  struct OperatorDelete {
    void operator()(void* p) const { ::operator delete(p); }
  };
  const std::unique_ptr<void, OperatorDelete> probe(::operator new(bytes, std::nothrow));
  GG_CHECK(probe != nullptr, "[{}] {}: cannot allocate {} x {} bytes (out of memory){}{}", op, what,
           count, bytes_each, context.empty() ? "" : " ", context);
}

}  // namespace gg
