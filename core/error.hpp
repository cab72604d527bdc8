#pragma once
// gg::Error is what every rejected input or misuse throws. Messages name the op in brackets,
// the rule that was broken and the shapes involved, e.g.
//   [grouped_mm] group 2: input has k=75 but mat2 has k=50 (input [100, 75], mat2 [50, 64])
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace gg {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

// Throws gg::Error with a fmt-formatted message.
template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace gg

// GG_CHECK(cond, "[op] rule ({} vs {})", a, b): throws gg::Error when cond is false.
#define GG_CHECK(cond, ...)    \
  do {                         \
    if (!(cond)) {             \
      ::gg::fail(__VA_ARGS__); \
    }                          \
  } while (0)
