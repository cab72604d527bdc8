// gg::distributed on MPI (MPI_COMM_WORLD of the job mpirun started). Every collective runs the
// collective check of collective_check.hpp first (one small MPI_Allgather), then one MPI call on a
// contiguous buffer, written back into the caller's tensor when that was not contiguous.
#include <fmt/format.h>
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <numeric>

#include "core/copy.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"
#include "distributed/async_reduce.hpp"
#include "distributed/collective_check.hpp"
#include "distributed/distributed.hpp"

namespace gg::distributed {

namespace {
bool g_initialized = false;
int g_rank = 0;
int g_world = 1;
std::vector<MPI_Request> g_pending;  // detail::start_sum's requests

void require_init(const char* op) {
  GG_CHECK(g_initialized,
           "[{}] the process group is not initialized: call gg::distributed::init() first, in "
           "every process of the MPI job (started by mpirun)",
           op);
}

void check_mpi(int rc, const char* op) {
  if (rc == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  fail("[{}] MPI failed: {}", op, std::string(text, static_cast<size_t>(length)));
}

MPI_Datatype mpi_type(Dtype d) {
  switch (d) {
    case Dtype::Float32:
      return MPI_FLOAT;
    case Dtype::Float64:
      return MPI_DOUBLE;
    case Dtype::BFloat16:
      return MPI_UINT16_T;  // moved as bits; reductions convert to float32 first
    case Dtype::Int32:
      return MPI_INT32_T;
    default:
      return MPI_INT64_T;  // the collective check admits nothing else
  }
}

int as_count(int64_t n, const char* op) {
  GG_CHECK(n <= INT_MAX, "[{}] {} elements in one message exceed MPI's int count ({})", op, n,
           INT_MAX);
  return static_cast<int>(n);
}

// All-gathers every rank's header and returns them for checking.
detail::Headers exchange(const detail::Header& mine, const char* op) {
  const size_t n = mine.fields.size();
  std::vector<int64_t> all(n * static_cast<size_t>(g_world));
  check_mpi(MPI_Allgather(mine.fields.data(), static_cast<int>(n), MPI_INT64_T, all.data(),
                          static_cast<int>(n), MPI_INT64_T, MPI_COMM_WORLD),
            op);
  return detail::Headers(std::move(all), n, g_world);
}

// The tensor's data as one contiguous buffer (t itself when it is contiguous).
Tensor buffer_of(const Tensor& t) { return as_contiguous(t); }
// Writes buf back into t when buf is a copy (copy_ counts the write); when MPI wrote into t's own
// storage, counts that write, so that a backward that saved t sees it was modified in place.
void write_back(const Tensor& t, const Tensor& buf) {
  if (buf.impl() != t.impl()) {
    copy_(t, buf);
  } else {
    t.impl()->storage->bump_version();
  }
}

[[noreturn]] void abort_job() {
  std::string what = "std::terminate was called without an exception";
  if (std::exception_ptr e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = x.what();
    } catch (...) {
      what = "an exception that is not a std::exception";
    }
  }
  std::fprintf(stderr, "gg::distributed: rank %d of %d stops the job: %s\n", g_rank, g_world,
               what.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

void finalize_at_exit() { finalize(); }
}  // namespace

bool is_available() { return true; }

void init() {
  if (g_initialized) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  GG_CHECK(!finalized,
           "[init] MPI was finalized in this process (gg::distributed::finalize()); MPI cannot be "
           "initialized twice");
  int already = 0;
  MPI_Initialized(&already);
  if (!already) {
    int provided = 0;
    // Funneled: only the thread that called init() calls MPI (OpenMP's workers never do).
    check_mpi(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "init");
    std::atexit(finalize_at_exit);
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world);
  // An uncaught exception on one rank ends every rank at once with its message, instead of
  // leaving the others waiting in a collective.
  std::set_terminate(abort_job);
  g_initialized = true;
}

bool is_initialized() { return g_initialized; }

void finalize() {
  if (!g_initialized) return;
  g_initialized = false;
  int done = 0;
  MPI_Finalized(&done);
  if (!done) MPI_Finalize();
}

int rank() {
  require_init("rank");
  return g_rank;
}

int world_size() {
  require_init("world_size");
  return g_world;
}

void barrier() {
  require_init("barrier");
  check_mpi(MPI_Barrier(MPI_COMM_WORLD), "barrier");
}

void all_reduce(Tensor& t, ReduceOp op) {
  constexpr const char* name = "all_reduce";
  require_init(name);
  detail::Header mine;
  mine.add_tensor(t);
  mine.add(static_cast<int64_t>(op));
  const detail::Headers h = exchange(mine, name);
  detail::check_tensors_usable(name, h, 0);
  detail::check_same_tensor(name, h, 0);
  detail::check_same_value(name, h, detail::kTensorFields, "reduce op (0 Sum, 1 Avg, 2 Max)");
  GG_CHECK(op != ReduceOp::Avg || t.is_floating_point(),
           "[all_reduce] ReduceOp::Avg needs a floating dtype; every rank passed {}", describe(t));
  if (t.numel() == 0) return;
  // bf16 is reduced in float32 and rounded once at the end.
  const Tensor buf = t.dtype() == kBFloat16 ? as_dtype(t, kFloat32) : buffer_of(t);
  const int count = as_count(buf.numel(), name);
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, buf.raw_data(), count, mpi_type(buf.dtype()),
                          op == ReduceOp::Max ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD),
            name);
  if (op == ReduceOp::Avg) {
    const double w = g_world;
    if (buf.dtype() == kFloat32) {
      for (float *p = buf.data_ptr<float>(), *e = p + count; p != e; ++p)
        *p /= static_cast<float>(w);
    } else {
      for (double *p = buf.data_ptr<double>(), *e = p + count; p != e; ++p) *p /= w;
    }
  }
  write_back(t, buf);
}

void broadcast(Tensor& t, int src) {
  constexpr const char* name = "broadcast";
  require_init(name);
  detail::Header mine;
  mine.add_tensor(t);
  mine.add(src);
  const detail::Headers h = exchange(mine, name);
  detail::check_same_value(name, h, detail::kTensorFields, "src rank");
  GG_CHECK(src >= 0 && src < g_world, "[broadcast] src rank {} is out of range for {} ranks", src,
           g_world);
  detail::check_tensors_usable(name, h, 0);
  detail::check_same_tensor(name, h, 0);
  if (t.numel() == 0) return;
  const Tensor buf = buffer_of(t);
  check_mpi(MPI_Bcast(buf.raw_data(), as_count(buf.numel(), name), mpi_type(buf.dtype()), src,
                      MPI_COMM_WORLD),
            name);
  write_back(t, buf);
}

std::vector<Tensor> all_gather(const Tensor& t) {
  constexpr const char* name = "all_gather";
  require_init(name);
  detail::Header mine;
  mine.add_tensor(t);
  const detail::Headers h = exchange(mine, name);
  detail::check_tensors_usable(name, h, 0);
  detail::check_same_tensor(name, h, 0);
  Shape big_shape = t.shape();
  big_shape.insert(big_shape.begin(), g_world);
  Tensor big = empty(big_shape, t.dtype());
  if (t.numel() > 0) {
    const Tensor buf = buffer_of(t);
    const int count = as_count(buf.numel(), name);
    (void)as_count(big.numel(), name);
    check_mpi(MPI_Allgather(buf.raw_data(), count, mpi_type(buf.dtype()), big.raw_data(), count,
                            mpi_type(buf.dtype()), MPI_COMM_WORLD),
              name);
  }
  std::vector<Tensor> out;
  out.reserve(static_cast<size_t>(g_world));
  for (int r = 0; r < g_world; ++r) out.push_back(big.select(0, r));
  return out;
}

void all_gather(std::vector<Tensor>& out, const Tensor& t) { out = all_gather(t); }

void all_to_all_single(Tensor& output, const Tensor& input,
                       const std::vector<int64_t>& output_split_sizes,
                       const std::vector<int64_t>& input_split_sizes) {
  constexpr const char* name = "all_to_all_single";
  require_init(name);
  const int w = g_world;
  detail::Header mine;
  mine.add_tensor(input);
  mine.add_tensor(output);
  mine.add_sizes(input_split_sizes, w);
  mine.add_sizes(output_split_sizes, w);
  const detail::Headers h = exchange(mine, name);
  constexpr size_t in_at = 0, out_at = detail::kTensorFields, in_splits_at = 2 * out_at;
  const size_t out_splits_at = in_splits_at + 1 + static_cast<size_t>(w);
  detail::check_tensors_usable(name, h, in_at);
  detail::check_tensors_usable(name, h, out_at);
  // Every rank's splits, given or equal, checked against its own rows.
  auto splits_of = [&](int r, size_t at, const detail::TensorDesc& t, const char* which) {
    const int64_t given = h.value(r, at);
    std::vector<int64_t> s(static_cast<size_t>(w));
    if (given == 0) {
      GG_CHECK(t.shape[0] % w == 0,
               "[{}] rank {}: without {}_split_sizes the {} ({}) must split into {} equal pieces "
               "along dim 0",
               name, r, which, which, t.str(), w);
      std::fill(s.begin(), s.end(), t.shape[0] / w);
      return s;
    }
    GG_CHECK(given == w, "[{}] rank {}: {}_split_sizes has {} entries for {} ranks", name, r, which,
             given, w);
    int64_t sum = 0;
    for (int q = 0; q < w; ++q) {
      s[static_cast<size_t>(q)] = h.value(r, at + 1 + static_cast<size_t>(q));
      GG_CHECK(s[static_cast<size_t>(q)] >= 0, "[{}] rank {}: {}_split_sizes[{}] is {}", name, r,
               which, q, s[static_cast<size_t>(q)]);
      sum += s[static_cast<size_t>(q)];
    }
    GG_CHECK(sum == t.shape[0],
             "[{}] rank {}: {}_split_sizes sum to {} but the {} ({}) has {} rows along dim 0", name,
             r, which, sum, which, t.str(), t.shape[0]);
    return s;
  };
  std::vector<std::vector<int64_t>> ins, outs;
  const detail::TensorDesc first = h.tensor(0, in_at);
  for (int r = 0; r < w; ++r) {
    const detail::TensorDesc in = h.tensor(r, in_at), out = h.tensor(r, out_at);
    GG_CHECK(in.ndim >= 1 && out.ndim >= 1,
             "[{}] input and output need at least one dim (split along dim 0): rank {} has input "
             "{}, output {}",
             name, r, in.str(), out.str());
    const Shape rows_of_first(first.shape.begin() + 1, first.shape.end());
    for (const detail::TensorDesc* t : {&in, &out}) {
      GG_CHECK(
          t->dtype == first.dtype && Shape(t->shape.begin() + 1, t->shape.end()) == rows_of_first,
          "[{}] every input and output must have the same dtype and the same sizes after dim "
          "0: rank 0's input is {}, rank {} has input {}, output {}",
          name, first.str(), r, in.str(), out.str());
    }
    ins.push_back(splits_of(r, in_splits_at, in, "input"));
    outs.push_back(splits_of(r, out_splits_at, out, "output"));
  }
  for (int i = 0; i < w; ++i)
    for (int j = 0; j < w; ++j)
      GG_CHECK(ins[static_cast<size_t>(i)][static_cast<size_t>(j)] ==
                   outs[static_cast<size_t>(j)][static_cast<size_t>(i)],
               "[{}] rank {} sends {} rows to rank {}, which expects {} rows from it (input "
               "split size [{}] of rank {} vs output split size [{}] of rank {})",
               name, i, ins[static_cast<size_t>(i)][static_cast<size_t>(j)], j,
               outs[static_cast<size_t>(j)][static_cast<size_t>(i)], j, i, i, j);
  int64_t row = 1;
  for (size_t d = 1; d < first.shape.size(); ++d) row *= first.shape[d];
  const auto me = static_cast<size_t>(g_rank);
  std::vector<int> send_counts(static_cast<size_t>(w)), send_displs(static_cast<size_t>(w)),
      recv_counts(static_cast<size_t>(w)), recv_displs(static_cast<size_t>(w));
  int64_t send_at = 0, recv_at = 0;
  for (size_t q = 0; q < static_cast<size_t>(w); ++q) {
    send_counts[q] = as_count(ins[me][q] * row, name);
    recv_counts[q] = as_count(outs[me][q] * row, name);
    send_displs[q] = as_count(send_at, name);
    recv_displs[q] = as_count(recv_at, name);
    send_at += ins[me][q] * row;
    recv_at += outs[me][q] * row;
  }
  const Tensor in_buf = buffer_of(input);
  const Tensor out_buf = buffer_of(output);
  check_mpi(MPI_Alltoallv(in_buf.raw_data(), send_counts.data(), send_displs.data(),
                          mpi_type(first.dtype), out_buf.raw_data(), recv_counts.data(),
                          recv_displs.data(), mpi_type(first.dtype), MPI_COMM_WORLD),
            name);
  write_back(output, out_buf);
}

void all_to_all(Tensor& output, const Tensor& input, const std::vector<int64_t>& output_split_sizes,
                const std::vector<int64_t>& input_split_sizes) {
  all_to_all_single(output, input, output_split_sizes, input_split_sizes);
}

namespace detail {

void require_mpi(const char*) {}

void start_sum(const Tensor& flat) {
  require_init("DistributedDataParallel");
  MPI_Request request = MPI_REQUEST_NULL;
  check_mpi(MPI_Iallreduce(MPI_IN_PLACE, flat.raw_data(), as_count(flat.numel(), "all_reduce"),
                           mpi_type(flat.dtype()), MPI_SUM, MPI_COMM_WORLD, &request),
            "all_reduce");
  g_pending.push_back(request);
}

void progress() {
  for (MPI_Request& r : g_pending) {
    if (r == MPI_REQUEST_NULL) continue;
    int done = 0;
    check_mpi(MPI_Test(&r, &done, MPI_STATUS_IGNORE), "all_reduce");
  }
}

void wait_all() {
  if (g_pending.empty()) return;
  check_mpi(MPI_Waitall(static_cast<int>(g_pending.size()), g_pending.data(), MPI_STATUSES_IGNORE),
            "all_reduce");
  g_pending.clear();
}

}  // namespace detail

}  // namespace gg::distributed
