#pragma once
// groupgrad's side of the kernel workloads (groupgrad_variant.cpp).
#include "peers.hpp"

namespace gg::bench {

Variant groupgrad_variant(const Problem& p);
// The same groups stacked, as one 3D x 3D grouped_mm call ([G, m, k] @ [G, k, n]): the layout of
// torch.bmm and of F.grouped_mm's 3D form. For list-form problems of equal groups without bias.
Variant groupgrad_3d_variant(const Problem& p);
// groupgrad's tensor-storage counters (gg::Storage).
MemoryCounter groupgrad_memory_counter();

}  // namespace gg::bench
