// cat, stack, split, chunk and index_select: values against plain index arithmetic, gradients
// against central differences in Float64, and the error messages.
#include <catch2/catch.hpp>
#include <cmath>
#include <functional>
#include <numeric>

#include "autograd/grad_mode.hpp"
#include "core/copy.hpp"
#include "core/random.hpp"
#include "core/tensor.hpp"
#include "ops/elementwise.hpp"
#include "ops/reduce.hpp"
#include "ops/shape_ops.hpp"
#include "tests/test_support.hpp"

using namespace gg;

namespace {

using test::check_gradients;
using test::values;

// 0, 1, 2, ... in `shape`, as `dtype`.
Tensor iota(const Shape& shape, Dtype dtype = kFloat64) {
  return arange(static_cast<double>(numel_of(shape)), dtype).reshape(shape);
}

// Row-major multi-index <-> offset helpers for the naive oracles.
Shape unravel(int64_t offset, const Shape& shape) {
  Shape idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    idx[d] = offset % shape[d];
    offset /= shape[d];
  }
  return idx;
}
int64_t ravel(const Shape& idx, const Shape& shape) {
  int64_t off = 0;
  for (size_t d = 0; d < shape.size(); ++d) off = off * shape[d] + idx[d];
  return off;
}

}  // namespace

TEST_CASE("cat matches index arithmetic along every dim", "[shape_ops][cat]") {
  const Shape a_shape{2, 3, 4};
  for (int64_t dim = 0; dim < 3; ++dim) {
    Shape b_shape = a_shape;
    b_shape[dim] = 2;
    Tensor a = iota(a_shape), b = iota(b_shape) + 100.0;
    Tensor out = cat({a, b}, dim - 3);  // negative dims count from the end
    Shape expect = a_shape;
    expect[dim] += 2;
    REQUIRE(out.shape() == expect);
    std::vector<double> got = values(out), va = values(a), vb = values(b);
    for (int64_t o = 0; o < out.numel(); ++o) {
      Shape idx = unravel(o, expect);
      double want;
      if (idx[dim] < a_shape[dim]) {
        want = va[ravel(idx, a_shape)];
      } else {
        idx[dim] -= a_shape[dim];
        want = vb[ravel(idx, b_shape)];
      }
      REQUIRE(got[o] == want);
    }
  }
}

TEST_CASE("cat handles non-contiguous, empty and integer inputs", "[shape_ops][cat]") {
  Tensor a = iota({3, 2}).t();  // [2, 3], non-contiguous
  Tensor b = zeros({2, 0}, kFloat64);
  Tensor c = full({2, 1}, 7.0, kFloat64);
  Tensor out = cat({a, b, c}, 1);
  REQUIRE(out.shape() == Shape{2, 4});
  REQUIRE(values(out) == std::vector<double>{0, 2, 4, 7, 1, 3, 5, 7});

  Tensor i = cat({tensor<int32_t>({1, 2}), tensor<int32_t>({3})});
  REQUIRE(i.dtype() == kInt32);
  REQUIRE(i.to_vector<int32_t>() == std::vector<int32_t>{1, 2, 3});

  // A single tensor gives a copy, not the same storage.
  Tensor single = cat({c});
  REQUIRE(single.impl()->storage != c.impl()->storage);
}

TEST_CASE("stack inserts a new dim", "[shape_ops][stack]") {
  Tensor a = iota({2, 3}), b = iota({2, 3}) * 10.0;
  for (int64_t dim : {0, 1, 2, -1}) {
    Tensor out = stack({a, b}, dim);
    const int64_t d = dim < 0 ? dim + 3 : dim;
    Shape expect{2, 3};
    expect.insert(expect.begin() + d, 2);
    REQUIRE(out.shape() == expect);
    std::vector<double> got = values(out), va = values(a), vb = values(b);
    for (int64_t o = 0; o < out.numel(); ++o) {
      Shape idx = unravel(o, expect);
      const int64_t which = idx[d];
      idx.erase(idx.begin() + d);
      REQUIRE(got[o] == (which == 0 ? va : vb)[ravel(idx, {2, 3})]);
    }
  }
  Tensor scalars = stack({scalar_tensor(1.0), scalar_tensor(2.0)});
  REQUIRE(scalars.shape() == Shape{2});
  REQUIRE(scalars.to_vector<float>() == std::vector<float>{1, 2});
}

TEST_CASE("cat and stack gradients match finite differences", "[shape_ops][grad]") {
  manual_seed(1);
  check_gradients(
      [](const std::vector<Tensor>& x) {
        return cat({x[0], x[1], x[0]}, 1);
      },
      {randn({2, 3}), randn({2, 2})});
  check_gradients(
      [](const std::vector<Tensor>& x) {
        return cat({x[0].t(), x[1]}, 0).exp();
      },
      {randn({3, 2}), randn({2, 3})});
  check_gradients(
      [](const std::vector<Tensor>& x) {
        return stack({x[0], x[1], x[0]}, 1);
      },
      {randn({2, 3}), randn({2, 3})});
  check_gradients(
      [](const std::vector<Tensor>& x) {
        return stack({x[0], x[1]}, -1).exp();
      },
      {randn({4}), randn({4})});
}

TEST_CASE("cat and stack errors name the tensor and the rule", "[shape_ops][errors]") {
  Tensor a = zeros({2, 3});
  REQUIRE_THROWS_WITH(cat({}), Catch::Contains("[cat] expects a non-empty list"));
  REQUIRE_THROWS_WITH(stack({}), Catch::Contains("[stack] expects a non-empty list"));
  REQUIRE_THROWS_WITH(cat({a, zeros({2, 3}, kFloat64)}),
                      Catch::Contains("[cat] all tensors must have the same dtype: tensor 0 is "
                                      "float32 but tensor 1 is float64"));
  REQUIRE_THROWS_WITH(cat({a, a, zeros({3, 3})}, 1),
                      Catch::Contains("[cat] tensor 2 has shape [3, 3] but tensor 0 has shape "
                                      "[2, 3]: all sizes must match except in dimension 1"));
  REQUIRE_THROWS_WITH(cat({a, zeros({2, 3, 1})}),
                      Catch::Contains("[cat] tensor 1 has shape [2, 3, 1]"));
  REQUIRE_THROWS_WITH(cat({scalar_tensor(1.0)}), Catch::Contains("[cat] zero-dimensional"));
  REQUIRE_THROWS_WITH(cat({a, Tensor()}), Catch::Contains("[cat] tensor 1 is undefined"));
  REQUIRE_THROWS_WITH(cat({a}, 2), Catch::Contains("[cat] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(stack({a, zeros({3, 2})}),
                      Catch::Contains("[stack] all tensors must have the same shape: tensor 0 is "
                                      "[2, 3] but tensor 1 is [3, 2]"));
  REQUIRE_THROWS_WITH(stack({a, a}, 3), Catch::Contains("[stack] dimension 3 out of range"));
}

TEST_CASE("split and chunk give views with PyTorch's piece sizes", "[shape_ops][split]") {
  Tensor x = iota({7, 2});
  auto sizes_of = [](const std::vector<Tensor>& pieces, int64_t dim) {
    std::vector<int64_t> s;
    for (const Tensor& p : pieces) s.push_back(p.size(dim));
    return s;
  };
  std::vector<Tensor> pieces = split(x, 3);
  REQUIRE(sizes_of(pieces, 0) == std::vector<int64_t>{3, 3, 1});
  REQUIRE(values(pieces[1]) == std::vector<double>{6, 7, 8, 9, 10, 11});
  REQUIRE(values(pieces[2]) == std::vector<double>{12, 13});
  REQUIRE(pieces[1].impl()->storage == x.impl()->storage);  // a view
  REQUIRE(sizes_of(split(x, 10), 0) == std::vector<int64_t>{7});
  REQUIRE(sizes_of(split(x, 1, 1), 1) == std::vector<int64_t>{1, 1});
  REQUIRE(values(split(x, 1, -1)[1]) == std::vector<double>{1, 3, 5, 7, 9, 11, 13});

  pieces = split(x, std::vector<int64_t>{2, 0, 5});
  REQUIRE(sizes_of(pieces, 0) == std::vector<int64_t>{2, 0, 5});
  REQUIRE(values(pieces[2])[0] == 4);

  // torch.chunk: pieces of ceil(n / chunks), so fewer than `chunks` pieces can come back.
  REQUIRE(sizes_of(chunk(x, 3), 0) == std::vector<int64_t>{3, 3, 1});
  REQUIRE(sizes_of(chunk(iota({6}), 4), 0) == std::vector<int64_t>{2, 2, 2});
  REQUIRE(sizes_of(chunk(iota({5}), 3), 0) == std::vector<int64_t>{2, 2, 1});
  REQUIRE(sizes_of(chunk(x, 2, 1), 1) == std::vector<int64_t>{1, 1});
  REQUIRE(sizes_of(chunk(zeros({0, 2}), 3), 0) == std::vector<int64_t>{0, 0, 0});
  REQUIRE(sizes_of(split(zeros({0, 2}), 2), 0) == std::vector<int64_t>{0});
  REQUIRE(sizes_of(split(zeros({0, 2}), 0), 0) == std::vector<int64_t>{0});
}

TEST_CASE("split and chunk gradients match finite differences", "[shape_ops][grad]") {
  manual_seed(2);
  check_gradients(
      [](const std::vector<Tensor>& x) {
        std::vector<Tensor> p = split(x[0], 2, 1);  // [3, 2], [3, 2], [3, 1]
        return cat({p[2] * p[0], p[1].exp()}, 1);
      },
      {randn({3, 5})});
  check_gradients(
      [](const std::vector<Tensor>& x) {
        std::vector<Tensor> p = chunk(x[0], 2, 0);  // only the first piece is used
        return p[0] * 3.0;
      },
      {randn({4, 2})});
  check_gradients(
      [](const std::vector<Tensor>& x) {
        std::vector<Tensor> p = split(x[0], std::vector<int64_t>{1, 3}, -1);
        return p[1].sum(1) * p[0].sum(1);
      },
      {randn({2, 4})});
}

TEST_CASE("split and chunk errors", "[shape_ops][errors]") {
  Tensor x = zeros({4, 3});
  REQUIRE_THROWS_WITH(split(x, 0),
                      Catch::Contains("[split] split_size must be positive, got 0 (dimension 0 "
                                      "has size 4)"));
  REQUIRE_THROWS_WITH(split(x, -2), Catch::Contains("[split] split_size must be positive"));
  REQUIRE_THROWS_WITH(split(x, std::vector<int64_t>{1, 2}),
                      Catch::Contains("[split] sizes [1, 2] sum to 3 but dimension 0 has size 4 "
                                      "(shape [4, 3])"));
  REQUIRE_THROWS_WITH(split(x, std::vector<int64_t>{5, -1}),
                      Catch::Contains("[split] size -1 at position 1 is negative"));
  REQUIRE_THROWS_WITH(split(x, 1, 2), Catch::Contains("[split] dimension 2 out of range"));
  REQUIRE_THROWS_WITH(split(scalar_tensor(1.0), 1), Catch::Contains("[split] cannot split a 0-d"));
  REQUIRE_THROWS_WITH(chunk(x, 0), Catch::Contains("[chunk] chunks must be positive, got 0"));
}

TEST_CASE("index_select gathers rows with int32 and int64 indices", "[shape_ops][index_select]") {
  const Shape shape{3, 4, 2};
  Tensor x = iota(shape);
  std::vector<double> vx = values(x);
  const std::vector<int64_t> idx{2, 0, 2, 1, 3};
  for (Dtype index_dtype : {kInt64, kInt32}) {
    for (int64_t dim = 0; dim < 3; ++dim) {
      std::vector<int64_t> picked;
      for (int64_t i : idx)
        if (i < shape[dim]) picked.push_back(i);
      Tensor index = tensor<int64_t>(picked).to(index_dtype);
      Tensor out = index_select(x, dim, index);
      Shape expect = shape;
      expect[dim] = static_cast<int64_t>(picked.size());
      REQUIRE(out.shape() == expect);
      std::vector<double> got = values(out);
      for (int64_t o = 0; o < out.numel(); ++o) {
        Shape i = unravel(o, expect);
        i[dim] = picked[i[dim]];
        REQUIRE(got[o] == vx[ravel(i, shape)]);
      }
    }
  }
  // Non-contiguous source, integer dtype, and an empty index.
  Tensor xi = iota({2, 3}, kInt32).t();  // [3, 2]
  REQUIRE(index_select(xi, 0, tensor<int64_t>({2, 2})).to_vector<int32_t>() ==
          std::vector<int32_t>{2, 5, 2, 5});
  REQUIRE(index_select(x, 1, zeros({0}, kInt64)).shape() == Shape{3, 0, 2});
  REQUIRE(index_select(x, 0, scalar_tensor(1, kInt64)).shape() == Shape{1, 4, 2});
}

TEST_CASE("index_select gradient scatter-adds repeated rows", "[shape_ops][index_select][grad]") {
  Tensor w = zeros({4, 2}, kFloat64).requires_grad_();
  Tensor out = index_select(w, 0, tensor<int32_t>({3, 1, 3, 3}));
  out.backward(ones({4, 2}, kFloat64));
  REQUIRE(values(w.grad()) == std::vector<double>{0, 0, 1, 1, 0, 0, 3, 3});

  manual_seed(3);
  Tensor index = tensor<int64_t>({1, 0, 1, 2, 1});
  check_gradients([&](const std::vector<Tensor>& x) { return index_select(x[0], 0, index); },
                  {randn({3, 4})});
  check_gradients(
      [&](const std::vector<Tensor>& x) { return index_select(x[0].t(), 1, index).exp(); },
      {randn({3, 4})});
}

TEST_CASE("index_select errors", "[shape_ops][index_select][errors]") {
  Tensor x = zeros({5, 3});
  REQUIRE_THROWS_WITH(index_select(x, 0, tensor<int64_t>({0, 7, 1})),
                      Catch::Contains("[index_select] index 7 at position 1 is out of range for "
                                      "dimension 0 of size 5 (shape [5, 3])"));
  REQUIRE_THROWS_WITH(index_select(x, 1, tensor<int32_t>({-1})),
                      Catch::Contains("[index_select] index -1 at position 0 is out of range for "
                                      "dimension 1 of size 3"));
  REQUIRE_THROWS_WITH(index_select(x, 0, tensor<float>({1})),
                      Catch::Contains("[index_select] index must be int64 or int32, got float32"));
  REQUIRE_THROWS_WITH(index_select(x, 0, zeros({1, 1}, kInt64)),
                      Catch::Contains("[index_select] index must be 0-d or 1-d, got shape [1, 1]"));
  REQUIRE_THROWS_WITH(index_select(x, 2, tensor<int64_t>({0})),
                      Catch::Contains("[index_select] dimension 2 out of range"));
}
