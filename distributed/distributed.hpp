#pragma once
// gg::distributed: a process group over MPI, named after torch.distributed (docs/distributed.md).
// Every process of an `mpirun` job calls init(), then the collectives below in the same order.
// Each collective first exchanges a small header (op, dtype, shape, sizes) between all ranks and
// checks it on every rank: input that the ranks disagree on throws the same gg::Error on every rank
// before any data moves, instead of hanging or corrupting memory. No MPI type appears here; a
// library built without MPI (GG_WITH_MPI=OFF or MPI not found) has the same functions, and they
// throw (is_available() says which).
#include <cstdint>
#include <vector>

#include "../core/tensor.hpp"

namespace gg::distributed {

// How all_reduce combines the ranks' tensors. Avg needs a floating dtype.
enum class ReduceOp { Sum, Avg, Max };

// Whether this library was built with MPI (torch.distributed.is_available).
bool is_available();
// Joins the job `mpirun` started (MPI_Init_thread); a second call does nothing. Also makes an
// uncaught exception on any rank print its message and abort the whole job (MPI_Abort), and
// finalizes MPI at exit. torch.distributed.init_process_group with the environment's settings.
void init();
// Whether init() was called (and finalize() not yet).
bool is_initialized();
// Leaves the job (MPI_Finalize) after a barrier; idempotent. Optional: init() registers it at exit.
void finalize();
// This process's rank in [0, world_size()) and the number of processes; init() must have run.
int rank();
int world_size();

// Waits until every rank has called barrier().
void barrier();
// Combines t over every rank in place (every rank passes the same dtype and shape). BFloat16 is
// summed in float32 and rounded once; integers take Sum and Max.
void all_reduce(Tensor& t, ReduceOp op = ReduceOp::Sum);
// Copies rank src's t into t on every rank (same dtype and shape everywhere).
void broadcast(Tensor& t, int src);
// Every rank's t, in rank order (same dtype and shape everywhere); the result has world_size()
// new tensors.
std::vector<Tensor> all_gather(const Tensor& t);
// The same into `out`, which is resized to world_size() new tensors (torch's all_gather(list, t)).
void all_gather(std::vector<Tensor>& out, const Tensor& t);
// torch.distributed.all_to_all_single along dim 0: input's rows are cut into world_size() pieces of
// input_split_sizes rows (rank j gets piece j), and output receives piece i from rank i, stacked
// in rank order, in output_split_sizes rows each. Empty split sizes mean equal pieces. output must
// be defined with input's dtype and trailing shape and sum(output_split_sizes) rows; what rank i
// sends to rank j must be what j expects from i.
void all_to_all_single(Tensor& output, const Tensor& input,
                       const std::vector<int64_t>& output_split_sizes = {},
                       const std::vector<int64_t>& input_split_sizes = {});
// The same as all_to_all_single (the name issue #15 uses).
void all_to_all(Tensor& output, const Tensor& input,
                const std::vector<int64_t>& output_split_sizes = {},
                const std::vector<int64_t>& input_split_sizes = {});

// Parameters that are not replicated over the ranks (e.g. experts sharded by expert parallelism):
// DistributedDataParallel neither broadcasts them nor averages their gradients. A module marks its
// own such parameters when it makes them.
void mark_not_replicated(const Tensor& param);
// Whether param is replicated (true unless mark_not_replicated(param) was called on this handle's
// tensor).
bool is_replicated(const Tensor& param);

}  // namespace gg::distributed
