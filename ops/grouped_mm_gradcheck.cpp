// grouped_mm's gradcheck cases (autograd/gradcheck.hpp): "grouped_mm", whose layout and sizes the
// CLI sets (`gradcheck grouped_mm --layout 2d3d --m 3,0,5 --k 4 --n 6 --bias all`), and one fixed
// case per packed layout ("grouped_mm.2d3d", ...) so that the suite checks every layout. Each has
// an empty group, a non-contiguous operand, and (offs layouts) one row or column past offs[-1].
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "ops/gradcheck_cases.hpp"
#include "ops/grouped_mm.hpp"

namespace gg::gradcheck {

namespace {

using V = std::vector<Tensor>;

// Per-group sizes of a case: m rows, k inner, n columns (the split dim of a packed layout is the
// one that varies; the others must be single values).
struct Sizes {
  std::string layout;
  int64_t groups;
  std::vector<int64_t> m, k, n;
  std::string bias;  // none | all | sparse (every other group; packed layouts: all)
  std::optional<Dtype> out_dtype;
};

// Sane limits for a finite-difference check (it runs two forwards per input element).
constexpr int64_t kMaxGroups = 4096, kMaxSize = 4096, kMaxElements = int64_t{1} << 22;

std::vector<int64_t> per_group(const Params& p, const std::string& key,
                               std::vector<int64_t> fallback, int64_t groups, bool may_vary) {
  std::vector<int64_t> v = p.get_ints(key, std::move(fallback));
  if (v.size() == 1) v.assign(static_cast<size_t>(groups), v[0]);
  if (static_cast<int64_t>(v.size()) != groups)
    throw UsageError(fmt::format("[gradcheck] grouped_mm: --{} has {} values for {} groups", key,
                                 v.size(), groups));
  for (int64_t x : v) {
    if (x < 0 || x > kMaxSize)
      throw UsageError(fmt::format("[gradcheck] grouped_mm: --{} must be between 0 and {}, got {}",
                                   key, kMaxSize, x));
    if (!may_vary && x != v[0])
      throw UsageError(
          fmt::format("[gradcheck] grouped_mm: in layout {} every group has the same "
                      "{}; give one value",
                      p.get("layout", "list"), key));
  }
  return v;
}

Sizes sizes(const CaseOptions& o, const std::string& fixed_layout) {
  const Params& p = o.params;
  Sizes s;
  s.layout = fixed_layout.empty()
                 ? p.get_choice("layout", "list", {"list", "2d3d", "3d2d", "2d2d", "3d3d"})
                 : fixed_layout;
  // Defaults: three groups, the middle one empty.
  std::vector<int64_t> m{3, 0, 2}, k{4, 2, 3}, n{2, 3, 1};
  if (s.layout == "2d3d") k = {4}, n = {3};
  if (s.layout == "3d2d") m = {3}, k = {4}, n = {2, 0, 3};
  if (s.layout == "2d2d") m = {3}, k = {2, 0, 3}, n = {4};
  if (s.layout == "3d3d") m = {2}, k = {3}, n = {4};
  // Groups: --groups, else as many as the longest --m/--k/--n list, else 3.
  size_t longest = 0;
  for (const char* key : {"m", "k", "n"}) longest = std::max(longest, p.get_ints(key, {}).size());
  s.groups = p.get_int("groups", longest > 1 ? static_cast<int64_t>(longest) : 3);
  if (s.groups < 0 || s.groups > kMaxGroups)
    throw UsageError(fmt::format(
        "[gradcheck] grouped_mm: --groups must be between 0 and {}, got {}", kMaxGroups, s.groups));
  const bool list = s.layout == "list";
  s.m = per_group(p, "m", m, s.groups, list || s.layout == "2d3d");
  s.k = per_group(p, "k", k, s.groups, list || s.layout == "2d2d");
  s.n = per_group(p, "n", n, s.groups, list || s.layout == "3d2d");
  // Each size is at most kMaxSize, so these products cannot overflow.
  int64_t elements = 0;
  for (int64_t g = 0; g < s.groups; ++g)
    elements += s.m[g] * s.k[g] + s.k[g] * s.n[g] + s.m[g] * s.n[g];
  if (elements > kMaxElements)
    throw UsageError(fmt::format(
        "[gradcheck] grouped_mm: the operands and output would hold {} elements, over the limit "
        "of {} (a finite-difference check differentiates every element of every input)",
        elements, kMaxElements));
  s.bias = p.get_choice("bias", list ? "sparse" : "all", {"none", "all", "sparse"});
  const std::string out =
      p.get_choice("out_dtype", "none", {"none", "float32", "float64", "bfloat16", "float16"});
  if (out == "float32") s.out_dtype = kFloat32;
  if (out == "float64") s.out_dtype = kFloat64;
  if (out == "bfloat16") s.out_dtype = kBFloat16;
  if (out == "float16") s.out_dtype = kFloat16;
  return s;
}

bool has_bias(const Sizes& s, int64_t g) {
  return s.bias == "all" || (s.bias == "sparse" && (s.layout != "list" || g % 2 == 0));
}

int64_t sum(const std::vector<int64_t>& v) {
  int64_t t = 0;
  for (int64_t x : v) t += x;
  return t;
}

Tensor offs_of(const std::vector<int64_t>& sizes) {
  std::vector<int64_t> ends;
  int64_t at = 0;
  for (int64_t s : sizes) ends.push_back(at += s);
  return tensor<int64_t>(ends, {static_cast<int64_t>(ends.size())});
}

Inputs build(const CaseOptions& o, const std::string& fixed_layout) {
  const Sizes s = sizes(o, fixed_layout);
  const Dtype d = o.dtype;
  const int64_t G = s.groups;
  Inputs in;
  if (s.layout == "list") {
    for (int64_t g = 0; g < G; ++g) {
      Tensor x = gen::normal({s.m[g], s.k[g]}, d);
      in.push_back({fmt::format("input[{}]", g), g == 1 ? gen::noncontiguous(x) : x});
    }
    for (int64_t g = 0; g < G; ++g) {
      Tensor w = gen::normal({s.k[g], s.n[g]}, d);
      in.push_back({fmt::format("mat2[{}]", g), g == 0 ? gen::noncontiguous(w) : w});
    }
    for (int64_t g = 0; g < G; ++g)
      if (has_bias(s, g)) in.push_back({fmt::format("bias[{}]", g), gen::normal({s.n[g]}, d)});
    return in;
  }
  const int64_t m = G ? s.m[0] : 0, k = G ? s.k[0] : 0, n = G ? s.n[0] : 0;
  const bool bias = s.bias != "none";
  if (s.layout == "2d3d") {
    in.push_back({"input", gen::normal({sum(s.m) + 1, k}, d)});
    in.push_back({"mat2", gen::noncontiguous(gen::normal({G, k, n}, d))});
    if (bias) in.push_back({"bias", gen::normal({G, n}, d)});
    in.push_back({"offs", offs_of(s.m), false});
  } else if (s.layout == "3d2d") {
    in.push_back({"input", gen::noncontiguous(gen::normal({G, m, k}, d))});
    in.push_back({"mat2", gen::normal({k, sum(s.n) + 1}, d)});
    if (bias) in.push_back({"bias", gen::normal({sum(s.n) + 1}, d)});
    in.push_back({"offs", offs_of(s.n), false});
  } else if (s.layout == "2d2d") {
    in.push_back({"input", gen::noncontiguous(gen::normal({m, sum(s.k) + 1}, d))});
    in.push_back({"mat2", gen::normal({sum(s.k) + 1, n}, d)});
    if (bias) in.push_back({"bias", gen::normal({G, n}, d)});
    in.push_back({"offs", offs_of(s.k), false});
  } else {  // 3d3d
    in.push_back({"input", gen::normal({G, m, k}, d)});
    in.push_back({"mat2", gen::noncontiguous(gen::normal({G, k, n}, d))});
    if (bias) in.push_back({"bias", gen::normal({G, n}, d)});
  }
  return in;
}

V forward(const V& x, const CaseOptions& o, const std::string& fixed_layout) {
  const Sizes s = sizes(o, fixed_layout);
  if (s.layout == "list") {
    const auto G = static_cast<size_t>(s.groups);
    V input(x.begin(), x.begin() + static_cast<std::ptrdiff_t>(G));
    V mat2(x.begin() + static_cast<std::ptrdiff_t>(G),
           x.begin() + static_cast<std::ptrdiff_t>(2 * G));
    V bias(G);
    size_t next = 2 * G;
    for (size_t g = 0; g < G; ++g)
      if (has_bias(s, static_cast<int64_t>(g))) bias[g] = x[next++];
    return gg::grouped_mm(input, mat2, bias, s.out_dtype);
  }
  const bool bias = s.bias != "none";
  const Tensor offs = s.layout == "3d3d" ? Tensor() : x.back();
  return V{gg::grouped_mm(
      x[0], x[1], {.offs = offs, .bias = bias ? x[2] : Tensor(), .out_dtype = s.out_dtype})};
}

void add(Registry& r, const std::string& name, const std::string& layout, const char* description) {
  std::vector<std::string> params{"groups", "m", "k", "n", "bias", "out_dtype"};
  if (layout.empty()) params.insert(params.begin(), "layout");
  r.register_case(
      {.name = name,
       .description = description,
       .build = [layout](const CaseOptions& o) { return build(o, layout); },
       .forward = [layout](const V& x, const CaseOptions& o) { return forward(x, o, layout); },
       .linear = true,
       .params = params,
       .family = "grouped_mm"});
}

}  // namespace

void register_grouped_mm_cases(Registry& r) {
  add(r, "grouped_mm", "",
      "grouped_mm, any form (--layout list|2d3d|3d2d|2d2d|3d3d, --m/--k/--n per group, --bias, "
      "--out-dtype); default: list form, 3 groups with k_i/m_i of their own, one empty, sparse "
      "bias");
  add(r, "grouped_mm.2d3d", "2d3d",
      "grouped_mm packed 2D x 3D: offs splits M (groups 3,0,2 rows + 1 row past offs[-1]), bias");
  add(r, "grouped_mm.3d2d", "3d2d",
      "grouped_mm packed 3D x 2D: offs splits N (2,0,3 columns + 1 past offs[-1]), bias");
  add(r, "grouped_mm.2d2d", "2d2d",
      "grouped_mm packed 2D x 2D: offs splits K (2,0,3 + 1 past offs[-1]), bias");
  add(r, "grouped_mm.3d3d", "3d3d", "grouped_mm packed 3D x 3D (batched), bias");
}

}  // namespace gg::gradcheck
