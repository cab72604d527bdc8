// Stand-ins when tools/bench is built without libtorch (-DGG_BENCH_LIBTORCH=OFF, the default).
#include <stdexcept>

#include "peers.hpp"
#include "train.hpp"

namespace gg::bench {

bool libtorch_available() { return false; }
std::string libtorch_version() { return "not built (configure with -DGG_BENCH_LIBTORCH=ON)"; }
std::string libtorch_blas() { return "-"; }
MemoryCounter libtorch_memory_counter() { return {}; }
void libtorch_set_threads(int) {}
std::vector<Variant> libtorch_variants(const Problem&) { return {}; }
TrainSide libtorch_train(const TrainSetup&) {
  throw std::logic_error("[bench] libtorch_train called in a build without libtorch");
}

}  // namespace gg::bench
