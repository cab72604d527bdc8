// Stand-ins when tools/bench is built without libtorch (-DGG_BENCH_LIBTORCH=OFF, the default).
#include "peers.hpp"

namespace gg::bench {

bool libtorch_available() { return false; }
std::string libtorch_version() { return "not built (configure with -DGG_BENCH_LIBTORCH=ON)"; }
Timing libtorch_loop(const Problem&, int, int) { return {}; }
Timing libtorch_bmm(const Problem&, int, int) { return {}; }

}  // namespace gg::bench
