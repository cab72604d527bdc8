// The one place that knows every gradcheck family: register_builtin_cases() calls the registration
// of each op family (ops/gradcheck_cases.hpp) and of the nn modules (nn/gradcheck_cases.hpp), and
// Registry::instance() registers them all on first use. instance() is declared in
// autograd/gradcheck_registry.hpp but defined here, above nn, so that the registry itself names no
// family (autograd includes nothing above it), while the CLI and the tests, which link the whole
// library, get every case from Registry::instance().
#include "nn/gradcheck_cases.hpp"

#include <mutex>

#include "autograd/gradcheck_registry.hpp"
#include "ops/gradcheck_cases.hpp"

namespace gg::gradcheck {

namespace {
void register_builtin_cases(Registry& registry) {
  register_elementwise_cases(registry);
  register_reduce_cases(registry);
  register_matmul_cases(registry);
  register_shape_op_cases(registry);
  register_nn_op_cases(registry);
  register_grouped_mm_cases(registry);
  register_nn_module_cases(registry);
}
}  // namespace

Registry& Registry::instance() {
  static Registry registry;
  static std::once_flag once;
  std::call_once(once, [] { register_builtin_cases(registry); });
  return registry;
}

}  // namespace gg::gradcheck
