#include "autograd/grad_mode.hpp"

namespace gg {

namespace {
thread_local bool g_grad_enabled = true;
thread_local bool g_inference = false;
}  // namespace

bool GradMode::is_enabled() { return g_grad_enabled; }
void GradMode::set_enabled(bool enabled) { g_grad_enabled = enabled; }

InferenceMode::InferenceMode(bool enabled)
    : previous_grad_(g_grad_enabled), previous_inference_(g_inference) {
  g_inference = enabled;
  g_grad_enabled = !enabled;
}
InferenceMode::~InferenceMode() {
  g_inference = previous_inference_;
  g_grad_enabled = previous_grad_;
}
bool InferenceMode::is_enabled() { return g_inference; }

}  // namespace gg
