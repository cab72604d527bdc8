// In-place ops (add_, mul_, clamp_, copy_, ...) write a tensor's own storage and bump the version
// counter it shares with its views. Modify a leaf that requires grad outside the graph only, and
// never modify a tensor that a pending backward still needs: that backward throws rather than
// return a wrong gradient.
#include <groupgrad/groupgrad.hpp>
#include <string>

// The working pattern: update the leaf under NoGradGuard (as optimizers do), then build the graph.
inline double update_then_forward() {
  gg::Tensor w = gg::tensor<double>({1.0, 2.0}).requires_grad_();
  {
    gg::NoGradGuard no_grad;  // w.mul_(3.0) outside it throws: w is a leaf that requires grad
    w.mul_(3.0);              // w = [3, 6]
  }
  gg::Tensor loss = (w * w).sum();
  loss.backward();
  return w.grad().sum().item<double>();  // d/dw sum(w^2) = 2w: 6 + 12 = 18
}

// The refused pattern: exp saved its output y for backward, then y was modified in place.
inline std::string modify_saved_tensor() {
  gg::Tensor x = gg::tensor<double>({0.5, 1.5}).requires_grad_();
  gg::Tensor y = gg::exp(x);
  y.mul_(2.0);  // allowed (y is not a leaf), but y's version is now 1
  try {
    y.sum().backward();
  } catch (const gg::Error& e) {
    return e.what();  // "[backward] ... modified by an in-place operation ... expected version 0"
  }
  return "no error";
}
