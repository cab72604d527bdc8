// autograd::queue_callback, the engine's end-of-backward callback (DistributedDataParallel waits
// for its bucket all-reduces in one): it runs once, after every leaf's gradient and
// post-accumulate-grad hook, in queueing order, may queue more, and cannot be queued outside a
// backward.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "autograd/node.hpp"
#include "groupgrad.hpp"
#include "tests/test_support.hpp"

using namespace gg;

TEST_CASE("queue_callback runs after every leaf's gradient and hook, in order",
          "[autograd][queue_callback]") {
  Tensor a = tensor(std::vector<double>{1, 2}).requires_grad_();
  Tensor b = tensor(std::vector<double>{3, 4}).requires_grad_();
  std::vector<std::string> events;
  for (const Tensor* t : {&a, &b}) {
    const std::string name = t == &a ? "a" : "b";
    t->register_post_accumulate_grad_hook([&events, name](const Tensor& leaf) {
      events.push_back("hook " + name);
      if (name == "a")  // queued from a hook, as DDP does
        autograd::queue_callback([&events, leaf] {
          events.push_back("first, grad " + std::to_string(leaf.grad().to_vector<double>()[1]));
          autograd::queue_callback([&events] { events.push_back("queued by a callback"); });
        });
    });
  }
  (a * b).sum().backward();
  REQUIRE(events.size() == 4);
  CHECK(events[2] == "first, grad 4.000000");  // a's gradient is b
  CHECK(events[3] == "queued by a callback");
  CHECK(((events[0] == "hook a" && events[1] == "hook b") ||
         (events[0] == "hook b" && events[1] == "hook a")));
  // Nothing is left queued for the next backward.
  events.clear();
  Tensor c = tensor(std::vector<double>{1}).requires_grad_();
  (c * 2.0).sum().backward();
  CHECK(events.empty());
}

TEST_CASE("queue_callback outside a backward is an error", "[autograd][queue_callback]") {
  CHECK_THAT(test::outcome([] { autograd::queue_callback([] {}); }),
             Catch::Contains("[queue_callback] callbacks can only be queued while a backward is "
                             "running"));
  Tensor x = ones({2}).requires_grad_();
  x.register_post_accumulate_grad_hook(
      [](const Tensor&) { autograd::queue_callback(std::function<void()>{}); });
  CHECK_THAT(test::outcome([&] { x.sum().backward(); }),
             Catch::Contains("[queue_callback] the callback is empty"));
}
