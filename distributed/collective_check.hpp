#pragma once
// The collective check every gg::distributed collective runs before moving data (library-private):
// each rank describes its operands in a fixed-size header of int64s, the headers are all-gathered,
// and every rank validates all of them with the same code, so that bad input throws the same
// gg::Error on every rank. Transport-free: the gather is passed in, which keeps this testable and
// lets the MPI file stay small.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "../core/tensor.hpp"

namespace gg::distributed::detail {

inline constexpr int kMaxDims = 16;
// A tensor as the header carries it: defined, dtype, ndim, then kMaxDims sizes.
inline constexpr size_t kTensorFields = 3 + kMaxDims;

// One rank's header under construction.
struct Header {
  std::vector<int64_t> fields;
  void add_tensor(const Tensor& t);
  void add(int64_t value) { fields.push_back(value); }
  // A list of sizes: whether it was given, then exactly `count` entries (zeros when not given).
  void add_sizes(const std::vector<int64_t>& sizes, int world);
};

// A tensor read back from rank r's header.
struct TensorDesc {
  bool defined = false;
  Dtype dtype = kFloat32;
  int64_t ndim = 0;  // > kMaxDims: too many dims to describe
  Shape shape;
  std::string str() const;  // "float32 [2, 3]", "an undefined tensor", ...
};

// Every rank's header, read field by field in the order they were added.
class Headers {
 public:
  Headers(std::vector<int64_t> all, size_t per_rank, int world)
      : all_(std::move(all)), per_rank_(per_rank), world_(world) {}
  int world() const { return world_; }
  TensorDesc tensor(int rank, size_t at) const;
  int64_t value(int rank, size_t at) const { return all_[rank * per_rank_ + at]; }

 private:
  std::vector<int64_t> all_;
  size_t per_rank_;
  int world_;
};

// Checks that every rank's tensor at field `at` is defined, describable and of a supported dtype.
void check_tensors_usable(const char* op, const Headers& h, size_t at);
// Checks that every rank's tensor at `at` has the same dtype and shape.
void check_same_tensor(const char* op, const Headers& h, size_t at);
// Checks that every rank passed the same value at `at` (`what` names it in the message).
void check_same_value(const char* op, const Headers& h, size_t at, const char* what);

}  // namespace gg::distributed::detail
