// gg::distributed in a library built without MPI (GG_WITH_MPI=OFF, or MPI not found): the same
// functions, each saying so. is_available() is false; nothing here pretends to be one process.
#include "core/error.hpp"
#include "distributed/async_reduce.hpp"
#include "distributed/distributed.hpp"

namespace gg::distributed {

namespace {
[[noreturn]] void unavailable(const char* op) {
  fail(
      "[{}] groupgrad was built without MPI (GG_WITH_MPI=OFF or MPI not found when it was "
      "configured): install Open MPI (tools/install-deps.sh) and rebuild",
      op);
}
}  // namespace

bool is_available() { return false; }
void init() { unavailable("init"); }
bool is_initialized() { return false; }
void finalize() {}
int rank() { unavailable("rank"); }
int world_size() { unavailable("world_size"); }
void barrier() { unavailable("barrier"); }
void all_reduce(Tensor&, ReduceOp) { unavailable("all_reduce"); }
void broadcast(Tensor&, int) { unavailable("broadcast"); }
std::vector<Tensor> all_gather(const Tensor&) { unavailable("all_gather"); }
void all_gather(std::vector<Tensor>&, const Tensor&) { unavailable("all_gather"); }
void all_to_all_single(Tensor&, const Tensor&, const std::vector<int64_t>&,
                       const std::vector<int64_t>&) {
  unavailable("all_to_all_single");
}
void all_to_all(Tensor&, const Tensor&, const std::vector<int64_t>&, const std::vector<int64_t>&) {
  unavailable("all_to_all");
}

namespace detail {
void require_mpi(const char* op) { unavailable(op); }
void start_sum(const Tensor&) { unavailable("DistributedDataParallel"); }
void progress() {}
void wait_all() {}
}  // namespace detail

}  // namespace gg::distributed
