// Built against an installed copy of groupgrad: proves the package config and headers are usable.
#include <cstdio>
#include <groupgrad/groupgrad.hpp>

int main() {
  gg::Tensor a = gg::tensor<float>({1, 2, 3, 4}, {2, 2});
  gg::Tensor b = gg::ones({2, 2});
  auto c = (a + b).to_vector<float>();
  bool ok = c == std::vector<float>{2, 3, 4, 5};
  std::printf("consumer: %s\n", ok ? "ok" : "WRONG");
  return ok ? 0 : 1;
}
