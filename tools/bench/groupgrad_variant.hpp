#pragma once
// groupgrad's side of the kernel workloads (groupgrad_variant.cpp).
#include "peers.hpp"

namespace gg::bench {

Variant groupgrad_variant(const Problem& p);
// groupgrad's tensor-storage counters (gg::Storage).
MemoryCounter groupgrad_memory_counter();

}  // namespace gg::bench
