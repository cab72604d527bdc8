// libtorch 1.13 peers (built only with -DGG_BENCH_LIBTORCH=ON): loops of torch::mm / addmm /
// linear and torch::bmm, with autograd for forward + backward; plus the thread setting, the BLAS
// check and a counting CPU allocator for libtorch's side of the peak-memory column.
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <dlfcn.h>
#include <torch/torch.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <groupgrad/groupgrad.hpp>
#include <memory>

#include "peers.hpp"

namespace gg::bench {

namespace {

// Wraps libtorch's CPU allocation (c10::alloc_cpu) with live and peak byte counts. The size rides
// in a 64-byte header in front of the data, which keeps the data 64-byte aligned as alloc_cpu's;
// the context is the data pointer itself, as raw_allocate() (used by some kernels) requires.
class CountingAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t n) const override {
    char* base = static_cast<char*>(c10::alloc_cpu(n + kHeader));
    *reinterpret_cast<size_t*>(base) = n;
    const int64_t live = live_.fetch_add(static_cast<int64_t>(n)) + static_cast<int64_t>(n);
    int64_t peak = peak_.load();
    while (live > peak && !peak_.compare_exchange_weak(peak, live)) {
    }
    return {base + kHeader, base + kHeader, &release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  static int64_t live() { return live_.load(); }
  static int64_t peak() { return peak_.load(); }
  static void reset_peak() { peak_.store(live_.load()); }

 private:
  static constexpr size_t kHeader = 64;
  static void release(void* data) {
    if (data == nullptr) return;
    char* base = static_cast<char*>(data) - kHeader;
    live_.fetch_sub(static_cast<int64_t>(*reinterpret_cast<size_t*>(base)));
    c10::free_cpu(base);
  }
  static inline std::atomic<int64_t> live_{0};
  static inline std::atomic<int64_t> peak_{0};
};

// Installed before the first tensor the bench makes (priority above the default allocator's).
void install_counting_allocator() {
  static CountingAllocator allocator;
  static const bool installed = [] {
    c10::SetCPUAllocator(&allocator, /*priority=*/UINT8_MAX);
    return true;
  }();
  (void)installed;
}

std::vector<torch::Tensor> randn_list(const std::vector<std::vector<int64_t>>& shapes,
                                      torch::ScalarType type, bool grad) {
  std::vector<torch::Tensor> out;
  for (const auto& s : shapes) out.push_back(torch::randn(s, type).requires_grad_(grad));
  return out;
}

// A call: outputs from the inputs, then backward from ones (made once, outside the timed call).
Variant make_variant(const std::string& name, const Problem& p,
                     std::function<std::vector<torch::Tensor>()> forward) {
  auto grads = std::make_shared<std::vector<torch::Tensor>>();
  if (p.backward) {
    torch::NoGradGuard no_grad;
    for (const torch::Tensor& y : forward()) grads->push_back(torch::ones_like(y));
  }
  auto run = [forward, grads, backward = p.backward] {
    if (!backward) {
      torch::NoGradGuard no_grad;
      forward();
      return;
    }
    torch::autograd::backward(forward(), *grads);
  };
  return {name + (p.backward ? " + autograd" : ""), run, libtorch_memory_counter(), ""};
}

}  // namespace

MemoryCounter libtorch_memory_counter() {
  install_counting_allocator();
  return {&CountingAllocator::reset_peak, &CountingAllocator::peak, &CountingAllocator::live};
}

bool libtorch_available() { return true; }
std::string libtorch_version() { return TORCH_VERSION; }

std::string libtorch_blas() {
  // sgemm_ is what at::native::cpublas::gemm calls for Float32 mm; find the library it comes from.
  void* sgemm = dlsym(RTLD_DEFAULT, "sgemm_");
  Dl_info info{};
  if (sgemm == nullptr || dladdr(sgemm, &info) == 0 || info.dli_fname == nullptr)
    return "unknown (no sgemm_ symbol loaded)";
  std::unique_ptr<char, decltype(&std::free)> real(realpath(info.dli_fname, nullptr), &std::free);
  std::string out = real ? real.get() : info.dli_fname;
  using ConfigFn = char* (*)();
  using ThreadsFn = int (*)();
  auto threads = reinterpret_cast<ThreadsFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (auto config = reinterpret_cast<ConfigFn>(dlsym(RTLD_DEFAULT, "openblas_get_config")))
    out += std::string(" (") + config() +
           (threads ? "; its threads: " + std::to_string(threads()) : "") + ")";
  else
    out += " (NOT OpenBLAS: libtorch's matmul runs on this BLAS)";
  return out;
}

void libtorch_set_threads(int threads) {
  install_counting_allocator();
  torch::set_num_threads(threads);
  // at::set_num_threads sets OpenMP's and MKL's counts, not OpenBLAS's own pthreads pool.
  using SetFn = void (*)(int);
  if (auto set = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set(threads);
}

// Under --max-isa below AVX512_CORE, libtorch must run bf16 as it does on such a CPU. It decides by
// the CPU's flags that its bundled oneDNN has bf16 kernels, but that oneDNN honours
// ONEDNN_MAX_CPU_ISA too and then refuses the primitive ("could not create a primitive descriptor
// iterator"); with oneDNN switched off libtorch takes its own bf16 loop, as on an AVX2 machine.
static void match_capped_isa(const Problem& p) {
  if (p.bf16 && !gg::backend::native_bf16()) at::globalContext().setUserEnabledMkldnn(false);
}

std::vector<Variant> libtorch_variants(const Problem& p) {
  install_counting_allocator();
  match_capped_isa(p);
  const torch::ScalarType type = p.bf16 ? torch::kBFloat16 : torch::kFloat32;
  std::vector<Variant> out;
  if (p.packed) {
    // The MoE layout as a PyTorch user loops over it: split the rows (one cat in backward), unbind
    // the experts' weights (one stack in backward), one mm per expert.
    std::vector<int64_t> rows;
    for (const GroupShape& g : p.groups) rows.push_back(g.m);
    const GroupShape& g0 = p.groups.front();
    auto x = randn_list({{total_rows(p), g0.k}}, type, p.backward)[0];
    auto w = randn_list({{static_cast<int64_t>(p.groups.size()), g0.k, g0.n}}, type, p.backward)[0];
    out.push_back(make_variant("libtorch loop of mm", p, [x, w, rows] {
      std::vector<torch::Tensor> xs = x.split_with_sizes(rows), ws = w.unbind(0), ys;
      for (size_t i = 0; i < xs.size(); ++i) ys.push_back(torch::mm(xs[i], ws[i]));
      return ys;
    }));
    return out;
  }
  std::vector<std::vector<int64_t>> xs_shape, ws_shape, wts_shape, bs_shape;
  for (const GroupShape& g : p.groups) {
    xs_shape.push_back({g.m, g.k});
    ws_shape.push_back({g.k, g.n});
    wts_shape.push_back({g.n, g.k});
    bs_shape.push_back({g.n});
  }
  auto xs = randn_list(xs_shape, type, p.backward);
  auto ws = randn_list(ws_shape, type, p.backward);
  if (p.bias) {
    auto bs = randn_list(bs_shape, type, p.backward);
    auto wts = randn_list(wts_shape, type, p.backward);  // nn.Linear's [out, in] layout
    out.push_back(make_variant("libtorch loop of addmm", p, [xs, ws, bs] {
      std::vector<torch::Tensor> ys;
      for (size_t i = 0; i < xs.size(); ++i) ys.push_back(torch::addmm(bs[i], xs[i], ws[i]));
      return ys;
    }));
    out.push_back(make_variant("libtorch loop of linear", p, [xs, wts, bs] {
      std::vector<torch::Tensor> ys;
      for (size_t i = 0; i < xs.size(); ++i)
        ys.push_back(torch::nn::functional::linear(xs[i], wts[i], bs[i]));
      return ys;
    }));
    return out;
  }
  out.push_back(make_variant("libtorch loop of mm", p, [xs, ws] {
    std::vector<torch::Tensor> ys;
    for (size_t i = 0; i < xs.size(); ++i) ys.push_back(torch::mm(xs[i], ws[i]));
    return ys;
  }));
  bool same_m = true;
  for (const GroupShape& g : p.groups) same_m = same_m && g.m == p.groups[0].m;
  if (uniform_kn(p) && same_m) {
    torch::Tensor x = torch::stack(xs).detach().requires_grad_(p.backward);
    torch::Tensor w = torch::stack(ws).detach().requires_grad_(p.backward);
    out.push_back(make_variant("libtorch bmm", p,
                               [x, w] { return std::vector<torch::Tensor>{torch::bmm(x, w)}; }));
  }
  return out;
}

}  // namespace gg::bench
