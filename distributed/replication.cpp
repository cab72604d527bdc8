// Which parameters are not replicated (mark_not_replicated): a set of tensors, held weakly so that
// marking keeps nothing alive, keyed by their TensorImpl.
#include <memory>
#include <mutex>
#include <unordered_map>

#include "core/error.hpp"
#include "distributed/distributed.hpp"

namespace gg::distributed {

namespace {
std::mutex g_mutex;
std::unordered_map<const TensorImpl*, std::weak_ptr<TensorImpl>> g_not_replicated;
}  // namespace

void mark_not_replicated(const Tensor& param) {
  GG_CHECK(param.defined(), "[mark_not_replicated] the tensor is undefined");
  const std::lock_guard lock(g_mutex);
  std::erase_if(g_not_replicated, [](const auto& e) { return e.second.expired(); });
  g_not_replicated[param.impl().get()] = param.impl();
}

bool is_replicated(const Tensor& param) {
  GG_CHECK(param.defined(), "[is_replicated] the tensor is undefined");
  const std::lock_guard lock(g_mutex);
  const auto it = g_not_replicated.find(param.impl().get());
  return it == g_not_replicated.end() || it->second.lock() != param.impl();
}

}  // namespace gg::distributed
