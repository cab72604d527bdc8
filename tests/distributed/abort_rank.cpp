// The failure test of gg_dist_tests (ctest dist.abort_*): rank 1 throws a gg::Error that nothing
// catches while the other ranks wait in a barrier. gg::distributed::init()'s terminate handler
// must print rank 1's message and end the whole job with a non-zero status (MPI_Abort); without
// it the other ranks would wait in the barrier for ever.
#include "distributed/distributed.hpp"
#include "groupgrad.hpp"

int main() {
  gg::distributed::init();
  if (gg::distributed::rank() == 1) throw gg::Error("[abort_rank] rank 1 gives up on purpose");
  gg::distributed::barrier();
  return 0;
}
