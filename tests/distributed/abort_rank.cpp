// The failure tests of gg::distributed (ctest dist.abort_np*, dist.killed_np*): one rank fails
// while the other ranks wait in a barrier, and the whole job must end at once with a non-zero
// status instead of leaving them waiting for ever.
//   abort_rank          rank 1 throws a gg::Error that nothing catches: init()'s terminate handler
//                       prints rank 1's message and calls MPI_Abort.
//   abort_rank --kill   rank 1 is killed (SIGKILL, no handler runs): mpirun sees it die and
//                       ends the others.
#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "distributed/distributed.hpp"
#include "groupgrad.hpp"

int main(int argc, char** argv) {
  const bool kill_rank = argc > 1 && std::strcmp(argv[1], "--kill") == 0;
  gg::distributed::init();
  if (gg::distributed::rank() == 1) {
    if (kill_rank) ::kill(::getpid(), SIGKILL);
    throw gg::Error("[abort_rank] rank 1 gives up on purpose");
  }
  gg::distributed::barrier();
  return 0;
}
