// Tensor::set_data (libtorch's name: Python's `t.data = other`) and core's one view constructor,
// as_strided_view: what nn uses instead of writing TensorImpl fields (issue #14).
#include <catch2/catch.hpp>
#include <vector>

#include "groupgrad.hpp"

using Catch::Contains;
using gg::Shape;
using gg::Tensor;

TEST_CASE("set_data: the handle and its copies see the new data, identity kept", "[core]") {
  Tensor w = gg::zeros({2, 3});
  const Tensor alias = w;  // another handle on the same tensor, as an optimizer holds it
  const auto* impl = w.impl().get();
  w.set_data(gg::tensor<float>({1, 2, 3, 4, 5, 6}, {3, 2}));  // a new shape, as PyTorch allows
  CHECK(w.impl().get() == impl);
  CHECK(alias.shape() == Shape{3, 2});
  CHECK(alias.to_vector<float>() == std::vector<float>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("set_data: grad and requires_grad are kept, the new data's history is not", "[core]") {
  Tensor w = gg::ones({3}).requires_grad_();
  (w * 2.0).sum().backward();
  const Tensor grad = w.grad();
  REQUIRE(grad.defined());
  Tensor x = gg::full({3}, 5.0).requires_grad_();
  const Tensor y = x * 3.0;  // has a grad_fn; set_data takes only its data
  w.set_data(y);
  CHECK(w.requires_grad());
  CHECK(w.is_leaf());
  CHECK(w.grad().impl() == grad.impl());
  CHECK(w.to_vector<float>() == std::vector<float>{15, 15, 15});
  // A later backward accumulates into the kept grad as before.
  (w * 1.0).sum().backward();
  CHECK(w.grad().to_vector<float>() == std::vector<float>{3, 3, 3});
}

TEST_CASE("set_data: dtype rules", "[core][errors]") {
  Tensor w = gg::zeros({2});
  w.set_data(gg::ones({2}, gg::kFloat64));  // another floating dtype: allowed
  CHECK(w.dtype() == gg::kFloat64);
  w.set_data(gg::ones({2}, gg::kInt64));  // no grad required: any dtype
  CHECK(w.dtype() == gg::kInt64);

  Tensor p = gg::zeros({2}).requires_grad_();
  CHECK_THROWS_AS(p.set_data(gg::ones({2}, gg::kInt64)), gg::Error);
  CHECK_THROWS_WITH(p.set_data(gg::ones({2}, gg::kInt32)),
                    Contains("[set_data]") && Contains("requires grad") && Contains("int32"));
  CHECK(p.dtype() == gg::kFloat32);  // unchanged by the refused call
  CHECK_THROWS_WITH(p.set_data(Tensor()), Contains("[set_data]") && Contains("undefined"));
  CHECK_THROWS_WITH(Tensor().set_data(p), Contains("[set_data]") && Contains("undefined"));
}

TEST_CASE("set_data: a tensor may take its own data or a view of it", "[core]") {
  Tensor w = gg::arange(6, gg::kFloat32).reshape({2, 3});
  w.set_data(w);
  CHECK(w.shape() == Shape{2, 3});
  w.set_data(w.select(0, 1));
  CHECK(w.to_vector<float>() == std::vector<float>{3, 4, 5});
  CHECK(w.storage_offset() == 3);
}

TEST_CASE("as_strided_view: views the storage without history", "[core]") {
  const Tensor base = gg::arange(12, gg::kFloat32).requires_grad_();
  const Tensor v = gg::as_strided_view(base, {3, 2}, {4, 1}, 1);
  CHECK(v.impl()->storage == base.impl()->storage);
  CHECK(!v.requires_grad());
  CHECK(v.to_vector<float>() == std::vector<float>{1, 2, 5, 6, 9, 10});
  // The last element may be the storage's last; stride 0 repeats; an empty view may point
  // anywhere (it addresses nothing).
  CHECK(gg::as_strided_view(base, {2}, {11}, 0).to_vector<float>() == std::vector<float>{0, 11});
  CHECK(gg::as_strided_view(base, {1000}, {0}, 11).numel() == 1000);
  CHECK(gg::as_strided_view(base, {0, 5}, {5, 1}, 100).numel() == 0);
}

TEST_CASE("as_strided_view: out of the storage is an error naming the op and shapes",
          "[core][errors]") {
  const Tensor base = gg::zeros({3, 4});
  CHECK_THROWS_AS(gg::as_strided_view(base, {3, 4}, {4, 1}, 1), gg::Error);
  CHECK_THROWS_WITH(gg::as_strided_view(base, {3, 4}, {4, 1}, 1, "my_view"),
                    Contains("[my_view]") && Contains("[3, 4]") && Contains("[4, 1]") &&
                        Contains("offset 1") && Contains("12"));
  CHECK_THROWS_WITH(gg::as_strided_view(base, {2, 2}, {8, 4}, 0),
                    Contains("[as_strided_view]") && Contains("does not fit"));
  CHECK_THROWS_WITH(gg::as_strided_view(base, {2}, {1}, -1), Contains("does not fit"));
  CHECK_THROWS_WITH(gg::as_strided_view(base, {3}, {int64_t{1} << 62}, 0),
                    Contains("does not fit"));  // the extent overflows int64
  CHECK_THROWS_WITH(gg::as_strided_view(base, {2, 2}, {-1, 1}, 3), Contains("negative strides"));
  CHECK_THROWS_WITH(gg::as_strided_view(base, {2, 2}, {1}, 0), Contains("differ in length"));
  CHECK_THROWS_WITH(gg::as_strided_view(base, Shape(17, 1), Shape(17, 0), 0),
                    Contains("at most 16 dimensions"));
  CHECK_THROWS_WITH(gg::as_strided_view(Tensor(), {1}, {1}, 0),
                    Contains("[as_strided_view]") && Contains("undefined"));
}
