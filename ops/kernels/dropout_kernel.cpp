#include "ops/kernels/dropout_kernel.hpp"

#include <mutex>

#include "core/random.hpp"
#include "core/strided.hpp"

namespace gg::kernels {

Tensor dropout_mask(const Shape& shape, Dtype dtype, double p) {
  Tensor mask = empty(shape, dtype);
  const double scale = p < 1 ? 1.0 / (1.0 - p) : 0.0;
  Generator& gen = global_generator();
  std::lock_guard lock(gen.mutex());
  dispatch(dtype, [&]<class T>() {
    T* pm = mask.data_ptr<T>();
    const T keep = convert<T>(scale), drop = convert<T>(0.0);
    for (int64_t i = 0, n = mask.numel(); i < n; ++i) pm[i] = gen.uniform() < p ? drop : keep;
  });
  return mask;
}

}  // namespace gg::kernels
