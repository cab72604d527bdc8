#pragma once
// SavedTensor's in-place check (saved_tensor.hpp) for a backward that keeps the saved data itself:
// grouped_mm keeps a storage and matrix views of it, not a detached tensor per group (a detached
// tensor costs three allocations, and as many frees). Internal: not included by public headers.
#include <cstdint>

#include "../core/tensor.hpp"

namespace gg::autograd {

// Throws the gg::Error of SavedTensor::check when `storage` is no longer at `version`; `shape`
// and `dtype` describe the saved tensor in the message.
void check_saved_version(const Storage& storage, uint64_t version, const Shape& shape, Dtype dtype,
                         bool is_output = false);

}  // namespace gg::autograd
