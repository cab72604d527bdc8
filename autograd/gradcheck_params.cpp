// Case parameters (parsed on demand, naming the parameter when a value does not parse), the
// default tolerances, and the check that a case takes the parameters it is given.
#include "autograd/gradcheck_params.hpp"

#include <algorithm>
#include <charconv>

namespace gg::gradcheck {

namespace {

[[noreturn]] void usage(const std::string& message) { throw UsageError(message); }

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string_view::npos ? std::string() : std::string(s.substr(b, e - b + 1));
}

template <class T>
bool parse_number(const std::string& text, T& out) {
  std::string t = trim(text);
  if (t.empty()) return false;
  const char* end = t.data() + t.size();
  auto [ptr, ec] = std::from_chars(t.data(), end, out);
  return ec == std::errc() && ptr == end;
}

}  // namespace

// ---- Params ----------------------------------------------------------------------------------

std::string Params::get(const std::string& key, const std::string& fallback) const {
  auto it = values_.find(key);
  return it == values_.end() ? fallback : it->second;
}

int64_t Params::get_int(const std::string& key, int64_t fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  int64_t v = 0;
  if (!parse_number(it->second, v))
    usage(fmt::format("[gradcheck] parameter '{}' must be an integer, got '{}'", key, it->second));
  return v;
}

double Params::get_double(const std::string& key, double fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  double v = 0;
  if (!parse_number(it->second, v))
    usage(fmt::format("[gradcheck] parameter '{}' must be a number, got '{}'", key, it->second));
  return v;
}

std::vector<int64_t> Params::get_ints(const std::string& key, std::vector<int64_t> fallback) const {
  auto it = values_.find(key);
  if (it == values_.end()) return fallback;
  std::vector<int64_t> out;
  std::string_view rest = it->second;
  if (trim(rest).empty()) return out;
  while (true) {
    size_t comma = rest.find(',');
    std::string item(rest.substr(0, comma));
    int64_t v = 0;
    if (!parse_number(item, v))
      usage(fmt::format(
          "[gradcheck] parameter '{}' must be a comma-separated list of integers, got '{}'", key,
          it->second));
    out.push_back(v);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  return out;
}

std::string Params::get_choice(const std::string& key, const std::string& fallback,
                               const std::vector<std::string>& choices) const {
  std::string v = get(key, fallback);
  if (std::find(choices.begin(), choices.end(), v) == choices.end())
    usage(fmt::format("[gradcheck] parameter '{}' must be one of {}, got '{}'", key,
                      fmt::join(choices, "|"), v));
  return v;
}

// ---- tolerances ------------------------------------------------------------------------------

Tolerance default_tolerance(Dtype dtype, bool linear) {
  if (dtype == kFloat64) return {1e-6, 1e-5, 1e-3};
  // Float32: a linear op is stepped by 1 (exact up to rounding); others need a step that balances
  // truncation (eps^2) against rounding (1e-7 / eps).
  return linear ? Tolerance{1.0, 1e-4, 1e-3} : Tolerance{1e-2, 5e-3, 2e-2};
}

Tolerance case_tolerance(const CheckCase& c, Dtype dtype) {
  if (dtype == kFloat64 && c.f64) return *c.f64;
  if (dtype != kFloat64 && c.f32) return *c.f32;
  return default_tolerance(dtype, c.linear);
}

void check_params(const CheckCase& c, const Params& params) {
  for (const auto& [key, value] : params.values()) {
    if (std::find(c.params.begin(), c.params.end(), key) != c.params.end()) continue;
    usage(c.params.empty()
              ? fmt::format("[gradcheck] case '{}' takes no parameters, got '{}'", c.name, key)
              : fmt::format("[gradcheck] case '{}' does not take parameter '{}' (it takes: {})",
                            c.name, key, fmt::join(c.params, ", ")));
  }
}

}  // namespace gg::gradcheck
