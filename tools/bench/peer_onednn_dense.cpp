// The machine's limit for a grouped product: ONE dense oneDNN GEMM with the same FLOPs,
// [sum m, k] @ [k, n], and for forward + backward the two backward GEMMs as well,
//   dX = dY W^T  ([M, n] @ [n, k], W^T read in place from W's [k, n] buffer)
//   dW = X^T dY  ([k, M] @ [M, n], X^T read in place from X's [M, k] buffer)
// on raw oneDNN: primitives, memories and scratchpads are made once, outside the timed call,
// which then only executes the primitives. Setup checks that oneDNN picked a fast kernel for
// each (brgemm or gemm jit, never ref) and spot-checks results against dot products, so a
// layout mistake shows up as an error rather than as a flattering or damning number.
#include <cmath>
#include <groupgrad/groupgrad.hpp>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include "peers.hpp"

namespace gg::bench {

namespace {

using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

// A [rows, cols] row-major buffer of f32 or bf16 owned by oneDNN.
struct Matrix {
  int64_t rows = 0, cols = 0;
  dt type = dt::f32;
  dnnl::memory mem;

  Matrix(const dnnl::engine& engine, int64_t r, int64_t c, dt t)
      : rows(r), cols(c), type(t), mem(dnnl::memory::desc({r, c}, t, dims{c, 1}), engine) {}

  void fill_random(std::mt19937& rng) {
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < rows * cols; ++i) set(i, u(rng));
  }
  void set(int64_t i, float v) {
    if (type == dt::f32)
      static_cast<float*>(mem.get_data_handle())[i] = v;
    else
      static_cast<gg::BFloat16*>(mem.get_data_handle())[i] = gg::BFloat16(v);
  }
  float at(int64_t r, int64_t c) const {
    const int64_t i = r * cols + c;
    return type == dt::f32 ? static_cast<const float*>(mem.get_data_handle())[i]
                           : float(static_cast<const gg::BFloat16*>(mem.get_data_handle())[i]);
  }
  // This buffer read as its transpose, [cols, rows] with strides {1, cols}: no copy.
  dnnl::memory transposed(const dnnl::engine& engine) const {
    return dnnl::memory(dnnl::memory::desc({cols, rows}, type, dims{1, cols}), engine,
                        mem.get_data_handle());
  }
};

// One matmul primitive with its arguments bound, executed as often as asked.
struct Gemm {
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;
  std::string impl;

  Gemm(const dnnl::engine& engine, const dnnl::memory& src, const dnnl::memory& wei,
       const dnnl::memory& dst) {
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc pd(
        dnnl::matmul::desc(src.get_desc(), wei.get_desc(), dst.get_desc()), attr, engine);
    impl = pd.impl_info_str();
    if (impl.rfind("ref", 0) == 0)
      throw std::runtime_error("[bench] the dense oneDNN peer fell to oneDNN's reference kernel '" +
                               impl + "': its timing would not be the machine's limit");
    prim = dnnl::matmul(pd);
    args = {{DNNL_ARG_SRC, src},
            {DNNL_ARG_WEIGHTS, wei},
            {DNNL_ARG_DST, dst},
            {DNNL_ARG_SCRATCHPAD, dnnl::memory(pd.scratchpad_desc(), engine)}};
  }
  void run(dnnl::stream& s) { prim.execute(s, args); }
};

// Compares a few entries of c = a @ b (a [M, K], b [K, N] given as element functions) with
// double-precision dot products.
template <class A, class B>
void spot_check(const char* what, const Matrix& c, int64_t K, A a, B b, bool bf16) {
  std::mt19937 rng(7);
  for (int s = 0; s < 16; ++s) {
    const int64_t i = rng() % c.rows, j = rng() % c.cols;
    double ref = 0, mag = 0;
    for (int64_t k = 0; k < K; ++k) {
      ref += double(a(i, k)) * double(b(k, j));
      mag += std::abs(double(a(i, k)) * double(b(k, j)));
    }
    const double tol = (bf16 ? 1e-2 : 1e-4) * (mag + 1);
    if (std::abs(double(c.at(i, j)) - ref) > tol)
      throw std::runtime_error(std::string("[bench] the dense oneDNN peer computes ") + what +
                               " wrongly: entry (" + std::to_string(i) + ", " + std::to_string(j) +
                               ") is " + std::to_string(c.at(i, j)) + ", expected " +
                               std::to_string(ref));
  }
}

struct Dense {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  Matrix x, w, y, dy, dx, dw;
  std::vector<Gemm> gemms;  // forward, then dX and dW when backward

  Dense(int64_t M, int64_t K, int64_t N, dt t, bool backward)
      : x(engine, M, K, t),
        w(engine, K, N, t),
        y(engine, M, N, t),
        dy(engine, M, N, t),
        dx(engine, M, K, t),
        dw(engine, K, N, t) {
    std::mt19937 rng(0);
    x.fill_random(rng);
    w.fill_random(rng);
    dy.fill_random(rng);
    gemms.emplace_back(engine, x.mem, w.mem, y.mem);
    if (backward) {
      gemms.emplace_back(engine, dy.mem, w.transposed(engine), dx.mem);
      gemms.emplace_back(engine, x.transposed(engine), dy.mem, dw.mem);
    }
  }
  void run() {
    for (Gemm& g : gemms) g.run(stream);
    stream.wait();
  }
  void verify(bool bf16) {
    run();
    spot_check(
        "Y = X W", y, x.cols, [&](int64_t i, int64_t k) { return x.at(i, k); },
        [&](int64_t k, int64_t j) { return w.at(k, j); }, bf16);
    if (gemms.size() == 1) return;
    spot_check(
        "dX = dY W^T", dx, dy.cols, [&](int64_t i, int64_t k) { return dy.at(i, k); },
        [&](int64_t k, int64_t j) { return w.at(j, k); }, bf16);
    spot_check(
        "dW = X^T dY", dw, x.rows, [&](int64_t i, int64_t k) { return x.at(k, i); },
        [&](int64_t k, int64_t j) { return dy.at(k, j); }, bf16);
  }
};

}  // namespace

Variant onednn_dense(const Problem& p) {
  if (!uniform_kn(p)) throw std::invalid_argument("[bench] the dense peer needs uniform k and n");
  const GroupShape& g0 = p.groups.front();
  const bool bf16 = p.bf16 && gg::backend::native_bf16();
  auto dense =
      std::make_shared<Dense>(total_rows(p), g0.k, g0.n, bf16 ? dt::bf16 : dt::f32, p.backward);
  dense->verify(bf16);
  std::string note = p.bf16 && !bf16 ? "f32 (no bf16 matmul on this ISA), " : "";
  note += "fwd " + dense->gemms[0].impl;
  if (p.backward) note += ", dX " + dense->gemms[1].impl + ", dW " + dense->gemms[2].impl;
  return {"dense oneDNN GEMM, same FLOPs", [dense] { dense->run(); }, {}, note};
}

}  // namespace gg::bench
