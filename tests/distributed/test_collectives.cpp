// gg::distributed's collectives against values every rank can compute by itself (each rank's
// contribution is a known function of its rank), and their collective checks: bad input throws the
// same gg::Error on every rank, after which the ranks still line up (a barrier follows).
#include <cmath>

#include "dist_support.hpp"

using namespace gg;
using gg::test::as_doubles;
using gg::test::Contains;
using gg::test::error_of;
using gg::test::joined_world;
namespace dist = gg::distributed;

namespace {
// Rank r's tensor: element i is base(r) + i * step, in `dtype`, shape {2, 3}.
Tensor rank_tensor(int r, Dtype dtype, double step = 1) {
  std::vector<double> v(6);
  for (int i = 0; i < 6; ++i) v[static_cast<size_t>(i)] = 10.0 * r + step * i;
  return tensor(v, {2, 3}).to(dtype);
}
}  // namespace

TEST_CASE("init is idempotent and ranks are consistent", "[dist]") {
  const int w = joined_world();
  dist::init();
  REQUIRE(dist::is_available());
  REQUIRE(dist::is_initialized());
  REQUIRE(w >= 2);
  const int r = dist::rank();
  REQUIRE((r >= 0 && r < w));
  const std::vector<Tensor> ranks = dist::all_gather(tensor(std::vector<int32_t>{r}));
  REQUIRE(static_cast<int>(ranks.size()) == w);
  for (int q = 0; q < w; ++q) CHECK(ranks[static_cast<size_t>(q)].to_vector<int32_t>()[0] == q);
  dist::barrier();
}

TEST_CASE("all_reduce sums, averages and maxes every dtype", "[dist]") {
  const int w = joined_world();
  const int r = dist::rank();
  for (Dtype d : {kFloat32, kFloat64, kInt32, kInt64}) {
    INFO(dtype_name(d));
    Tensor s = rank_tensor(r, d), m = rank_tensor(r, d);
    dist::all_reduce(s, dist::ReduceOp::Sum);
    dist::all_reduce(m, dist::ReduceOp::Max);
    const std::vector<double> sv = as_doubles(s), mv = as_doubles(m);
    for (int i = 0; i < 6; ++i) {
      double sum = 0;
      for (int q = 0; q < w; ++q) sum += 10.0 * q + i;
      CHECK(sv[static_cast<size_t>(i)] == sum);
      CHECK(mv[static_cast<size_t>(i)] == 10.0 * (w - 1) + i);
    }
    REQUIRE(s.dtype() == d);
    if (is_floating(d)) {
      Tensor a = rank_tensor(r, d);
      dist::all_reduce(a, dist::ReduceOp::Avg);
      const std::vector<double> av = as_doubles(a);
      for (int i = 0; i < 6; ++i) CHECK(av[static_cast<size_t>(i)] == 5.0 * (w - 1) + i);
    }
  }
}

TEST_CASE("all_reduce of bfloat16 sums in float32 and rounds once", "[dist]") {
  const int w = joined_world();
  const int r = dist::rank();
  // 1 + r/128 + i/64: exact in bf16 (8 significant bits), and their float sums are exact too; the
  // sum then needs more bits than bf16 has, so it is rounded exactly once.
  std::vector<float> mine(6);
  for (int i = 0; i < 6; ++i) mine[static_cast<size_t>(i)] = 1.0f + r / 128.0f + i / 64.0f;
  for (dist::ReduceOp op : {dist::ReduceOp::Sum, dist::ReduceOp::Avg, dist::ReduceOp::Max}) {
    Tensor t = tensor(mine, {6}).to(kBFloat16);
    dist::all_reduce(t, op);
    REQUIRE(t.dtype() == kBFloat16);
    const std::vector<BFloat16> got = t.to_vector<BFloat16>();
    for (int i = 0; i < 6; ++i) {
      float sum = 0, mx = 0;
      for (int q = 0; q < w; ++q) {
        const float v = 1.0f + q / 128.0f + i / 64.0f;
        sum += v;
        mx = std::max(mx, v);
      }
      const float want = op == dist::ReduceOp::Sum   ? sum
                         : op == dist::ReduceOp::Avg ? sum / static_cast<float>(w)
                                                     : mx;
      CHECK(got[static_cast<size_t>(i)].bits == BFloat16(want).bits);
    }
  }
}

TEST_CASE("collectives read and write non-contiguous tensors", "[dist]") {
  const int w = joined_world();
  const int r = dist::rank();
  Tensor base = rank_tensor(r, kFloat64);
  Tensor view = base.t();  // [3, 2], not contiguous
  REQUIRE_FALSE(view.is_contiguous());
  dist::all_reduce(view, dist::ReduceOp::Sum);
  const std::vector<double> bv = as_doubles(base);
  for (int i = 0; i < 6; ++i) CHECK(bv[static_cast<size_t>(i)] == 5.0 * w * (w - 1) + w * i);

  Tensor b2 = rank_tensor(r, kFloat32);
  Tensor v2 = b2.t();
  dist::broadcast(v2, w - 1);
  CHECK(as_doubles(b2) == as_doubles(rank_tensor(w - 1, kFloat32)));

  const std::vector<Tensor> g = dist::all_gather(rank_tensor(r, kInt64).t());
  REQUIRE(static_cast<int>(g.size()) == w);
  for (int q = 0; q < w; ++q) {
    CHECK(g[static_cast<size_t>(q)].shape() == Shape{3, 2});
    CHECK(as_doubles(g[static_cast<size_t>(q)]) == as_doubles(rank_tensor(q, kInt64).t()));
  }
  std::vector<Tensor> out;
  dist::all_gather(out, rank_tensor(r, kBFloat16));
  REQUIRE(static_cast<int>(out.size()) == w);
  CHECK(as_doubles(out[1]) == as_doubles(rank_tensor(1, kBFloat16)));
}

TEST_CASE("broadcast and all_gather of every dtype, and empty tensors", "[dist]") {
  const int w = joined_world();
  const int r = dist::rank();
  for (Dtype d : {kFloat32, kBFloat16, kFloat64, kInt32, kInt64}) {
    Tensor t = rank_tensor(r, d, 0.5);
    dist::broadcast(t, 0);
    CHECK(as_doubles(t) == as_doubles(rank_tensor(0, d, 0.5)));
  }
  Tensor e = zeros({0, 3});
  dist::all_reduce(e, dist::ReduceOp::Sum);
  dist::broadcast(e, 0);
  CHECK(e.shape() == Shape{0, 3});
  const std::vector<Tensor> g = dist::all_gather(e);
  CHECK(static_cast<int>(g.size()) == w);
  CHECK(g[0].shape() == Shape{0, 3});
}

TEST_CASE("all_to_all_single moves uneven pieces along dim 0", "[dist]") {
  const int w = joined_world();
  const int r = dist::rank();
  // Rank i sends i + j + 1 rows to rank j; row k of the piece for j holds (i, j, k) in 3 columns.
  for (Dtype d : {kFloat32, kBFloat16, kFloat64, kInt32, kInt64}) {
    INFO(dtype_name(d));
    std::vector<int64_t> in_splits, out_splits;
    std::vector<double> rows;
    for (int j = 0; j < w; ++j) {
      in_splits.push_back(r + j + 1);
      out_splits.push_back(j + r + 1);
      for (int k = 0; k < r + j + 1; ++k)
        rows.insert(rows.end(), {double(r), double(j), double(k)});
    }
    const int64_t n_in = static_cast<int64_t>(rows.size() / 3);
    // The input is a transposed [3, n] tensor: not contiguous.
    Tensor input = tensor(rows, {n_in, 3}).to(d).t().contiguous().t();
    REQUIRE_FALSE(input.is_contiguous());
    int64_t n_out = 0;
    for (int64_t s : out_splits) n_out += s;
    Tensor output = zeros({n_out, 3}, d);
    dist::all_to_all_single(output, input, out_splits, in_splits);
    std::vector<double> want;
    for (int i = 0; i < w; ++i)
      for (int k = 0; k < i + r + 1; ++k)
        want.insert(want.end(), {double(i), double(r), double(k)});
    CHECK(as_doubles(output) == want);
  }
  // Equal pieces when no split sizes are given; the all_to_all spelling.
  std::vector<int64_t> rows;
  for (int j = 0; j < w; ++j) rows.insert(rows.end(), {r, j});
  Tensor out = zeros({w, 2}, kInt64);
  dist::all_to_all(out, tensor(rows, {w, 2}));
  std::vector<int64_t> want;
  for (int i = 0; i < w; ++i) want.insert(want.end(), {i, r});
  CHECK(out.to_vector<int64_t>() == want);
}

// Every error below must come out of every rank with the same message, and the ranks must still be
// in step afterwards (the barrier and the all_reduce after each one would hang or fail otherwise).
namespace {
void same_error_everywhere(const std::string& message, const std::vector<std::string>& parts) {
  for (const std::string& p : parts) CHECK_THAT(message, Contains(p));
  // Every rank got a message of the same length (the messages are built from the shared headers).
  Tensor len = tensor(std::vector<int64_t>{static_cast<int64_t>(message.size())});
  Tensor mx = len.clone();
  dist::all_reduce(mx, dist::ReduceOp::Max);
  CHECK(mx.to_vector<int64_t>() == len.to_vector<int64_t>());
  dist::barrier();
}
}  // namespace

TEST_CASE("collectives reject bad input on every rank, before data moves", "[dist]") {
  const int w = joined_world();
  const int r = dist::rank();
  {
    Tensor t = zeros({r == 0 ? 2 : 3});
    same_error_everywhere(error_of([&] { dist::all_reduce(t); }),
                          {"[all_reduce] every rank must pass the same dtype and shape",
                           "rank 0 has float32 [2]", "rank 1 has float32 [3]"});
  }
  {
    Tensor t = zeros({4}, r == 1 ? kFloat64 : kFloat32);
    same_error_everywhere(
        error_of([&] { dist::broadcast(t, 0); }),
        {"[broadcast] every rank must pass the same dtype and shape", "rank 1 has float64 [4]"});
  }
  {
    Tensor t = zeros({4});
    same_error_everywhere(error_of([&] { dist::broadcast(t, w); }),
                          {"[broadcast] src rank", "is out of range for"});
    same_error_everywhere(
        error_of([&] { dist::broadcast(t, r); }),
        {"[broadcast] every rank must pass the same src rank", "rank 1 passed 1"});
    same_error_everywhere(
        error_of([&] { dist::all_reduce(t, r == 0 ? dist::ReduceOp::Sum : dist::ReduceOp::Max); }),
        {"[all_reduce] every rank must pass the same reduce op"});
  }
  {
    Tensor t = zeros({3}, kInt64);
    same_error_everywhere(error_of([&] { dist::all_reduce(t, dist::ReduceOp::Avg); }),
                          {"[all_reduce] ReduceOp::Avg needs a floating dtype", "int64 [3]"});
    Tensor h = zeros({3}, kFloat16);
    same_error_everywhere(
        error_of([&] { dist::all_reduce(h); }),
        {"[all_reduce] dtype float16 is not supported", "rank 0 has float16 [3]"});
    Tensor u = r == 1 ? Tensor() : zeros({3});
    same_error_everywhere(error_of([&] { (void)dist::all_gather(u); }),
                          {"[all_gather] every rank must pass a defined tensor",
                           "rank 1 passed an undefined tensor"});
  }
  {
    // Split sizes that do not sum to the rows (on rank 1 only), then splits that disagree.
    Tensor in = zeros({w, 2}), out = zeros({w, 2});
    std::vector<int64_t> ones_(static_cast<size_t>(w), 1), bad = ones_;
    if (r == 1) bad[0] = 2;
    same_error_everywhere(error_of([&] { dist::all_to_all_single(out, in, ones_, bad); }),
                          {"[all_to_all_single] rank 1: input_split_sizes sum to",
                           "has " + std::to_string(w) + " rows along dim 0"});
    std::vector<int64_t> shifted = ones_;
    if (r == 0) {
      shifted[0] = 2;
      shifted[1] = 0;
    }
    same_error_everywhere(
        error_of([&] { dist::all_to_all_single(out, in, ones_, shifted); }),
        {"[all_to_all_single] rank 0 sends 2 rows to rank 0, which expects 1 rows"});
    Tensor odd = zeros({w + 1, 2});
    same_error_everywhere(error_of([&] { dist::all_to_all_single(out, odd); }),
                          {"[all_to_all_single] rank 0: without input_split_sizes"});
    Tensor narrow_out = zeros({w, 3});
    same_error_everywhere(error_of([&] { dist::all_to_all_single(narrow_out, in); }),
                          {"[all_to_all_single] every input and output must have the same dtype",
                           "output float32 [" + std::to_string(w) + ", 3]"});
  }
  // And the group still works.
  Tensor t = ones({2});
  dist::all_reduce(t);
  CHECK(as_doubles(t) == std::vector<double>{double(w), double(w)});
}

TEST_CASE("collectives of large tensors (Open MPI's shared-memory large-message path)", "[dist]") {
  // 4 MiB per rank: above Open MPI's eager limit, so the shared-memory transport's large-message
  // path (single-copy where the container allows it) is taken.
  const int w = joined_world();
  const int r = dist::rank();
  const int64_t n = int64_t(1) << 20;
  Tensor t = full({n}, double(r + 1));
  dist::broadcast(t, w - 1);
  CHECK(t.min().item<float>() == float(w));
  CHECK(t.max().item<float>() == float(w));
  Tensor s = full({n}, 1.0, kFloat64);
  dist::all_reduce(s, dist::ReduceOp::Sum);
  CHECK(s.min().item<double>() == double(w));
  Tensor in = full({w * n / 4}, double(r)), out = zeros({w * n / 4});
  dist::all_to_all_single(out, in);
  const std::vector<Tensor> pieces = dist::all_gather(out.narrow(0, 0, 4));
  for (int i = 0; i < w; ++i)
    CHECK(out.narrow(0, i * n / 4, n / 4).max().item<float>() == float(i));
  CHECK(static_cast<int>(pieces.size()) == w);
}

TEST_CASE("collectives that write in place count as in-place modifications", "[dist]") {
  joined_world();
  // w is saved by MulBackward; all_reduce writes into its storage (contiguous: no copy), and the
  // backward must notice, as after any in-place op.
  for (bool contiguous : {true, false}) {
    Tensor w = ones({2, 2}, kFloat64).requires_grad_();
    const Tensor loss = (w * w).sum();
    Tensor data = contiguous ? w.detach() : w.detach().t();
    dist::all_reduce(data, dist::ReduceOp::Max);
    CHECK_THAT(error_of([&] { loss.backward(); }), Contains("in-place operation"));
  }
}
