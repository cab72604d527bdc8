#pragma once
// Checked size arithmetic and the allocation rule. Every computation that combines tensor sizes
// (a product of dimensions, a sum of group sizes, a count of pieces) goes through size_add /
// size_mul / size_product, so that an int64 overflow is a gg::Error naming the op and the shapes,
// never a wrapped size that a kernel then trusts. And every buffer sized from user input is checked
// with check_allocation before it is made, so that a request no memory can hold is a gg::Error, not
// std::bad_alloc / std::length_error (or an abort under AddressSanitizer).
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "error.hpp"

namespace gg {

namespace detail {
[[noreturn]] void throw_size_overflow(const char* op, std::string_view what, int64_t a, char sign,
                                      int64_t b);
// `what` is a string (view) or a callable returning one, called only on failure: formatting shapes
// costs more than the arithmetic it describes.
template <class What>
std::string_view describe(const What& what, std::string& buffer) {
  if constexpr (std::is_invocable_v<const What&>) {
    buffer = what();
    return buffer;
  } else {
    return std::string_view(what);
  }
}
template <class What>
[[noreturn]] void size_overflow(const char* op, const What& what, int64_t a, char sign, int64_t b) {
  std::string buffer;
  throw_size_overflow(op, describe(what, buffer), a, sign, b);
}
}  // namespace detail

namespace detail {
template <char Sign, class What>
inline int64_t size_op(int64_t a, int64_t b, const char* op, const What& what) {
  int64_t r;
  const bool overflow =
      Sign == '+' ? __builtin_add_overflow(a, b, &r) : __builtin_mul_overflow(a, b, &r);
  if (overflow) [[unlikely]]
    size_overflow(op, what, a, Sign, b);
  return r;
}
}  // namespace detail

// a + b, or "[op] <what> overflows int64 (a + b)".
template <class What>
inline int64_t size_add(int64_t a, int64_t b, const char* op, const What& what) {
  return detail::size_op<'+'>(a, b, op, what);
}

// a * b, or "[op] <what> overflows int64 (a * b)".
template <class What>
inline int64_t size_mul(int64_t a, int64_t b, const char* op, const What& what) {
  return detail::size_op<'*'>(a, b, op, what);
}

// The sum of sizes (each must be >= 0), checked.
template <class What>
inline int64_t size_sum(std::span<const int64_t> sizes, const char* op, const What& what) {
  int64_t total = 0;
  for (int64_t s : sizes) total = size_add(total, s, op, what);
  return total;
}

// The product of sizes, checked. As numel_of: the product of the NON-ZERO sizes must fit (strides
// are partial products of them), and the result is 0 when a size is 0.
template <class What>
inline int64_t size_product(std::span<const int64_t> sizes, const char* op, const What& what) {
  int64_t n = 1;
  bool empty = false;
  for (int64_t s : sizes) {
    if (s == 0) {
      empty = true;
      continue;
    }
    n = size_mul(n, s, op, what);
  }
  return empty ? 0 : n;
}

// The most bytes one allocation may ask for: the machine's physical memory (there is no swap to
// fall back on, and with overcommit a bigger block would be handed out and then kill the process
// when touched). GG_MAX_ALLOC_BYTES in the environment lowers it (read once).
size_t max_allocation_bytes();

// Throws "[op] <what>: cannot allocate <count> x <bytes_each> bytes, ... <context>" unless `count`
// objects of `bytes_each` bytes fit under max_allocation_bytes() and, for big requests, the
// allocator can provide them right now (a nothrow probe).
void check_allocation(uint64_t count, size_t bytes_each, const char* op, std::string_view what,
                      std::string_view context = {});

// v.reserve(n) after check_allocation: for buffers whose length comes from user input.
template <class Vector>
void reserve_checked(Vector& v, uint64_t n, const char* op, std::string_view what) {
  check_allocation(n, sizeof(typename Vector::value_type), op, what);
  v.reserve(static_cast<size_t>(n));
}

}  // namespace gg
