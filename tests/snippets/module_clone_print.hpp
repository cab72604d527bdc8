// Module::clone() is a deep copy (new tensors holding the same values), e.g. for a target network
// or an average of weights; operator<< prints the module tree in libtorch's format.
#include <groupgrad/groupgrad.hpp>
#include <memory>
#include <sstream>
#include <string>

struct CloneResult {
  std::string printed;
  bool equal_after_clone, equal_after_update;
};

inline CloneResult clone_and_print() {
  gg::manual_seed(0);
  auto net = std::make_shared<gg::nn::Sequential>(std::make_shared<gg::nn::Linear>(4, 8),
                                                  std::make_shared<gg::nn::LayerNorm>(8),
                                                  std::make_shared<gg::nn::Linear>(8, 2));
  auto target = std::dynamic_pointer_cast<gg::nn::Sequential>(net->clone());
  CloneResult r;
  r.equal_after_clone = gg::equal(net->parameters()[0], target->parameters()[0]);
  {
    gg::NoGradGuard no_grad;
    net->parameters()[0].add_(1.0);  // the original changes; the clone does not
  }
  r.equal_after_update = gg::equal(net->parameters()[0], target->parameters()[0]);
  std::ostringstream out;
  out << *target;
  r.printed = out.str();
  return r;
}
