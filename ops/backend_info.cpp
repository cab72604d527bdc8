// The public backend report (ops/backend_info.hpp) from the oneDNN context.
#include "backend_info.hpp"

#include <omp.h>

#include "core/error.hpp"
#include "onednn/context.hpp"

namespace gg::backend {

std::string isa_name() { return onednn::isa_name(onednn::effective_isa()); }

bool native_bf16() { return onednn::native_bf16(); }

size_t primitive_cache_capacity() { return onednn::primitive_cache_capacity(); }

void set_primitive_cache_capacity(size_t capacity) {
  onednn::set_primitive_cache_capacity(capacity);
}

}  // namespace gg::backend

namespace gg {

void set_num_threads(int n) {
  GG_CHECK(n >= 1, "[set_num_threads] the number of threads must be at least 1, got {}", n);
  omp_set_num_threads(n);
}

int get_num_threads() { return omp_get_max_threads(); }

}  // namespace gg
