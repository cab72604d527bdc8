#pragma once
// What the compute backend does on this CPU, for programs that report it (tools/bench prints it
// next to its numbers). Public, so that such programs need not include ops/onednn/context.hpp,
// which includes oneDNN's own headers (a private dependency, not installed).
#include <cstddef>
#include <string>

namespace gg::backend {

// The instruction set oneDNN dispatches to in this process, as ONEDNN_MAX_CPU_ISA spells it
// ("AVX2", "AVX512_CORE_BF16", ...): the CPU's own, capped by that environment variable.
std::string isa_name();
// Whether BFloat16 ops run oneDNN's BFloat16 kernels here (from AVX512_CORE up); when false each
// computes in Float32 and rounds its result to BFloat16 once.
bool native_bf16();

// How many built oneDNN primitives each of the library's primitive caches keeps (default 1024,
// like oneDNN's own cache): a full cache evicts its least recently used entry, a lower capacity
// takes effect at the next insertion, and 0 keeps none. Setting it also sets oneDNN's own
// primitive cache to the same capacity, so that memory stays bounded for a long job that meets
// many shapes. Thread-safe. (No PyTorch counterpart; oneDNN's dnnl::set_primitive_cache_capacity.)
size_t primitive_cache_capacity();
void set_primitive_cache_capacity(size_t capacity);

}  // namespace gg::backend

namespace gg {

// The number of threads the library's parallel loops and oneDNN (which runs on OpenMP here) use,
// as torch::set_num_threads / torch::get_num_threads: OpenMP's omp_set_num_threads, so it holds
// for the parallel regions the calling thread starts (set it from the main thread before
// training). n must be >= 1 (else gg::Error). The default is OMP_NUM_THREADS, or the CPU count.
void set_num_threads(int n);
int get_num_threads();

}  // namespace gg
