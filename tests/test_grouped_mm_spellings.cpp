// Every way docs/api.md, the seed's examples and the README spell a grouped_mm call compiles, in
// both namespaces (gg::nn::functional, docs/api.md's, and gg, where the op is defined), and
// computes what its documentation says: checked against a naive loop on tiny operands holding small
// integers, so that every product is exact in float32 and compared for equality.
//
// Compiling this file is half of the test. Before the overloads were arranged for it, g++ 12
// rejected grouped_mm(xs, ws, {}) and grouped_mm(xs, ws, {.bias = bs}) as ambiguous between the
// options form and the positional form, and grouped_mm({x}, {w}) bound each {t} to a Tensor and
// ran the packed form (which then asked for offs) instead of the list form with one group.
#include <catch2/catch.hpp>
#include <groupgrad/groupgrad.hpp>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

namespace {

namespace F = gg::nn::functional;
using gg::Shape;
using gg::Tensor;
using TL = std::vector<Tensor>;
using Vec = std::vector<double>;

// Values -2..2, a different pattern per salt.
Tensor ints(const Shape& shape, int salt) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<float>((i * 7 + salt * 3) % 5 - 2);
  return gg::tensor<float>(v, shape);
}

Vec values(const Tensor& t) { return t.to(gg::kFloat64).contiguous().to_vector<double>(); }

// input [*, k] @ mat2 [k, m] (+ bias [m]) in double, by the textbook loop.
Vec naive(const Tensor& input, const Tensor& mat2, const Tensor& bias = {}) {
  const int64_t k = mat2.size(0), m = mat2.size(1), rows = k ? input.numel() / k : 0;
  const Vec x = values(input), w = values(mat2), b = bias.defined() ? values(bias) : Vec();
  Vec y(static_cast<size_t>(rows * m));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < m; ++j) {
      double acc = b.empty() ? 0.0 : b[static_cast<size_t>(j)];
      for (int64_t p = 0; p < k; ++p)
        acc += x[static_cast<size_t>(i * k + p)] * w[static_cast<size_t>(p * m + j)];
      y[static_cast<size_t>(i * m + j)] = acc;
    }
  return y;
}

// The list form's result: one output per group, [*, m_i], of the expected dtype and values.
void check_list(const std::string& spelling, const TL& got, const TL& xs, const TL& ws,
                const TL& bs, gg::Dtype dtype) {
  INFO(spelling);
  REQUIRE(got.size() == xs.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("group " << i);
    Shape shape = xs[i].shape();
    shape.back() = ws[i].size(1);
    CHECK(got[i].shape() == shape);
    CHECK(got[i].dtype() == dtype);
    CHECK(values(got[i]) == naive(xs[i], ws[i], bs.empty() ? Tensor() : bs[i]));
  }
}

// One group of a packed result: the block of the output against its blocks of the operands.
void check_block(const std::string& spelling, int64_t g, const Tensor& out, const Tensor& x,
                 const Tensor& w, const Tensor& b) {
  INFO(spelling << ", group " << g);
  CHECK(values(out) == naive(x, w, b));
}

// Two list groups with different k and m (one of them 3-D), their biases, and the operands of the
// four packed layouts with G = 2 groups (offs {2, 5}: groups of 2 and 3 that cover the split dim).
struct Operands {
  TL xs{ints({2, 3}, 1), ints({2, 2, 2}, 2)};
  TL ws{ints({3, 4}, 3), ints({2, 1}, 4)};
  TL bs{ints({4}, 5), ints({1}, 6)};
  TL sparse_bs{ints({4}, 5), Tensor()};  // group 1 without a bias
  Tensor x = xs[0], w = ws[0], b = bs[0];
  Tensor offs = gg::tensor<int32_t>({2, 5});
  Tensor x3 = ints({2, 2, 3}, 7), w3 = ints({2, 3, 4}, 8), bias_gn = ints({2, 4}, 9);  // 3-D
  Tensor x2 = ints({5, 3}, 10), w2 = ints({5, 4}, 11), bias_n = ints({5}, 12);         // 2-D
  Tensor x2k = ints({2, 5}, 13), w3n = ints({3, 5}, 14);  // 2D x 2D (K split), 3D x 2D (N split)
};

// 2D x 3D, offs splits M: rows [s, e) of input and output are group g.
void check_2d3d(const std::string& spelling, const Tensor& out, const Operands& o,
                const Tensor& bias, gg::Dtype dtype) {
  REQUIRE(out.shape() == Shape{5, 4});
  CHECK(out.dtype() == dtype);
  const int64_t ends[] = {2, 5};  // o.offs
  for (int64_t g = 0; g < 2; ++g) {
    const int64_t s = g ? ends[g - 1] : 0, e = ends[g];
    check_block(spelling, g, out.narrow(0, s, e - s), o.x2.narrow(0, s, e - s), o.w3.select(0, g),
                bias.defined() ? bias.select(0, g) : Tensor());
  }
}

// 3D x 3D, no offs: the leading dim is the group.
void check_3d3d(const std::string& spelling, const Tensor& out, const Operands& o,
                const Tensor& bias) {
  REQUIRE(out.shape() == Shape{2, 2, 4});
  for (int64_t g = 0; g < 2; ++g)
    check_block(spelling, g, out.select(0, g), o.x3.select(0, g), o.w3.select(0, g),
                bias.defined() ? bias.select(0, g) : Tensor());
}

}  // namespace

// The spellings, written once and compiled through each namespace (NS is gg::nn::functional or
// gg). The string is what the user writes; the call next to it is that call. Each expands to
// statements: invoke it followed by a semicolon.
#define GG_LIST_SPELLINGS(NS)                                                                      \
  const Operands o;                                                                                \
  const TL &xs = o.xs, &ws = o.ws, &bs = o.bs, &sparse_bs = o.sparse_bs;                           \
  /* Without options, and with empty options: no bias, the inputs' dtype. */                       \
  check_list("grouped_mm(xs, ws)", NS::grouped_mm(xs, ws), xs, ws, {}, gg::kFloat32);              \
  check_list("grouped_mm(xs, ws, {})", NS::grouped_mm(xs, ws, {}), xs, ws, {}, gg::kFloat32);      \
  /* The options struct, with designated initializers, bare and named. */                          \
  check_list("grouped_mm(xs, ws, {.bias = bs})", NS::grouped_mm(xs, ws, {.bias = bs}), xs, ws, bs, \
             gg::kFloat32);                                                                        \
  check_list("grouped_mm(xs, ws, {.bias = {b0, Tensor()}})",                                       \
             NS::grouped_mm(xs, ws, {.bias = {sparse_bs[0], Tensor()}}), xs, ws, sparse_bs,        \
             gg::kFloat32);                                                                        \
  check_list("grouped_mm(xs, ws, {.out_dtype = gg::kFloat64})",                                    \
             NS::grouped_mm(xs, ws, {.out_dtype = gg::kFloat64}), xs, ws, {}, gg::kFloat64);       \
  check_list("grouped_mm(xs, ws, {.bias = bs, .out_dtype = gg::kInt8})",                           \
             NS::grouped_mm(xs, ws, {.bias = bs, .out_dtype = gg::kInt8}), xs, ws, bs, gg::kInt8); \
  check_list("grouped_mm(xs, ws, GroupedMMOptions{.bias = bs})",                                   \
             NS::grouped_mm(xs, ws, NS::GroupedMMOptions{.bias = bs}), xs, ws, bs, gg::kFloat32);  \
  /* The seed's positional bias and out_dtype ({} = no bias, the seed's null). */                  \
  check_list("grouped_mm(xs, ws, bs)", NS::grouped_mm(xs, ws, bs), xs, ws, bs, gg::kFloat32);      \
  check_list("grouped_mm(xs, ws, sparse_bs)", NS::grouped_mm(xs, ws, sparse_bs), xs, ws,           \
             sparse_bs, gg::kFloat32);                                                             \
  check_list("grouped_mm(xs, ws, bs, gg::kInt8)", NS::grouped_mm(xs, ws, bs, gg::kInt8), xs, ws,   \
             bs, gg::kInt8);                                                                       \
  check_list("grouped_mm(xs, ws, bs, std::nullopt)", NS::grouped_mm(xs, ws, bs, std::nullopt), xs, \
             ws, bs, gg::kFloat32);                                                                \
  check_list("grouped_mm(xs, ws, {}, gg::kInt8)", NS::grouped_mm(xs, ws, {}, gg::kInt8), xs, ws,   \
             {}, gg::kInt8);                                                                       \
  check_list("grouped_mm(xs, ws, {b0, b1})", NS::grouped_mm(xs, ws, {bs[0], bs[1]}), xs, ws, bs,   \
             gg::kFloat32);                                                                        \
  /* Braced lists, as PyTorch's F.grouped_mm([x0, x1], [w0, w1]); one group is a list too. */      \
  check_list("grouped_mm({x0, x1}, {w0, w1})", NS::grouped_mm({xs[0], xs[1]}, {ws[0], ws[1]}), xs, \
             ws, {}, gg::kFloat32);                                                                \
  static_assert(std::is_same_v<decltype(NS::grouped_mm({o.x}, {o.w})), TL>);                       \
  check_list("grouped_mm({x}, {w})", NS::grouped_mm({o.x}, {o.w}), {o.x}, {o.w}, {},               \
             gg::kFloat32);                                                                        \
  check_list("grouped_mm({x}, {w}, {})", NS::grouped_mm({o.x}, {o.w}, {}), {o.x}, {o.w}, {},       \
             gg::kFloat32);                                                                        \
  check_list("grouped_mm({x}, {w}, {b})", NS::grouped_mm({o.x}, {o.w}, {o.b}), {o.x}, {o.w},       \
             {o.b}, gg::kFloat32);                                                                 \
  check_list("grouped_mm({x}, {w}, {.bias = {b}})", NS::grouped_mm({o.x}, {o.w}, {.bias = {o.b}}), \
             {o.x}, {o.w}, {o.b}, gg::kFloat32);                                                   \
  check_list("grouped_mm({x}, {w}, {}, gg::kInt8)", NS::grouped_mm({o.x}, {o.w}, {}, gg::kInt8),   \
             {o.x}, {o.w}, {}, gg::kInt8)

#define GG_PACKED_SPELLINGS(NS)                                                                    \
  const Operands o;                                                                                \
  /* 3D x 3D needs no options. */                                                                  \
  check_3d3d("grouped_mm(x3, w3)", NS::grouped_mm(o.x3, o.w3), o, Tensor());                       \
  check_3d3d("grouped_mm(x3, w3, {})", NS::grouped_mm(o.x3, o.w3, {}), o, Tensor());               \
  check_3d3d("grouped_mm(x3, w3, {.bias = bias})",                                                 \
             NS::grouped_mm(o.x3, o.w3, {.bias = o.bias_gn}), o, o.bias_gn);                       \
  /* The offs layouts, with designated initializers, bare and named. */                            \
  check_2d3d("grouped_mm(x, w3, {.offs = offs})", NS::grouped_mm(o.x2, o.w3, {.offs = o.offs}), o, \
             Tensor(), gg::kFloat32);                                                              \
  check_2d3d(                                                                                      \
      "grouped_mm(x, w3, {.offs = offs, .bias = bias, .out_dtype = gg::kFloat64})",                \
      NS::grouped_mm(o.x2, o.w3, {.offs = o.offs, .bias = o.bias_gn, .out_dtype = gg::kFloat64}),  \
      o, o.bias_gn, gg::kFloat64);                                                                 \
  check_2d3d("grouped_mm(x, w3, PackedGroupedMMOptions{.offs = offs})",                            \
             NS::grouped_mm(o.x2, o.w3, NS::PackedGroupedMMOptions{.offs = o.offs}), o, Tensor(),  \
             gg::kFloat32);                                                                        \
  {                                                                                                \
    const std::string s = "grouped_mm(x3, w2, {.offs = offs, .bias = bias})  [3D x 2D]";           \
    const Tensor out = NS::grouped_mm(o.x3, o.w3n, {.offs = o.offs, .bias = o.bias_n});            \
    REQUIRE(out.shape() == Shape{2, 5});                                                           \
    check_block(s, 0, out.narrow(1, 0, 2), o.x3.select(0, 0), o.w3n.narrow(1, 0, 2),               \
                o.bias_n.narrow(0, 0, 2));                                                         \
    check_block(s, 1, out.narrow(1, 2, 3), o.x3.select(0, 1), o.w3n.narrow(1, 2, 3),               \
                o.bias_n.narrow(0, 2, 3));                                                         \
  }                                                                                                \
  {                                                                                                \
    const std::string s = "grouped_mm(x2, w2, {.offs = offs, .bias = bias})  [2D x 2D]";           \
    const Tensor out = NS::grouped_mm(o.x2k, o.w2, {.offs = o.offs, .bias = o.bias_gn});           \
    REQUIRE(out.shape() == Shape{2, 2, 4});                                                        \
    check_block(s, 0, out.select(0, 0), o.x2k.narrow(1, 0, 2), o.w2.narrow(0, 0, 2),               \
                o.bias_gn.select(0, 0));                                                           \
    check_block(s, 1, out.select(0, 1), o.x2k.narrow(1, 2, 3), o.w2.narrow(0, 2, 3),               \
                o.bias_gn.select(0, 1));                                                           \
  }

TEST_CASE("grouped_mm spellings: list form through gg::nn::functional", "[grouped_mm][spellings]") {
  GG_LIST_SPELLINGS(F);
}

TEST_CASE("grouped_mm spellings: list form through gg", "[grouped_mm][spellings]") {
  GG_LIST_SPELLINGS(gg);
}

TEST_CASE("grouped_mm spellings: packed form through gg::nn::functional",
          "[grouped_mm][spellings]") {
  GG_PACKED_SPELLINGS(F);
}

TEST_CASE("grouped_mm spellings: packed form through gg", "[grouped_mm][spellings]") {
  GG_PACKED_SPELLINGS(gg);
}

TEST_CASE("grouped_mm spellings: one operator and one set of options in both namespaces",
          "[grouped_mm][spellings]") {
  STATIC_REQUIRE(std::is_same_v<F::GroupedMMOptions, gg::GroupedMMOptions>);
  STATIC_REQUIRE(std::is_same_v<F::PackedGroupedMMOptions, gg::PackedGroupedMMOptions>);
  using List = TL (*)(const TL&, const TL&, const gg::GroupedMMOptions&);
  using Positional = TL (*)(const TL&, const TL&, const TL&, std::optional<gg::Dtype>);
  using Packed = Tensor (*)(const Tensor&, const Tensor&, const gg::PackedGroupedMMOptions&);
  CHECK(static_cast<List>(&F::grouped_mm) == static_cast<List>(&gg::grouped_mm));
  CHECK(static_cast<Positional>(&F::grouped_mm) == static_cast<Positional>(&gg::grouped_mm));
  CHECK(static_cast<Packed>(&F::grouped_mm) == static_cast<Packed>(&gg::grouped_mm));
}

// A braced argument never selects the packed form: with {x} in place of a tensor, options that
// only the packed form has do not compile (they did when {x} converted to a Tensor).
template <class T>
constexpr bool packed_takes_braces = requires(const T& x, const T& w, const T& offs) {
  gg::grouped_mm({x}, {w}, {.offs = offs});
};
static_assert(!packed_takes_braces<Tensor>);
