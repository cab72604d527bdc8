// Serving a model: InferenceMode records nothing (grad mode is off in its scope, for this thread),
// and set_num_threads caps the threads of the library's parallel loops and of oneDNN (call it
// from the main thread, before the work; get_num_threads reads it back).
#include <groupgrad/groupgrad.hpp>

inline gg::Tensor predict(gg::nn::Linear& model, const gg::Tensor& batch) {
  gg::InferenceMode inference;  // RAII, like c10::InferenceMode
  return model.forward(batch);  // no grad_fn: no graph is kept for a backward
}

inline bool serve_on_two_threads() {
  const int before = gg::get_num_threads();
  gg::set_num_threads(2);
  gg::manual_seed(0);
  gg::nn::Linear model(8, 3);
  gg::Tensor out = predict(model, gg::randn({4, 8}));
  gg::set_num_threads(before);
  return !out.requires_grad() && out.grad_fn() == nullptr && !gg::InferenceMode::is_enabled();
}
