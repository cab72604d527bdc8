// The gradcheck registry (named cases, lookup) and the value generators of case builders.
#include "autograd/gradcheck_registry.hpp"

#include <cmath>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/random.hpp"

namespace gg::gradcheck {

// ---- registry --------------------------------------------------------------------------------

void Registry::register_case(CheckCase c) {
  GG_CHECK(!c.name.empty(), "[gradcheck] a case needs a name");
  GG_CHECK(c.build && c.forward, "[gradcheck] case '{}' needs both build and forward", c.name);
  std::lock_guard lock(mutex_);
  GG_CHECK(cases_.find(c.name) == cases_.end(), "[gradcheck] case '{}' is already registered",
           c.name);
  std::string name = c.name;
  cases_.emplace(std::move(name), std::move(c));
}

std::vector<const CheckCase*> Registry::list(bool include_hidden) const {
  std::lock_guard lock(mutex_);
  std::vector<const CheckCase*> out;
  for (const auto& [name, c] : cases_)
    if (include_hidden || !c.hidden) out.push_back(&c);
  return out;
}

const CheckCase* Registry::find(std::string_view name) const {
  std::lock_guard lock(mutex_);
  auto it = cases_.find(name);
  return it == cases_.end() ? nullptr : &it->second;
}

const CheckCase& Registry::get(std::string_view name) const {
  const CheckCase* c = find(name);
  if (!c)
    throw UsageError(
        fmt::format("[gradcheck] unknown case '{}' (--list shows the registered ones)", name));
  return *c;
}

void add_case(Registry& r, const char* family, const char* name, const char* description,
              bool linear, BuildFn build, ForwardFn forward, std::optional<Tolerance> f64,
              std::optional<Tolerance> f32) {
  r.register_case({.name = name,
                   .description = description,
                   .build = std::move(build),
                   .forward = std::move(forward),
                   .linear = linear,
                   .f64 = f64,
                   .f32 = f32,
                   .family = family});
}

// ---- generators ------------------------------------------------------------------------------

namespace gen {

namespace {
std::vector<double> draw_normal(int64_t n) {
  return n ? randn({n}, kFloat64).to_vector<double>() : std::vector<double>{};
}
Tensor from_values(const std::vector<double>& v, Shape shape, Dtype dtype) {
  NoGradGuard no_grad;
  return tensor<double>(v, std::move(shape)).to(dtype).detach();
}
}  // namespace

Tensor normal(Shape shape, Dtype dtype, double scale) {
  std::vector<double> v = draw_normal(numel_of(shape));
  for (double& x : v) x *= scale;
  return from_values(v, std::move(shape), dtype);
}

Tensor uniform(Shape shape, Dtype dtype, double lo, double hi) {
  int64_t n = numel_of(shape);
  std::vector<double> v = n ? rand({n}, kFloat64).to_vector<double>() : std::vector<double>{};
  for (double& x : v) x = lo + (hi - lo) * x;
  return from_values(v, std::move(shape), dtype);
}

Tensor away_from_zero(Shape shape, Dtype dtype, double min_abs) {
  std::vector<double> v = draw_normal(numel_of(shape));
  for (double& x : v) x = std::copysign(min_abs + 0.75 * std::abs(x), x);
  return from_values(v, std::move(shape), dtype);
}

Tensor distinct(Shape shape, Dtype dtype, double gap) {
  int64_t n = numel_of(shape);
  std::vector<double> v(static_cast<size_t>(n));
  {
    Generator& g = global_generator();
    std::lock_guard lock(g.mutex());
    for (int64_t i = 0; i < n; ++i) v[i] = (static_cast<double>(i) - 0.5 * (n - 1)) * gap;
    for (int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
      std::swap(v[i], v[static_cast<int64_t>(g.next_u64() % static_cast<uint64_t>(i + 1))]);
  }
  return from_values(v, std::move(shape), dtype);
}

Tensor noncontiguous(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor src = t.detach();
  if (src.dim() >= 2) return src.transpose(-1, -2).clone().transpose(-1, -2).detach();
  // 0-d and 1-d: every other element of a buffer twice as long.
  Shape padded = src.shape();
  padded.push_back(2);
  Tensor buffer = zeros(padded, src.dtype());
  Tensor view = buffer.select(-1, 0).detach();  // shares buffer's storage
  copy_(view, src);
  return view;
}

}  // namespace gen

}  // namespace gg::gradcheck
