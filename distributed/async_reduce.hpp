#pragma once
// Non-blocking sums for DistributedDataParallel's buckets (library-private; MPI_Iallreduce under
// MPI). Every rank must start the same sums in the same order.
#include "../core/tensor.hpp"

namespace gg::distributed::detail {

// Throws "[op] groupgrad was built without MPI ..." in a library built without MPI; does nothing
// in one built with it. For library code above the process group (expert_parallel.cpp).
void require_mpi(const char* op);

// Starts summing the contiguous Float32 or Float64 tensor flat over every rank, in place. flat
// must stay alive and untouched until wait_all().
void start_sum(const Tensor& flat);
// Lets started sums make progress without waiting for them.
void progress();
// Waits for every started sum.
void wait_all();

}  // namespace gg::distributed::detail
